import pickle

import pytest
import torch
from torch import nn

from audioxai.errors import ConfigError
from audioxai.models.checkpoints import load_checkpoint, save_checkpoint


def _model(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    model[2].weight = model[0].weight if False else model[2].weight
    return model


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth"])
def test_round_trip_restores_weights_and_metadata(tmp_path, suffix):
    source, target = _model(0), _model(1)
    meta = {"classes": ["a", "b", "c"], "epoch": 3, "val_acc": 0.9}
    save_checkpoint(tmp_path / f"m{suffix}", source, meta)
    state, loaded_meta = load_checkpoint(tmp_path / f"m{suffix}", target)
    assert loaded_meta == meta
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value) and torch.equal(state[key], value)


def test_shared_tensors_are_saved(tmp_path):
    emb = nn.Embedding(5, 4)
    head = nn.Linear(4, 5, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head})
    save_checkpoint(tmp_path / "tied.safetensors", model)
    state, _ = load_checkpoint(tmp_path / "tied.safetensors")
    assert torch.equal(state["emb.weight"], state["head.weight"])


class Payload:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_a_pickle_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"state_dict": {}, "payload": Payload()}, fh)
    with pytest.raises(ConfigError, match="refused"):
        load_checkpoint(path)


def test_failed_save_leaves_no_file(tmp_path):
    with pytest.raises(ConfigError, match="JSON"):
        save_checkpoint(tmp_path / "m.safetensors", _model(), {"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_missing_corrupt_and_unknown_suffix(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        load_checkpoint(tmp_path / "nowhere.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="bad.safetensors"):
        load_checkpoint(tmp_path / "bad.safetensors")
    with pytest.raises(ConfigError, match="suffix"):
        save_checkpoint(tmp_path / "m.bin", _model())
    assert not (tmp_path / "m.bin").exists()


def test_bare_state_dict_pt_loads(tmp_path):
    torch.save(_model().state_dict(), tmp_path / "bare.pt")
    state, meta = load_checkpoint(tmp_path / "bare.pt")
    assert meta == {} and set(state) == set(_model().state_dict())
