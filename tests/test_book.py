"""The book machinery on tiny notebooks written into tmp_path: runner, run record, result helpers, build checks."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import yaml

from audioxai.book import compare_with_reference, prepare_results_dir, project_root, record_metrics, reference_metrics
from audioxai.book.__main__ import main
from audioxai.book.runner import BookLayout, NotebookRun, environment_record, plan_run, run_book, write_run_record
from audioxai.book.site import BookBuildError, build_book, check_pages
from audioxai.errors import ConfigError

RECORDING_BODY = """
from audioxai.book import prepare_results_dir, record_metrics
out = prepare_results_dir(STEM, profile, results_dir)
record_metrics(out, {"seed": seed, "width": width, "results_dir": results_dir}, profile)
"""


def write_notebook(path: Path, parameters: str, body: str, stem: str | None = None) -> Path:
    """A notebook with a cell tagged ``parameters`` and one code cell (``STEM`` replaced by the stem)."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(textwrap.dedent(parameters).strip())
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), cell,
                nbformat.v4.new_code_cell(textwrap.dedent(body).replace("STEM", repr(stem or path.stem)).strip())]
    nb.metadata["kernelspec"] = {"name": "audioxai", "display_name": "Python 3 (audioxai)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def write_profiles(root: Path, quick: dict, full: dict | None = None, metrics: dict | None = None) -> Path:
    path = root / "configs" / "profiles.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"quick": quick, "full": full or quick, "metrics": metrics or {}}))
    return path


PARAMS = """
seed = 0
width = 1
profile = "quick"
results_dir = None
"""


@pytest.fixture
def book(tmp_path: Path) -> BookLayout:
    """Two good notebooks, 00_alpha and 01_beta, with quick parameters seed and width."""
    for stem in ("00_alpha", "01_beta"):
        write_notebook(tmp_path / "notebooks" / f"{stem}.ipynb", PARAMS, RECORDING_BODY)
    write_profiles(tmp_path, {"00_alpha": {"seed": 7, "width": 3}, "01_beta": {"seed": 8}})
    return BookLayout.at(tmp_path)


def test_run_injects_profile_parameters_profile_and_results_dir(book: BookLayout) -> None:
    report = run_book("quick", only=["00_alpha"], layout=book)
    assert [r.stem for r in report.runs] == ["00_alpha"] and not report.failed
    executed = nbformat.read(book.executed_dir / "00_alpha.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert "seed = 7" in injected[0].source and 'results_dir = "results/quick/00_alpha"' in injected[0].source
    metrics = json.loads((book.results_root / "quick" / "00_alpha" / "metrics.json").read_text())
    assert metrics == {"seed": 7, "width": 3, "profile": "quick", "results_dir": "results/quick/00_alpha"}


def test_failing_notebook_does_not_stop_the_next_and_the_run_fails_naming_it(
        book: BookLayout, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    write_notebook(book.notebooks_dir / "00_alpha.ipynb", PARAMS, "raise RuntimeError('boom in alpha')")
    stale = book.results_root / "quick" / "00_alpha" / "metrics.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    monkeypatch.chdir(book.root)
    assert main(["run", "--profile", "quick"]) == 1
    out = capsys.readouterr().out
    assert "00_alpha  failed" in out and "RuntimeError: boom in alpha" in out and "01_beta   ok" in out
    assert "failed: 00_alpha" in out
    kept = nbformat.read(book.executed_dir / "00_alpha.ipynb", as_version=4)
    assert kept.metadata.papermill.exception is True
    assert any("boom in alpha" in str(o) for c in kept.cells for o in c.get("outputs", []))
    assert not stale.exists(), "a failed notebook must not leave the previous run's metrics behind"
    assert json.loads((book.results_root / "quick" / "01_beta" / "metrics.json").read_text())["seed"] == 8
    record = json.loads((book.results_root / "quick" / "run.json").read_text())
    assert {k: v["status"] for k, v in record["notebooks"].items()} == {"00_alpha": "failed", "01_beta": "ok"}


def test_run_record_holds_device_versions_date_commit_and_per_notebook_seconds(book: BookLayout) -> None:
    report = run_book("full", only=["01_beta"], layout=book)
    record = json.loads(report.record_path.read_text())
    assert report.record_path == book.results_root / "full" / "run.json"
    assert record["profile"] == "full" and record["executed"] == ["01_beta"]
    assert record["device"] == (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
    assert record["torch"] == torch.__version__ and record["date_utc"].endswith("+00:00")
    assert record["commit"] is None and record["dirty"] is None  # tmp_path is no git checkout
    entry = record["notebooks"]["01_beta"]
    assert entry["status"] == "ok" and 0 < entry["seconds"] < 60 and entry["error"] is None


def test_run_record_keeps_entries_of_notebooks_not_rerun(tmp_path: Path) -> None:
    env = {"device": "cpu", "torch": "x", "python": "3", "date_utc": "2026-01-01T00:00:00+00:00",
           "commit": "a" * 40, "dirty": False}
    path = tmp_path / "run.json"
    write_run_record(path, "full", [NotebookRun("00_a", "ok", 1.0, tmp_path), NotebookRun("01_b", "ok", 2.0, tmp_path)],
                     env)
    write_run_record(path, "full", [NotebookRun("01_b", "failed", 3.0, tmp_path, "E: x")],
                     {**env, "commit": "b" * 40})
    record = json.loads(path.read_text())
    assert record["commit"] == "b" * 40 and record["executed"] == ["01_b"]
    assert record["notebooks"]["00_a"]["commit"] == "a" * 40 and record["notebooks"]["00_a"]["seconds"] == 1.0
    new = record["notebooks"]["01_b"]
    assert (new["status"], new["error"], new["seconds"], new["commit"]) == ("failed", "E: x", 3.0, "b" * 40)


def test_environment_record_reads_git_commit_and_dirty_flag_ignoring_results(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path,
                              check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-qm", "one")
    (tmp_path / "results" / "full").mkdir(parents=True)
    (tmp_path / "results" / "full" / "run.json").write_text("{}")
    record = environment_record(tmp_path)
    assert record["commit"] == git("rev-parse", "HEAD") and record["dirty"] is False
    (tmp_path / "a.py").write_text("x = 2\n")
    assert environment_record(tmp_path)["dirty"] is True


def test_only_with_unknown_stem_lists_the_available_stems(book: BookLayout, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(ConfigError, match=r"--only 02_gamma: no such notebook; available stems: 00_alpha, 01_beta"):
        plan_run(book, "quick", only=["02_gamma"])
    monkeypatch.chdir(book.root)
    assert main(["run", "--profile", "quick", "--only", "02_gamma"]) == 2
    assert "available stems: 00_alpha, 01_beta" in capsys.readouterr().err
    assert not book.executed_dir.exists()


def test_only_selects_just_the_named_notebooks(book: BookLayout) -> None:
    assert [p.stem for p in plan_run(book, "quick", only=["01_beta"])] == ["01_beta"]
    assert [p.parameters for p in plan_run(book, "quick")] == [{"seed": 7, "width": 3}, {"seed": 8}]


def test_profile_parameter_missing_from_parameters_cell_is_named_before_anything_runs(book: BookLayout) -> None:
    write_profiles(book.root, {"00_alpha": {"seed": 1}, "01_beta": {"lr": 0.1}})
    with pytest.raises(ConfigError, match=r"01_beta: parameter 'lr' is not defined in the parameters cell"):
        run_book("quick", layout=book)
    assert not book.executed_dir.exists() and not book.results_root.exists()


def test_notebook_must_declare_the_runner_parameters(book: BookLayout) -> None:
    write_notebook(book.notebooks_dir / "01_beta.ipynb", "seed = 0\nwidth = 1", "pass")
    with pytest.raises(ConfigError) as err:
        plan_run(book, "quick")
    assert "01_beta: parameter 'profile'" in str(err.value) and "01_beta: parameter 'results_dir'" in str(err.value)


def test_notebook_without_parameters_cell_or_profile_entry_is_rejected(book: BookLayout) -> None:
    nb = nbformat.read(book.notebooks_dir / "00_alpha.ipynb", as_version=4)
    nb.cells[1].metadata["tags"] = []
    nbformat.write(nb, book.notebooks_dir / "00_alpha.ipynb")
    write_notebook(book.notebooks_dir / "02_gamma.ipynb", PARAMS, "pass")
    with pytest.raises(ConfigError) as err:
        plan_run(book, "quick")
    assert "00_alpha: notebook" in str(err.value) and "has no cell tagged 'parameters'" in str(err.value)
    assert "02_gamma: no entry under 'quick:'" in str(err.value)


def test_profiles_may_not_set_runner_parameters_or_unknown_sections(tmp_path: Path) -> None:
    write_notebook(tmp_path / "notebooks" / "00_alpha.ipynb", PARAMS, "pass")
    write_profiles(tmp_path, {"00_alpha": {"profile": "full"}})
    with pytest.raises(ConfigError, match="which the runner injects itself"):
        plan_run(BookLayout.at(tmp_path), "quick")
    (tmp_path / "configs" / "profiles.yaml").write_text("quick: {}\nfull: {}\nslow: {}\n")
    with pytest.raises(ConfigError, match=r"unknown top-level keys \['slow'\]"):
        plan_run(BookLayout.at(tmp_path), "quick")


def test_project_root_walks_up_to_the_profiles_file_else_cwd(book: BookLayout, tmp_path_factory) -> None:
    assert project_root(book.notebooks_dir) == book.root
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    assert project_root(elsewhere) == elsewhere.resolve()


def test_prepare_results_dir_defaults_to_results_profile_stem(book: BookLayout, monkeypatch) -> None:
    monkeypatch.chdir(book.notebooks_dir)  # as when a notebook is opened in JupyterLab
    assert prepare_results_dir("00_alpha", "quick") == book.root / "results" / "quick" / "00_alpha"
    assert (book.root / "results" / "quick" / "00_alpha").is_dir()
    assert prepare_results_dir("00_alpha", "full", "results/x/y") == book.root / "results" / "x" / "y"


def test_record_metrics_writes_json_from_numpy_and_torch_values(tmp_path: Path) -> None:
    path = record_metrics(tmp_path, {
        "f32": np.float32(0.5), "i64": np.int64(3), "flag": np.bool_(True), "t": torch.tensor(1.5),
        "vec": np.array([1, 2]), "tvec": torch.tensor([0.25, 0.75], requires_grad=True), "nan": float("nan"),
        "where": tmp_path / "x.png", "pair": (1, 2), "nested": {"inf": np.float64("inf")}}, "quick")
    assert path == tmp_path / "metrics.json"
    assert json.loads(path.read_text()) == {
        "f32": 0.5, "i64": 3, "flag": True, "t": 1.5, "vec": [1, 2], "tvec": [0.25, 0.75], "nan": None,
        "where": str(tmp_path / "x.png"), "pair": [1, 2], "nested": {"inf": None}, "profile": "quick"}


def test_record_metrics_leaves_the_previous_file_when_a_value_cannot_be_written(tmp_path: Path) -> None:
    record_metrics(tmp_path, {"acc": 0.9}, "quick")
    with pytest.raises(TypeError, match="cannot write object"):
        record_metrics(tmp_path, {"acc": 0.1, "bad": object()}, "quick")
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"acc": 0.9, "profile": "quick"}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def write_reference(root: Path, stem: str, metrics: dict, status: str = "ok") -> None:
    record_metrics(root / "results" / "full" / stem, metrics, "full")
    (root / "results" / "full" / "run.json").write_text(json.dumps({
        "profile": "full", "device": "NVIDIA H100", "date_utc": "2026-11-20T10:00:00+00:00", "commit": "0123456789ab",
        "dirty": False, "notebooks": {stem: {"status": status, "seconds": 99.0, "device": "NVIDIA H100",
                                             "date_utc": "2026-11-20T10:00:00+00:00", "commit": "0123456789ab",
                                             "dirty": False}}}))


def test_compare_with_reference_puts_this_run_beside_the_labelled_full_run(book: BookLayout) -> None:
    write_profiles(book.root, {"00_alpha": {}}, metrics={"00_alpha": ["profile", "accuracy", "loss", "curve"]})
    write_reference(book.root, "00_alpha", {"accuracy": 0.98, "loss": 0.05, "curve": [1, 2], "extra": 1})
    table = compare_with_reference("00_alpha", {"accuracy": np.float32(0.75), "loss": 0.5, "curve": [3]}, "quick",
                                   root=book.root)
    assert list(table.index) == ["accuracy", "loss"]  # promised scalar keys; lists and `profile` left out
    assert list(table.columns) == ["this run (quick)", "reference full run (NVIDIA H100, 2026-11-20, 0123456)"]
    assert table.loc["accuracy"].tolist() == [0.75, 0.98]
    assert reference_metrics("00_alpha", root=book.root)["commit"] == "0123456789ab"


def test_compare_without_reference_says_there_is_none(book: BookLayout) -> None:
    table = compare_with_reference("00_alpha", {"accuracy": 0.75}, "quick", root=book.root)
    assert list(table.columns) == ["this run (quick)", "reference full run: none yet"]
    assert "results/full/00_alpha/metrics.json is missing" in table.attrs["note"]
    write_reference(book.root, "00_alpha", {"accuracy": 0.9}, status="failed")
    assert reference_metrics("00_alpha", root=book.root) is None


def test_compare_in_the_full_run_has_only_this_run(book: BookLayout) -> None:
    write_reference(book.root, "00_alpha", {"accuracy": 0.9})
    table = compare_with_reference("00_alpha", {"accuracy": 0.9}, "full", root=book.root)
    assert list(table.columns) == ["this run (full)"] and "becomes the reference" in table.attrs["note"]


def write_site(root: Path, toc_files: list[str], intro: str = "# Intro\n") -> None:
    config = (Path(__file__).resolve().parents[1] / "_config.yml").read_text()
    (root / "_config.yml").write_text(config)
    (root / "book").mkdir(parents=True, exist_ok=True)
    (root / "book" / "intro.md").write_text(intro)
    toc = {"format": "jb-book", "root": "book/intro"}
    if toc_files:
        toc["chapters"] = [{"file": f} for f in toc_files]
    (root / "_toc.yml").write_text(yaml.safe_dump(toc))


def test_build_names_a_missing_executed_notebook_and_says_to_run_first(tmp_path: Path) -> None:
    write_site(tmp_path, ["book/_executed/00_alpha", "book/chapter"])
    with pytest.raises(BookBuildError) as err:
        build_book(tmp_path)
    message = str(err.value)
    assert "book/_executed/00_alpha.ipynb is missing; run `python -m audioxai.book run` first" in message
    assert "book/chapter: no such page" in message


def test_build_refuses_an_executed_notebook_whose_run_failed(book: BookLayout) -> None:
    write_notebook(book.notebooks_dir / "00_alpha.ipynb", PARAMS, "1 / 0")
    run_book("quick", only=["00_alpha"], layout=book)
    write_site(book.root, ["book/_executed/00_alpha"])
    with pytest.raises(BookBuildError, match=r"00_alpha: its execution raised an exception; open book/_executed"):
        check_pages(book.root)


def test_build_fails_on_a_sphinx_warning(tmp_path: Path) -> None:
    write_site(tmp_path, [], intro="# Intro\n\nA reference to {ref}`nowhere-at-all`.\n")
    with pytest.raises(BookBuildError, match="warnings count as errors"):
        build_book(tmp_path)
    (tmp_path / "book" / "intro.md").write_text("# Intro\n\nNothing wrong here.\n")
    assert (build_book(tmp_path) / "book" / "intro.html").is_file()
