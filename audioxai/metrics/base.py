"""What every explanation metric shares: input checks, per-sample normalisation, score directions.

Metrics take ``(model, inputs, targets, attributions, ...)`` batched tensors and return one score
per sample (a float tensor of shape ``(B,)`` on the CPU). Each is registered with its category and
whether higher is better, so tables and rankings never guess (Quantus does the same with its
``score_direction``).

Explainers, where a metric needs to re-explain (robustness, randomisation), are callables
``explain(model, inputs, targets) -> attributions`` of the same shape as ``inputs``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from audioxai.errors import ConfigError

__all__ = ["Explainer", "MetricSpec", "METRICS", "register_metric", "check_batch", "check_model_targets",
           "normalise_per_sample", "pearson_per_sample", "UndefinedScoreWarning"]

Explainer = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


class UndefinedScoreWarning(RuntimeWarning):
    """A score is undefined for some samples (e.g. a correlation with zero variance) and was set to NaN."""


@dataclass(frozen=True)
class MetricSpec:
    """A registered metric: its function, category and whether higher scores are better."""

    name: str
    fn: Callable[..., torch.Tensor]
    category: str
    higher_is_better: bool


METRICS: dict[str, MetricSpec] = {}


def register_metric(name: str, category: str, higher_is_better: bool):
    """Decorator adding a metric to ``METRICS`` and setting ``fn.higher_is_better`` and ``fn.category``."""

    def wrap(fn):
        fn.higher_is_better, fn.category = higher_is_better, category
        METRICS[name] = MetricSpec(name, fn, category, higher_is_better)
        return fn

    return wrap


def check_batch(inputs: torch.Tensor, attributions: torch.Tensor | None = None, targets: torch.Tensor | None = None,
                num_classes: int | None = None) -> None:
    """Raise ConfigError for mismatched shapes, non-finite inputs or attributions, or targets out of range."""
    if not torch.is_tensor(inputs) or inputs.ndim < 2 or inputs.shape[0] == 0:
        raise ConfigError(f"inputs must be a batched tensor (B, ...), got shape {tuple(getattr(inputs, 'shape', ()))}")
    if not torch.isfinite(inputs).all():
        raise ConfigError("inputs contain NaN or infinite values: clean or drop those samples first")
    if attributions is not None:
        if tuple(attributions.shape) != tuple(inputs.shape):
            raise ConfigError(f"attributions of shape {tuple(attributions.shape)} do not match inputs of shape "
                              f"{tuple(inputs.shape)}: explain the same batch, one attribution per input value")
        if not torch.isfinite(attributions).all():
            bad = (~torch.isfinite(attributions.flatten(1))).any(dim=1).nonzero().flatten().tolist()
            raise ConfigError(f"attributions of sample(s) {bad} contain NaN or infinite values: fix the explainer "
                              f"output (e.g. a division by zero) before scoring it")
    if targets is not None:
        if targets.shape != (inputs.shape[0],):
            raise ConfigError(f"targets must have shape ({inputs.shape[0]},), got {tuple(targets.shape)}")
        if num_classes is not None and (targets.min() < 0 or targets.max() >= num_classes):
            raise ConfigError(f"targets must lie in 0..{num_classes - 1}, got {targets.min().item()}..{targets.max().item()}")


def check_model_targets(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> int:
    """Raise ConfigError unless ``model`` is in eval mode, returns (batch, classes) and knows every target.

    Runs the model on the first input only; returns its number of classes.
    """
    if model.training:
        raise ConfigError("the model is in training mode (dropout, batch statistics): call model.eval() first")
    with torch.no_grad():
        out = model(inputs[:1])
    if out.ndim != 2:
        raise ConfigError(f"the model must return (batch, classes) scores, got shape {tuple(out.shape)}")
    if targets.numel() and (targets.min() < 0 or targets.max() >= out.shape[1]):
        raise ConfigError(f"targets must lie in 0..{out.shape[1] - 1}, got {targets.min().item()}..{targets.max().item()}")
    return out.shape[1]


def normalise_per_sample(attributions: torch.Tensor) -> torch.Tensor:
    """Divide each sample's attributions by its own maximum absolute value (all-zero samples stay zero).

    Quantus's ``normalise_by_max`` divides by the maximum over the whole batch, which makes a
    sample's score depend on the other samples in the batch; we normalise each sample alone.
    """
    flat = attributions.flatten(1)
    scale = flat.abs().amax(dim=1).clamp_min(torch.finfo(flat.dtype).tiny)
    return (flat / scale[:, None]).reshape(attributions.shape)


def pearson_per_sample(a: torch.Tensor, b: torch.Tensor, name: str = "correlation") -> torch.Tensor:
    """Pearson correlation along the last axis for each row; NaN with a warning where a row has zero variance."""
    a = a - a.mean(dim=-1, keepdim=True)
    b = b - b.mean(dim=-1, keepdim=True)
    denom = a.norm(dim=-1) * b.norm(dim=-1)
    undefined = denom <= 0
    corr = (a * b).sum(dim=-1) / denom.where(~undefined, torch.ones_like(denom))
    if undefined.any():
        warnings.warn(f"{name} is undefined (zero variance) for {int(undefined.sum())} sample(s); set to NaN",
                      UndefinedScoreWarning, stacklevel=3)
        corr = corr.masked_fill(undefined, float("nan"))
    return corr
