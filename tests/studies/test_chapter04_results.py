"""What chapter 4's quick run must show: WER per condition, every estimator's accuracy, cost and additivity
(under 1e-3 for the Shapley estimators), mask correlations per noise type, and its tables, figures and audio."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import soundfile as sf

from audioxai.metrics.wer import word_error_rate
from audioxai.studies.shap_asr import TIME_ESTIMATORS

pytestmark = pytest.mark.notebooks
STEM = "04_shap_asr"
EFFICIENT = ("exact_shapley", "kernel_shap", "shap_kernel", "shap_partition")


@pytest.fixture(scope="module")
def chapter(quick_run, chapter_results):
    return chapter_results(quick_run, STEM)


def test_wer_is_reported_clean_and_for_every_noise_and_snr(chapter):
    out, metrics, params = chapter
    assert set(metrics["wer_by_noise"]) == set(params["noise_types"])
    for noise, by_snr in metrics["wer_by_noise"].items():
        assert set(by_snr) == {f"{s:g}" for s in params["snrs_db"]}, noise
        assert all(v >= 0 for v in by_snr.values())
    recognition = pd.read_csv(out / "recognition.csv", keep_default_na=False)
    clean = recognition[recognition["noise_type"] == "clean"]
    assert len(clean) == params["max_test_utterances"]
    assert metrics["wer_clean"] == pytest.approx(word_error_rate(list(clean["reference"]), list(clean["hypothesis"])))


def test_every_estimator_is_scored_and_the_shapley_ones_are_efficient(chapter):
    _, metrics, _ = chapter
    for key in ("additivity_max_error", "word_attribution_accuracy", "seconds_per_explanation"):
        assert set(metrics[key]) == set(TIME_ESTIMATORS), key
    for name in EFFICIENT:
        assert metrics["additivity_max_error"][name] < 1e-3, name
    assert all(0 <= v <= 1 for v in metrics["word_attribution_accuracy"].values() if not math.isnan(v))
    assert all(v > 0 for v in metrics["seconds_per_explanation"].values())
    # exact Shapley evaluates all 2^M coalitions; ours and shap's KernelExplainer the same budget
    evaluations = metrics["evaluations_per_explanation"]
    assert evaluations["kernel_shap"] == evaluations["shap_kernel"] < evaluations["exact_shapley"]


def test_masks_are_compared_for_every_noise_type(chapter):
    out, metrics, params = chapter
    for key in ("ibm_correlation", "irm_correlation", "speech_noise_accuracy"):
        assert set(metrics[key]) == set(params["noise_types"]), key
    assert all(-1 <= v <= 1 for v in metrics["ibm_correlation"].values() if not math.isnan(v))
    table = pd.read_csv(out / "mask_correlation.csv")
    assert (table["additivity_max_error"] < 1e-3).all()
    assert (table["utterances"] == params["tf_utterances"]).all()


def test_pocketsphinx_is_transcribed_and_explained(chapter):
    _, metrics, _ = chapter
    assert 0 <= metrics["pocketsphinx_wer_clean"] <= 1.5
    assert 0 <= metrics["pocketsphinx_word_attribution_accuracy"] <= 1


def test_tables_figures_and_audio_are_written(chapter):
    out, _, _ = chapter
    for name in ("testset_metadata.csv", "recognition.csv", "word_attribution.csv", "costs.csv",
                 "mask_correlation.csv", "training_curves.png", "masks_example.png", "time_shap_0.png",
                 "word_bars.png", "costs.png", "tf_shap_0.png", "pocketsphinx_shap.png"):
        assert (out / name).is_file(), name
    for name in ("utterance", "first_word_top3"):
        assert sf.info(str(out / "audio" / f"{name}.wav")).samplerate == 16000, name
