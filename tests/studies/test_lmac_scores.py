"""Scoring masks against faithfulness and ground truth, on a tiny classifier and a synthetic 'digit'."""

import math

import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.explain.lmac import LMAC, LMACConfig
from audioxai.models.hubert import HubertClassifier, HubertClassifierConfig
from audioxai.studies.lmac import MASK_SCORES, score_masks, truth_masks

TINY = HubertClassifierConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, conv_channels=16,
                              num_classes=4, num_samples=8000)


@pytest.fixture(scope="module", params=["stft", "waveform"])
def setup(request):
    torch.manual_seed(0)
    lmac = LMAC(HubertClassifier(TINY).eval(), LMACConfig(mask_domain=request.param, channels=6, n_fft=128,
                                                            hop_length=64, device="cpu"))
    g = torch.Generator().manual_seed(0)
    t = torch.arange(8000) / 16000
    clean = (torch.sin(2 * math.pi * 500 * t) * ((t > 0.1) & (t < 0.3))).repeat(4, 1)  # the "digit": 0.1-0.3 s
    noise = 0.05 * torch.randn(4, 8000, generator=g)
    return lmac, clean, noise, [(0.1, 0.3)] * 4


def test_every_score_per_sample_in_its_range(setup):
    lmac, clean, noise, spans = setup
    x = clean + noise
    scores = score_masks(lmac, x, lmac(x).detach(), clean, noise, spans)
    assert list(scores.columns) == list(MASK_SCORES) and len(scores) == 4
    assert scores["AI"].isin([0.0, 100.0]).all() and scores["fid_in"].isin([0.0, 1.0]).all()
    assert scores["sparseness"].between(0, 1).all() and scores["gt_auc"].between(0, 1).all()


def test_the_oracle_mask_scores_perfect_ground_truth_and_a_high_si_sdr(setup):
    lmac, clean, noise, spans = setup
    x = clean + noise
    truth = truth_masks(lmac, clean, noise, spans)
    oracle = truth["ibm"].float()
    scores = score_masks(lmac, x, oracle, clean, noise, spans)
    assert (scores["gt_auc"] == 1.0).all() and (scores["gt_iou"] == 1.0).all()
    everything = score_masks(lmac, x, torch.ones_like(oracle), clean, noise, spans)
    assert (scores["si_sdr"] > everything["si_sdr"] + 3).all()  # the oracle removes most of the noise
    # a mask of ones gives the input back (up to STFT round-off, which can tip AI either way)
    assert (everything["AD"].abs() < 1e-3).all() and (everything["fid_in"] == 1).all()
    span_truth = truth["span"]
    assert span_truth is not None and span_truth.shape == oracle.shape
    assert (score_masks(lmac, x, span_truth.float(), clean, noise, spans)["span_auc"] == 1.0).all()


def test_unknown_spans_leave_span_scores_nan_and_mismatches_are_refused(setup):
    lmac, clean, noise, _ = setup
    x = clean + noise
    scores = score_masks(lmac, x, lmac(x).detach(), clean, noise, [None] * 4)
    assert scores["span_auc"].isna().all() and scores["gt_auc"].notna().all()
    with pytest.raises(ConfigError, match="must match the waveforms' batch"):
        score_masks(lmac, x, lmac(x).detach(), clean[:2], noise, [None] * 4)
