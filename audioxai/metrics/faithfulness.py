"""Faithfulness: does removing what an explanation calls important change the model's output as much?

``faithfulness_correlation`` (Bhatt, Weller & Moura, 2020, "Evaluating and Aggregating
Feature-based Model Explanations", IJCAI). For sample x with target y, attributions a and
``num_runs`` random subsets S_1..S_R of k features each,

    s = Pearson_r( [sum_{i in S_r} a_i]_r , [f_y(x) - f_y(x with S_r set to the baseline)]_r )

where f_y is the target logit (or softmax probability with ``softmax=True``). Higher is better:
+1 means the attribution mass of a subset predicts exactly how much the output drops without it.

Matches Quantus 0.6.0's ``FaithfulnessCorrelation`` (to 1e-5, given the same subsets) with these
deliberate differences:

- **Subset size as a fraction.** Quantus draws a fixed ``subset_size=224`` features: 29% of a
  28x28 image but 1.4% of 128x128 and 0.3% of 256x256. We draw ``k = round(subset_fraction * n)``
  of the n features, so one setting means the same thing at every resolution and in both modalities.
- **Explicit baseline.** Quantus's default ``perturb_baseline="black"`` is each sample's *minimum*
  (not 0): the floor of a dB spectrogram, 0 for a digit image with a black background. We spell
  this ``baseline="min"`` and also take a number or a tensor.
- **No normalisation argument.** Quantus normalises by the maximum over the whole batch, but the
  Pearson correlation is invariant to a positive rescaling of either variable, so any per-sample or
  batch-wide division by a positive constant leaves the score unchanged; we do not pretend it matters.
- **Batched.** Quantus loops over runs in Python, one batch forward per run; we build all
  ``num_runs * B`` perturbed inputs in chunks of ``batch_size`` on the model's device.
- **Draws.** Quantus draws with ``np.random.choice`` from numpy's global state (and, with a string
  baseline, silently draws ``np.random.uniform(size=B)`` after every run for a "uniform" baseline
  it then discards). We draw from a torch ``generator`` or take the exact ``indices``.
"""

from __future__ import annotations

import torch
from torch import nn

from audioxai.errors import ConfigError
from audioxai.explain.gradients import resolve_baseline
from audioxai.metrics.base import check_batch, check_model_targets, pearson_per_sample, register_metric

__all__ = ["faithfulness_correlation", "subset_size", "model_outputs"]


def subset_size(num_features: int, subset_fraction: float) -> int:
    """Features per subset: ``round(subset_fraction * num_features)``, at least 1 and at most n - 1."""
    if not 0.0 < subset_fraction < 1.0:
        raise ConfigError(f"subset_fraction must lie strictly between 0 and 1, got {subset_fraction}")
    return int(min(max(round(subset_fraction * num_features), 1), num_features - 1))


def _target_scores(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, softmax: bool) -> torch.Tensor:
    out = model(inputs)
    out = out.softmax(dim=1) if softmax else out
    return out.gather(1, targets[:, None]).squeeze(1)


def model_outputs(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, *, softmax: bool = False,
                  batch_size: int = 256) -> torch.Tensor:
    """The target logit (or softmax probability) of each input, in chunks of ``batch_size``, without gradients.

    Raises ConfigError if the model is in training mode, does not return (batch, classes) scores,
    or a target is not one of its classes.
    """
    check_model_targets(model, inputs, targets)
    with torch.no_grad():
        return torch.cat([_target_scores(model, inputs[i:i + batch_size], targets[i:i + batch_size], softmax)
                          for i in range(0, inputs.shape[0], batch_size)])


def _check_indices(indices: torch.Tensor, batch: int, num_features: int) -> None:
    if indices.ndim != 3 or indices.shape[1] != batch or indices.dtype != torch.long:
        raise ConfigError(f"indices must be a long tensor (num_runs, {batch}, k), got {indices.dtype} "
                          f"{tuple(indices.shape)}")
    if indices.shape[2] < 1 or indices.min() < 0 or indices.max() >= num_features:
        raise ConfigError(f"indices must hold at least one feature index in 0..{num_features - 1} per run")
    ordered = indices.sort(dim=2).values
    if (ordered[..., 1:] == ordered[..., :-1]).any():
        raise ConfigError("indices must not repeat a feature within a run (subsets are drawn without replacement)")


def _draw_subsets(rows: int, num_features: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``rows`` uniform random k-subsets of range(num_features): the k largest of n uniform keys per row."""
    keys = torch.rand(rows, num_features, generator=generator, device=generator.device)
    return keys.topk(k, dim=1, sorted=False).indices


@register_metric("faithfulness_correlation", category="faithfulness", higher_is_better=True)
def faithfulness_correlation(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                             attributions: torch.Tensor, *, subset_fraction: float = 0.05, num_runs: int = 100,
                             baseline: str | float | torch.Tensor = "min", abs: bool = False,
                             softmax: bool = False, indices: torch.Tensor | None = None,
                             generator: torch.Generator | None = None, batch_size: int = 256) -> torch.Tensor:
    """Faithfulness Correlation (Bhatt et al., 2020): Pearson r over runs of subset attribution sum vs output drop.

    Args:
        model: a classifier in eval mode returning (batch, classes) logits.
        inputs, targets, attributions: (B, ...) inputs, (B,) class indices, attributions of the inputs' shape.
        subset_fraction: share of the n features replaced per run, k = round(fraction * n); default
            0.05 (39 pixels of 28x28, 819 of 128x128): enough to move the logit well above numerical
            noise, few enough that the perturbed input stays near the data and two runs share only
            about 5% of their features, so the runs vary.
        num_runs: random subsets per sample; default 100, as Bhatt et al. and Quantus.
        baseline: value a removed feature takes: "min" (default; each sample's minimum, Quantus's
            "black": 0 for digit images, the floor, i.e. silence, of a dB spectrogram), a number, or a
            tensor broadcastable to ``inputs`` (e.g. a per-sample reference input).
        abs: correlate |attributions| instead of the signed values; default False, as Quantus.
        softmax: use the target probability instead of the target logit; default False, as Quantus.
        indices: exact subsets, a long tensor (num_runs, B, k) of flat feature indices without
            repeats within a run; overrides ``subset_fraction``, ``num_runs`` and ``generator``.
        generator: source of the subsets; default None uses a generator on the inputs' device seeded
            with 0, so a call is reproducible and leaves the global random state alone.
        batch_size: perturbed inputs per forward pass; default 256.

    Returns:
        (B,) float64 correlations in [-1, 1] on the CPU; NaN with an ``UndefinedScoreWarning`` where
        the subset sums or the drops do not vary over runs (e.g. all-zero attributions).
    """
    check_batch(inputs, attributions, targets)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    targets = targets.to(inputs.device).long()
    batch, num_features = inputs.shape[0], inputs[0].numel()
    x = inputs.detach().flatten(1)
    base = resolve_baseline(inputs.detach(), baseline).flatten(1)
    a = attributions.detach().to(inputs.device).flatten(1)
    a = a.abs() if abs else a
    if indices is not None:
        indices = indices.to(inputs.device)
        _check_indices(indices, batch, num_features)
        num_runs, k = indices.shape[0], indices.shape[2]
    else:
        k = subset_size(num_features, subset_fraction)
        if num_runs < 2:
            raise ConfigError(f"num_runs must be >= 2 to correlate over runs, got {num_runs}")
        generator = generator if generator is not None else torch.Generator(inputs.device).manual_seed(0)

    original = model_outputs(model, inputs.detach(), targets, softmax=softmax, batch_size=batch_size)
    drops, sums = [], []
    total = num_runs * batch                                  # row r * B + b: run r of sample b
    for start in range(0, total, batch_size):
        rows = torch.arange(start, min(start + batch_size, total), device=inputs.device)
        sample = rows % batch
        if indices is None:
            idx = _draw_subsets(len(rows), num_features, k, generator).to(inputs.device)
        else:
            idx = indices[rows // batch, sample]
        perturbed = x[sample].scatter(1, idx, base[sample].gather(1, idx))
        with torch.no_grad():
            out = _target_scores(model, perturbed.view(len(rows), *inputs.shape[1:]), targets[sample], softmax)
        drops.append(original[sample] - out)
        sums.append(a[sample].gather(1, idx).sum(dim=1))
    drops = torch.cat(drops).view(num_runs, batch).T.double()
    sums = torch.cat(sums).view(num_runs, batch).T.double()
    return pearson_per_sample(sums, drops, name="faithfulness correlation").cpu()
