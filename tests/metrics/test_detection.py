"""EER, pooled frame AUC/EER and RCQ-style region scores."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from audioxai.errors import ConfigError
from audioxai.metrics.detection import equal_error_rate, frame_auc, frame_eer, region_scores


def _brute_force_eer(s, y):
    """Scan thresholds finely: min over t of max(FAR, FRR) is the EER for well-separated rates."""
    best = 1.0
    for t in np.concatenate([np.unique(s), [np.inf]]):
        far = np.mean(s[y == 0] >= t)
        frr = np.mean(s[y == 1] < t)
        best = min(best, max(far, frr))
    return best


def test_perfect_and_inverted_scores():
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    s = torch.tensor([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert equal_error_rate(s, y) == 0.0
    assert equal_error_rate(-s, y) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eer_lies_within_the_brute_force_bracket_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 400)
    s = rng.normal(size=400) + 1.2 * y
    eer = equal_error_rate(torch.tensor(s), torch.tensor(y))
    n0, n1 = (y == 0).sum(), (y == 1).sum()
    # interpolation lands within one sample's step of the minimax error
    assert abs(eer - _brute_force_eer(s, y)) <= 1.0 / min(n0, n1) + 1e-12
    assert 0.2 < eer < 0.35  # two unit normals 1.2 apart: EER = Phi(-0.6) = 0.274


def test_frame_scores_pool_frames_and_respect_valid():
    scores = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.8, 0.0]])
    labels = torch.tensor([[1, 0, 1], [0, 1, 0]])
    valid = torch.tensor([[True, True, True], [True, True, False]])
    expected = roc_auc_score([1, 0, 1, 0, 1], [0.9, 0.1, 0.5, 0.2, 0.8])
    assert frame_auc(scores, labels, valid) == pytest.approx(expected)
    assert frame_eer(scores, labels, valid) == 0.0


def test_region_scores_are_relative_to_the_utterance_mean():
    w = torch.tensor([[0.0, 1.0, 1.0, 0.0, 2.0, 0.0]])
    labels = torch.tensor([[0, 1, 1, 0, 0, 0]])
    speech = torch.tensor([[True, True, True, True, False, False]])
    transition = torch.tensor([[False, False, False, True, False, False]])
    r = region_scores(w, labels, speech, transition)
    mean = 4 / 6
    assert r["spoofed_speech"].item() == pytest.approx(1.0 / mean)
    assert r["bonafide_speech"].item() == pytest.approx(0.0)
    assert r["transition"].item() == pytest.approx(0.0)
    assert r["non_speech"].item() == pytest.approx(1.0 / mean)


def test_empty_regions_are_nan_and_bad_inputs_are_refused():
    w = torch.ones(1, 4)
    zeros = torch.zeros(1, 4, dtype=torch.long)
    r = region_scores(w, zeros, torch.ones(1, 4, dtype=torch.bool), torch.zeros(1, 4, dtype=torch.bool))
    assert torch.isnan(r["spoofed_speech"]).all() and r["bonafide_speech"].item() == 1.0
    with pytest.raises(ConfigError, match="only one class"):
        equal_error_rate(torch.rand(5), torch.zeros(5))
    with pytest.raises(ConfigError, match="NaN"):
        frame_auc(torch.tensor([0.1, float("nan")]), torch.tensor([0, 1]))
    with pytest.raises(ConfigError, match="same shape"):
        frame_auc(torch.rand(3), torch.tensor([0, 1]))
