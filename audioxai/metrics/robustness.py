"""Robustness: does the explanation stay put when the input barely moves?

``avg_sensitivity``: the sensitivity of Yeh, Hsieh, Suggala, Inouye & Ravikumar (2019, "On the
(In)fidelity and Sensitivity of Explanations", NeurIPS), who take its maximum over the noise,
averaged instead as Bhatt, Weller & Moura (2020, IJCAI) propose, and as Quantus 0.6.0's
``AvgSensitivity`` computes it: for sample x with
explanation e(x) and ``num_samples`` perturbations delta_1..delta_S,

    s = (1/S) sum_j ||e(x + delta_j) - e(x)||_F / ||e(x)||_F

Lower is better: 0 means the explanation did not move at all. Frobenius norms of the whole
explanation (Quantus's ``norm_numerator`` and ``norm_denominator`` defaults, ``fro_norm`` of the
flattened map), the plain difference as ``similarity_func`` (Quantus's ``difference``).

Matches Quantus (to 1e-5, given the same noise and per-sample normalisation) with these deliberate
differences:

- **Noise relative to the input's range.** Quantus adds ``U(-0.2, 0.2)`` in absolute units: 20% of
  the range of a [0, 1] image, 0.2% of a 100 dB spectrogram (inaudible). We add
  ``U(-f, f) * (max(x) - min(x))`` per sample, so ``noise_fraction=f`` means the same on pixels and
  on decibels; like Quantus we perturb every feature and do not clip to the valid range.
- **Per-sample normalisation, on by default.** Quantus's default ``normalise=False`` lets a change
  of overall scale count as sensitivity; with ``normalise=True`` it divides e(x) by the maximum
  over the *whole call's* batch and each e(x + delta) by the maximum over its *evaluation batch*,
  so a sample's score depends on its batch-mates. We divide every map by its own max |value|, so
  the score measures how the *shape* of the explanation moves, comparably across methods.
- **Changed predictions.** Quantus ignores them by default; with
  ``return_nan_when_prediction_changes=True`` a sample whose predicted class changes under *any*
  perturbation scores NaN. ``nan_when_prediction_changes`` does the same (default False, as Quantus).
- **Batched.** Quantus explains one batch per perturbation step in a Python loop, from numpy's
  global random state; we re-explain all ``num_samples * B`` perturbed copies in chunks of
  ``batch_size``, drawing from a torch ``generator`` or taking the exact ``noise``.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from audioxai.errors import ConfigError
from audioxai.metrics.base import (Explainer, UndefinedScoreWarning, check_batch, check_model_targets,
                                   normalise_per_sample, register_metric)

__all__ = ["avg_sensitivity", "explain_in_batches"]


def explain_in_batches(explain: Explainer, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                       batch_size: int = 256) -> torch.Tensor:
    """``explain(model, inputs, targets)`` in chunks of ``batch_size``, detached, checked to match the inputs."""
    parts = [explain(model, inputs[i:i + batch_size], targets[i:i + batch_size]).detach().to(inputs.device)
             for i in range(0, inputs.shape[0], batch_size)]
    attributions = torch.cat(parts)
    check_batch(inputs, attributions)
    return attributions


def _draw_noise(rows: torch.Tensor, batch: int, scale: torch.Tensor, shape: torch.Size,
                generator: torch.Generator) -> torch.Tensor:
    """``U(-1, 1) * scale`` of each row's sample, shape (len(rows), *shape)."""
    unit = torch.rand(len(rows), *shape, generator=generator, device=generator.device).to(scale.device)
    return (2 * unit - 1) * scale[rows % batch].view(-1, *([1] * len(shape)))


def _check_noise(noise: torch.Tensor | None, inputs: torch.Tensor, num_samples: int, noise_fraction: float) -> None:
    if noise is not None:
        if noise.ndim != inputs.ndim + 1 or tuple(noise.shape[1:]) != tuple(inputs.shape) or noise.shape[0] < 1:
            raise ConfigError(f"noise must have shape (num_samples, *{tuple(inputs.shape)}), got {tuple(noise.shape)}")
    elif num_samples < 1 or noise_fraction <= 0:
        raise ConfigError(f"num_samples must be >= 1 and noise_fraction > 0, got {num_samples}, {noise_fraction}")


def _predicted(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(inputs).argmax(dim=1)


@register_metric("avg_sensitivity", category="robustness", higher_is_better=False)
def avg_sensitivity(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, explain: Explainer, *,
                    num_samples: int = 20, noise_fraction: float = 0.1, noise: torch.Tensor | None = None,
                    attributions: torch.Tensor | None = None, generator: torch.Generator | None = None,
                    normalise: bool = True, nan_when_prediction_changes: bool = False,
                    batch_size: int = 256) -> torch.Tensor:
    """Average Sensitivity (Yeh et al., 2019; Bhatt et al., 2020): mean of ||e(x+delta) - e(x)|| / ||e(x)||.

    Args:
        model: a classifier in eval mode.
        inputs, targets: (B, ...) inputs and (B,) classes explained, both before and after perturbation.
        explain: ``explain(model, inputs, targets) -> attributions`` of the inputs' shape.
        num_samples: perturbations per sample; default 20 (Quantus: 200). The mean of 20 ratios has a
            standard error about 3x that of 200 at a tenth of the explain passes, enough for scores
            that are then averaged over hundreds of samples.
        noise_fraction: half-width of the uniform noise as a share of each sample's range
            max(x) - min(x); default 0.1: +-0.1 on [0, 1] pixels, +-8 dB on an 80 dB spectrogram.
        noise: exact perturbations, (num_samples, B, ...) added to the inputs; overrides
            ``num_samples``, ``noise_fraction`` and ``generator``.
        attributions: e(x); default None computes ``explain(model, inputs, targets)``.
        generator: source of the noise; default None uses a generator on the inputs' device seeded
            with 0, so a call is reproducible and leaves the global random state alone.
        normalise: divide every map by its own max |value| first; default True.
        nan_when_prediction_changes: NaN for a sample whose predicted class changes under any
            perturbation (Quantus's ``return_nan_when_prediction_changes``); default False.
        batch_size: perturbed copies per explain call; default 256 (lower it for explainers that
            expand the batch, e.g. Integrated Gradients' steps).

    Returns:
        (B,) float64 sensitivities >= 0 on the CPU; NaN with an ``UndefinedScoreWarning`` where
        e(x) is all zero or the input is constant (zero noise).
    """
    check_batch(inputs, attributions, targets)
    inputs, targets = inputs.detach(), targets.to(inputs.device).long()
    check_model_targets(model, inputs, targets)
    batch, shape = inputs.shape[0], inputs.shape[1:]
    _check_noise(noise, inputs, num_samples, noise_fraction)
    if noise is not None:
        num_samples, noise = noise.shape[0], noise.to(inputs.device, inputs.dtype)
    flat = inputs.flatten(1)
    scale = noise_fraction * (flat.amax(dim=1) - flat.amin(dim=1))
    generator = generator if generator is not None else torch.Generator(inputs.device).manual_seed(0)

    if attributions is None:
        attributions = explain_in_batches(explain, model, inputs, targets, batch_size)
    reference = attributions.detach().to(inputs.device).flatten(1).double()
    reference = normalise_per_sample(reference) if normalise else reference
    ratios = torch.empty(num_samples * batch, dtype=torch.float64, device=inputs.device)
    flipped = torch.zeros(num_samples * batch, dtype=torch.bool, device=inputs.device)
    predicted = _predicted(model, inputs) if nan_when_prediction_changes else None
    total = num_samples * batch                               # row j * B + b: perturbation j of sample b
    for start in range(0, total, batch_size):
        rows = torch.arange(start, min(start + batch_size, total), device=inputs.device)
        sample = rows % batch
        delta = noise[rows // batch, sample] if noise is not None else _draw_noise(rows, batch, scale, shape, generator)
        perturbed = inputs[sample] + delta
        explained = explain(model, perturbed, targets[sample]).detach().to(inputs.device)
        check_batch(perturbed, explained)
        explained = explained.flatten(1).double()
        explained = normalise_per_sample(explained) if normalise else explained
        ratios[rows] = (explained - reference[sample]).norm(dim=1) / reference[sample].norm(dim=1)
        if predicted is not None:
            flipped[rows] = _predicted(model, perturbed) != predicted[sample]
    scores = ratios.view(num_samples, batch).mean(dim=0)
    changed = flipped.view(num_samples, batch).any(dim=0)
    undefined = (reference == 0).all(dim=1) | ((scale == 0) if noise is None else False)
    if undefined.any():
        warnings.warn(f"average sensitivity is undefined (all-zero explanation or constant input) for "
                      f"{int(undefined.sum())} sample(s); set to NaN", UndefinedScoreWarning, stacklevel=2)
    return scores.masked_fill(undefined | changed, float("nan")).cpu()
