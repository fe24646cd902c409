"""Localisation: positive attribution mass inside ground-truth masks, and the masks themselves."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from captum.attr import Saliency
from torch import nn

from audioxai.errors import ConfigError
from audioxai.features.spectrogram import frame_times
from audioxai.metrics import METRICS, UndefinedScoreWarning, attribution_mass_inside, ink_mask, time_span_mask

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
