"""Execute the book's notebooks with papermill under a profile and record the run.

Each ``notebooks/NN_<name>.ipynb`` runs in the ``audioxai`` kernel with the project root as working
directory. Its parameters come from ``configs/profiles.yaml``; the runner adds ``profile`` and
``results_dir``. The executed copy goes to ``book/_executed/<stem>.ipynb`` (the page the book renders),
the notebook's outputs to ``results/<profile>/<stem>/``, and a summary of the run to
``results/<profile>/run.json``. Every problem that can be found without executing (unknown stems,
parameters a notebook does not declare) is reported before the first notebook starts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import platform
import re
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import yaml

from audioxai.atomic import atomic_write_text
from audioxai.book.results import PROFILES_FILE, RUN_RECORD, project_root
from audioxai.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["PROFILES", "RUNNER_PARAMETERS", "BookLayout", "NotebookRun", "RunReport", "load_profiles",
           "find_notebooks", "plan_run", "run_book", "environment_record", "write_run_record"]

PROFILES = ("quick", "full")
#: Parameters the runner injects into every notebook besides the profile's own.
RUNNER_PARAMETERS = ("profile", "results_dir")
KERNEL_NAME = "audioxai"
NOTEBOOK_NAME = re.compile(r"^\d\d_\w+\.ipynb$")


@dataclass(frozen=True)
class BookLayout:
    """Where the runner reads notebooks and profiles and writes executed copies and results."""

    root: Path
    notebooks_dir: Path
    profiles_file: Path
    executed_dir: Path
    results_root: Path

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None = None) -> BookLayout:
        """The standard layout under ``root`` (default: the project root found from cwd)."""
        root = project_root() if root is None else Path(root).resolve()
        return cls(root, root / "notebooks", root / PROFILES_FILE, root / "book" / "_executed", root / "results")


@dataclass
class NotebookRun:
    """One notebook's outcome: ``status`` is ``ok`` or ``failed``; ``error`` is the exception line."""

    stem: str
    status: str
    seconds: float
    executed_path: Path
    error: str | None = None


@dataclass
class RunReport:
    profile: str
    runs: list[NotebookRun] = field(default_factory=list)
    record_path: Path | None = None

    @property
    def failed(self) -> list[str]:
        return [r.stem for r in self.runs if r.status != "ok"]


@dataclass(frozen=True)
class PlannedNotebook:
    stem: str
    path: Path
    parameters: dict[str, Any]


def load_profiles(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read profiles.yaml: ``quick`` and ``full`` map stems to parameter mappings; ``metrics`` maps stems to keys."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"profiles file {path} not found")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with keys {', '.join(PROFILES)} and metrics")
    unknown = sorted(set(data) - {*PROFILES, "metrics"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys {unknown}; expected {', '.join(PROFILES)} and metrics")
    for section in (*PROFILES, "metrics"):
        data[section] = data.get(section) or {}
        if not isinstance(data[section], dict):
            raise ConfigError(f"{path}: '{section}' must map notebook stems to entries")
    for profile in PROFILES:
        for stem, params in data[profile].items():
            params = data[profile][stem] = params or {}
            if not isinstance(params, dict):
                raise ConfigError(f"{path}: {profile}.{stem} must be a mapping of parameter names to values")
            clash = sorted(set(params) & set(RUNNER_PARAMETERS))
            if clash:
                raise ConfigError(f"{path}: {profile}.{stem} sets {clash}, which the runner injects itself")
    for stem, keys in data["metrics"].items():
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ConfigError(f"{path}: metrics.{stem} must be a list of key names")
    return data


def find_notebooks(notebooks_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """The book's notebooks (``NN_<name>.ipynb``) by stem, in order."""
    paths = sorted(p for p in Path(notebooks_dir).glob("*.ipynb") if NOTEBOOK_NAME.match(p.name))
    return {p.stem: p for p in paths}


def _parameters_problems(stem: str, path: Path, wanted: Sequence[str]) -> list[str]:
    import papermill

    nb = nbformat.read(path, as_version=4)
    if not any("parameters" in cell.metadata.get("tags", []) for cell in nb.cells):
        return [f"{stem}: notebook {path} has no cell tagged 'parameters'"]
    declared = papermill.inspect_notebook(str(path))
    return [f"{stem}: parameter '{name}' is not defined in the parameters cell of {path}"
            for name in wanted if name not in declared]


def plan_run(layout: BookLayout, profile: str, only: Sequence[str] | None = None) -> list[PlannedNotebook]:
    """Check everything checkable without executing and return the notebooks to run with their parameters.

    Raises ConfigError naming every unknown stem, missing profile entry and undeclared parameter.
    """
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile '{profile}'; choose one of {', '.join(PROFILES)}")
    profiles = load_profiles(layout.profiles_file)
    notebooks = find_notebooks(layout.notebooks_dir)
    if not notebooks:
        raise ConfigError(f"no notebooks named NN_<name>.ipynb in {layout.notebooks_dir}")
    unknown = [name for name in only or () if name not in notebooks]
    if unknown:
        raise ConfigError(f"--only {', '.join(unknown)}: no such notebook; available stems: {', '.join(notebooks)}")
    for stem in sorted(set(profiles[profile]) - set(notebooks)):
        logger.warning("%s names %s under %s, but %s has no such notebook", layout.profiles_file, stem, profile,
                       layout.notebooks_dir)
    selected = [stem for stem in notebooks if not only or stem in only]
    problems: list[str] = []
    for stem in selected:
        if stem not in profiles[profile]:
            problems.append(f"{stem}: no entry under '{profile}:' in {layout.profiles_file}")
            continue
        problems += _parameters_problems(stem, notebooks[stem], [*profiles[profile][stem], *RUNNER_PARAMETERS])
    if problems:
        raise ConfigError("cannot run the notebooks:\n  " + "\n  ".join(problems))
    return [PlannedNotebook(stem, notebooks[stem], dict(profiles[profile][stem])) for stem in selected]


def _check_kernel(kernel_name: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel_name)
    except NoSuchKernel:
        raise ConfigError(f"Jupyter kernel '{kernel_name}' is not registered; run: python -m ipykernel install "
                          f"--sys-prefix --name {kernel_name} --display-name \"Python 3 ({kernel_name})\"") from None


@contextlib.contextmanager
def _package_on_kernel_path() -> Iterator[None]:
    """Let kernels import this checkout's audioxai whatever their working directory (restored afterwards)."""
    source_root = str(Path(__file__).resolve().parents[2])
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, old) if p)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _execute(planned: PlannedNotebook, layout: BookLayout, profile: str, kernel_name: str) -> NotebookRun:
    import papermill

    results_dir = layout.results_root / profile / planned.stem
    shutil.rmtree(results_dir, ignore_errors=True)  # no stale outputs from an earlier run
    results_dir.mkdir(parents=True)
    executed = layout.executed_dir / f"{planned.stem}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    params = {**planned.parameters, "profile": profile, "results_dir": _relative(results_dir, layout.root)}
    logger.info("running %s (%s) with %s", planned.stem, profile, params)
    start = time.perf_counter()
    status, error = "ok", None
    try:
        papermill.execute_notebook(str(planned.path), str(executed), parameters=params, kernel_name=kernel_name,
                                   cwd=str(layout.root), progress_bar=False, log_output=False)
    except papermill.PapermillExecutionError as err:
        status, error = "failed", f"{err.ename}: {err.evalue}"
    except Exception as err:  # a dead kernel or timeout must not stop the other notebooks
        status, error = "failed", f"{type(err).__name__}: {err}"
    seconds = time.perf_counter() - start
    if error:
        logger.error("%s failed after %.1f s: %s (executed copy: %s)", planned.stem, seconds, error, executed)
    else:
        logger.info("%s finished in %.1f s", planned.stem, seconds)
    return NotebookRun(planned.stem, status, round(seconds, 2), executed, error)


def _git(root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def environment_record(root: str | os.PathLike[str]) -> dict[str, Any]:
    """Device (CUDA name or ``cpu``), torch and Python versions, UTC time, git commit and dirty flag.

    ``dirty`` counts modified and untracked files outside ``results/`` (which a run itself rewrites);
    commit and dirty are ``None`` outside a git checkout.
    """
    import torch

    root = Path(root)
    commit = _git(root, "rev-parse", "HEAD")
    status = _git(root, "status", "--porcelain", "--", ".", ":(exclude)results") if commit else None
    return {
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": commit.strip() if commit else None,
        "dirty": bool(status.strip()) if status is not None else None,
    }


def write_run_record(path: str | os.PathLike[str], profile: str, runs: Sequence[NotebookRun],
                     environment: dict[str, Any]) -> Path:
    """Write ``run.json``: this run's environment plus one entry per notebook.

    Entries of notebooks this run did not execute (``--only``) are kept from the previous record; each
    entry carries its own device, date and commit, so it says where its numbers came from.
    """
    path = Path(path)
    previous: dict[str, Any] = {}
    if path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8")).get("notebooks", {})
        except (json.JSONDecodeError, AttributeError):
            logger.warning("replacing unreadable %s", path)
    per_run = {k: environment[k] for k in ("device", "torch", "date_utc", "commit", "dirty")}
    notebooks = {**previous, **{r.stem: {"status": r.status, "seconds": r.seconds, "error": r.error, **per_run}
                                for r in runs}}
    record = {"profile": profile, **environment, "executed": [r.stem for r in runs],
              "notebooks": dict(sorted(notebooks.items()))}
    atomic_write_text(path, json.dumps(record, indent=2) + "\n")
    return path


def run_book(profile: str, only: Sequence[str] | None = None, layout: BookLayout | None = None,
             kernel_name: str = KERNEL_NAME) -> RunReport:
    """Execute the selected notebooks under ``profile``; a failure is recorded and the next notebook runs."""
    layout = BookLayout.at() if layout is None else layout
    planned = plan_run(layout, profile, only)
    _check_kernel(kernel_name)
    environment = environment_record(layout.root)
    report = RunReport(profile)
    with _package_on_kernel_path():
        for item in planned:
            report.runs.append(_execute(item, layout, profile, kernel_name))
    report.record_path = write_run_record(layout.results_root / profile / RUN_RECORD, profile, report.runs,
                                          environment)
    return report
