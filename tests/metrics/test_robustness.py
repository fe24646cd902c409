"""Average sensitivity: equal to Quantus 0.6.0 given the same noise, minus its traps."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from captum.attr import Saliency
from torch import nn

from audioxai.errors import ConfigError
from audioxai.metrics import METRICS, UndefinedScoreWarning, avg_sensitivity, normalise_per_sample

NUM_CLASSES = 10
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, NUM_CLASSES)).eval()


class Rescaled(nn.Module):
    """``model((x - offset) / scale)``: the same classifier reading inputs in other units (e.g. dB)."""

    def __init__(self, model: nn.Module, scale: float, offset: float) -> None:
        super().__init__()
        self.model, self.scale, self.offset = model, scale, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.offset) / self.scale)


def make_batch(num: int = 16, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(num, 1, 12, 12, generator=gen), torch.randint(0, NUM_CLASSES, (num,), generator=gen)


def saliency(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return Saliency(model).attribute(inputs.detach(), target=targets, abs=True).detach()


def input_itself(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return inputs.clone()


def draw_noise(num_samples: int, like: torch.Tensor, half_width: float, seed: int = 2) -> torch.Tensor:
    return (2 * torch.rand(num_samples, *like.shape, generator=torch.Generator().manual_seed(seed)) - 1) * half_width


def quantus_scores(model, inputs, targets, noise: torch.Tensor, **kw) -> np.ndarray:
    """Quantus's AvgSensitivity fed ``noise[j]`` at step j through a custom ``perturb_func``."""
    step = iter(noise.flatten(2).numpy())

    def add_noise(arr: np.ndarray, indices: np.ndarray, **_: object) -> np.ndarray:
        return arr + next(step)

    def explain(model, inputs, targets, **_):
        return saliency(model, torch.as_tensor(inputs), torch.as_tensor(targets)).numpy()

    metric = quantus.AvgSensitivity(nr_samples=noise.shape[0], perturb_func=add_noise, return_aggregate=False,
                                    disable_warnings=True, display_progressbar=False, **kw)
    return np.asarray(metric(model=model, x_batch=inputs.numpy(), y_batch=targets.numpy(),
                             a_batch=saliency(model, inputs, targets).numpy(), explain_func=explain,
                             batch_size=len(inputs)))


def per_sample_max(a: np.ndarray) -> np.ndarray:
    return normalise_per_sample(torch.as_tensor(a)).numpy()


@pytest.mark.parametrize("changed", [False, True])
def test_equals_quantus_with_per_sample_normalisation(changed: bool) -> None:
    model, (x, y) = tiny_cnn(), make_batch()
    noise = draw_noise(8, x, 0.1)
    ours = avg_sensitivity(model, x, y, saliency, noise=noise, nan_when_prediction_changes=changed)
    theirs = quantus_scores(model, x, y, noise, normalise=True, normalise_func=per_sample_max,
                            return_nan_when_prediction_changes=changed)
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-5)
    assert torch.isnan(ours).any() == changed          # this model flips some predictions under the noise


def test_equals_quantus_defaults_without_normalisation_on_db_like_inputs() -> None:
    base, (x, y) = tiny_cnn(), make_batch()
    model, x_db = Rescaled(base, scale=1 / 100, offset=-80.0).eval(), x * 100 - 80
    noise = draw_noise(8, x_db, 10.0)
    ours = avg_sensitivity(model, x_db, y, saliency, noise=noise, normalise=False)
    np.testing.assert_allclose(ours.numpy(), quantus_scores(model, x_db, y, noise), atol=1e-5)


def test_noise_relative_to_range_means_the_same_on_pixels_and_decibels_unlike_quantus() -> None:
    """Trap: Quantus's U(-0.2, 0.2) is 20% of a [0, 1] image's range but 0.2% of a 100 dB one."""
    base, (x, y) = tiny_cnn(), make_batch()
    model_db, x_db = Rescaled(base, scale=100.0, offset=-80.0).eval(), x * 100 - 80
    gen = lambda: torch.Generator().manual_seed(4)  # noqa: E731
    on_pixels = avg_sensitivity(base, x, y, saliency, num_samples=8, noise_fraction=0.2, generator=gen())
    on_db = avg_sensitivity(model_db, x_db, y, saliency, num_samples=8, noise_fraction=0.2, generator=gen())
    np.testing.assert_allclose(on_pixels.numpy(), on_db.numpy(), rtol=1e-4)
    absolute = draw_noise(8, x, 0.2)                                   # Quantus's default lower_bound=0.2
    quantus_pixels = quantus_scores(base, x, y, absolute, normalise=True, normalise_func=per_sample_max)
    quantus_db = quantus_scores(model_db, x_db, y, absolute, normalise=True, normalise_func=per_sample_max)
    assert quantus_db.mean() < 0.2 * quantus_pixels.mean()                # the same noise, barely felt in dB


def test_quantus_batch_max_normalisation_makes_a_score_depend_on_batch_mates_ours_does_not() -> None:
    model, (x, y) = tiny_cnn(), make_batch(8)
    x[1:] *= 3.0                                                       # batch-mates with larger gradients
    noise = draw_noise(6, x, 0.05)
    alone = quantus_scores(model, x[:1], y[:1], noise[:, :1], normalise=True)
    in_batch = quantus_scores(model, x, y, noise, normalise=True)
    assert abs(alone[0] - in_batch[0]) > 1e-3
    ours_alone = avg_sensitivity(model, x[:1], y[:1], saliency, noise=noise[:, :1])
    ours_in_batch = avg_sensitivity(model, x, y, saliency, noise=noise)
    torch.testing.assert_close(ours_alone[0], ours_in_batch[0])


def test_input_as_its_own_explanation_has_sensitivity_noise_over_input_norm() -> None:
    model, (x, y) = tiny_cnn(), make_batch(4)
    noise = draw_noise(5, x, 0.1)
    expected = (noise.flatten(2).double().norm(dim=2) / x.flatten(1).double().norm(dim=1)).mean(dim=0)
    scores = avg_sensitivity(model, x, y, input_itself, noise=noise, normalise=False)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-7)


def test_same_generator_seed_gives_same_scores_and_chunking_does_not_matter() -> None:
    model, (x, y) = tiny_cnn(), make_batch(6)
    run = lambda seed, bs: avg_sensitivity(model, x, y, saliency, num_samples=4,  # noqa: E731
                                           generator=torch.Generator().manual_seed(seed), batch_size=bs)
    torch.testing.assert_close(run(3, 256), run(3, 256), rtol=0, atol=0)
    assert not torch.allclose(run(3, 256), run(4, 256))
    noise = draw_noise(4, x, 0.1)
    torch.testing.assert_close(avg_sensitivity(model, x, y, saliency, noise=noise, batch_size=5),
                               avg_sensitivity(model, x, y, saliency, noise=noise, batch_size=100))


@pytest.mark.parametrize("case", ["shape", "nan", "target_high", "noise_shape", "training", "fraction"])
def test_bad_input_raises_config_error(case: str) -> None:
    model, (x, y) = tiny_cnn(), make_batch(4)
    kw: dict = {"attributions": saliency(model, x, y)}
    if case == "shape":
        kw["attributions"] = kw["attributions"][:, :, :-1]
    elif case == "nan":
        kw["attributions"][0, 0, 0, 0] = float("nan")
    elif case == "target_high":
        y = y.clone().fill_(NUM_CLASSES)
    elif case == "noise_shape":
        kw["noise"] = torch.zeros(3, 4, 1, 12, 11)
    elif case == "training":
        model.train()
    elif case == "fraction":
        kw["noise_fraction"] = 0.0
    with pytest.raises(ConfigError):
        avg_sensitivity(model, x, y, saliency, num_samples=2, **kw)


def test_all_zero_explanation_gives_nan_with_warning() -> None:
    model, (x, y) = tiny_cnn(), make_batch(3)
    attributions = saliency(model, x, y)
    attributions[1] = 0
    with pytest.warns(UndefinedScoreWarning):
        scores = avg_sensitivity(model, x, y, saliency, num_samples=2, attributions=attributions)
    assert torch.isnan(scores[1]) and torch.isfinite(scores[[0, 2]]).all()


def test_registered_as_robustness_lower_is_better() -> None:
    spec = METRICS["avg_sensitivity"]
    assert spec.fn is avg_sensitivity and spec.category == "robustness" and not spec.higher_is_better
