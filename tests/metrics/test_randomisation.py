"""Randomisation metrics: equal to Quantus 0.6.0 on the same model, explanations and draws, minus its traps."""

from __future__ import annotations


import numpy as np
import pytest
import quantus
import scipy.stats
import skimage.metrics
import torch
from captum.attr import Saliency
from quantus.functions import similarity_func as qsim
from torch import nn

from audioxai.errors import ConfigError
from audioxai.metrics.base import METRICS, UndefinedScoreWarning, normalise_per_sample
from audioxai.metrics.randomisation import (model_parameter_randomisation, model_parameter_randomisation_score,
                                            random_logit, randomisable_layers, randomisation_score,
                                            randomised_models, spearman_per_sample, ssim_per_sample)

NUM_CLASSES = 10
QUANTUS_SIMILARITY = {
    "ssim": lambda a, b, batched=False, **kw: np.asarray(qsim.ssim(a, b, batched=batched)),  # MPRT calls .tolist()
    "pearson": qsim.correlation_pearson,
    "spearman": qsim.correlation_spearman,
}
pytestmark = pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients")


def tiny_cnn(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 6 * 6, NUM_CLASSES)).eval()


def saliency(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return Saliency(model).attribute(inputs.detach(), target=targets, abs=True).detach()


def input_itself(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return inputs.clone()


@pytest.fixture(scope="module")
def batch() -> tuple[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    model = tiny_cnn()
    gen = torch.Generator().manual_seed(1)
    inputs = torch.rand(32, 1, 12, 12, generator=gen)
    targets = torch.randint(0, NUM_CLASSES, (32,), generator=gen)
    return model, inputs, targets, saliency(model, inputs, targets)


class RecordingExplainer:
    """Quantus's ``explain_func``: per-sample-normalised Saliency on numpy, remembering the targets asked for."""

    def __init__(self) -> None:
        self.targets: list[np.ndarray] = []

    def __call__(self, model: nn.Module, inputs: np.ndarray, targets: np.ndarray, **_: object) -> np.ndarray:
        self.targets.append(np.asarray(targets).copy())
        return normalise_per_sample(saliency(model, torch.as_tensor(inputs), torch.as_tensor(targets))).numpy()


def quantus_kwargs(**kw: object) -> dict:
    """Quantus with its traps off: our per-sample normalisation instead of its batch-wide one, no prints."""
    return dict(normalise=False, disable_warnings=True, display_progressbar=False, **kw)


# ---------------------------------------------------------------- similarities


def test_ssim_equals_skimage_as_quantus_calls_it() -> None:
    gen = torch.Generator().manual_seed(2)
    a, b = torch.randn(2, 6, 144, generator=gen, dtype=torch.float64)
    b[0] = a[0]
    b[1] = 3 * a[1] + 1
    expected = [skimage.metrics.structural_similarity(x, y, data_range=float(np.ptp(np.concatenate([x, y]))))
                for x, y in zip(a.numpy(), b.numpy())]
    assert torch.allclose(ssim_per_sample(a, b), torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    assert ssim_per_sample(a, b)[0] == pytest.approx(1.0)


def test_spearman_equals_scipy_with_ties() -> None:
    gen = torch.Generator().manual_seed(3)
    a = torch.randint(0, 5, (8, 50), generator=gen).double()
    b = torch.randn(8, 50, generator=gen, dtype=torch.float64).round()
    expected = [scipy.stats.spearmanr(x, y)[0] for x, y in zip(a.numpy(), b.numpy())]
    assert torch.allclose(spearman_per_sample(a, b), torch.tensor(expected, dtype=torch.float64), atol=1e-12)


# ---------------------------------------------------------------- equality with Quantus


@pytest.mark.parametrize("similarity", ["ssim", "pearson"])
def test_random_logit_equals_quantus_with_its_own_draws(batch, similarity: str) -> None:
    model, inputs, targets, attributions = batch
    explainer = RecordingExplainer()
    metric = quantus.RandomLogit(similarity_func=QUANTUS_SIMILARITY[similarity], num_classes=NUM_CLASSES, abs=False,
                                 **quantus_kwargs())
    expected = metric(model=model, x_batch=inputs.numpy(), y_batch=targets.numpy(),
                      a_batch=normalise_per_sample(attributions).numpy(), explain_func=explainer)
    quantus_draws = torch.as_tensor(explainer.targets[-1])
    ours = random_logit(model, inputs, targets, saliency, num_classes=NUM_CLASSES, attributions=attributions,
                        other_targets=quantus_draws, similarity=similarity)
    assert torch.allclose(ours, torch.tensor(expected, dtype=torch.float64), atol=1e-5)
    np.random.seed(42)  # Quantus's draw, reseeded per batch: index among the non-target classes
    index = np.random.randint(0, NUM_CLASSES - 1, len(targets))
    assert np.array_equal(index + (index >= targets.numpy()), quantus_draws.numpy())


@pytest.mark.parametrize("similarity", ["spearman", "pearson", "ssim"])
def test_mprt_equals_quantus_layer_by_layer(batch, similarity: str) -> None:
    model, inputs, targets, attributions = batch
    metric = quantus.MPRT(similarity_func=QUANTUS_SIMILARITY[similarity], seed=42, layer_order="top_down", abs=True,
                          **quantus_kwargs())
    expected = metric(model=model, x_batch=inputs.numpy(), y_batch=targets.numpy(),
                      a_batch=normalise_per_sample(attributions).numpy(), explain_func=RecordingExplainer())
    ours = model_parameter_randomisation(model, inputs, targets, saliency, attributions=attributions,
                                         similarity=similarity, seed=42)
    assert list(ours) == [name for name in expected if name != "original"] == ["6", "2", "0"]
    for name, scores in ours.items():
        assert torch.allclose(scores, torch.tensor(expected[name], dtype=torch.float64), atol=1e-5), name


def test_quantus_mprt_fails_on_its_own_ssim(batch) -> None:
    """Why QUANTUS_SIMILARITY wraps ``ssim``: it returns a list and MPRT calls ``.tolist()`` on it."""
    model, inputs, targets, attributions = batch
    with pytest.raises(AttributeError, match="tolist"):
        quantus.MPRT(similarity_func=qsim.ssim, **quantus_kwargs())(
            model=model, x_batch=inputs.numpy(), y_batch=targets.numpy(), a_batch=attributions.numpy(),
            explain_func=RecordingExplainer())


@pytest.mark.parametrize("order", ["top_down", "bottom_up", "independent"])
def test_randomised_weights_equal_quantus_bit_for_bit(order: str) -> None:
    model = tiny_cnn()
    theirs = quantus.PyTorchModel(model).get_random_layer_generator(order=order, seed=7)
    mine = randomised_models(model, order=order, seed=7)
    for (name, ours), (their_name, their_model) in zip(mine, theirs, strict=True):
        assert name == their_name
        for (key, value), (their_key, their_value) in zip(ours.state_dict().items(), their_model.state_dict().items()):
            assert key == their_key and torch.equal(value, their_value), (name, key)


def test_quantus_average_correlation_counts_the_unrandomised_model(batch) -> None:
    """Quantus skips the key "orig" but stores "original", so its per-sample average includes a similarity of ~1."""
    model, inputs, targets, attributions = batch
    metric = quantus.MPRT(return_average_correlation=True, abs=True, **quantus_kwargs())
    quantus_average = torch.tensor(metric(model=model, x_batch=inputs.numpy(), y_batch=targets.numpy(),
                                          a_batch=normalise_per_sample(attributions).numpy(),
                                          explain_func=RecordingExplainer()), dtype=torch.float64)
    layers = model_parameter_randomisation(model, inputs, targets, saliency, attributions=attributions)
    with_original = torch.stack([torch.ones(len(targets), dtype=torch.float64), *layers.values()]).mean(dim=0)
    assert torch.allclose(quantus_average, with_original, atol=1e-5)
    ours = randomisation_score(layers)
    assert (quantus_average - ours).min() > 0.01
    assert torch.allclose(ours, with_original * 4 / 3 - 1 / 3, atol=1e-5)  # the same layers, without the extra 1


# ---------------------------------------------------------------- behaviour


def test_mprt_leaves_the_callers_model_and_random_state_alone(batch) -> None:
    model, inputs, targets, _ = batch
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    model_parameter_randomisation(model, inputs, targets, saliency, order="independent")
    model_parameter_randomisation(model, inputs, targets, saliency)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())


def test_same_seed_same_scores_other_seed_other_weights(batch) -> None:
    model, inputs, targets, _ = batch
    first = model_parameter_randomisation(model, inputs, targets, saliency, seed=3)
    again = model_parameter_randomisation(model, inputs, targets, saliency, seed=3)
    assert all(torch.equal(first[k], again[k]) for k in first)
    w3 = next(randomised_models(model, seed=3))[1][6].weight.clone()
    w4 = next(randomised_models(model, seed=4))[1][6].weight.clone()
    assert not torch.equal(w3, w4)
    draws = [random_logit(model, inputs, targets, saliency, num_classes=NUM_CLASSES,
                          generator=torch.Generator().manual_seed(5)) for _ in range(2)]
    assert torch.equal(*draws)


def test_explanation_that_ignores_parameters_stays_similar_saliency_does_not(batch) -> None:
    model, inputs, targets, _ = batch
    for similarity in ("spearman", "pearson", "ssim"):
        fixed = model_parameter_randomisation(model, inputs, targets, input_itself, similarity=similarity)
        assert all(torch.allclose(s, torch.ones_like(s)) for s in fixed.values())
    assert torch.allclose(random_logit(model, inputs, targets, input_itself, num_classes=NUM_CLASSES),
                          torch.ones(len(targets), dtype=torch.float64))
    cascade = model_parameter_randomisation(model, inputs, targets, saliency)
    assert cascade["0"].mean() < 0.5 and randomisation_score(cascade).mean() < 0.9


def test_layers_restricts_what_is_randomised() -> None:
    model = tiny_cnn()
    assert randomisable_layers(model) == ["0", "2", "6"]
    (name, randomised), = list(randomised_models(model, layers=["2"]))
    assert name == "2" and not torch.equal(randomised[2].weight, model[2].weight)
    assert torch.equal(randomised[0].weight, model[0].weight) and torch.equal(randomised[6].weight, model[6].weight)
    with pytest.raises(ConfigError):
        randomised_models(model, order="random")  # checked on the call, not on the first step


def test_random_other_classes_are_uniform_and_never_the_target() -> None:
    """Our draws are not Quantus's (torch, not a reseeded numpy): checked statistically over 6400 samples."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, NUM_CLASSES))
    targets = torch.arange(6400) % NUM_CLASSES
    seen: list[torch.Tensor] = []

    def record(model: nn.Module, inputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        seen.append(y.clone())
        return torch.rand_like(inputs)

    random_logit(model, torch.rand(6400, 1, 4), targets, record, num_classes=NUM_CLASSES, similarity="pearson",
                 attributions=torch.rand(6400, 1, 4))
    others = seen[-1]
    assert not (others == targets).any()
    counts = torch.bincount(others, minlength=NUM_CLASSES).double()
    assert scipy.stats.chisquare(counts.numpy()).pvalue > 0.001


def test_registry_declares_lower_is_better_and_the_summary(batch) -> None:
    model, inputs, targets, attributions = batch
    for name in ("random_logit", "model_parameter_randomisation"):
        assert METRICS[name].category == "randomisation" and not METRICS[name].higher_is_better
    summary = METRICS["model_parameter_randomisation"].fn(model, inputs, targets, saliency, attributions=attributions)
    full = model_parameter_randomisation(model, inputs, targets, saliency, attributions=attributions)
    assert summary.shape == (32,) and torch.equal(summary, randomisation_score(full))
    assert METRICS["model_parameter_randomisation"].fn is model_parameter_randomisation_score


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("case", ["shape", "nan", "target", "other_is_target", "similarity", "classes"])
def test_random_logit_rejects_bad_input(batch, case: str) -> None:
    model, inputs, targets, attributions = batch
    kwargs = dict(num_classes=NUM_CLASSES, attributions=attributions)
    if case == "shape":
        kwargs["attributions"] = attributions[:, :, :6]
    elif case == "nan":
        kwargs["attributions"] = attributions.clone().index_fill_(0, torch.tensor([3]), float("nan"))
    elif case == "target":
        targets = targets.clone().fill_(NUM_CLASSES)
    elif case == "other_is_target":
        kwargs["other_targets"] = targets
    elif case == "similarity":
        kwargs["similarity"] = "cosine"
    else:
        kwargs["num_classes"] = 1
        targets = torch.zeros_like(targets)
    with pytest.raises(ConfigError):
        random_logit(model, inputs, targets, saliency, **kwargs)


@pytest.mark.parametrize("kwargs", [dict(order="random"), dict(layers=["fc"]), dict(layers=[]),
                                    dict(attributions=torch.zeros(32, 1, 12)), dict(similarity="hog")])
def test_mprt_rejects_bad_configuration(batch, kwargs: dict) -> None:
    model, inputs, targets, _ = batch
    with pytest.raises(ConfigError):
        model_parameter_randomisation(model, inputs, targets, saliency, **kwargs)


@pytest.mark.parametrize("similarity", ["spearman", "pearson", "ssim"])
def test_constant_explanations_give_nan_with_a_warning(batch, similarity: str) -> None:
    model, inputs, targets, _ = batch

    def zeros(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    with pytest.warns(UndefinedScoreWarning):
        scores = model_parameter_randomisation(model, inputs, targets, zeros, similarity=similarity)
    assert all(s.isnan().all() for s in scores.values())
    with pytest.warns(UndefinedScoreWarning):
        assert random_logit(model, inputs, targets, zeros, num_classes=NUM_CLASSES, similarity=similarity).isnan().all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpu_weights_and_scores(batch) -> None:
    model, inputs, targets, attributions = batch
    cpu = model_parameter_randomisation(model, inputs, targets, saliency, attributions=attributions)
    gpu_model = tiny_cnn().cuda()
    gpu = model_parameter_randomisation(gpu_model, inputs.cuda(), targets.cuda(), saliency,
                                        attributions=attributions.cuda())
    assert all(torch.allclose(cpu[k], gpu[k], atol=1e-5) for k in cpu)
    for (_, g), (_, c) in zip(randomised_models(gpu_model), randomised_models(model)):
        assert all(torch.equal(v.cpu(), c.state_dict()[k]) for k, v in g.state_dict().items())


def test_randomisation_score_skips_undefined_layers_and_is_nan_only_when_all_are():
    result = {"a": torch.tensor([0.2, float("nan"), float("nan")], dtype=torch.float64),
              "b": torch.tensor([0.4, 0.6, float("nan")], dtype=torch.float64)}
    score = randomisation_score(result)
    assert torch.allclose(score[:2], torch.tensor([0.3, 0.6], dtype=torch.float64)) and score[2].isnan()


def test_a_wiped_out_explanation_is_nan_by_default_and_the_given_value_on_request():
    model = tiny_cnn()
    x = torch.rand(3, 1, 12, 12)
    x[2] = 0.5  # the reference map of sample 2 is constant: never testable
    y = torch.tensor([0, 1, 2])

    def explain(m, inputs, targets):  # the original model explains with its input, any randomised one with zeros
        return inputs.clone() if m is model else torch.zeros_like(inputs)

    with pytest.warns(UndefinedScoreWarning, match="set to NaN"):
        default = model_parameter_randomisation(model, x, y, explain)
    assert all(v.isnan().all() for v in default.values())
    with pytest.warns(UndefinedScoreWarning):
        zero = model_parameter_randomisation(model, x, y, explain, constant_randomised=0.0)
    for v in zero.values():
        assert torch.equal(v[:2], torch.zeros(2, dtype=torch.float64)) and v[2].isnan()
    score = randomisation_score(zero)
    assert score[:2].eq(0).all() and score[2].isnan()
