from dataclasses import dataclass, field

import pytest

from audioxai.config import config_hash, config_to_dict, load_config, save_config
from audioxai.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    n_mels: int = 64
    f_max: float | None = None


@dataclass(frozen=True)
class Outer:
    lr: float = 1e-3
    num_epochs: int = 10
    name: str = "cnn"
    layers: tuple[int, ...] = (6, 12)
    front_end: Inner = field(default_factory=Inner)


def test_yaml_and_overrides_build_the_dataclass(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1\nlayers: [3, 4]\nfront_end: {n_mels: 32}\n")
    cfg = load_config(Outer, path, num_epochs=5)
    assert cfg == Outer(lr=1.0, num_epochs=5, layers=(3, 4), front_end=Inner(n_mels=32))
    assert isinstance(cfg.lr, float)


def test_unknown_keys_are_named_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"'num_epoch' \(did you mean 'num_epochs'\?\).*Outer"):
        load_config(Outer, {"num_epoch": 3})
    with pytest.raises(ConfigError, match="n_mel"):
        load_config(Outer, {"front_end": {"n_mel": 3}})


def test_wrong_types_are_named():
    with pytest.raises(ConfigError, match="num_epochs='ten'"):
        load_config(Outer, {"num_epochs": "ten"})
    with pytest.raises(ConfigError, match="lr=True"):
        load_config(Outer, {"lr": True})
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, "nowhere.yaml")


def test_save_load_round_trip_and_stable_hash(tmp_path):
    cfg = Outer(lr=0.5, front_end=Inner(f_max=4000.0))
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(Outer, tmp_path / "c.yaml") == cfg
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash(cfg) == config_hash(config_to_dict(cfg)) != config_hash(Outer())
