import pickle

import pytest
import torch
from torch import nn

import audioxai.models.checkpoints as checkpoints
from audioxai.errors import ConfigError
from audioxai.models.checkpoints import load_checkpoint, save_checkpoint

SUFFIXES = [".safetensors", ".pt", ".pth"]


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _assert_same_state(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_restores_weights_buffers_and_metadata(tmp_path, suffix):
    source, target = _model(0), _model(1)
    source[1].running_mean.add_(1.5)
    source[1].num_batches_tracked.add_(7)  # an int64 buffer
    meta = {"classes": ["zero", "one", "två"], "epoch": 3, "val_acc": 0.9, "config": {"lr": 1e-3, "clip": None}}
    path = save_checkpoint(tmp_path / f"m{suffix}", source, meta)
    state, loaded_meta = load_checkpoint(path, target)
    assert loaded_meta == meta
    _assert_same_state(state, source.state_dict())
    _assert_same_state(target.state_dict(), source.state_dict())


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_state_dicts_without_metadata_and_odd_tensors_round_trip(tmp_path, suffix):
    base = torch.arange(12.0).reshape(3, 4)
    state = {"transposed": base.t(), "half": torch.ones(3, dtype=torch.float16), "flags": torch.tensor([True, False])}
    save_checkpoint(tmp_path / f"s{suffix}", state)
    loaded, meta = load_checkpoint(tmp_path / f"s{suffix}")
    assert meta == {}
    _assert_same_state(loaded, state)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_shared_tensors_are_saved(tmp_path, suffix):
    emb = nn.Embedding(5, 4)
    head = nn.Linear(4, 5, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head})
    save_checkpoint(tmp_path / f"tied{suffix}", model)
    state, _ = load_checkpoint(tmp_path / f"tied{suffix}")
    assert torch.equal(state["emb.weight"], emb.weight) and torch.equal(state["head.weight"], emb.weight)


def test_loading_into_a_model_that_does_not_fit_is_named(tmp_path):
    save_checkpoint(tmp_path / "m.safetensors", _model())
    other = nn.Sequential(nn.Linear(4, 8))
    with pytest.raises(ConfigError, match="m.safetensors does not fit Sequential"):
        load_checkpoint(tmp_path / "m.safetensors", other)
    bigger = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3), nn.Linear(3, 3))
    load_checkpoint(tmp_path / "m.safetensors", bigger, strict=False)
    assert torch.equal(bigger[0].weight, _model()[0].weight)


ran = []


def _mark_ran():
    ran.append(True)
    return {}


class Payload:
    def __reduce__(self):
        return (_mark_ran, ())


class Custom:
    def __init__(self):
        self.weights = [1.0, 2.0]


def _pickle_dump(obj, path):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("dump", [torch.save, _pickle_dump])
def test_a_pickle_that_would_run_code_is_refused_without_running_it(tmp_path, dump):
    path = tmp_path / "evil.pt"
    dump({"state_dict": {"w": torch.zeros(2)}, "payload": Payload()}, path)
    with pytest.raises(ConfigError, match="evil.pt holds more than weights.*refused"):
        load_checkpoint(path)
    assert ran == []  # torch.load(weights_only=False) would have called _mark_ran


def test_a_pickled_custom_object_is_refused_and_named(tmp_path):
    path = tmp_path / "custom.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": Custom()}, path)
    with pytest.raises(ConfigError, match=r"custom.pth holds more than weights \(it references .*\.Custom\)"):
        load_checkpoint(path)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_failure_mid_save_leaves_no_file_and_keeps_the_old_one(tmp_path, monkeypatch, suffix):
    def broken(_state, target, **_kwargs):
        with open(target, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints, "save_file", broken)
    monkeypatch.setattr(checkpoints.torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path / f"new{suffix}", _model())
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()

    save_checkpoint(tmp_path / f"old{suffix}", _model(0), {"v": 1})
    monkeypatch.setattr(checkpoints, "save_file", broken)
    monkeypatch.setattr(checkpoints.torch, "save", broken)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / f"old{suffix}", _model(1), {"v": 2})
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [f"old{suffix}"]
    state, meta = load_checkpoint(tmp_path / f"old{suffix}")
    assert meta == {"v": 1}
    _assert_same_state(state, _model(0).state_dict())


def test_metadata_that_is_not_plain_is_refused_before_writing(tmp_path):
    for suffix in SUFFIXES:
        with pytest.raises(ConfigError, match="JSON"):
            save_checkpoint(tmp_path / f"m{suffix}", _model(), {"bad": object()})
    with pytest.raises(ConfigError, match="not tensors"):
        save_checkpoint(tmp_path / "m.pt", {"w": torch.zeros(1), "step": 3})
    assert list(tmp_path.iterdir()) == []


def test_missing_corrupt_and_unknown_suffix_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        load_checkpoint(tmp_path / "nowhere.safetensors")
    good_pt = save_checkpoint(tmp_path / "good.pt", _model()).read_bytes()
    good_st = save_checkpoint(tmp_path / "good.safetensors", _model()).read_bytes()
    corrupt = {"garbage.safetensors": b"not a checkpoint", "empty.safetensors": b"",
               "cut.safetensors": good_st[:-20], "garbage.pt": b"not a checkpoint at all",
               "empty.pt": b"", "cut.pth": good_pt[: len(good_pt) // 2]}
    for name, data in corrupt.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
            load_checkpoint(tmp_path / name)
    with pytest.raises(ConfigError, match="suffix"):
        save_checkpoint(tmp_path / "m.bin", _model())
    assert not (tmp_path / "m.bin").exists()


def test_plain_torch_files_load(tmp_path):
    torch.save(_model().state_dict(), tmp_path / "bare.pt")
    state, meta = load_checkpoint(tmp_path / "bare.pt")
    assert meta == {}
    _assert_same_state(state, _model().state_dict())
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ConfigError, match="neither a state dict"):
        load_checkpoint(tmp_path / "list.pt")
