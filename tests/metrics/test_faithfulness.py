"""Faithfulness correlation: equal to Quantus 0.6.0 given the same subsets, minus its traps."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
from captum.attr import IntegratedGradients, Saliency
from torch import nn

from audioxai.errors import ConfigError
from audioxai.metrics import METRICS, UndefinedScoreWarning, faithfulness_correlation, subset_size

NUM_CLASSES = 10
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 6 * 6, NUM_CLASSES)).eval()


def make_batch(num: int = 16, low: float = 0.0, high: float = 1.0, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    inputs = low + (high - low) * torch.rand(num, 1, 12, 12, generator=gen)
    return inputs, torch.randint(0, NUM_CLASSES, (num,), generator=gen)


def integrated_gradients(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    floor = inputs.flatten(1).amin(1).view(-1, 1, 1, 1).expand_as(inputs).contiguous()
    return IntegratedGradients(model).attribute(inputs, baselines=floor, target=targets, n_steps=16).detach()


def quantus_indices(seed: int, num_runs: int, batch: int, num_features: int, k: int,
                    string_baseline: bool) -> torch.Tensor:
    """The subsets Quantus draws after ``np.random.seed(seed)``: run by run, sample by sample.

    With a string ``perturb_baseline`` Quantus's ``get_baseline_dict`` also draws
    ``np.random.uniform(size=batch)`` after every run (for a "uniform" baseline it then discards).
    """
    np.random.seed(seed)
    runs = []
    for _ in range(num_runs):
        runs.append(np.stack([np.random.choice(num_features, k, replace=False) for _ in range(batch)]))
        if string_baseline:
            np.random.uniform(size=batch)
    return torch.as_tensor(np.stack(runs)).long()


def quantus_scores(model, inputs, targets, attributions, seed: int, num_runs: int, k: int, softmax: bool = False,
                   **kw) -> np.ndarray:
    """Quantus's scores on the whole batch, numpy seeded with ``seed``; ``kw`` configures the metric."""
    metric = quantus.FaithfulnessCorrelation(nr_runs=num_runs, subset_size=k, return_aggregate=False,
                                             disable_warnings=True, display_progressbar=False, **kw)
    np.random.seed(seed)
    return np.asarray(metric(model=model, x_batch=inputs.numpy(), y_batch=targets.numpy(),
                             a_batch=attributions.numpy(), batch_size=len(inputs), softmax=softmax))


def test_equals_quantus_with_black_baseline_on_images() -> None:
    model, (x, y) = tiny_cnn(), make_batch()
    attr = integrated_gradients(model, x, y)
    indices = quantus_indices(5, 30, len(x), 144, 7, string_baseline=True)
    ours = faithfulness_correlation(model, x, y, attr, indices=indices, baseline="min")
    theirs = quantus_scores(model, x, y, attr, 5, 30, 7, perturb_baseline="black")
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-5)


def test_equals_quantus_on_db_like_inputs_floor_baseline() -> None:
    """On -80..+20 dB inputs, Quantus's "black" is each spectrogram's floor, which is our "min"."""
    model, (x, y) = tiny_cnn(), make_batch(low=-80.0, high=20.0)
    attr = integrated_gradients(model, x, y)
    indices = quantus_indices(6, 30, len(x), 144, 7, string_baseline=True)
    ours = faithfulness_correlation(model, x, y, attr, indices=indices)
    theirs = quantus_scores(model, x, y, attr, 6, 30, 7, perturb_baseline="black")
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-5)


def test_equals_quantus_with_abs_softmax_and_numeric_baseline() -> None:
    model, (x, y) = tiny_cnn(), make_batch()
    attr = Saliency(model).attribute(x, target=y).detach()             # signed gradient; abs=True takes |.|
    indices = quantus_indices(7, 30, len(x), 144, 20, string_baseline=False)
    ours = faithfulness_correlation(model, x, y, attr, indices=indices, baseline=0.5, abs=True, softmax=True)
    theirs = quantus_scores(model, x, y, attr, 7, 30, 20, perturb_baseline=0.5, abs=True, softmax=True)
    np.testing.assert_allclose(ours.numpy(), theirs, atol=1e-5)


def test_quantus_string_baseline_draws_hidden_uniforms_that_shift_its_subsets() -> None:
    """Trap: with perturb_baseline="black", Quantus's subsets are not the plain np.random.choice sequence."""
    model, (x, y) = tiny_cnn(), make_batch()
    attr = integrated_gradients(model, x, y)
    naive = quantus_indices(5, 30, len(x), 144, 7, string_baseline=False)
    ours = faithfulness_correlation(model, x, y, attr, indices=naive)
    theirs = quantus_scores(model, x, y, attr, 5, 30, 7, perturb_baseline="black")
    assert np.abs(ours.numpy() - theirs).max() > 0.05


def test_normalisation_cannot_change_the_score_so_quantus_batch_max_is_harmless_here() -> None:
    model, (x, y) = tiny_cnn(), make_batch()
    attr = integrated_gradients(model, x, y)
    scale = torch.linspace(0.01, 100.0, len(x)).view(-1, 1, 1, 1)
    score = lambda a: faithfulness_correlation(model, x, y, a, num_runs=30,  # noqa: E731
                                               generator=torch.Generator().manual_seed(3)).numpy()
    np.testing.assert_allclose(score(attr), score(attr * scale), atol=1e-9)
    with_norm = quantus_scores(model, x, y, attr, 5, 30, 7, perturb_baseline="black", normalise=True)
    without = quantus_scores(model, x, y, attr, 5, 30, 7, perturb_baseline="black", normalise=False)
    np.testing.assert_allclose(with_norm, without, atol=1e-6)


def test_subset_size_is_the_same_fraction_at_every_resolution() -> None:
    assert subset_size(28 * 28, 0.05) == 39 and subset_size(128 * 128, 0.05) == 819
    assert 224 / (28 * 28) > 0.28 and 224 / (128 * 128) < 0.014   # Quantus's fixed 224 at the same sizes
    assert subset_size(144, 0.001) == 1 and subset_size(144, 0.999) == 143
    with pytest.raises(ConfigError):
        subset_size(144, 0.0)


def test_same_generator_seed_gives_same_scores_and_leaves_global_state_alone() -> None:
    model, (x, y) = tiny_cnn(), make_batch()
    attr = integrated_gradients(model, x, y)
    state = torch.get_rng_state()
    first = faithfulness_correlation(model, x, y, attr, num_runs=20, generator=torch.Generator().manual_seed(9))
    again = faithfulness_correlation(model, x, y, attr, num_runs=20, generator=torch.Generator().manual_seed(9))
    other = faithfulness_correlation(model, x, y, attr, num_runs=20, generator=torch.Generator().manual_seed(10))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, other)
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(faithfulness_correlation(model, x, y, attr, num_runs=20),
                               faithfulness_correlation(model, x, y, attr, num_runs=20), rtol=0, atol=0)


def test_chunking_does_not_change_scores_given_indices() -> None:
    model, (x, y) = tiny_cnn(), make_batch()
    attr = integrated_gradients(model, x, y)
    indices = quantus_indices(1, 20, len(x), 144, 7, string_baseline=False)
    torch.testing.assert_close(faithfulness_correlation(model, x, y, attr, indices=indices, batch_size=7),
                               faithfulness_correlation(model, x, y, attr, indices=indices, batch_size=1000))


@pytest.mark.parametrize("case", ["shape", "nan", "target_high", "target_negative", "indices_repeat",
                                  "indices_batch", "training", "fraction"])
def test_bad_input_raises_config_error(case: str) -> None:
    model, (x, y) = tiny_cnn(), make_batch(4)
    attr, kw = torch.rand_like(x), {}
    if case == "shape":
        attr = attr[..., :-1]
    elif case == "nan":
        attr[1, 0, 2, 2] = float("nan")
    elif case == "target_high":
        y = y.clone().fill_(NUM_CLASSES)
    elif case == "target_negative":
        y = y.clone().fill_(-1)
    elif case == "indices_repeat":
        kw["indices"] = torch.zeros(3, 4, 2, dtype=torch.long)
    elif case == "indices_batch":
        kw["indices"] = torch.arange(6).view(1, 3, 2)
    elif case == "training":
        model.train()
    elif case == "fraction":
        kw["subset_fraction"] = 1.5
    with pytest.raises(ConfigError):
        faithfulness_correlation(model, x, y, attr, **kw)


def test_all_zero_attributions_give_nan_with_warning() -> None:
    model, (x, y) = tiny_cnn(), make_batch(4)
    attr = torch.rand_like(x)
    attr[2] = 0
    with pytest.warns(UndefinedScoreWarning):
        scores = faithfulness_correlation(model, x, y, attr, num_runs=10)
    assert torch.isnan(scores[2]) and torch.isfinite(scores[[0, 1, 3]]).all()


def test_gradient_times_input_on_a_linear_model_is_faithful_and_random_attributions_are_not() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(144, NUM_CLASSES)).eval()
    x, y = make_batch(64)
    grad_x_input = model[1].weight[y].detach().view_as(x) * x          # exact contribution of each pixel
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    exact = faithfulness_correlation(model, x, y, grad_x_input, baseline=0.0, generator=gen())
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    random = faithfulness_correlation(model, x, y, noise, baseline=0.0, generator=gen())
    assert exact.min() > 0.9
    assert abs(random.mean().item()) < 0.1


def test_registered_as_faithfulness_higher_is_better() -> None:
    spec = METRICS["faithfulness_correlation"]
    assert spec.fn is faithfulness_correlation and spec.category == "faithfulness" and spec.higher_is_better
