import numpy as np
import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.runtime import describe_device, resolve_device, seed_everything


def test_auto_picks_cpu_without_cuda_and_cuda_is_refused_clearly():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("gpu0")


def test_seed_everything_repeats_every_generator():
    g = seed_everything(5)
    first = (np.random.rand(), torch.rand(2), torch.rand(1, generator=g))
    g = seed_everything(5)
    second = (np.random.rand(), torch.rand(2), torch.rand(1, generator=g))
    assert first[0] == second[0] and torch.equal(first[1], second[1]) and torch.equal(first[2], second[2])
    with pytest.raises(ConfigError, match="seed"):
        seed_everything(-1)


def test_describe_device_records_versions():
    info = describe_device("cpu")
    assert info["device"] == "cpu" and info["torch"] == torch.__version__ and info["gpu"] is None


def test_importing_audioxai_sets_hugging_face_offline():
    import os

    import audioxai  # noqa: F401

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
