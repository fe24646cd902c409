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
import os
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from audioxai.atomic import atomic_write_text
from audioxai.errors import ConfigError

__all__ = ["load_config", "config_to_dict", "save_config", "config_hash"]

T = TypeVar("T")


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Return ``value`` converted to ``annotation`` where that is lossless, else raise ConfigError."""
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(annotation):
            try:
                return _check_type(value, option, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}={value!r} matches none of {annotation}")
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
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}={value!r} should be a list")
        args = typing.get_args(annotation)
        item = args[0] if args else Any
        items = [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}={value!r} should be a mapping")
        return dict(value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}={value!r} should be a number, not a boolean")
    if isinstance(annotation, type) and not isinstance(value, annotation):
        raise ConfigError(f"{where}={value!r} should be of type {annotation.__name__}, not {type(value).__name__}")
    return value


def _build(cls: type[T], values: dict[str, Any], where: str) -> T:
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in values if k not in fields]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, fields, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"unknown key(s) {', '.join(hints)} for {cls.__name__} in {where}: valid keys are {sorted(fields)}"
        )
    hints_by_name = typing.get_type_hints(cls)
    kwargs = {k: _check_type(v, hints_by_name[k], f"{where}.{k}") for k, v in values.items()}
    return cls(**kwargs)


def load_config(cls: type[T], source: str | os.PathLike[str] | dict | None = None, **overrides: Any) -> T:
    """Build dataclass ``cls`` from a YAML file or dict, then keyword ``overrides``.

    Raises ConfigError naming any unknown key (with a close match when there is one), any value of
    the wrong type, or a file that is missing or is not a YAML mapping.
    """
    where = cls.__name__
    values: dict[str, Any] = {}
    if isinstance(source, dict):
        values = dict(source)
    elif source is not None:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"configuration file {path} not found: check the path")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} should hold a mapping of {cls.__name__} keys, not {type(loaded).__name__}")
        values, where = loaded, str(path)
    values.update(overrides)
    return _build(cls, values, where)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A plain dict (tuples as lists) of a dataclass, ready for JSON or YAML."""
    if not dataclasses.is_dataclass(config):
        return dict(config)
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def save_config(config: Any, path: str | os.PathLike[str]) -> Path:
    """Write a dataclass as YAML, atomically."""
    return atomic_write_text(path, yaml.safe_dump(config_to_dict(config), sort_keys=False))


def config_hash(config: Any, length: int = 16) -> str:
    """Stable hex digest of a dataclass or dict (canonical JSON, sorted keys); used to key caches."""
    canonical = json.dumps(config_to_dict(config), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]
