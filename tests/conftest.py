"""Session fixtures: one quick run of the real notebooks, and the book built from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

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
