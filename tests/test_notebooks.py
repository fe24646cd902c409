"""Every notebook: committed clean, a literal parameters cell, and a quick run that keeps its promises."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
import yaml

from audioxai.book.runner import RUNNER_PARAMETERS, find_notebooks

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = list(find_notebooks(ROOT / "notebooks").values())
PROFILES = yaml.safe_load((ROOT / "configs" / "profiles.yaml").read_text())
QUICK_SECONDS = 180

by_stem = pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])


def parameters_cell(path: Path) -> str:
    cells = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected exactly one cell tagged 'parameters', found {len(cells)}"
    return cells[0].source


@by_stem
def test_notebook_is_committed_without_outputs_or_execution_counts(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{path.name}: cells {dirty} hold outputs or execution counts; clear them before committing"
    assert "papermill" not in nb.metadata, f"{path.name} is an executed copy, not the source notebook"


@by_stem
def test_parameters_cell_holds_only_literal_assignments(path: Path) -> None:
    names = []
    for stmt in ast.parse(parameters_cell(path)).body:
        is_assign = isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
        is_annotated = isinstance(stmt, ast.AnnAssign) and stmt.value is not None
        target = stmt.targets[0] if is_assign else getattr(stmt, "target", None)
        assert (is_assign or is_annotated) and isinstance(target, ast.Name), \
            f"{path.name}: '{ast.unparse(stmt)}' is not a plain assignment"
        try:
            ast.literal_eval(stmt.value)
        except ValueError:
            pytest.fail(f"{path.name}: '{ast.unparse(stmt)}' assigns something other than a literal")
        names.append(target.id)
    for name in (*RUNNER_PARAMETERS, *PROFILES["quick"].get(path.stem, {}), *PROFILES["full"].get(path.stem, {})):
        assert name in names, f"{path.name}: parameters cell does not define '{name}'"


@by_stem
def test_profiles_name_the_notebook_in_both_profiles_and_metrics(path: Path) -> None:
    for section in ("quick", "full", "metrics"):
        assert path.stem in PROFILES[section], f"configs/profiles.yaml has no '{path.stem}' under {section}:"


@pytest.mark.notebooks
@pytest.mark.skipif(not NOTEBOOKS, reason="no notebooks yet")
def test_quick_run_of_all_notebooks_succeeds(quick_run) -> None:
    assert quick_run.returncode == 0, f"quick run failed:\n{quick_run.output[-4000:]}"


def quick_entry(quick_run, stem: str) -> dict:
    record = json.loads((quick_run.results_root / "run.json").read_text())
    assert stem in record["notebooks"], f"{stem} is not in results/quick/run.json:\n{quick_run.output[-3000:]}"
    return record["notebooks"][stem]


@pytest.mark.notebooks
@by_stem
def test_quick_run_records_every_promised_metric(path: Path, quick_run) -> None:
    entry = quick_entry(quick_run, path.stem)
    assert entry["status"] == "ok", f"{path.stem} failed: {entry['error']} (see book/_executed/{path.name})"
    metrics_path = quick_run.results_root / path.stem / "metrics.json"
    assert metrics_path.is_file(), f"{path.stem} wrote no {metrics_path}"
    metrics = json.loads(metrics_path.read_text())
    missing = [k for k in PROFILES["metrics"].get(path.stem, []) if k not in metrics]
    assert not missing, f"{path.stem}: metrics.json lacks promised keys {missing}"
    assert metrics["profile"] == "quick"


@pytest.mark.notebooks
@by_stem
def test_quick_run_takes_under_three_minutes(path: Path, quick_run) -> None:
    entry = quick_entry(quick_run, path.stem)
    assert entry["status"] == "ok", f"{path.stem} failed: {entry['error']}"
    assert entry["seconds"] < QUICK_SECONDS, f"{path.stem} took {entry['seconds']:.0f} s under the quick profile"
