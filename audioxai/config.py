"""Typed configuration: dataclasses filled from YAML files or dicts, with unknown keys refused by name.

Defaults are written once, in the dataclass. ``load_config(TrainConfig, "configs/x.yaml", lr=1e-3)``
reads the file, applies keyword overrides, checks every key and basic type, and returns the
dataclass. ``config_hash`` gives a stable key for caches (same content, same hash, whatever the key
order).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import numbers
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from audioxai.atomic import atomic_write_text
from audioxai.errors import ConfigError

__all__ = ["is_finite_number", "load_config", "config_to_dict", "save_config", "save_config_json", "load_config_json", "config_hash"]

T = TypeVar("T")


def is_finite_number(value: Any) -> bool:
    """True for a real number (Python or NumPy, not a bool) that is neither NaN nor infinite."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-3`` and ``1.0e3`` as floats (YAML 1.1 wants ``1.0e-3`` and gives strings)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _check_union(value: Any, annotation: Any, where: str) -> Any:
    options = typing.get_args(annotation)
    for option in options:
        try:
            return _check_type(value, option, where)
        except ConfigError:
            continue
    names = " or ".join(_type_name(o) for o in options)
    raise ConfigError(f"{where}={value!r} should be {names}, not {type(value).__name__}")


def _check_sequence(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation) or annotation
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{where}={value!r} should be a list, not {type(value).__name__}")
    args = typing.get_args(annotation)
    if origin is tuple and args and args[-1] is not Ellipsis:  # fixed length: tuple[int, int]
        if len(value) != len(args):
            raise ConfigError(f"{where}={value!r} should have {len(args)} items, not {len(value)}")
        items = [_check_type(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args))]
    else:
        item = args[0] if args else Any
        items = [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Return ``value`` converted to ``annotation`` where that is lossless, else raise ConfigError."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        return _check_union(value, annotation, where)
    if origin is typing.Literal:
        if value not in typing.get_args(annotation):
            raise ConfigError(f"{where}={value!r}: use one of {list(typing.get_args(annotation))}")
        return value
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}={value!r} should be None")
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if isinstance(value, dict):
            return _build(annotation, value, where)
        raise ConfigError(f"{where} should be a mapping of {annotation.__name__} fields, got {value!r}")
    if origin in (tuple, list) or annotation in (tuple, list):
        return _check_sequence(value, annotation, where)
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}={value!r} should be a mapping, not {type(value).__name__}")
        return dict(value)
    if annotation in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}={value!r} should be a number, not a boolean")
    if annotation is float and isinstance(value, int):
        return float(value)
    if annotation is Path and isinstance(value, str):
        return Path(value)
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ConfigError(f"{where}={value!r} should be of type {annotation.__name__}, not {type(value).__name__}")
    return value


def _build(cls: type[T], values: dict[str, Any], where: str) -> T:
    """Check ``values`` against the fields of dataclass ``cls`` and construct it."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in values if k not in fields]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"unknown key(s) {', '.join(hints)} for {cls.__name__} in {where}: valid keys are {sorted(fields)}"
        )
    missing = [name for name, f in fields.items() if name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{cls.__name__} in {where} needs key(s) {missing}, which have no default")
    hints_by_name = typing.get_type_hints(cls)
    kwargs = {k: _check_type(v, hints_by_name[k], f"{where}.{k}") for k, v in values.items()}
    return cls(**kwargs)


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` updated by ``overrides``; nested mappings are merged key by key, not replaced."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path, cls: type) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"configuration file {path} not found: check the path")
    try:
        loaded = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path} should hold a mapping of {cls.__name__} keys, not {type(loaded).__name__}")
    return loaded


def load_config(cls: type[T], source: str | os.PathLike[str] | dict | None = None, **overrides: Any) -> T:
    """Build dataclass ``cls`` from a YAML file or dict, then keyword ``overrides``.

    Fields not given keep the dataclass defaults; nested dataclasses are given as nested mappings,
    and an override mapping is merged into the nested mapping it replaces.

    Raises:
        ConfigError: naming any unknown key (with a close match when there is one), any value of
            the wrong type, a missing required key, or a file that is missing or not a YAML mapping.
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ConfigError(f"load_config needs a dataclass type, not {cls!r}")
    where, values = cls.__name__, {}
    if isinstance(source, dict):
        values = dict(source)
    elif source is not None:
        values, where = _read_yaml(Path(source), cls), str(source)
    return _build(cls, _merge(values, overrides), where)


def _plain(obj: Any) -> Any:
    """JSON fallback: dataclasses become dicts, anything else (paths, numpy scalars) its string."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return str(obj)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain dict of a dataclass or mapping (tuples as lists, paths as strings), ready for JSON or YAML."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, dict):
        raise ConfigError(f"expected a dataclass instance or a dict, not {type(config).__name__}")
    return json.loads(json.dumps(config, default=_plain))


def save_config(config: Any, path: str | os.PathLike[str]) -> Path:
    """Write a dataclass (or dict) as YAML, atomically; ``load_config`` reads it back equal."""
    return atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def _in_folder(path: str | os.PathLike[str], default_name: str) -> Path:
    """``path``, or ``path / default_name`` when ``path`` is a folder."""
    return Path(path) / default_name if Path(path).is_dir() else Path(path)


def save_config_json(config: Any, path: str | os.PathLike[str], default_name: str) -> Path:
    """Write a dataclass as JSON, atomically; a folder gets ``default_name`` inside it. Returns the file."""
    return atomic_write_text(_in_folder(path, default_name), json.dumps(config_to_dict(config), indent=2) + "\n")


def load_config_json(cls: type[T], path: str | os.PathLike[str], default_name: str) -> T:
    """``load_config(cls, file)`` for a file written by ``save_config_json`` (or ``default_name`` inside a
    folder); every ConfigError, including those of the dataclass's own checks, names the file."""
    source = _in_folder(path, default_name)
    try:
        return load_config(cls, source)
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from err


def config_hash(config: Any, length: int = 16) -> str:
    """Stable sha256 hex digest of a dataclass or dict, used to key caches.

    The digest is of the canonical JSON (sorted keys, no spaces), so key order does not matter;
    ``length`` keeps the first hex characters (64 for the whole digest).
    """
    canonical = json.dumps(config_to_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:length]
