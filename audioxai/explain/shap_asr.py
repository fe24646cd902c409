"""Shapley values of audio features for a speech recogniser's outputs: exact, and our batched KernelSHAP.

Every estimator has the call shape ``estimator(game, **kwargs) -> ShapleyExplanation`` on an
``AudioGame`` (see ``audioxai.explain.audio_features``) and explains its K outputs at once, so a notebook
can loop over ``ESTIMATORS``:

- ``exact_shapley``: all 2^M coalitions, ``phi_i = sum_{S not containing i} |S|! (M-|S|-1)! / M!
  (v(S + i) - v(S))`` (Shapley, 1953); refused above M = 16.
- ``kernel_shap``: KernelSHAP (Lundberg & Lee, 2017). Coalitions are drawn from the Shapley kernel's
  size distribution, ``p(s) ~ (M - 1) / (s (M - s))``; sizes whose every coalition fits the remaining
  budget (in proportion to their kernel mass) are enumerated with their exact kernel weights, from the
  outside in (s = 1 and M - 1 first), and the rest is sampled, each draw with its complement when
  ``paired``; repeated draws add to one row's weight. v(0), v(1) and every coalition are evaluated in
  batches of ``game.batch_size`` on the game's device. The weighted least squares
  ``min sum_j w_j (v(z_j) - v(0) - z_j . phi)^2`` subject to ``sum phi = v(1) - v(0)`` is solved for
  all K outputs together through its KKT system, in float64, so the efficiency constraint holds to
  rounding (about 1e-12). ``coalitions`` and ``weights`` may be given instead (e.g. shap's own).
- peers on the same game, from ``audioxai.explain.shap_baselines``: shap's KernelExplainer and
  PartitionExplainer, Captum's LIME and Integrated Gradients, shap's GradientExplainer and DeepExplainer.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable

import torch

from audioxai.errors import ConfigError
from audioxai.explain.audio_features import (AudioFeatures, AudioGame, AudioMasker, ShapleyExplanation,
                                             additivity_error)
from audioxai.explain.shap_baselines import (integrated_gradients, lime, shap_deep_explainer,
                                             shap_gradient_explainer, shap_kernel, shap_partition, time_hierarchy)

logger = logging.getLogger(__name__)

__all__ = ["AudioFeatures", "AudioMasker", "AudioGame", "ShapleyExplanation", "additivity_error",
           "exact_shapley", "kernel_shap", "sample_coalitions", "solve_kernel_regression", "shap_kernel",
           "shap_partition", "time_hierarchy", "lime", "integrated_gradients", "shap_gradient_explainer",
           "shap_deep_explainer", "ESTIMATORS", "MAX_EXACT_FEATURES"]

MAX_EXACT_FEATURES = 16
MAX_DRAW_ROUNDS = 16


def exact_shapley(game: AudioGame, **_: object) -> ShapleyExplanation:
    """Shapley values by enumerating all 2^M coalitions (M <= 16), evaluated in batches."""
    m = game.num_features
    if m > MAX_EXACT_FEATURES:
        raise ConfigError(f"exact_shapley: M={m} features would need 2^{m} = {2 ** m} evaluations (at most "
                          f"{MAX_EXACT_FEATURES} features): use kernel_shap, or fewer features")
    start, before = time.perf_counter(), game.num_evaluations
    codes = torch.arange(2 ** m)
    bits = (codes[:, None] >> torch.arange(m)) & 1
    v = game(bits.float()).double().cpu()
    size = bits.sum(1).double()
    weight = torch.exp(torch.lgamma(size + 1.0) + torch.lgamma(m - size) - math.lgamma(m + 1.0))
    values = torch.zeros(m, v.shape[1], dtype=torch.float64)
    for i in range(m):
        without = codes[bits[:, i] == 0]
        values[i] = (weight[without, None] * (v[without | (1 << i)] - v[without])).sum(0)
    return ShapleyExplanation.build(values, v[0], v[-1], game.num_evaluations - before,
                                    time.perf_counter() - start, "exact_shapley")


def _size_mass(m: int) -> torch.Tensor:
    """Shapley kernel mass of each coalition size s = 0..m (0 at s = 0 and m), summing to 1."""
    s = torch.arange(m + 1, dtype=torch.float64)
    mass = torch.zeros(m + 1, dtype=torch.float64)
    mass[1:m] = (m - 1) / (s[1:m] * (m - s[1:m]))
    return mass / mass.sum()


def _enumerate(m: int, size: int) -> torch.Tensor:
    rows = torch.zeros(math.comb(m, size), m, dtype=torch.float64)
    for r, members in enumerate(itertools.combinations(range(m), size)):
        rows[r, list(members)] = 1.0
    return rows


def _draw(m: int, sizes: torch.Tensor, probs: torch.Tensor, count: int, paired: bool,
          generator: torch.Generator) -> torch.Tensor:
    """A stream of random coalitions: a size from ``probs``, members uniformly; complements interleaved."""
    size = sizes[torch.multinomial(probs, count, replacement=True, generator=generator)]
    order = torch.rand(count, m, generator=generator).argsort(1)
    rows = torch.zeros(count, m, dtype=torch.float64).scatter_(1, order, (torch.arange(m) < size[:, None]).double())
    return torch.stack([rows, 1.0 - rows], 1).flatten(0, 1) if paired else rows


def _codes(rows: torch.Tensor) -> torch.Tensor:
    """Each 0/1 row packed into int64 words of 64 bits (the top bit wraps to the sign, still one-to-one):
    (n,) for M <= 64, else (n, words)."""
    words = -(-rows.shape[1] // 64)
    padded = torch.nn.functional.pad(rows.long(), (0, words * 64 - rows.shape[1])).view(len(rows), words, 64)
    codes = (padded << torch.arange(64)).sum(2)
    return codes[:, 0] if words == 1 else codes


def _first_unique(stream: torch.Tensor, budget: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of the shortest prefix of ``stream`` holding ``budget`` of them, and their counts."""
    codes = _codes(stream)
    _, inverse = torch.unique(codes, dim=0 if codes.ndim == 2 else None, return_inverse=True)
    position = torch.arange(len(stream))
    first = torch.full((int(inverse.max()) + 1,), len(stream)).scatter_reduce(0, inverse, position, "amin")
    seen = (first[inverse] == position).cumsum(0)
    end = int(torch.searchsorted(seen, torch.tensor(budget))) + 1 if seen[-1] >= budget else len(stream)
    counts = torch.bincount(inverse[:end], minlength=len(first)).double()
    kept = first[first < end].sort().values  # stream positions of the distinct rows, in order of appearance
    return stream[kept], counts[inverse[kept]]


def sample_coalitions(num_features: int, num_coalitions: int = 2048, seed: int = 0,
                      paired: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """KernelSHAP coalitions (n, M) and regression weights (n,), float64, excluding the empty and full sets.

    Sizes are taken in pairs (s, M - s) from the outside in and enumerated while the budget left covers
    them in proportion to their kernel mass; then ``num_coalitions`` minus those are drawn (see the module
    docstring). Weights sum to 1 over the coalitions; at most 2^M - 2 coalitions are returned.
    """
    m = num_features
    if m < 2 or num_coalitions < 1:
        raise ConfigError(f"sample_coalitions: M={m}, num_coalitions={num_coalitions}: need M >= 2 and a budget >= 1")
    mass = _size_mass(m)
    budget = min(num_coalitions, 2 ** m - 2)
    rows, weights, left = [], [], 1.0
    lower = 1
    while lower <= m - lower:
        group = [lower] if lower == m - lower else [lower, m - lower]
        group_rows, group_mass = sum(math.comb(m, s) for s in group), float(mass[group].sum())
        if budget * group_mass / left < group_rows - 1e-8:
            break
        for s in group:
            rows.append(_enumerate(m, s))
            weights.append(torch.full((math.comb(m, s),), float(mass[s]) / math.comb(m, s), dtype=torch.float64))
        budget, left, lower = budget - group_rows, left - group_mass, lower + 1
    if budget > 0 and lower <= m - lower:
        generator = torch.Generator().manual_seed(seed)
        if paired:  # draw the smaller size of each pair; its complement comes with it
            sizes = torch.arange(lower, m // 2 + 1)
            probs = mass[sizes] + torch.where(sizes != m - sizes, mass[m - sizes], 0.0)
        else:
            sizes = torch.arange(lower, m - lower + 1)
            probs = mass[sizes]
        stream = torch.zeros(0, m, dtype=torch.float64)
        for _ in range(MAX_DRAW_ROUNDS):  # rounds of about ``budget`` rows until as many distinct ones
            stream = torch.cat([stream, _draw(m, sizes, probs, -(-budget // 2) if paired else budget, paired,
                                              generator)])
            drawn, counts = _first_unique(stream, budget)
            if len(drawn) >= budget:
                break
        rows.append(drawn)
        weights.append(left * counts / counts.sum())
    return torch.cat(rows), torch.cat(weights)


def solve_kernel_regression(coalitions: torch.Tensor, weights: torch.Tensor, gains: torch.Tensor,
                            total: torch.Tensor) -> torch.Tensor:
    """phi (M, K) minimising ``sum_j w_j (gains_j - z_j . phi)^2`` subject to ``sum_m phi_m = total``.

    Args: coalitions (n, M), weights (n,), gains (n, K) = v(z) - v(0), total (K,) = v(1) - v(0); all
    float64. Solves the KKT system ``[[Z'WZ, 1], [1', 0]] [phi; lambda] = [Z'W gains; total]``; a
    singular or nearly singular one (condition number above 1e12: too few distinct coalitions) falls back
    to its minimum-norm least-squares solution (pseudo-inverse), with a warning.
    """
    m = coalitions.shape[1]
    weighted = coalitions * weights[:, None]
    kkt = torch.zeros(m + 1, m + 1, dtype=torch.float64, device=coalitions.device)
    kkt[:m, :m] = weighted.T @ coalitions
    kkt[:m, m] = kkt[m, :m] = 1.0
    rhs = torch.cat([weighted.T @ gains, total[None]])
    solution, info = torch.linalg.solve_ex(kkt, rhs)
    if int(info) != 0 or not torch.isfinite(solution).all() or float(torch.linalg.cond(kkt)) > 1e12:
        logger.warning("KernelSHAP regression is singular (%d coalitions for %d features): using the "
                       "least-squares solution; give more coalitions", len(coalitions), m)
        solution = torch.linalg.pinv(kkt) @ rhs
    return solution[:m]


def kernel_shap(game: AudioGame, num_coalitions: int = 2048, seed: int = 0, paired: bool = True,
                coalitions: torch.Tensor | None = None, weights: torch.Tensor | None = None,
                **_: object) -> ShapleyExplanation:
    """Our batched KernelSHAP: sampled (or given) coalitions, one batched evaluation, exact efficiency.

    Args:
        game: the coalition game.
        num_coalitions: coalitions besides the empty and full ones (capped at 2^M - 2).
        seed, paired: see ``sample_coalitions``.
        coalitions, weights: (n, M) 0/1 and (n,) positive, used instead of sampling when given.
    Returns: the explanation; ``details`` holds the coalitions and weights used.
    """
    start, before, m = time.perf_counter(), game.num_evaluations, game.num_features
    if coalitions is None:
        coalitions, weights = sample_coalitions(m, num_coalitions, seed, paired)
    elif weights is None or coalitions.ndim != 2 or coalitions.shape[1] != m or len(weights) != len(coalitions):
        raise ConfigError(f"kernel_shap: give coalitions (n, {m}) together with weights (n,)")
    coalitions = torch.as_tensor(coalitions, dtype=torch.float64)
    weights = torch.as_tensor(weights, dtype=torch.float64)
    ends = torch.stack([torch.zeros(m, dtype=torch.float64), torch.ones(m, dtype=torch.float64)])
    v = game(torch.cat([ends, coalitions]).to(game.device, torch.float32)).double()
    z, w = coalitions.to(v.device), weights.to(v.device)
    values = solve_kernel_regression(z, w, v[2:] - v[0], v[1] - v[0])
    return ShapleyExplanation.build(values, v[0], v[1], game.num_evaluations - before, time.perf_counter() - start,
                                    "kernel_shap", coalitions=coalitions, weights=weights)


ESTIMATORS: dict[str, Callable[..., ShapleyExplanation]] = {
    "exact_shapley": exact_shapley,
    "kernel_shap": kernel_shap,
    "shap_kernel": shap_kernel,
    "shap_partition": shap_partition,
    "lime": lime,
    "integrated_gradients": integrated_gradients,
    "shap_gradient_explainer": shap_gradient_explainer,
    "shap_deep_explainer": shap_deep_explainer,
}
