"""Session fixtures: one quick run of the real notebooks, and the book built from it."""

from __future__ import annotations

import subprocess
import sys
import json
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


class QuickRun(NamedTuple):
    returncode: int
    output: str
    results_root: Path


def _module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "audioxai.book", *args], cwd=ROOT, capture_output=True, text=True)


@pytest.fixture(scope="session")
def quick_run() -> QuickRun:
    """``python -m audioxai.book run --profile quick`` over the real notebooks, once per session."""
    done = _module("run", "--profile", "quick")
    return QuickRun(done.returncode, done.stdout + done.stderr, ROOT / "results" / "quick")


@pytest.fixture(scope="session")
def built_book(quick_run: QuickRun) -> Path:
    """``python -m audioxai.book build`` after the quick run; the ``_build/html`` folder."""
    done = _module("build")
    if done.returncode != 0:
        pytest.fail(f"book build failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-6000:]}\n"
                    f"quick run (exit {quick_run.returncode}):\n{quick_run.output[-3000:]}")
    return ROOT / "_build" / "html"


def _chapter_results(quick_run: QuickRun, stem: str) -> tuple[Path, dict, dict]:
    """A chapter's quick results folder, its ``metrics.json`` and its quick parameters; fails with the
    run's output when the notebook wrote no metrics."""
    out = quick_run.results_root / stem
    if not (out / "metrics.json").is_file():
        pytest.fail(f"{stem} wrote no metrics.json:\n{quick_run.output[-3000:]}")
    params = yaml.safe_load((ROOT / "configs" / "profiles.yaml").read_text())["quick"][stem]
    return out, json.loads((out / "metrics.json").read_text()), params


@pytest.fixture(scope="session")
def chapter_results():
    """``chapter_results(quick_run, stem)`` -> (results folder, metrics, quick parameters) of one chapter."""
    return _chapter_results
