"""MoEAudioClassifier and xaimoe-audio end to end on a tiny generated dataset: the run's files, reloading,
prediction, explanation, the CLI, multi-label scores and every bad input the issue names."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from audioxai.data.moe_corpus import MoECorpusConfig, generate_moe_corpus
from audioxai.errors import ConfigError, DatasetError
from audioxai.moe import classifier as classifier_module
from audioxai.moe.classifier import MoEAudioClassifier
from audioxai.moe.cli import main

CLASSES = ("sonar_ping", "clicks", "engine")
RUN_FILES = {"best.pt", "last.pt", "run_config.json", "profile.json", "spectro_config.json", "policy.json",
             "architecture.txt", "expert_usage.json", "metrics.json", "confusion_matrix.png", "gradcam.png",
             "saliency_router.png", "patch_selection.png"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("moe") / "ds"
    generate_moe_corpus(root, MoECorpusConfig(classes=CLASSES, num_per_class=8, duration_s=(0.4, 0.6),
                                              sample_rates=(8000, 16000)), progress=False)
    return root


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "exp1"
    clf = MoEAudioClassifier(explainability="gradcam", device="cpu", seed=0)
    clf.fit(dataset, dataset / "metadata.csv", epochs=2, batch_size=8, out_dir=out)
    return clf, out


def test_a_training_run_writes_every_output(trained):
    clf, out = trained
    assert {p.name for p in out.iterdir()} == RUN_FILES
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
    run = json.loads((out / "run_config.json").read_text())
    assert run["labels"] == sorted(CLASSES) and len(run["history"]["val_score"]) == 2
    usage = json.loads((out / "expert_usage.json").read_text())
    assert set(usage["selection_rate"]) == {e.name for e in clf.policy.experts}
    assert sum(usage["k_histogram"].values()) == json.loads((out / "metrics.json").read_text())["num_samples"]
    assert clf.policy.k_min <= usage["mean_k"] <= clf.policy.k_max
    assert "front-end:" in (out / "architecture.txt").read_text()


def test_a_loaded_checkpoint_predicts_like_the_trained_model(trained, dataset):
    clf, out = trained
    loaded = MoEAudioClassifier.load(out / "best.pt", device="cpu")
    path = next((dataset / "test").glob("*.wav"))
    a, b = clf.predict(path), loaded.predict(path)
    assert a["labels"] == b["labels"] and a["experts"] == b["experts"]
    for name in CLASSES:
        assert a["probabilities"][name] == pytest.approx(b["probabilities"][name], abs=1e-6)
    scores = loaded.evaluate(dataset, dataset / "metadata.csv", "test")
    assert 0 <= scores["accuracy"] <= 1 and len(scores["confusion_matrix"]) == len(CLASSES)
    explained = loaded.explain(path, save_dir=out.parent / "explain")
    assert explained["gradcam"].shape == explained["saliency"].shape and (out.parent / "explain" / "gradcam.png").is_file()


def test_the_cli_trains_evaluates_infers_and_explains(dataset, tmp_path, capsys):
    out = tmp_path / "cli_run"
    assert main(["--device", "cpu", "train", "--dataset", str(dataset), "--metadata", str(dataset / "metadata.csv"),
                 "--epochs", "1", "--batch-size", "8", "--out", str(out), "--budget", "latency",
                 "--spectrogram-kind", "logmel_pcen", "--k-max", "1"]) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["mean_k"] == 1.0
    assert json.loads((out / "spectro_config.json").read_text())["kind"] == "logmel_pcen"
    assert main(["--device", "cpu", "eval", "--dataset", str(dataset), "--metadata", str(dataset / "metadata.csv"),
                 "--split", "test", "--ckpt", str(out / "best.pt")]) == 0
    assert "accuracy" in json.loads(capsys.readouterr().out)
    wav = next((dataset / "test").glob("*.wav"))
    assert main(["--device", "cpu", "infer", "--audio", str(wav), "--ckpt", str(out / "best.pt")]) == 0
    assert json.loads(capsys.readouterr().out)["labels"][0] in CLASSES
    assert main(["--device", "cpu", "explain", "--audio", str(wav), "--ckpt", str(out / "best.pt"),
                 "--out", str(tmp_path / "ex")]) == 0
    assert (tmp_path / "ex" / "gradcam.png").is_file()


def test_multi_label_runs_report_map_and_f1(tmp_path):
    root = tmp_path / "ml"
    generate_moe_corpus(root, MoECorpusConfig(classes=CLASSES, num_per_class=6, duration_s=(0.4, 0.5),
                                              sample_rates=(8000,), multi_label=True), progress=False)
    clf = MoEAudioClassifier(task="multi_label", device="cpu")
    clf.fit(root, root / "metadata.csv", epochs=1, batch_size=8, out_dir=tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0 <= metrics["mAP"] <= 1 and 0 <= metrics["f1_micro"] <= 1
    prediction = clf.predict(next((root / "test").glob("*.wav")))
    assert set(prediction["probabilities"]) == set(CLASSES)


def _copy(dataset, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(dataset, root)
    return root


def test_bad_datasets_are_refused_with_the_row_or_file(dataset, tmp_path, capsys):
    root = _copy(dataset, tmp_path)
    csv = root / "metadata.csv"
    lines = csv.read_text().splitlines()
    cells = lines[1].split(",")
    cells[lines[0].split(",").index("label")] = ""
    csv.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(DatasetError, match="row 2.*label"):
        MoEAudioClassifier(device="cpu").fit(root, csv, epochs=1, out_dir=tmp_path / "r1")
    csv.write_text("\n".join([lines[0], "../outside.wav," + lines[1].split(",", 1)[1], *lines[2:]]) + "\n")
    with pytest.raises(DatasetError, match="outside"):
        MoEAudioClassifier(device="cpu").fit(root, csv, epochs=1, out_dir=tmp_path / "r2")
    csv.write_text("\n".join(lines) + "\n")
    (root / lines[1].split(",")[0]).write_bytes(b"not a wav file")
    with pytest.raises(DatasetError, match=lines[1].split(",")[0]):
        MoEAudioClassifier(device="cpu").fit(root, csv, epochs=1, out_dir=tmp_path / "r3")
    assert main(["train", "--dataset", str(root), "--metadata", str(root / "missing.csv"), "--out",
                 str(tmp_path / "r4")]) == 2
    assert "missing.csv" in capsys.readouterr().err
    assert not any((tmp_path / f"r{i}").exists() for i in range(1, 5))


def test_single_class_data_and_another_label_set_are_refused(dataset, trained, tmp_path):
    root = _copy(dataset, tmp_path)
    csv = root / "metadata.csv"
    lines = csv.read_text().splitlines()
    header = lines[0].split(",")
    label = header.index("label")
    single = [lines[0]] + [",".join(c if i != label else "clicks" for i, c in enumerate(l.split(","))) for l in lines[1:]]
    csv.write_text("\n".join(single) + "\n")
    with pytest.raises(DatasetError, match="at least\\s+two"):
        MoEAudioClassifier(device="cpu").fit(root, csv, epochs=1, out_dir=tmp_path / "single")
    renamed = [lines[0]] + [l.replace("engine", "tractor") for l in lines[1:]]
    csv.write_text("\n".join(renamed) + "\n")
    with pytest.raises(DatasetError, match="tractor"):
        MoEAudioClassifier.load(trained[1] / "best.pt", device="cpu").evaluate(root, csv, "test")


def test_a_failed_run_leaves_no_output_folder(dataset, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(classifier_module, "save_policy", broken)
    with pytest.raises(OSError):
        MoEAudioClassifier(device="cpu").fit(dataset, dataset / "metadata.csv", epochs=1, out_dir=tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_bad_options_and_occupied_output_folders_are_refused(dataset, trained, tmp_path):
    with pytest.raises(ConfigError, match="kmax"):
        MoEAudioClassifier(kmax=2)
    with pytest.raises(ConfigError, match="task"):
        MoEAudioClassifier(task="regression")
    with pytest.raises(DatasetError, match="not empty"):
        MoEAudioClassifier(device="cpu").fit(dataset, dataset / "metadata.csv", epochs=1, out_dir=trained[1])
    with pytest.raises(ConfigError, match="does not exist"):
        MoEAudioClassifier.load(tmp_path / "nothing.pt")
    assert torch.isfinite(torch.tensor(trained[0].history["train_loss"])).all()
