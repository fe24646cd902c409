"""The study pipeline end to end on tiny synthetic data: training, scoring, files named as in the design."""

import re

import numpy as np
import pandas as pd
import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.studies import cross_modality as study
from audioxai.studies.data import ModalityData
from audioxai.studies.reporting import (resolution_trend, write_metric_csvs, write_summaries,
                                        write_visualizations)


def _split(kind, resolution, n, seed):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    x = torch.rand(n, 1, resolution, resolution, generator=g) * 0.2
    # each class lights up its own row band, so the CNN has something real to learn
    for i, label in enumerate(labels):
        row = int(label) * resolution // 10
        x[i, 0, row: row + max(1, resolution // 10)] += 0.8
    if kind == "spectrogram":
        x = x * 80 - 80
        truth = torch.zeros(n, 1, resolution, resolution, dtype=torch.bool)
        truth[..., resolution // 4: 3 * resolution // 4] = True
    else:
        truth = x > 0.5
    return ModalityData(x, labels, truth, kind, resolution)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    cfg = study.make_config(image_resolutions=[16], audio_resolutions=[16], num_epochs=2, batch_size=20,
                            num_explained=6, ig_steps=4, faithfulness_runs=5, sensitivity_samples=2,
                            num_visualised=1, device="cpu")
    data = {name: {16: {s: _split(kind, 16, n, seed) for s, n, seed in (("train", 60, 0), ("val", 20, 1), ("test", 30, 2))}}
            for name, kind in (("images", "image"), ("audio", "spectrogram"))}
    ckpt = tmp_path_factory.mktemp("ckpt")
    trained = study.train_models(data, cfg, ckpt)
    out = tmp_path_factory.mktemp("out")
    tables = []
    for tm in trained:
        table, attributions, subset = study.explain_and_score(tm, cfg)
        tables.append(table)
        write_visualizations(out, tm.dataset, tm.resolution, subset, attributions, cfg.num_visualised)
    return cfg, trained, pd.concat(tables, ignore_index=True), out


def test_checkpoints_are_named_by_dataset_architecture_resolution_and_reload(run):
    cfg, trained, _, _ = run
    assert sorted(t.checkpoint.name for t in trained) == ["audio_cnn_16.pt", "images_cnn_16.pt"]
    for t in trained:
        assert 0.0 <= t.test_accuracy <= 1.0
        reloaded = study.load_trained_cnn(t.checkpoint)
        x = t.test.inputs[:4]
        assert torch.allclose(reloaded(x), t.model.cpu()(x), atol=1e-6)


def test_every_method_metric_and_sample_is_scored(run):
    cfg, _, scores, _ = run
    counts = scores.groupby(["dataset", "method", "metric"]).size()
    assert len(counts) == 2 * len(study.METHODS) * len(study.METRIC_NAMES)
    assert (counts == cfg.num_explained).all()
    sparse = scores[scores["metric"] == "sparseness"]["score"]
    assert sparse.between(0, 1).all()
    local = scores[scores["metric"] == "localisation"]["score"].dropna()
    assert len(local) > 0 and local.between(0, 1).all()


def test_same_seed_gives_the_same_scores(run):
    cfg, trained, scores, _ = run
    again, _, _ = study.explain_and_score(trained[0], cfg)
    first = scores[scores["dataset"] == trained[0].dataset].reset_index(drop=True)
    pd.testing.assert_frame_equal(first, again)


def test_files_follow_the_design_naming(run, tmp_path):
    cfg, trained, scores, out = run
    pngs = sorted(p.name for p in (out / "visualizations").glob("*.png"))
    assert len(pngs) == 2 * len(study.METHODS) * cfg.num_visualised
    assert all(re.fullmatch(r"(images|audio)_(saliency|integrated_gradients|guided_gradcam)_16_0\.png", p) for p in pngs)
    npy = np.load(out / "visualizations" / "audio_saliency_16_0.npy")
    assert npy.shape == (1, 16, 16)
    n = write_metric_csvs(tmp_path, scores)
    assert n == 2 * len(study.METHODS) * len(study.METRIC_NAMES)
    csv = pd.read_csv(tmp_path / "metrics" / "faithfulness_correlation_audio_integrated_gradients_16.csv")
    assert list(csv.columns) == ["sample", "score"] and len(csv) == cfg.num_explained
    summary = study.summarise(scores)
    assert ((summary["ci_low"] <= summary["mean"] + 1e-12) & (summary["mean"] <= summary["ci_high"] + 1e-12)
            | summary["mean"].isna()).all()
    accuracies = pd.DataFrame([(t.dataset, t.resolution, t.test_accuracy) for t in trained],
                              columns=["dataset", "resolution", "test accuracy"])
    paths = write_summaries(tmp_path, summary, accuracies, study.higher_is_better())
    text = paths["cross"].read_text()
    assert text.startswith("# Cross-modality summary") and "| integrated_gradients |" in text
    assert paths["resolution"].name == "resolution_summary.md" and paths["heatmap"].stat().st_size > 1000


def test_resolution_trend_uses_the_intervals():
    assert resolution_trend([0.1, 0.2, 0.3], [0.05, 0.1, 0.25], [0.15, 0.3, 0.35]) == "rises"
    assert resolution_trend([0.3, 0.2, 0.1], [0.25, 0.1, 0.05], [0.35, 0.3, 0.15]) == "falls"
    assert resolution_trend([0.1, 0.4, 0.3], [0.05, 0.3, 0.25], [0.15, 0.5, 0.35]) == "mixed"
    assert resolution_trend([0.1, 0.2, 0.15], [0.0, 0.1, 0.05], [0.2, 0.3, 0.25]) == "flat"
    assert resolution_trend([0.1, float("nan")], [0, 0], [1, 1]) == "n/a"


def test_unknown_study_parameter_is_refused_with_a_suggestion():
    with pytest.raises(ConfigError, match="num_explaned.*num_explained"):
        study.make_config(num_explaned=4)
