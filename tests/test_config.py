from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest
import yaml

from audioxai.config import config_hash, config_to_dict, load_config, load_config_json, save_config, save_config_json
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


@dataclass(frozen=True)
class Varied:
    size: tuple[int, int] = (2, 3)
    mode: Literal["mean", "max"] = "mean"
    labels: list[str] = field(default_factory=list)
    root: Path = Path("data")
    verbose: bool = False


@dataclass
class Required:
    sample_rate: int
    name: str = "x"


def test_defaults_when_nothing_is_given():
    assert load_config(Outer) == Outer()
    assert load_config(Outer, {}) == Outer()


def test_yaml_and_overrides_build_the_dataclass(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1\nlayers: [3, 4]\nfront_end: {n_mels: 32}\n")
    cfg = load_config(Outer, path, num_epochs=5)
    assert cfg == Outer(lr=1.0, num_epochs=5, layers=(3, 4), front_end=Inner(n_mels=32))
    assert isinstance(cfg.lr, float) and isinstance(cfg.layers, tuple)


def test_yaml_exponent_without_a_dot_is_a_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1e-3\nfront_end: {f_max: 8e3}\n")
    assert load_config(Outer, path) == Outer(lr=0.001, front_end=Inner(f_max=8000.0))


def test_nested_overrides_merge_with_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("front_end: {n_mels: 32, f_max: 4000.0}\n")
    cfg = load_config(Outer, path, front_end={"n_mels": 16})
    assert cfg.front_end == Inner(n_mels=16, f_max=4000.0)


def test_unknown_keys_are_named_with_a_suggestion_and_the_valid_keys():
    with pytest.raises(ConfigError, match=r"'num_epoch' \(did you mean 'num_epochs'\?\) for Outer") as err:
        load_config(Outer, {"num_epoch": 3})
    assert "valid keys are ['front_end', 'layers', 'lr', 'name', 'num_epochs']" in str(err.value)
    with pytest.raises(ConfigError, match=r"'n_mel' \(did you mean 'n_mels'\?\) for Inner in Outer.front_end"):
        load_config(Outer, {"front_end": {"n_mel": 3}})
    with pytest.raises(ConfigError, match="'zzz' for Outer"):
        load_config(Outer, lr=0.1, zzz=1)


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("learning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=rf"'learning_rate'.*{path.name}"):
        load_config(Outer, path)


@pytest.mark.parametrize("values, message", [
    ({"num_epochs": "ten"}, r"Outer.num_epochs='ten' should be of type int, not str"),
    ({"num_epochs": 2.5}, r"num_epochs=2.5 should be of type int"),
    ({"lr": True}, r"lr=True should be a number, not a boolean"),
    ({"name": 3}, r"name=3 should be of type str"),
    ({"layers": [1, "a"]}, r"layers\[1\]='a'"),
    ({"layers": 3}, r"layers=3 should be a list"),
    ({"front_end": {"f_max": "high"}}, r"front_end.f_max='high' should be float or NoneType"),
    ({"front_end": 5}, r"front_end should be a mapping of Inner fields"),
])
def test_wrong_types_are_named(values, message):
    with pytest.raises(ConfigError, match=message):
        load_config(Outer, values)


def test_optional_fixed_tuple_literal_list_and_path_fields():
    cfg = load_config(Varied, {"size": [4, 5], "mode": "max", "labels": ["a"], "root": "/tmp/x"})
    assert cfg == Varied(size=(4, 5), mode="max", labels=["a"], root=Path("/tmp/x"))
    assert load_config(Outer, {"front_end": {"f_max": None}}).front_end.f_max is None
    with pytest.raises(ConfigError, match="2 items"):
        load_config(Varied, {"size": [1, 2, 3]})
    with pytest.raises(ConfigError, match=r"mode='min': use one of \['mean', 'max'\]"):
        load_config(Varied, {"mode": "min"})
    with pytest.raises(ConfigError, match="verbose=1"):
        load_config(Varied, {"verbose": 1})


def test_missing_required_keys_are_named():
    with pytest.raises(ConfigError, match=r"needs key\(s\) \['sample_rate'\]"):
        load_config(Required, {})
    assert load_config(Required, sample_rate=16000) == Required(16000)


def test_bad_files_are_refused_clearly(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "nowhere.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping of Outer keys, not list"):
        load_config(Outer, tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("lr: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        load_config(Outer, tmp_path / "broken.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_config(Outer, tmp_path / "empty.yaml") == Outer()
    with pytest.raises(ConfigError, match="dataclass"):
        load_config(dict, {})


def test_yaml_round_trip(tmp_path):
    cfg = Outer(lr=0.5, layers=(1, 2, 3), front_end=Inner(f_max=4000.0))
    path = save_config(cfg, tmp_path / "sub" / "c.yaml")
    assert yaml.safe_load(path.read_text())["layers"] == [1, 2, 3]
    assert load_config(Outer, path) == cfg
    varied = Varied(size=(7, 8), mode="max", labels=["yes"], root=Path("/data/x"), verbose=True)
    assert load_config(Varied, save_config(varied, tmp_path / "v.yaml")) == varied
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["c.yaml"]  # no temporary left behind


def test_config_to_dict_is_plain():
    assert config_to_dict(Outer()) == {"lr": 1e-3, "num_epochs": 10, "name": "cnn", "layers": [6, 12],
                                       "front_end": {"n_mels": 64, "f_max": None}}
    assert config_to_dict({"inner": Inner(), "root": Path("a")}) == {"inner": {"n_mels": 64, "f_max": None},
                                                                     "root": "a"}
    with pytest.raises(ConfigError, match="dataclass instance or a dict"):
        config_to_dict([1, 2])


def test_config_hash_is_stable_across_key_order_and_changes_with_content():
    assert config_hash({"a": 1, "b": {"x": 1, "y": 2}}) == config_hash({"b": {"y": 2, "x": 1}, "a": 1})
    assert config_hash(Outer()) == config_hash(config_to_dict(Outer())) == config_hash(Outer())
    assert config_hash(Outer()) != config_hash(Outer(front_end=Inner(n_mels=65)))
    full = config_hash({"a": 1}, length=64)
    assert len(full) == 64 and int(full, 16) >= 0 and config_hash({"a": 1}) == full[:16]
    # the digest is fixed by the canonical JSON, so it never changes between runs or machines
    assert full == "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"


@dataclass
class Checked:
    low: float = 0.0
    high: float = 1.0

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ConfigError(f"low={self.low}, high={self.high}: need low < high")


def test_json_configs_round_trip_into_a_folder_and_name_the_file_in_every_error(tmp_path):
    written = save_config_json(Checked(0.5, 2.0), tmp_path, "checked.json")
    assert written == tmp_path / "checked.json" and written.is_file()
    assert load_config_json(Checked, tmp_path, "checked.json") == Checked(0.5, 2.0)
    assert load_config_json(Checked, written, "other.json") == Checked(0.5, 2.0)
    bad = tmp_path / "bad.json"
    bad.write_text('{"low": 3.0, "high": 1.0}')
    with pytest.raises(ConfigError, match=r"bad\.json: low=3\.0, high=1\.0: need low < high"):
        load_config_json(Checked, bad, "checked.json")
    bad.write_text('{"lowest": 0.0}')
    with pytest.raises(ConfigError, match=r"bad\.json.*unknown key.*'lowest'"):
        load_config_json(Checked, bad, "checked.json")


def test_is_finite_number_takes_real_numbers_only() -> None:
    import numpy as np

    from audioxai.config import is_finite_number
    for good in (0, -3, 2.5, np.float32(1.5), np.int64(7), 1e300):
        assert is_finite_number(good), good
    for bad in (True, False, float("nan"), float("inf"), -float("inf"), np.float64("nan"), "1.0", None, [1.0], 1j):
        assert not is_finite_number(bad), bad
