"""What chapter 2's quick run must show: a classifier above chance, every method scored, audio written."""

from __future__ import annotations


import pandas as pd
import pytest
import soundfile as sf

from audioxai.studies.lmac import METHODS

pytestmark = pytest.mark.notebooks
STEM = "02_lmac"


@pytest.fixture(scope="module")
def chapter(quick_run, chapter_results):
    return chapter_results(quick_run, STEM)


def test_the_classifier_learns_above_chance_and_the_decoder_stays_small(chapter):
    _, metrics, _ = chapter
    assert metrics["classifier_accuracy"] > 0.2  # 10 classes; the quick profile trains for seconds
    assert 0 < metrics["decoder_param_ratio"] <= 0.10


def test_every_method_has_every_score_in_range(chapter):
    _, metrics, _ = chapter
    for method in METHODS:
        s = metrics[method]
        assert set(s) == {"AI", "AD", "AG", "FF", "fid_in", "sparseness", "complexity", "gt_auc", "gt_iou"}, method
        assert 0 <= s["AI"] <= 100 and 0 <= s["AD"] <= 100 and 0 <= s["AG"] <= 100, (method, s)
        assert -1 <= s["FF"] <= 1 and 0 <= s["fid_in"] <= 1 and 0 <= s["sparseness"] <= 1, (method, s)
        assert 0 <= s["gt_auc"] <= 1 and 0 <= s["gt_iou"] <= 1 and s["complexity"] > 0, (method, s)


def test_explanation_audio_tables_and_figures_are_written(chapter):
    out, _, params = chapter
    wavs = sorted((out / "audio").glob("*.wav"))
    assert len(wavs) == params["num_listened"] * (2 + len(METHODS)) + 1  # + the waveform-domain L-MAC's
    info = sf.info(str(out / "audio" / "test_0_lmac.wav"))
    assert info.samplerate == 16000 and info.frames == 16000
    for name in ("scores_summary.csv", "scores_per_sample.csv", "phoneme_classes.csv", "training_curves.png",
                 "masks_over_phonemes.png", "waveform_scores_summary.csv", "waveform_scores_per_sample.csv"):
        assert (out / name).is_file(), name


def test_the_waveform_domain_is_scored_for_every_method(chapter):
    out, metrics, params = chapter
    assert set(metrics["waveform"]) == set(METHODS)
    assert 0 < metrics["waveform_decoder_param_ratio"] < metrics["decoder_param_ratio"]
    for method, s in metrics["waveform"].items():
        assert 0 <= s["AI"] <= 100 and 0 <= s["gt_auc"] <= 1 and -60 < s["si_sdr"] < 60, (method, s)
    assert metrics["lmac_si_sdr"] == metrics["waveform"]["lmac"]["si_sdr"]
    # the per-sample table agrees with the metrics
    table = pd.read_csv(out / "waveform_scores_per_sample.csv")
    assert len(table) == params["num_explained"] * len(METHODS)
    assert table[table["method"] == "lmac"]["si_sdr"].mean() == pytest.approx(metrics["lmac_si_sdr"], rel=1e-9)
