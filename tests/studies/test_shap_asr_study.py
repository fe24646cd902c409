"""The chapter-4 study on a tiny untrained recogniser: every estimator runs, efficiency holds for the
Shapley estimators, tables are consistent, and bad parameters are refused."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from audioxai.data.speech import Segment
from audioxai.errors import ConfigError
from audioxai.models.asr import ASRConfig, CTCRecognizer
from audioxai.studies import shap_asr as study

TINY = ASRConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, conv_dim=(16, 16, 16),
                 num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2)


class _Sample:
    """The fields of an ASRSample the study reads."""

    def __init__(self, waveform: torch.Tensor, text: str, words, phonemes, noise_type="clean", snr_db=math.inf,
                 ibm=None, irm=None, utterance="u0") -> None:
        self.waveform, self.text, self.words, self.phonemes = waveform, text, words, phonemes
        self.id = f"{utterance}_{noise_type}"
        self.noise_type, self.snr_db, self.ibm, self.irm = noise_type, snr_db, ibm, irm
        self.metadata = {"id": self.id, "utterance": utterance, "noise_type": noise_type, "snr_db": snr_db}


@pytest.fixture(scope="module")
def recognizer() -> CTCRecognizer:
    torch.manual_seed(0)
    return CTCRecognizer.from_config(TINY).eval()


@pytest.fixture(scope="module")
def sample() -> _Sample:
    g = torch.Generator().manual_seed(1)
    t = torch.arange(12000) / 16000
    wave = 0.3 * torch.sin(2 * torch.pi * 220 * t) * (t > 0.1) * (t < 0.65) + 0.01 * torch.randn(12000, generator=g)
    words = [Segment("one", 0.10, 0.35), Segment("two", 0.40, 0.65)]
    phonemes = [Segment("w", 0.10, 0.2), Segment("ʌ", 0.2, 0.28), Segment("n", 0.28, 0.35), Segment("t", 0.40, 0.5),
                Segment("uː", 0.5, 0.65)]
    return _Sample(wave.float(), "one two", words, phonemes)


def _config(**kw) -> study.ShapASRStudyConfig:
    base = dict(num_segments=6, exact_max_features=6, budget=40, ig_steps=4, gradient_samples=4, num_bands=3,
                num_windows=3, snrs_db=[5.0], device="cpu")
    return study.make_config(**{**base, **kw})


def test_every_estimator_explains_every_output_and_the_shapley_ones_are_efficient(recognizer, sample):
    (e,) = study.explain_time(recognizer, [sample], _config())
    k = len(e.words) + 1
    assert set(e.explanations) == set(study.TIME_ESTIMATORS)
    for name, ex in e.explanations.items():
        assert ex.values.shape == (6, k), name
    for name in ("exact_shapley", "kernel_shap", "shap_kernel", "shap_partition"):
        assert e.explanations[name].max_additivity_error < 1e-3, name
    # with a budget covering all 2^6 - 2 coalitions our KernelSHAP is the exact Shapley value
    full = study.explain_time(recognizer, [sample], _config(budget=62), estimators=("exact_shapley", "kernel_shap"))[0]
    torch.testing.assert_close(full.explanations["kernel_shap"].values, full.explanations["exact_shapley"].values,
                               atol=1e-6, rtol=1e-6)
    costs = study.cost_table([full]).set_index("estimator")
    assert costs.loc["kernel_shap", "correlation_with_exact"] == pytest.approx(1.0, abs=1e-9)
    assert costs.loc["exact_shapley", "evaluations"] == 2 ** 6
    # phoneme features: one per phoneme plus the gaps around the words
    assert e.phoneme_explanation.values.shape[0] == e.phoneme_features.num_features >= len(sample.phonemes)


def test_accuracy_table_pools_words_and_adds_the_phoneme_row(recognizer, sample):
    explained = study.explain_time(recognizer, [sample], _config(), estimators=("kernel_shap", "lime"))
    table = study.accuracy_table(explained)
    assert list(table["estimator"]) == ["kernel_shap", "lime", "kernel_shap"]
    assert list(table["features"]) == ["windows", "windows", "phonemes"]
    assert table["word_accuracy"].between(0, 1).all() or table["words"].eq(0).all()


def test_an_empty_hypothesis_falls_back_to_the_reference(recognizer, sample, monkeypatch):
    monkeypatch.setattr(CTCRecognizer, "greedy_decode", lambda self, lp, frames=None: [""] * lp.shape[0])
    (e,) = study.explain_time(recognizer, [sample], _config(), estimators=("kernel_shap",))
    assert e.transcript_source == "reference" and e.words == ["one", "two"]
    assert e.word_intervals == [(0.10, 0.35), (0.40, 0.65)]


def test_time_frequency_explanations_are_scored_against_the_masks(recognizer, sample):
    frames = sample.waveform.numel() // 128 + 1
    ibm = torch.zeros(257, frames)
    ibm[:40] = 1.0
    noisy = [_Sample(sample.waveform, sample.text, sample.words, sample.phonemes, noise, 5.0, ibm, ibm * 0.8)
             for noise in ("white", "babble")]
    cfg = _config()
    assert study.tf_samples(noisy + [sample], cfg) == noisy
    tf = study.explain_time_frequency(recognizer, noisy, cfg)
    assert [t.explanation.values.shape for t in tf] == [(9, 1), (9, 1)]
    table = study.mask_table(tf)
    assert list(table["noise"]) == ["babble", "white"]
    assert (table["additivity_max_error"] < 1e-3).all()
    assert table["ibm_correlation"].between(-1, 1).all()
    # same audio under both "noises": the two maps are the same, so consistency is 1
    assert table.attrs["cross_noise_consistency"] == pytest.approx(1.0)


def test_wer_by_noise_is_the_corpus_wer_of_each_condition():
    table = pd.DataFrame({"noise_type": ["clean", "clean", "white", "white", "babble"],
                          "snr_db": [math.inf, math.inf, 5.0, 20.0, 5.0],
                          "reference": ["a b", "c d e f", "a b", "a b", "a b"],
                          "hypothesis": ["a b", "c x e", "a", "a b", "x y z"]})
    clean, noisy = study.wer_by_noise(table)
    assert clean == pytest.approx(2 / 6)
    assert noisy == {"babble": {"5": 1.5}, "white": {"5": 0.5, "20": 0.0}}


def test_bad_parameters_are_refused():
    with pytest.raises(ConfigError, match="num_segmentz"):
        study.make_config(num_segmentz=4)
    with pytest.raises(ConfigError, match="exact_max_features"):
        study.make_config(exact_max_features=20)
    with pytest.raises(ConfigError, match="thunder"):
        study.make_config(noise_types=["thunder"])
    with pytest.raises(ConfigError, match="tf_snr_db"):
        study.tf_samples([], _config(tf_snr_db=10.0))


def test_pooled_accuracy_weights_utterances_by_their_paired_words():
    pooled = study.pooled_accuracy([(1.0, 2), (0.0, 1), (math.nan, 0)])
    assert pooled["word_accuracy"] == pytest.approx(2 / 3) and pooled["words"] == 3
    assert pooled["utterance_mean"] == pytest.approx(0.5) and pooled["ci_low"] <= 0.5 <= pooled["ci_high"]
    assert math.isnan(study.pooled_accuracy([])["word_accuracy"])
