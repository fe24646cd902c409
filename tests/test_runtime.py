import os
import random

import numpy as np
import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.runtime import describe_device, resolve_device, seed_everything


def test_auto_picks_cuda_only_when_visible_and_cpu_always_works():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == expected
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"no CUDA device is visible: use 'cpu' or 'auto'"):
        resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_index_beyond_the_visible_devices_is_refused():
    assert resolve_device("cuda").type == "cuda"
    with pytest.raises(ConfigError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("name", ["gpu0", "", "tpu", "meta"])
def test_unknown_device_names_are_refused(name):
    with pytest.raises(ConfigError, match="device"):
        resolve_device(name)


def test_non_string_device_is_refused():
    with pytest.raises(ConfigError, match="string"):
        resolve_device(0)  # type: ignore[arg-type]


def test_seed_everything_repeats_every_generator():
    def draw(seed):
        g = seed_everything(seed)
        return random.random(), np.random.rand(), torch.rand(3), torch.rand(2, generator=g)

    first, second, other = draw(5), draw(5), draw(6)
    assert first[:2] == second[:2] and first[:2] != other[:2]
    assert torch.equal(first[2], second[2]) and torch.equal(first[3], second[3])
    assert not torch.equal(first[2], other[2])
    assert isinstance(seed_everything(0), torch.Generator)


@pytest.mark.parametrize("seed", [-1, 1.5, True, "3"])
def test_bad_seeds_are_refused(seed):
    with pytest.raises(ConfigError, match="seed"):
        seed_everything(seed)


def test_deterministic_flag_turns_on_deterministic_algorithms():
    before = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
        assert "CUBLAS_WORKSPACE_CONFIG" in os.environ
    finally:
        torch.use_deterministic_algorithms(before[0])
        torch.backends.cudnn.benchmark = before[1]


def test_describe_device_records_versions():
    info = describe_device("cpu")
    assert info["device"] == "cpu" and info["torch"] == torch.__version__
    assert info["gpu"] is None and info["cuda"] is None and info["python"]
    if torch.cuda.is_available():
        cuda = describe_device("cuda")
        assert cuda["gpu"] and cuda["cuda"] == torch.version.cuda


def test_importing_audioxai_sets_hugging_face_offline():
    import audioxai  # noqa: F401

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"


def test_best_wall_times_interleaves_the_cases_and_keeps_each_last_result():
    from audioxai.runtime import best_wall_times

    calls = []
    cases = {"a": lambda: calls.append("a") or len(calls), "b": lambda: calls.append("b") or len(calls)}
    seconds, results = best_wall_times(cases, repeats=3)
    assert calls == ["a", "b"] * 3
    assert results == {"a": 5, "b": 6}
    assert set(seconds) == {"a", "b"} and all(0 <= s < 1 for s in seconds.values())
