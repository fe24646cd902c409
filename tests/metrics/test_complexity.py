"""Sparseness and complexity: Quantus 0.6.0's Gini index and entropy, per sample, NaN for empty explanations."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from captum.attr import IntegratedGradients, Saliency
from torch import nn

from audioxai.errors import ConfigError
from audioxai.metrics import METRICS, UndefinedScoreWarning, complexity_entropy, sparseness

pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, 10)).eval()


@pytest.fixture(scope="module")
def batch() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return tiny_cnn(), torch.rand(12, 1, 12, 12, generator=gen), torch.randint(0, 10, (12,), generator=gen)


def quantus_sparseness(attributions: np.ndarray, **kw) -> np.ndarray:
    metric = quantus.Sparseness(return_aggregate=False, disable_warnings=True, display_progressbar=False, **kw)
    return np.asarray(metric(model=None, x_batch=np.zeros_like(attributions), y_batch=np.zeros(len(attributions)),
                             a_batch=attributions.copy()))


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
def test_equals_quantus_defaults_called_one_sample_at_a_time(batch, method: str) -> None:
    model, x, y = batch
    explainer = Saliency(model) if method == "saliency" else IntegratedGradients(model)
    attr = explainer.attribute(x, target=y).detach()                  # signed: Quantus's abs=True takes |.|
    theirs = np.concatenate([quantus_sparseness(a[None].numpy()) for a in attr])
    np.testing.assert_allclose(sparseness(attr).numpy(), theirs, atol=1e-5)


def test_quantus_batch_max_epsilon_makes_a_score_depend_on_batch_mates_ours_does_not() -> None:
    sparse = torch.zeros(2, 1, 12, 12)
    sparse[:, 0, 3, 4], sparse[:, 0, 5, 5] = 1.0, 0.5
    sparse[1] *= 1e4                                                  # a batch-mate with larger attributions
    alone = quantus_sparseness(sparse[:1].numpy())[0]
    in_batch = quantus_sparseness(sparse.numpy())[0]
    assert alone - in_batch > 0.05                                   # 0.988 alone, 0.902 in the batch
    ours = sparseness(sparse)
    assert ours[0] == pytest.approx(alone, abs=1e-6) and ours[1] == pytest.approx(alone, abs=1e-6)


def test_all_zero_explanation_is_nan_with_warning_where_quantus_says_zero() -> None:
    """Quantus refuses a batch of only zeros (an assert) but scores a zero map among others 0, "dense"."""
    attr = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    attr[1] = 0
    assert quantus_sparseness(attr.numpy())[1] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(AssertionError):
        quantus_sparseness(attr[1:2].numpy())
    with pytest.warns(UndefinedScoreWarning):
        scores = sparseness(attr)
    assert torch.isnan(scores[1]) and torch.isfinite(scores[[0, 2]]).all()


def test_gini_of_one_hot_is_n_minus_one_over_n_and_of_uniform_is_zero_and_scale_free() -> None:
    n = 144
    one_hot, uniform = torch.zeros(1, 1, 12, 12), torch.full((1, 1, 12, 12), 3.0)
    one_hot[0, 0, 2, 7] = -5.0
    scores = sparseness(torch.cat([one_hot, uniform]), eps=0.0)
    torch.testing.assert_close(scores, torch.tensor([(n - 1) / n, 0.0], dtype=torch.float64))
    attr = torch.randn(4, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(sparseness(attr), sparseness(attr * 1e-3))


@pytest.mark.parametrize("bad", [torch.rand(5), torch.full((2, 1, 3, 3), float("nan"))])
def test_bad_input_raises_config_error(bad: torch.Tensor) -> None:
    with pytest.raises(ConfigError):
        sparseness(bad)


def test_registered_as_complexity_higher_is_better() -> None:
    spec = METRICS["sparseness"]
    assert spec.fn is sparseness and spec.category == "complexity" and spec.higher_is_better


@pytest.fixture(scope="module")
def explanations(batch) -> dict[str, torch.Tensor]:
    model, x, y = batch
    return {"saliency": Saliency(model).attribute(x, target=y).detach(),
            "integrated_gradients": IntegratedGradients(model).attribute(x, target=y).detach()}


def quantus_complexity(attributions: np.ndarray, **kw) -> np.ndarray:
    metric = quantus.Complexity(return_aggregate=False, disable_warnings=True, display_progressbar=False, **kw)
    return np.asarray(metric(model=None, x_batch=np.zeros_like(attributions), y_batch=np.zeros(len(attributions)),
                             a_batch=attributions.copy()))


@pytest.mark.parametrize("method", ["saliency", "integrated_gradients"])
@pytest.mark.parametrize("normalise", [True, False])
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-5), (torch.float64, 1e-9)])
def test_complexity_equals_quantus_on_the_whole_batch(explanations, method: str, normalise: bool, dtype, atol) -> None:
    """Fair settings: Quantus's default abs=True (signed maps would give log of negatives, NaN).

    Quantus's batch-max normalisation (normalise=True) cancels in |a| / sum |a|, so a whole batch
    compares, unlike sparseness; its ln(p + 1e-12) moves the entropy by at most n x 1e-12 = 1.4e-10.
    Quantus computes in the attributions' dtype (float32 rounding: ~1e-6), we in float64.
    """
    attr = explanations[method].to(dtype)
    theirs = quantus_complexity(attr.numpy(), normalise=normalise)
    np.testing.assert_allclose(complexity_entropy(attr).numpy(), theirs, rtol=0, atol=atol)


def test_complexity_of_uniform_is_ln_n_of_one_hot_is_zero_and_scale_free() -> None:
    n = 144
    one_hot, uniform = torch.zeros(1, 1, 12, 12), torch.full((1, 1, 12, 12), -3.0)
    one_hot[0, 0, 2, 7] = 5.0
    half = torch.zeros(1, 1, 12, 12)
    half[0, 0, 0, :2] = torch.tensor([1.0, -3.0])                     # p = (1/4, 3/4)
    scores = complexity_entropy(torch.cat([one_hot, uniform, half]))
    expected = [0.0, np.log(n), -(0.25 * np.log(0.25) + 0.75 * np.log(0.75))]
    torch.testing.assert_close(scores, torch.tensor(expected, dtype=torch.float64))
    attr = torch.randn(4, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(complexity_entropy(attr), complexity_entropy(attr * 1e-3))


def test_complexity_of_all_zero_explanation_is_nan_with_warning_as_quantus_gives_nan() -> None:
    attr = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    attr[1] = 0
    with np.errstate(invalid="ignore"):
        assert np.isnan(quantus_complexity(attr.numpy())[1])
    with pytest.warns(UndefinedScoreWarning, match="complexity is undefined"):
        scores = complexity_entropy(attr)
    assert torch.isnan(scores[1]) and torch.isfinite(scores[[0, 2]]).all()


@pytest.mark.parametrize("bad, match", [(torch.rand(5), "batched tensor"),
                                        (torch.full((2, 1, 3, 3), float("nan")), "NaN or infinite")])
def test_complexity_bad_input_raises_config_error(bad: torch.Tensor, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        complexity_entropy(bad)


def test_complexity_registered_as_complexity_lower_is_better() -> None:
    spec = METRICS["complexity"]
    assert spec.fn is complexity_entropy and spec.category == "complexity" and not spec.higher_is_better
