"""Compile the book with Jupyter Book 1.x from the notebooks the runner executed.

The book never executes anything (``execute_notebooks: off`` in ``_config.yml``); it renders the copies
in ``book/_executed/``. Before Sphinx starts, every page ``_toc.yml`` names must exist, and every
executed notebook must come from a papermill run that finished without an exception.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import yaml

from audioxai.book.results import project_root
from audioxai.errors import AudioXAIError

logger = logging.getLogger(__name__)

__all__ = ["BookBuildError", "toc_files", "check_pages", "build_book"]

PAGE_SUFFIXES = (".md", ".ipynb", ".rst", ".myst")
RUN_HINT = "run `python -m audioxai.book run` first"


class BookBuildError(AudioXAIError, RuntimeError):
    """The book cannot be built, or Jupyter Book reported errors or warnings."""


def _entries(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key in ("root", "file"):
            if isinstance(node.get(key), str):
                yield node[key]
        for key in ("parts", "chapters", "sections"):
            for child in node.get(key) or []:
                yield from _entries(child)
    elif isinstance(node, list):
        for child in node:
            yield from _entries(child)


def toc_files(toc_path: str | os.PathLike[str]) -> list[str]:
    """Every document ``_toc.yml`` names (``root`` and each ``file``), as written there, in order."""
    return list(_entries(yaml.safe_load(Path(toc_path).read_text(encoding="utf-8")) or {}))


def _resolve(root: Path, entry: str) -> Path | None:
    base = root / entry
    if base.suffix in PAGE_SUFFIXES and base.is_file():
        return base
    return next((base.with_name(base.name + s) for s in PAGE_SUFFIXES if base.with_name(base.name + s).is_file()),
                None)


def _failed_execution(path: Path) -> str | None:
    """Why papermill's record in an executed notebook says it did not finish, else None."""
    record = nbformat.read(path, as_version=4).metadata.get("papermill")
    if not record:
        return None
    if record.get("exception"):
        return "its execution raised an exception"
    if not record.get("end_time"):
        return "its execution did not finish"
    return None


def check_pages(root: str | os.PathLike[str], toc: str = "_toc.yml", executed_dir: str = "book/_executed") -> None:
    """Raise BookBuildError naming every page of the toc that is missing or whose execution failed."""
    root = Path(root)
    executed = (root / executed_dir).resolve()
    problems = []
    for entry in toc_files(root / toc):
        page = _resolve(root, entry)
        is_executed = (root / entry).resolve().is_relative_to(executed)
        if page is None and is_executed:
            problems.append(f"{entry}: executed notebook {entry}.ipynb is missing; {RUN_HINT}")
        elif page is None:
            problems.append(f"{entry}: no such page (looked for {', '.join(PAGE_SUFFIXES)})")
        elif page.suffix == ".ipynb" and (reason := _failed_execution(page)):
            problems.append(f"{entry}: {reason}; open {page.relative_to(root)} for the traceback, fix the "
                            "notebook and run `python -m audioxai.book run` again")
    if problems:
        raise BookBuildError(f"cannot build the book from {root}:\n  " + "\n  ".join(problems))


def build_book(root: str | os.PathLike[str] | None = None) -> Path:
    """Build ``<root>/_build/html`` with Jupyter Book, warnings as errors; return the html folder.

    Every page is re-read (``--all``), so warnings from unchanged pages are reported again.
    """
    root = project_root() if root is None else Path(root).resolve()
    check_pages(root)
    command = [sys.executable, "-c", "from jupyter_book.cli.main import main; main(prog_name='jupyter-book')",
               "build", str(root), "--path-output", str(root), "--all", "-W", "--keep-going"]
    logger.info("building the book: jupyter-book build %s -W --keep-going --all", root)
    done = subprocess.run(command, cwd=root)
    if done.returncode != 0:
        raise BookBuildError(f"jupyter-book build failed (exit {done.returncode}); warnings count as errors, "
                             "see the messages above")
    html = root / "_build" / "html"
    logger.info("book built: %s", html / "index.html")
    return html
