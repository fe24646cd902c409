"""Peers of our Shapley estimators on the same ``AudioGame``: shap (0.51) and Captum (0.9), same call shape.

Each ``method(game, **kwargs) -> ShapleyExplanation`` explains all K outputs; ``base_value`` and
``full_value`` are v(0) and v(1) (taken off the books with ``game.endpoints()`` where the method does
not evaluate them itself) and the additivity error is measured on the values as returned.

- ``shap_kernel``: ``shap.KernelExplainer`` on the game, background z = 0 (one row) and x = z = 1, so a
  "missing" feature is a replaced one; ``l1_reg=False``; numpy's global RNG seeded (and restored).
- ``shap_partition``: ``shap.PartitionExplainer`` (Owen values) with a custom masker whose
  ``clustering`` is ``time_hierarchy``: adjacent features merged in balanced halves, for time-frequency
  patches first the adjacent bands within a time window, then adjacent windows.
- ``lime``: Captum's ``Lime`` on the binary vector z (baseline z = 0, one interpretable feature per
  feature; Captum's defaults: Lasso alpha 0.01, exponential cosine kernel); the same perturbations for
  every output, evaluated once. LIME is not efficient: its additivity error is large by design.
- ``integrated_gradients``: Captum's IG on the continuous z from 0 to 1 (``game.forward_with_grad``);
  the additivity error is IG's completeness error.
- ``shap_gradient_explainer``: expected gradients from the background z = 0.
- ``shap_deep_explainer``: DeepLIFT rescale rules on the game as an ``nn.Module``; masking, the
  spectrogram front-end and unsupported layers (LayerNorm, attention) get plain gradients, so additivity
  may fail; any exception is caught and returned as ``error`` with NaN values.

shap's gradient explainers put the model in eval mode and DeepExplainer leaves ``x``/``y`` parameters
on its layers; both are undone afterwards, so the caller's model comes back as it was.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import shap
import torch
from captum.attr import IntegratedGradients, Lime
from torch import nn

from audioxai.errors import ConfigError
from audioxai.explain.audio_features import AudioFeatures, AudioGame, ShapleyExplanation

logger = logging.getLogger(__name__)

__all__ = ["shap_kernel", "shap_partition", "time_hierarchy", "lime", "integrated_gradients",
           "shap_gradient_explainer", "shap_deep_explainer"]


@contextlib.contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (which shap draws from) for the block, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _numpy_game(game: AudioGame) -> Callable[[np.ndarray], np.ndarray]:
    def value(z: np.ndarray) -> np.ndarray:
        return game(torch.as_tensor(np.asarray(z), dtype=torch.float32, device=game.device)).double().cpu().numpy()
    return value


class _GameModule(nn.Module):
    """The game as an ``nn.Module`` (z -> v(z), differentiable); a value function that is a module is its child."""

    def __init__(self, game: AudioGame) -> None:
        super().__init__()
        self.game = game
        if isinstance(game.value_fn, nn.Module):
            self.value_model = game.value_fn

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.game.forward_with_grad(z)


@contextlib.contextmanager
def _restoring_model(module: nn.Module) -> Iterator[None]:
    """Undo what shap does to the model inside the block: it switches every layer to eval mode, and
    DeepExplainer leaves its saved activations on the layers as ``x`` and ``y`` parameters (they would
    enter the model's ``state_dict``)."""
    before = {name for name, _ in module.named_parameters()}
    modes = [(layer, layer.training) for layer in module.modules()]
    try:
        yield
    finally:
        for name in [n for n, _ in module.named_parameters() if n not in before]:
            owner, _, attribute = name.rpartition(".")
            delattr(module.get_submodule(owner), attribute)
        for layer, training in modes:
            layer.training = training


def shap_kernel(game: AudioGame, nsamples: int = 2048, seed: int = 0, **_: object) -> ShapleyExplanation:
    """``shap.KernelExplainer`` on the game; ``details`` holds shap's coalitions and kernel weights."""
    start, before, m = time.perf_counter(), game.num_evaluations, game.num_features
    with _numpy_seed(seed):
        explainer = shap.KernelExplainer(_numpy_game(game), np.zeros((1, m)))
        phi = explainer.shap_values(np.ones((1, m)), nsamples=nsamples, l1_reg=False, silent=True)
    values = torch.from_numpy(np.asarray(phi)).reshape(m, -1)
    return ShapleyExplanation.build(values, torch.from_numpy(np.atleast_1d(explainer.fnull)),
                                    torch.from_numpy(np.atleast_1d(explainer.fx)), game.num_evaluations - before,
                                    time.perf_counter() - start, "shap_kernel",
                                    coalitions=torch.from_numpy(explainer.maskMatrix.copy()),
                                    weights=torch.from_numpy(explainer.kernelWeights.copy()))


def time_hierarchy(features: AudioFeatures) -> np.ndarray:
    """A scipy-style linkage (M - 1, 4) merging adjacent features: balanced halves of adjacent bands
    within each time window, then balanced halves of adjacent windows. Column 2 (the merge height) is
    the cluster's size, so heights grow towards the root."""
    windows: dict[tuple[float, float], list[int]] = {}
    for m, (t0, t1, _, _) in enumerate(features.bounds):
        windows.setdefault((t0, t1), []).append(m)
    rows: list[list[float]] = []

    def merge(items: list[tuple[int, int]]) -> tuple[int, int]:
        if len(items) == 1:
            return items[0]
        (left, nl), (right, nr) = merge(items[: len(items) // 2]), merge(items[len(items) // 2:])
        rows.append([left, right, nl + nr, nl + nr])
        return features.num_features + len(rows) - 1, nl + nr

    roots = [merge([(m, 1) for m in sorted(ms, key=lambda i: features.bounds[i][2])])
             for _, ms in sorted(windows.items())]
    merge(roots)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


class _CoalitionMasker:
    """A shap masker for the game: the boolean mask over the M features becomes the coalition row."""

    def __init__(self, clustering: np.ndarray) -> None:
        self.clustering = clustering
        self.shape = (1, len(clustering) + 1)

    def __call__(self, mask: np.ndarray, x: np.ndarray) -> np.ndarray:
        return (np.asarray(mask, dtype=np.float64) * x).reshape(1, -1)


def shap_partition(game: AudioGame, max_evals: int = 512, hierarchy: str | np.ndarray = "time", seed: int = 0,
                   **_: object) -> ShapleyExplanation:
    """``shap.PartitionExplainer`` (Owen values) over a hierarchy: ``"time"`` (``time_hierarchy``) or a linkage."""
    start, before, m = time.perf_counter(), game.num_evaluations, game.num_features
    if isinstance(hierarchy, str):
        if hierarchy != "time":
            raise ConfigError(f"hierarchy={hierarchy!r}: use 'time' or a linkage matrix (M - 1, 4)")
        hierarchy = time_hierarchy(game.features)
    with _numpy_seed(seed):
        explainer = shap.PartitionExplainer(_numpy_game(game), _CoalitionMasker(np.asarray(hierarchy)))
        out = explainer(np.ones((1, m)), max_evals=max_evals, batch_size=game.batch_size, silent=True)
    evaluations = game.num_evaluations - before
    _, full = game.endpoints()
    values = torch.from_numpy(np.asarray(out.values, dtype=np.float64)).reshape(m, -1)
    base = torch.from_numpy(np.asarray(out.base_values, dtype=np.float64)).reshape(-1)
    return ShapleyExplanation.build(values, base, full, evaluations, time.perf_counter() - start, "shap_partition",
                                    hierarchy=np.asarray(hierarchy))


def _cached(game: AudioGame) -> Callable[[torch.Tensor], torch.Tensor]:
    """``game`` without gradients, remembering each batch it saw (LIME repeats its batches per output)."""
    memory: dict[bytes, torch.Tensor] = {}

    def value(z: torch.Tensor) -> torch.Tensor:
        key = z.detach().cpu().numpy().tobytes()
        if key not in memory:
            memory[key] = game(z)
        return memory[key]
    return value


def lime(game: AudioGame, num_samples: int = 512, seed: int = 0, **_: object) -> ShapleyExplanation:
    """Captum's ``Lime`` on z with baseline z = 0; the same ``num_samples`` perturbations for every output."""
    start, before, m = time.perf_counter(), game.num_evaluations, game.num_features
    base, full = game.endpoints()
    ones, zeros = torch.ones(1, m, device=game.device), torch.zeros(1, m, device=game.device)
    value, columns = _cached(game), []
    for k in range(len(base)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            columns.append(Lime(value).attribute(ones, baselines=zeros, target=k, n_samples=num_samples,
                                                 feature_mask=torch.arange(m, device=game.device)[None],
                                                 perturbations_per_eval=game.batch_size).reshape(m))
    return ShapleyExplanation.build(torch.stack(columns, 1), base, full, game.num_evaluations - before,
                                    time.perf_counter() - start, "lime")


def integrated_gradients(game: AudioGame, steps: int = 64, **_: object) -> ShapleyExplanation:
    """Captum's ``IntegratedGradients`` from z = 0 to z = 1, all K outputs in one batched call."""
    start, before, m = time.perf_counter(), game.num_evaluations, game.num_features
    base, full = game.endpoints()
    k = len(base)
    ones = torch.ones(k, m, device=game.device)
    attr = IntegratedGradients(game.forward_with_grad).attribute(
        ones, baselines=torch.zeros_like(ones), target=list(range(k)), n_steps=steps,
        internal_batch_size=max(game.batch_size, k))
    return ShapleyExplanation.build(attr.detach().T, base, full, game.num_evaluations - before,
                                    time.perf_counter() - start, "integrated_gradients")


def shap_gradient_explainer(game: AudioGame, nsamples: int = 200, seed: int = 0, **_: object) -> ShapleyExplanation:
    """``shap.GradientExplainer`` (expected gradients) with the background z = 0."""
    start, before, m = time.perf_counter(), game.num_evaluations, game.num_features
    base, full = game.endpoints()
    module = _GameModule(game)
    with _numpy_seed(seed), _restoring_model(module):
        explainer = shap.GradientExplainer(module, torch.zeros(1, m, device=game.device),
                                           batch_size=game.batch_size)
        phi = explainer.shap_values(torch.ones(1, m, device=game.device), nsamples=nsamples, rseed=seed)
    values = torch.from_numpy(np.asarray(phi, dtype=np.float64)).reshape(m, -1)
    return ShapleyExplanation.build(values, base, full, game.num_evaluations - before, time.perf_counter() - start,
                                    "shap_gradient_explainer")


def shap_deep_explainer(game: AudioGame, **_: object) -> ShapleyExplanation:
    """``shap.DeepExplainer`` with the background z = 0; a failure becomes ``error`` and NaN values."""
    start, before, m = time.perf_counter(), game.num_evaluations, game.num_features
    base, full = game.endpoints()
    error, values = None, torch.full((m, len(base)), float("nan"), dtype=torch.float64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = _GameModule(game)
        try:
            with _restoring_model(module):
                explainer = shap.DeepExplainer(module, torch.zeros(1, m, device=game.device))
                phi = explainer.shap_values(torch.ones(1, m, device=game.device), check_additivity=False)
            values = torch.from_numpy(np.asarray(phi, dtype=np.float64)).reshape(m, -1)
        except Exception as err:  # noqa: BLE001 - any failure of the peer is a result to report
            error = f"{type(err).__name__}: {err}"
            logger.warning("shap.DeepExplainer failed on this game: %s", error)
    notes = sorted({str(w.message) for w in caught})
    return ShapleyExplanation.build(values, base, full, game.num_evaluations - before, time.perf_counter() - start,
                                    "shap_deep_explainer", error=error, warnings=notes)
