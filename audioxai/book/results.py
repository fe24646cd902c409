"""What a notebook calls to place, record and compare its results.

Every notebook writes its figures, tables and a ``metrics.json`` into ``results/<profile>/<stem>/``.
The latest full run lives, committed, in ``results/full/``; a quick run shows its numbers beside
that reference, labelled with the device, date and commit the reference came from.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from audioxai.atomic import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = [
    "PROFILES_FILE",
    "project_root",
    "prepare_results_dir",
    "to_jsonable",
    "record_metrics",
    "reference_metrics",
    "compare_with_reference",
]

#: Where the profiles live, relative to the project root; its presence marks the root.
PROFILES_FILE = Path("configs") / "profiles.yaml"
REFERENCE_PROFILE = "full"
RUN_RECORD = "run.json"
METRICS_FILE = "metrics.json"


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) holding ``configs/profiles.yaml``, else ``start``."""
    here = Path.cwd() if start is None else Path(start)
    here = here.resolve()
    for folder in (here, *here.parents):
        if (folder / PROFILES_FILE).is_file():
            return folder
    return here


def prepare_results_dir(stem: str, profile: str, results_dir: str | os.PathLike[str] | None = None) -> Path:
    """Create and return the notebook's output folder.

    Args:
        stem: the notebook's name without ``.ipynb`` (``00_corpora``).
        profile: ``quick`` or ``full``.
        results_dir: the folder the runner injected (relative paths are taken from the project root);
            ``None`` when the notebook runs by hand, giving ``results/<profile>/<stem>``.
    """
    root = project_root()
    folder = root / "results" / profile / stem if results_dir is None else root / Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def to_jsonable(value: Any) -> Any:
    """Convert numpy and torch scalars and arrays, paths, tuples and sets into plain JSON values.

    Non-finite floats (NaN, inf) become ``None`` so the file stays strict JSON.
    Raises TypeError for anything else that JSON cannot hold.
    """
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [to_jsonable(v) for v in items]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars/arrays, torch tensors
        if hasattr(value, "detach"):
            value = value.detach().cpu()
        return to_jsonable(value.tolist())
    if hasattr(value, "item") and callable(value.item):
        return to_jsonable(value.item())
    raise TypeError(f"cannot write {type(value).__name__} to metrics.json: {value!r}")


def record_metrics(results_dir: str | os.PathLike[str], metrics: Mapping[str, Any], profile: str) -> Path:
    """Write ``metrics`` plus ``profile`` to ``<results_dir>/metrics.json`` atomically; return its path."""
    payload = to_jsonable({**metrics, "profile": profile})
    path = Path(results_dir) / METRICS_FILE
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")
    logger.info("recorded %d metrics in %s", len(payload), path)
    return path


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as err:
        logger.warning("ignoring unreadable %s: %s", path, err)
        return None


def reference_metrics(stem: str, root: str | os.PathLike[str] | None = None) -> dict | None:
    """The latest full run's metrics for ``stem`` and where they came from, or ``None``.

    Returns ``{"metrics": {...}, "device", "date_utc", "commit", "dirty", "seconds", "status"}`` read from
    ``results/full/<stem>/metrics.json`` and ``results/full/run.json`` (fields unknown there are ``None``).
    A notebook that failed in that run has no reference.
    """
    full = (project_root() if root is None else Path(root)) / "results" / REFERENCE_PROFILE
    metrics = _read_json(full / stem / METRICS_FILE)
    if metrics is None:
        return None
    run = _read_json(full / RUN_RECORD) or {}
    entry = {**run, **run.get("notebooks", {}).get(stem, {})}
    if entry.get("status", "ok") != "ok":
        logger.warning("the full run of %s failed; there is no reference for it", stem)
        return None
    info = {key: entry.get(key) for key in ("device", "date_utc", "commit", "dirty", "seconds", "status")}
    return {"metrics": metrics, **info}


def _reference_label(ref: Mapping[str, Any]) -> str:
    date = (ref.get("date_utc") or "date unknown")[:10]
    commit = (ref.get("commit") or "commit unknown")[:7] + ("+dirty" if ref.get("dirty") else "")
    return f"reference full run ({ref.get('device') or 'device unknown'}, {date}, {commit})"


def _headline_keys(stem: str, metrics: Mapping[str, Any], root: Path) -> list[str]:
    """The keys promised for ``stem`` under ``metrics:`` in profiles.yaml, else all keys; never ``profile``."""
    promised = None
    if (root / PROFILES_FILE).is_file():
        promised = (yaml.safe_load((root / PROFILES_FILE).read_text(encoding="utf-8")) or {}).get("metrics", {})
        promised = (promised or {}).get(stem)
    keys = list(promised) if promised else list(metrics)
    return [k for k in keys if k != "profile"]


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def compare_with_reference(stem: str, metrics: Mapping[str, Any], profile: str,
                           root: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """A table of this run's headline metrics beside the reference full run's.

    One row per headline metric (the scalar keys promised under ``metrics:`` in profiles.yaml, or every
    scalar key). Columns: ``this run (<profile>)`` and ``reference full run (<device>, <date>, <commit>)``.
    Without a reference the second column is named for that and holds ``"-"``; the reason is also in
    ``DataFrame.attrs["note"]``. A full run is itself the reference and gets a single column.
    """
    root = project_root() if root is None else Path(root)
    this = to_jsonable(dict(metrics))
    this_col = f"this run ({profile})"
    if profile == REFERENCE_PROFILE:
        ref, note = None, "this is the full run: it becomes the reference for quick runs once committed"
    else:
        ref = reference_metrics(stem, root)
        note = None if ref else (f"no reference yet: results/{REFERENCE_PROFILE}/{stem}/metrics.json is missing "
                                 f"(run `python -m audioxai.book run --profile full --only {stem}`)")
    ref_values = ref["metrics"] if ref else {}
    keys = [k for k in _headline_keys(stem, this, root)
            if _is_scalar(this.get(k)) and _is_scalar(ref_values.get(k))]
    table = pd.DataFrame({this_col: [this.get(k) for k in keys]}, index=pd.Index(keys, name="metric"))
    if ref:
        table[_reference_label(ref)] = [ref_values.get(k) for k in keys]
    elif profile != REFERENCE_PROFILE:
        table["reference full run: none yet"] = "-"
    if note:
        table.attrs["note"] = note
        logger.info("%s: %s", stem, note)
    return table
