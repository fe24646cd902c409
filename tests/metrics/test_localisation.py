"""Localisation: positive attribution mass inside ground-truth masks, the masks themselves, mask AUC and IoU."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from captum.attr import Saliency
from sklearn.metrics import jaccard_score, roc_auc_score
from torch import nn

from audioxai.errors import ConfigError
from audioxai.features.spectrogram import frame_times
from audioxai.metrics import (METRICS, UndefinedScoreWarning, attribution_mass_inside, ink_mask, mask_auc, mask_iou,
                              time_span_mask)

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 10)).eval()


def quantus_mass_accuracy(attributions: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    metric = quantus.RelevanceMassAccuracy(return_aggregate=False, disable_warnings=True, display_progressbar=False)
    a = attributions.numpy()
    return np.asarray(metric(model=None, x_batch=np.zeros_like(a), y_batch=np.zeros(len(a)), a_batch=a,
                             s_batch=mask.numpy().astype(float)))


def test_equals_quantus_relevance_mass_accuracy_for_non_negative_attributions() -> None:
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(8, 1, 12, 12, generator=gen), torch.randint(0, 10, (8,), generator=gen)
    attr = Saliency(tiny_cnn()).attribute(x, target=y, abs=True).detach()
    mask = ink_mask(x)
    np.testing.assert_allclose(attribution_mass_inside(attr, mask).numpy(), quantus_mass_accuracy(attr, mask),
                               atol=1e-5)


def test_signed_attributions_stay_in_unit_interval_where_quantus_leaves_it() -> None:
    """Trap: Quantus sums signed values, so negative mass outside the mask lifts its score above 1."""
    attr = torch.full((1, 1, 4, 4), -0.5)
    attr[..., :2, :] = 1.0
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[..., :2, :] = True
    assert quantus_mass_accuracy(attr, mask)[0] == pytest.approx(2.0)
    assert attribution_mass_inside(attr, mask)[0].item() == pytest.approx(1.0)


def test_time_mask_broadcasts_over_mel_bands() -> None:
    attr = torch.rand(3, 1, 8, 10, generator=torch.Generator().manual_seed(0))
    spans = [(0.1, 0.5), (0.0, 1.0), (0.6, 0.7)]
    full = time_span_mask(spans, num_frames=10, duration_seconds=1.0, n_mels=8)
    torch.testing.assert_close(attribution_mass_inside(attr, full[:, :, :1]), attribution_mass_inside(attr, full))
    assert attribution_mass_inside(attr, full)[1].item() == pytest.approx(1.0)


def test_time_span_mask_selects_frames_whose_centre_is_in_the_span() -> None:
    mask = time_span_mask(torch.tensor([[0.2, 0.5]]), num_frames=11, duration_seconds=1.0, n_mels=3)
    assert mask.shape == (1, 1, 3, 11) and mask.dtype == torch.bool
    assert mask[0, 0, 0].nonzero().flatten().tolist() == [2, 3, 4, 5]   # centres at 0.0, 0.1, ..., 1.0
    assert mask.all(dim=2).eq(mask.any(dim=2)).all()                  # the same frames in every band
    hop, sample_rate = 160, 16000
    centres = frame_times(11, sample_rate, hop)                       # 0, 0.01, ..., 0.1 s
    shifted = time_span_mask([(0.025, 0.05)], 11, 0.1, 2, frame_times=centres)
    assert shifted[0, 0, 0].nonzero().flatten().tolist() == [3, 4, 5]


@pytest.mark.parametrize("spans", [[(0.5, 0.2)], [(0.1, 0.2, 0.3)]])
def test_time_span_mask_refuses_bad_spans(spans) -> None:
    with pytest.raises(ConfigError):
        time_span_mask(spans, num_frames=10, duration_seconds=1.0, n_mels=4)


def test_ink_mask_is_relative_to_each_image_maximum() -> None:
    images = torch.tensor([[0.0, 0.2, 0.6, 1.0], [0.0, 0.1, 0.3, 0.5]]).view(2, 1, 2, 2)
    mask = ink_mask(images)
    assert mask.flatten(1).tolist() == [[False, False, True, True], [False, False, True, True]]
    assert ink_mask(images, threshold=0.1).flatten(1).sum(1).tolist() == [3, 3]


def test_no_positive_mass_or_empty_mask_gives_nan_with_warning() -> None:
    attr = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    attr[0] = -attr[0]
    mask = torch.ones(3, 1, 4, 4, dtype=torch.bool)
    mask[2] = False
    with pytest.warns(UndefinedScoreWarning):
        scores = attribution_mass_inside(attr, mask)
    assert torch.isnan(scores[[0, 2]]).all() and scores[1].item() == pytest.approx(1.0)


@pytest.mark.parametrize("case", ["float_mask", "shape", "nan"])
def test_bad_input_raises_config_error(case: str) -> None:
    attr, mask = torch.rand(2, 1, 4, 4), torch.ones(2, 1, 4, 4, dtype=torch.bool)
    if case == "float_mask":
        mask = mask.float()
    elif case == "shape":
        mask = mask[..., :3]
    elif case == "nan":
        attr[0, 0, 0, 0] = float("nan")
    with pytest.raises(ConfigError):
        attribution_mass_inside(attr, mask)


def test_registered_as_localisation_higher_is_better() -> None:
    spec = METRICS["localisation_mass"]
    assert spec.fn is attribution_mass_inside and spec.category == "localisation" and spec.higher_is_better


def soft_masks_and_truths(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(8, 1, 6, 10) sigmoid masks, half of them quantised to 5 levels (many ties), and correlated truths."""
    gen = torch.Generator().manual_seed(seed)
    truth = torch.rand(8, 1, 6, 10, generator=gen) < 0.3
    logits = 1.5 * truth.float() + torch.randn(8, 1, 6, 10, generator=gen)
    mask = logits.sigmoid()
    mask[::2] = (mask[::2] * 4).round() / 4
    return mask, truth


def test_mask_auc_equals_sklearn_per_sample_with_ties() -> None:
    mask, truth = soft_masks_and_truths()
    theirs = [roc_auc_score(t.flatten().numpy(), m.flatten().double().numpy()) for m, t in zip(mask, truth)]
    ours = mask_auc(mask, truth)
    assert ours.dtype == torch.float64 and ours.shape == (8,)
    np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=1e-10)
    assert len(mask[0].unique()) <= 5                                 # the tied samples are tied


def test_mask_auc_hand_cases_perfect_reversed_constant_and_any_real_scores() -> None:
    truth = torch.tensor([[True, True, False, False]] * 4)
    mask = torch.tensor([[0.9, 0.8, 0.1, 0.2], [0.1, 0.2, 0.9, 0.8], [0.5] * 4, [-3.0, 7.0, -5.0, 7.0]])
    # last: positives -3 and 7 against negatives -5 and 7: -3 > -5, -3 < 7, 7 > -5, 7 = 7 (half): 2.5 of 4 pairs
    torch.testing.assert_close(mask_auc(mask, truth), torch.tensor([1.0, 0.0, 0.5, 2.5 / 4], dtype=torch.float64))


def test_mask_auc_is_nan_with_warning_for_all_true_or_all_false_truth() -> None:
    mask, truth = soft_masks_and_truths()
    truth[1], truth[4] = True, False
    with pytest.warns(UndefinedScoreWarning, match="mask AUC is undefined"):
        scores = mask_auc(mask, truth)
    assert torch.isnan(scores[[1, 4]]).all() and torch.isfinite(scores[[0, 2, 3, 5, 6, 7]]).all()


def test_mask_iou_hand_computed_and_threshold_inclusive() -> None:
    truth = torch.tensor([[True, True, False, False], [True, False, False, False]])
    mask = torch.tensor([[0.9, 0.2, 0.5, 0.1], [0.7, 0.6, 0.3, 0.0]])
    # sample 0: kept {0, 2} (0.5 counts), truth {0, 1}: 1 / 3; sample 1: kept {0, 1}, truth {0}: 1 / 2
    torch.testing.assert_close(mask_iou(mask, truth), torch.tensor([1 / 3, 1 / 2], dtype=torch.float64))
    torch.testing.assert_close(mask_iou(mask, truth, threshold=0.8), torch.tensor([1 / 2, 0.0], dtype=torch.float64))


def test_mask_iou_equals_sklearn_jaccard_per_sample() -> None:
    mask, truth = soft_masks_and_truths(seed=1)
    theirs = [jaccard_score(t.flatten().numpy(), (m >= 0.5).flatten().numpy()) for m, t in zip(mask, truth)]
    np.testing.assert_allclose(mask_iou(mask, truth).numpy(), theirs, rtol=0, atol=1e-12)


def test_mask_iou_is_nan_with_warning_for_an_empty_union() -> None:
    truth = torch.tensor([[False, False], [True, False]])
    mask = torch.tensor([[0.1, 0.2], [0.9, 0.1]])
    with pytest.warns(UndefinedScoreWarning, match="mask IoU is undefined"):
        scores = mask_iou(mask, truth)
    assert torch.isnan(scores[0]) and scores[1].item() == 1.0


@pytest.mark.parametrize("case, match", [
    ("float_truth", "truth must be a bool tensor"),
    ("shape", "does not match mask"),
    ("nan", r"mask of sample\(s\) \[1\] contains NaN"),
    ("unbatched", "batched real tensor"),
    ("bool_mask", "batched real tensor"),
])
@pytest.mark.parametrize("metric", [mask_auc, mask_iou])
def test_mask_metrics_bad_input_raises_config_error(metric, case: str, match: str) -> None:
    mask, truth = torch.rand(2, 1, 4, 4), torch.rand(2, 1, 4, 4) > 0.5
    if case == "float_truth":
        truth = truth.float()
    elif case == "shape":
        truth = truth[..., :3]
    elif case == "nan":
        mask[1, 0, 2, 2] = float("nan")
    elif case == "unbatched":
        mask, truth = mask[0, 0, 0], truth[0, 0, 0]
    elif case == "bool_mask":
        mask = mask > 0.5
    with pytest.raises(ConfigError, match=match):
        metric(mask, truth)


@pytest.mark.parametrize("threshold", [float("nan"), "0.5", None])
def test_mask_iou_refuses_a_threshold_that_is_not_a_finite_number(threshold) -> None:
    with pytest.raises(ConfigError, match="threshold must be a finite number"):
        mask_iou(torch.rand(2, 4), torch.rand(2, 4) > 0.5, threshold=threshold)


@pytest.mark.parametrize("name, fn", [("mask_auc", mask_auc), ("mask_iou", mask_iou)])
def test_mask_metrics_registered_as_localisation_higher_is_better(name: str, fn) -> None:
    spec = METRICS[name]
    assert spec.fn is fn and spec.category == "localisation" and spec.higher_is_better
