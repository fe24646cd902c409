"""Randomisation metrics: does an explanation change when the thing it should depend on is randomised?

- ``random_logit`` (Sixt et al., 2020, "When Explanations Lie", ICML): for each sample, the
  similarity between the explanation of its target class y and of a class y' drawn uniformly from
  the other C - 1 classes, ``s_i = sim(phi(x_i, y_i), phi(x_i, y'_i))``. Lower is better: a
  class-sensitive explanation differs between classes.
- ``model_parameter_randomisation`` (Adebayo et al., 2018, "Sanity Checks for Saliency Maps",
  NeurIPS), the cascading Model Parameter Randomisation Test: re-initialise the layers one by one
  from the output down, cumulatively, re-explain after each step l, and score
  ``s_{i,l} = sim(phi_f(x_i, y_i), phi_{f_l}(x_i, y_i))``. ``randomisation_score`` averages over
  the randomised layers only. Lower is better: the explanation depends on what the model learned.

Both match Quantus 0.6.0 (``RandomLogit``, ``MPRT``) to 1e-5 when given the same explanations and
draws, and fix these traps of it:

- ``RandomLogit`` defaults to ``num_classes=1000``; with 10 classes it draws classes that do not
  exist. We require ``num_classes``. It reseeds numpy with 42 for every batch of 64, so the
  "random" classes repeat from batch to batch; we draw once per call from a torch generator.
- Quantus's SSIM (its RandomLogit default) runs ``skimage.metrics.structural_similarity`` on the
  *flattened* explanations: a 1-D SSIM over the row-major vector with 7-sample uniform windows,
  sample covariances, K1 = 0.01, K2 = 0.03 and ``data_range`` = max - min of both maps together.
  ``ssim_per_sample`` is exactly that, batched.
- ``MPRT(return_average_correlation=True)`` averages the similarity of the *unrandomised* model
  into each sample's score: it skips the key ``"orig"`` while the key is ``"original"``. Our
  summary averages only randomised layers.
- Quantus normalises by the maximum over the whole batch; we normalise each sample alone.
- Quantus re-initialises with ``torch.manual_seed(seed + 1); layer.reset_parameters()`` on the
  global generator, which clobbers the caller's random state and, on a GPU, draws from the CUDA
  generator. We make the same CPU draws (so the same seed gives Quantus's weights bit for bit on
  any device) inside ``torch.random.fork_rng``. Like Quantus, every layer is re-seeded with the same
  ``seed + 1``, so two layers of the same shape get the same random weights, and "layers" are all
  modules with a ``reset_parameters`` method, in registration order: BatchNorm among them, whose
  reset sets weight 1, bias 0 and the running statistics to 0 and 1 rather than random values.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from audioxai.errors import ConfigError
from audioxai.metrics.base import (Explainer, UndefinedScoreWarning, check_batch, normalise_per_sample,
                                   pearson_per_sample, register_metric)

__all__ = ["random_logit", "model_parameter_randomisation", "model_parameter_randomisation_score",
           "randomisation_score", "randomised_models", "randomisable_layers", "ssim_per_sample",
           "spearman_per_sample", "SIMILARITIES"]

Similarity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
ORDERS = ("top_down", "bottom_up", "independent")


# ---------------------------------------------------------------- similarities on (B, F) rows


def ssim_per_sample(a: torch.Tensor, b: torch.Tensor, win_size: int = 7, k1: float = 0.01,
                    k2: float = 0.03) -> torch.Tensor:
    """1-D SSIM of each row pair, as skimage's ``structural_similarity(a_i, b_i, data_range=L_i)``.

    ``SSIM = mean_w ((2 mu_a mu_b + C1)(2 s_ab + C2)) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2))``
    over every full window w of ``win_size`` consecutive values (skimage crops the border), with
    sample (N - 1) covariances, ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2`` and ``L_i = max(a_i, b_i) -
    min(a_i, b_i)`` (Wang et al., 2004; Quantus's ``ssim``). Rows with L = 0 (both the same
    constant) are undefined: NaN with an ``UndefinedScoreWarning``.
    """
    if a.shape[-1] < win_size or win_size % 2 == 0:
        raise ConfigError(f"SSIM needs an odd win_size <= the number of values ({a.shape[-1]}), got {win_size}")
    data_range = torch.maximum(a.amax(1), b.amax(1)) - torch.minimum(a.amin(1), b.amin(1))
    c1, c2 = ((k1 * data_range) ** 2)[:, None], ((k2 * data_range) ** 2)[:, None]

    def window_mean(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool1d(x[:, None], win_size, stride=1)[:, 0]

    cov_norm = win_size / (win_size - 1)
    mu_a, mu_b = window_mean(a), window_mean(b)
    var_a = cov_norm * (window_mean(a * a) - mu_a * mu_a)
    var_b = cov_norm * (window_mean(b * b) - mu_b * mu_b)
    cov = cov_norm * (window_mean(a * b) - mu_a * mu_b)
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return _mark_undefined(ssim_map.mean(dim=1), data_range <= 0, "SSIM (both maps the same constant)")


def _average_ranks(x: torch.Tensor) -> torch.Tensor:
    """Ranks 1..F along each row, ties given their average rank (scipy's ``rankdata(method="average")``)."""
    values, order = x.sort(dim=1, stable=True)
    n = x.shape[1]
    index = torch.arange(n, device=x.device).expand_as(x)
    starts = torch.ones_like(values, dtype=torch.bool)
    starts[:, 1:] = values[:, 1:] != values[:, :-1]
    ends = torch.ones_like(starts)
    ends[:, :-1] = starts[:, 1:]
    first = torch.where(starts, index, 0).cummax(dim=1).values
    last = torch.where(ends, index, n - 1).flip(1).cummin(dim=1).values.flip(1)
    ranks = (first + last).to(torch.float64) / 2 + 1
    return torch.empty_like(ranks).scatter_(1, order, ranks)


def spearman_per_sample(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each row pair: Pearson of average ranks (scipy's ``spearmanr``)."""
    return pearson_per_sample(_average_ranks(a), _average_ranks(b), name="Spearman correlation")


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return pearson_per_sample(a, b, name="Pearson correlation")


SIMILARITIES: dict[str, Similarity] = {"ssim": ssim_per_sample, "spearman": spearman_per_sample,
                                       "pearson": _pearson}


def _mark_undefined(scores: torch.Tensor, undefined: torch.Tensor, what: str) -> torch.Tensor:
    if undefined.any():
        warnings.warn(f"{what} is undefined for {int(undefined.sum())} sample(s); set to NaN",
                      UndefinedScoreWarning, stacklevel=3)
        scores = scores.masked_fill(undefined, float("nan"))
    return scores


def _similarity_fn(similarity: str | Similarity) -> Similarity:
    if callable(similarity):
        return similarity
    if similarity not in SIMILARITIES:
        raise ConfigError(f"similarity={similarity!r}: use one of {sorted(SIMILARITIES)} or a callable "
                          f"(a (B, F), b (B, F)) -> (B,)")
    return SIMILARITIES[similarity]


def _flat(attributions: torch.Tensor, abs: bool, normalise: bool) -> torch.Tensor:
    """(B, F) float64 rows: optionally |a|, then optionally divided by each sample's max |a|."""
    a = attributions.detach().to(torch.float64)
    a = a.abs() if abs else a
    return (normalise_per_sample(a) if normalise else a).flatten(1)


def _explain(explain: Explainer, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    attributions = explain(model, inputs, targets).detach().to(inputs.device)
    check_batch(inputs, attributions)
    return attributions


# ---------------------------------------------------------------- random logit


def _draw_other_targets(targets: torch.Tensor, num_classes: int, generator: torch.Generator | None) -> torch.Tensor:
    """One class per sample, uniform over the ``num_classes - 1`` classes other than its target."""
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    index = torch.randint(0, num_classes - 1, targets.shape, generator=generator, device=generator.device)
    index = index.to(targets.device)
    return index + (index >= targets).long()


@register_metric("random_logit", category="randomisation", higher_is_better=False)
def random_logit(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, explain: Explainer, *,
                 num_classes: int, attributions: torch.Tensor | None = None,
                 other_targets: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 similarity: str | Similarity = "ssim", normalise: bool = True, abs: bool = False) -> torch.Tensor:
    """Random Logit (Sixt et al., 2020): similarity of the explanations of the target and of a random other class.

    Args:
        num_classes: the model's number of classes (required: Quantus's default of 1000 draws
            classes a 10-class model does not have).
        attributions: explanations of ``targets``; default None computes ``explain(model, inputs, targets)``.
        other_targets: the other classes y'_i, shape (B,), each != its target; default None draws
            them uniformly with ``generator`` (default None: a CPU generator seeded with 0, so a call
            is reproducible and leaves the global random state alone).
        similarity: "ssim" (default, Quantus's 1-D SSIM of the flattened maps), "pearson",
            "spearman", or a callable on (B, F) rows.
        normalise: divide each sample's maps by their max |value| first (default True).
        abs: take |attributions| first (default False, as Quantus).

    Returns:
        (B,) float64 similarities on the CPU (SSIM and correlations lie in [-1, 1]); lower is better.
    """
    check_batch(inputs, attributions, targets, num_classes)
    if num_classes < 2:
        raise ConfigError(f"random_logit needs num_classes >= 2 to pick another class, got {num_classes}")
    sim = _similarity_fn(similarity)
    targets = targets.to(inputs.device).long()
    attributions = _explain(explain, model, inputs, targets) if attributions is None else attributions.to(inputs.device)
    if other_targets is None:
        other_targets = _draw_other_targets(targets, num_classes, generator)
    other_targets = other_targets.to(inputs.device).long()
    check_batch(inputs, targets=other_targets, num_classes=num_classes)
    if (other_targets == targets).any():
        raise ConfigError("other_targets must differ from targets sample by sample")
    other = _explain(explain, model, inputs, other_targets)
    return sim(_flat(attributions, abs, normalise), _flat(other, abs, normalise)).cpu()


# ---------------------------------------------------------------- model parameter randomisation


def randomisable_layers(model: nn.Module) -> list[str]:
    """Names of the modules with a ``reset_parameters`` method, in registration order (Quantus's "layers")."""
    return [name for name, module in model.named_modules() if callable(getattr(module, "reset_parameters", None))]


def _reset(module: nn.Module, seed: int) -> None:
    """Re-initialise ``module`` as Quantus does (``torch.manual_seed(seed + 1); reset_parameters()``) on the CPU.

    The draws come from a CPU copy inside ``fork_rng``, so they are the same on every device and the
    caller's random state is left as it was.
    """
    fresh = copy.deepcopy(module).cpu()
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed + 1)
        fresh.reset_parameters()
    with torch.no_grad():
        module.load_state_dict(fresh.state_dict())


def randomised_models(model: nn.Module, *, order: str = "top_down", seed: int = 42,
                      layers: list[str] | None = None) -> Iterator[tuple[str, nn.Module]]:
    """An iterator of ``(layer_name, model_copy)``, one more layer re-initialised at each step; ``model`` is untouched.

    ``order``: "top_down" (default; cascading from the last-registered layer), "bottom_up"
    (cascading from the first) or "independent" (only that layer randomised). ``layers``: names
    to randomise (default None: all of ``randomisable_layers(model)``). The same copy is yielded
    at every step, as in Quantus's ``get_random_layer_generator``.
    """
    if order not in ORDERS:
        raise ConfigError(f"order={order!r}: use one of {ORDERS}")
    available = randomisable_layers(model)
    names = available if layers is None else list(layers)
    unknown = [name for name in names if name not in available]
    if unknown or not names:
        raise ConfigError(f"layers {unknown or names} cannot be randomised; choose from {available}")
    names = [name for name in available if name in names]
    return _cascade(model, reversed(names) if order == "top_down" else names, order == "independent", seed)


def _cascade(model: nn.Module, names: Iterable[str], independent: bool, seed: int) -> Iterator[tuple[str, nn.Module]]:
    """Re-initialise ``names`` in turn on one copy of ``model`` (restored first when ``independent``)."""
    randomised = copy.deepcopy(model)
    original = copy.deepcopy(randomised.state_dict())
    modules = dict(randomised.named_modules())
    for name in names:
        if independent:
            randomised.load_state_dict(original)
        _reset(modules[name], seed)
        yield name, randomised


def model_parameter_randomisation(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                                  explain: Explainer, *, order: str = "top_down",
                                  similarity: str | Similarity = "spearman", seed: int = 42,
                                  layers: list[str] | None = None, attributions: torch.Tensor | None = None,
                                  normalise: bool = True, abs: bool = True,
                                  constant_randomised: float | None = None) -> dict[str, torch.Tensor]:
    """Cascading Model Parameter Randomisation Test (Adebayo et al., 2018): similarity per randomised layer.

    Args:
        order, seed, layers: which layers are re-initialised and how, see ``randomised_models``
            (defaults "top_down", 42 and all, as Quantus's ``MPRT``; the seed gives Quantus's weights).
        similarity: "spearman" (default, as Quantus and the paper), "pearson", "ssim" or a callable.
        attributions: explanations of the unmodified model; default None computes them.
        normalise: divide each sample's maps by their max |value| first (default True).
        abs: compare |attributions| (default True, as Quantus's MPRT).
        constant_randomised: the similarity given when the randomised model's explanation is constant
            (e.g. Grad-CAM all zero once the top layer is random) while the reference is not. Default
            None leaves it undefined (NaN, as Quantus and scipy do); 0.0 says "no shared ranking",
            which keeps a method whose maps are wiped out from being judged on its other layers only.
            A sample whose reference explanation is itself constant is always NaN.

    Returns:
        ``{layer_name: (B,) float64 similarity}`` in randomisation order, on the CPU; lower is better.
        The caller's ``model`` is never modified.
    """
    check_batch(inputs, attributions, targets)
    sim = _similarity_fn(similarity)
    targets = targets.to(inputs.device).long()
    attributions = _explain(explain, model, inputs, targets) if attributions is None else attributions.to(inputs.device)
    reference = _flat(attributions, abs, normalise)
    reference_constant = _is_constant(reference).cpu()
    if similarity == "spearman":  # rank the reference once rather than once per layer
        reference = _average_ranks(reference)
        sim = lambda ranks, b: pearson_per_sample(ranks, _average_ranks(b), name="Spearman correlation")  # noqa: E731
    scores = {}
    with warnings.catch_warnings():  # one summary warning rather than one per layer
        warnings.simplefilter("ignore", UndefinedScoreWarning)
        for name, randomised in randomised_models(model, order=order, seed=seed, layers=layers):
            maps = _flat(_explain(explain, randomised, inputs, targets), abs, normalise)
            score = sim(reference, maps).cpu()
            if constant_randomised is not None:
                wiped = _is_constant(maps).cpu() & ~reference_constant
                score = score.masked_fill(wiped, float(constant_randomised))
            scores[name] = score
    undefined = {name: int(v.isnan().sum()) for name, v in scores.items() if v.isnan().any()}
    if undefined:
        warnings.warn(f"model parameter randomisation: similarity undefined (an explanation or the reference is "
                      f"constant, e.g. all zero) and set to NaN for {undefined} (layer: samples)",
                      UndefinedScoreWarning, stacklevel=2)
    return scores


def _is_constant(flat: torch.Tensor) -> torch.Tensor:
    return flat.amax(dim=1) == flat.amin(dim=1)


def randomisation_score(result: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each sample's mean similarity over the randomised layers of a ``model_parameter_randomisation`` result.

    Only randomised layers count: Quantus's ``return_average_correlation`` also averages in the
    unrandomised model's similarity (about 1), pulling every score up. Layers where the similarity is
    undefined (NaN: a constant explanation after randomisation) are left out of a sample's mean; a
    sample is NaN only when it is undefined at every layer.
    """
    if not result:
        raise ConfigError("randomisation_score needs at least one randomised layer")
    return torch.stack(list(result.values())).nanmean(dim=0)


@register_metric("model_parameter_randomisation", category="randomisation", higher_is_better=False)
def model_parameter_randomisation_score(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                                        explain: Explainer, **kwargs) -> torch.Tensor:
    """Per-sample MPRT summary: ``randomisation_score(model_parameter_randomisation(...))``, same arguments."""
    return randomisation_score(model_parameter_randomisation(model, inputs, targets, explain, **kwargs))
