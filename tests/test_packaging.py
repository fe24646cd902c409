"""The install files agree: pyproject.toml, constraints.txt and environment.yml list the same packages."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    return {_name(d) for d in deps}


def _constraints() -> dict[str, str]:
    lines = [l for l in (ROOT / "constraints.txt").read_text().splitlines() if l and not l.startswith("#")]
    return {_name(l): l.split("==", 1)[1] for l in lines}


def _environment() -> tuple[dict, set[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return env, {_name(p) for p in pip}


def test_environment_yml_lists_the_same_packages_as_pyproject():
    env, pip_names = _environment()
    assert pip_names == _pyproject()
    assert "python=3.11" in env["dependencies"]


def test_constraints_pin_every_direct_dependency_exactly():
    pins = _constraints()
    assert set(pins) == _pyproject()
    assert all(re.fullmatch(r"\d+(\.\d+)*(\.post\d+)?", v) for v in pins.values()), pins


def test_torch_and_torchaudio_are_the_same_2_11_release():
    pins = _constraints()
    assert pins["torch"] == pins["torchaudio"]
    assert pins["torch"].startswith("2.11.")
    assert pins["jupyter-book"].startswith("1.")
