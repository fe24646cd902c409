"""What chapter 1's quick run must show: trained models, every cell scored, files named as in the design."""

from __future__ import annotations

import re

import pytest

from audioxai.studies.cross_modality import METHODS

pytestmark = pytest.mark.notebooks
STEM = "01_cross_modality"


@pytest.fixture(scope="module")
def chapter(quick_run, chapter_results):
    return chapter_results(quick_run, STEM)


def test_both_models_learn_well_above_chance_at_every_resolution(chapter):
    _, metrics, params = chapter
    assert sorted(map(int, metrics["image_accuracy"])) == sorted(params["image_resolutions"])
    assert sorted(map(int, metrics["audio_accuracy"])) == sorted(params["audio_resolutions"])
    # 10 classes: chance is 0.1; even the quick profile's short training must be far above it
    assert metrics["image_accuracy_min"] > 0.6 and metrics["audio_accuracy_min"] > 0.5


def test_every_metric_is_nested_dataset_method_resolution_with_valid_values(chapter):
    _, metrics, params = chapter
    resolutions = {"images": {str(r) for r in params["image_resolutions"]},
                   "audio": {str(r) for r in params["audio_resolutions"]}}
    bounds = {"faithfulness_correlation": (-1, 1), "randomisation": (-1, 1), "sparseness": (0, 1),
              "localisation": (0, 1), "random_logit": (-1, 1), "avg_sensitivity": (0, float("inf"))}
    for metric, (low, high) in bounds.items():
        assert set(metrics[metric]) == {"images", "audio"}, metric
        for dataset, by_method in metrics[metric].items():
            assert set(by_method) == set(METHODS), (metric, dataset)
            for method, by_res in by_method.items():
                assert set(by_res) == resolutions[dataset], (metric, dataset, method)
                assert all(low <= v <= high for v in by_res.values()), (metric, dataset, method, by_res)


def test_integrated_gradients_localises_above_chance_on_audio(chapter):
    # The synthesis alignment tells where the digit is; IG from silence must put most of its mass there.
    _, metrics, _ = chapter
    for res, value in metrics["localisation"]["audio"]["integrated_gradients"].items():
        assert value > metrics["localisation_chance"]["audio"][res] + 0.1, (res, value)


def test_files_are_named_as_in_the_design(chapter):
    out, metrics, params = chapter
    csvs = sorted(p.name for p in (out / "metrics").glob("*.csv"))
    models = len(params["image_resolutions"]) + len(params["audio_resolutions"])
    assert len(csvs) == metrics["metric_csvs"] == 6 * len(METHODS) * models
    assert all(re.fullmatch(r"[a-z_]+_(images|audio)_(saliency|integrated_gradients|guided_gradcam)_\d+\.csv", c) for c in csvs)
    rows = (out / "metrics" / "sparseness_audio_saliency_32.csv").read_text().strip().splitlines()
    assert rows[0] == "sample,score" and len(rows) == 1 + params["num_explained"]
    pngs = list((out / "visualizations").glob("*.png"))
    assert len(pngs) == models * len(METHODS) * params["num_visualised"]
    assert all((p.with_suffix(".npy")).is_file() for p in pngs)
    for name in ("cross_modality_summary.md", "resolution_summary.md", "method_ranking.png"):
        assert (out / "summaries" / name).is_file(), name
