"""Localisation: does the explanation put its mass where the evidence is known to be?

``attribution_mass_inside``: the share of an explanation's positive mass that falls inside a
ground-truth mask M (the Relevance Mass Accuracy of Arras, Osman & Samek, 2022, "CLEVR-XAI: A
Benchmark Dataset for the Ground Truth Evaluation of Neural Network Explanations", Information
Fusion), on the positive part of the attributions:

    s = sum_i max(a_i, 0) M_i / sum_i max(a_i, 0)

in [0, 1], higher is better; compare it with the mask's own share of the input (what a uniform
explanation would score). Ground truths here: the digit's ink for images (``ink_mask``) and the
frames of the spoken digit for spectrograms (``time_span_mask``).

Equals Quantus 0.6.0's ``RelevanceMassAccuracy`` for non-negative attributions, and differs on
purpose for signed ones: Quantus sums the signed values (its default ``abs=False``), so negative
attributions outside the mask push the score above 1 and negative ones inside below 0. We count
positive evidence only. Quantus also needs a mask of the inputs' exact shape; ours broadcasts, so a
(B, 1, 1, T) time mask scores a (B, 1, F, T) spectrogram.

For masks (L-MAC's m in [0, 1], or any soft saliency map) against a boolean ground truth T of
the same shape, e.g. the ideal binary mask of the clean speech in a noisy mixture:

- ``mask_auc``: the ROC AUC of the mask values as scores for T, from ranks (Mann-Whitney U, with
  average ranks for ties): with r_i the rank of m_i among the sample's n values, P the n_+
  features where T is true and n_- = n - n_+,

      AUC = (sum_{i in P} r_i - n_+ (n_+ + 1) / 2) / (n_+ n_-)

  the probability that a random true feature outscores a random false one, ties counting half;
  0.5 for an uninformative mask, independent of any threshold. Equals ``sklearn.metrics.roc_auc_score``.
- ``mask_iou``: the intersection over union of the thresholded mask and T,
  |(m >= threshold) & T| / |(m >= threshold) | T|.

Both in [0, 1], higher is better.
"""

from __future__ import annotations

import warnings

import torch

from audioxai.config import is_finite_number
from audioxai.errors import ConfigError
from audioxai.metrics.base import UndefinedScoreWarning, check_batch, register_metric

__all__ = ["attribution_mass_inside", "time_span_mask", "ink_mask", "mask_auc", "mask_iou"]


@register_metric("localisation_mass", category="localisation", higher_is_better=True)
def attribution_mass_inside(attributions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Share of each sample's positive attribution mass inside ``mask`` (bool, broadcastable to the attributions).

    Returns:
        (B,) float64 shares in [0, 1] on the CPU; NaN with an ``UndefinedScoreWarning`` for samples
        with no positive attribution or an empty mask.
    """
    check_batch(attributions)
    if mask.dtype != torch.bool:
        raise ConfigError(f"mask must be a bool tensor, got {mask.dtype}: threshold it first (e.g. mask > 0.5)")
    try:
        mask = torch.broadcast_to(mask.to(attributions.device), attributions.shape)
    except RuntimeError as err:
        raise ConfigError(f"mask of shape {tuple(mask.shape)} does not broadcast to attributions of shape "
                          f"{tuple(attributions.shape)}") from err
    positive = attributions.detach().clamp_min(0).flatten(1).double()
    mask = mask.flatten(1)
    total = positive.sum(dim=1)
    undefined = (total == 0) | ~mask.any(dim=1)
    if undefined.any():
        warnings.warn(f"attribution mass inside is undefined (no positive attribution or empty mask) for "
                      f"{int(undefined.sum())} sample(s); set to NaN", UndefinedScoreWarning, stacklevel=2)
    share = (positive * mask).sum(dim=1) / total.where(~undefined, torch.ones_like(total))
    return share.masked_fill(undefined, float("nan")).cpu()


def time_span_mask(span_seconds: list[tuple[float, float]] | torch.Tensor, num_frames: int, duration_seconds: float,
                   n_mels: int, *, frame_times: torch.Tensor | None = None) -> torch.Tensor:
    """Bool mask (B, 1, n_mels, num_frames): the frames whose centre lies in each sample's [start, end] span.

    Args:
        span_seconds: (B, 2) start and end of the evidence (e.g. the spoken digit) in seconds.
        num_frames, n_mels: the spectrogram's frames and mel bands.
        duration_seconds: the audio's duration.
        frame_times: (num_frames,) centre of each frame in seconds; default None assumes a centred
            STFT whose frames cover the audio evenly from 0 to ``duration_seconds``, i.e.
            t_j = j * duration / (num_frames - 1), as ``audioxai.features.spectrogram.frame_times``
            gives when the hop is duration / (num_frames - 1). Pass that function's output for
            any other hop.
    """
    spans = torch.as_tensor(span_seconds)
    spans = spans if spans.is_floating_point() else spans.float()  # compare in the spans' precision
    if spans.ndim != 2 or spans.shape[1] != 2 or (spans[:, 1] < spans[:, 0]).any():
        raise ConfigError(f"span_seconds must be (B, 2) [start, end] pairs with start <= end, got {spans.tolist()}")
    if num_frames < 2 or n_mels < 1 or duration_seconds <= 0:
        raise ConfigError(f"need num_frames >= 2, n_mels >= 1, duration_seconds > 0, got {num_frames}, {n_mels}, "
                          f"{duration_seconds}")
    if frame_times is None:
        frame_times = torch.arange(num_frames, dtype=torch.float64) * duration_seconds / (num_frames - 1)
    elif frame_times.shape != (num_frames,):
        raise ConfigError(f"frame_times must have shape ({num_frames},), got {tuple(frame_times.shape)}")
    centres = frame_times.to(spans.dtype)[None]
    inside = (centres >= spans[:, :1]) & (centres <= spans[:, 1:])
    return inside[:, None, None, :].expand(-1, 1, n_mels, -1).contiguous()


def ink_mask(images: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Bool mask of the digit's ink: pixels above ``threshold`` x each image's maximum.

    ``threshold`` defaults to 0.5, half the brightest stroke: the stroke's core, without the faint
    anti-aliased rim that resizing smears around it. Images are (B, ...) with a dark background.
    """
    check_batch(images)
    if not 0.0 <= threshold < 1.0:
        raise ConfigError(f"threshold must lie in [0, 1), got {threshold}")
    peak = images.flatten(1).amax(dim=1).view(-1, *([1] * (images.ndim - 1)))
    return images > threshold * peak


def _check_mask_truth(mask: torch.Tensor, truth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raise ConfigError unless ``mask`` is finite (B, ...) and ``truth`` bool of its shape; return both flattened."""
    if not torch.is_tensor(mask) or mask.ndim < 2 or mask.shape[0] == 0 or mask.dtype == torch.bool:
        raise ConfigError(f"mask must be a batched real tensor (B, ...), got "
                          f"{getattr(mask, 'dtype', type(mask).__name__)} {tuple(getattr(mask, 'shape', ()))}")
    if not torch.is_tensor(truth) or truth.dtype != torch.bool:
        raise ConfigError(f"truth must be a bool tensor, got {getattr(truth, 'dtype', type(truth).__name__)}: "
                          f"threshold it first (e.g. ideal_binary_mask(...) > 0.5)")
    if truth.shape != mask.shape:
        raise ConfigError(f"truth of shape {tuple(truth.shape)} does not match mask of shape {tuple(mask.shape)}: "
                          f"give one ground-truth value per mask value")
    if not torch.isfinite(mask).all():
        bad = (~torch.isfinite(mask.flatten(1))).any(dim=1).nonzero().flatten().tolist()
        raise ConfigError(f"mask of sample(s) {bad} contains NaN or infinite values: fix the explainer output first")
    return mask.detach().flatten(1), truth.to(mask.device).flatten(1)


@register_metric("mask_auc", category="localisation", higher_is_better=True)
def mask_auc(mask: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """ROC AUC of each sample's mask values as scores for its bool ``truth`` (Mann-Whitney U, average ranks for ties).

    Args:
        mask: (B, ...) real scores, any range (a soft mask, a saliency map).
        truth: (B, ...) bool ground truth of the same shape.

    Returns:
        (B,) float64 AUCs in [0, 1] on the CPU, equal to ``sklearn.metrics.roc_auc_score`` per sample;
        NaN with an ``UndefinedScoreWarning`` where a sample's truth is all True or all False.
    """
    scores, truth = _check_mask_truth(mask, truth)
    ordered, order = scores.sort(dim=1)
    # average rank of a tie group: positions first+1 .. last+1, so (first + last + 2) / 2 = (left + right + 1) / 2
    left = torch.searchsorted(ordered, ordered, side="left")
    right = torch.searchsorted(ordered, ordered, side="right")
    ranks = (left + right + 1).double() / 2
    positive = truth.gather(1, order)
    num_pos = positive.sum(dim=1).double()
    num_neg = positive.shape[1] - num_pos
    undefined = (num_pos == 0) | (num_neg == 0)
    if undefined.any():
        warnings.warn(f"mask AUC is undefined (ground truth all True or all False) for {int(undefined.sum())} "
                      f"sample(s); set to NaN", UndefinedScoreWarning, stacklevel=2)
    u = (ranks * positive).sum(dim=1) - num_pos * (num_pos + 1) / 2
    pairs = num_pos * num_neg
    auc = u / pairs.where(~undefined, torch.ones_like(pairs))
    return auc.masked_fill(undefined, float("nan")).cpu()


@register_metric("mask_iou", category="localisation", higher_is_better=True)
def mask_iou(mask: torch.Tensor, truth: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Intersection over union of each sample's (mask >= threshold) and its bool ``truth``.

    Args:
        mask: (B, ...) real mask values.
        truth: (B, ...) bool ground truth of the same shape.
        threshold: mask values at or above it count as kept; default 0.5, the midpoint of a mask in
            [0, 1] such as L-MAC's sigmoid output: a value is kept where the mask passes more of it
            than it removes. Use ``mask_auc`` for a score free of any threshold.

    Returns:
        (B,) float64 IoUs in [0, 1] on the CPU; NaN with an ``UndefinedScoreWarning`` where the
        union is empty (nothing kept and nothing to find).
    """
    if not is_finite_number(threshold):
        raise ConfigError(f"threshold must be a finite number, got {threshold!r}")
    values, truth = _check_mask_truth(mask, truth)
    kept = values >= threshold
    intersection = (kept & truth).sum(dim=1).double()
    union = (kept | truth).sum(dim=1).double()
    undefined = union == 0
    if undefined.any():
        warnings.warn(f"mask IoU is undefined (empty union: nothing kept, nothing to find) for "
                      f"{int(undefined.sum())} sample(s); set to NaN", UndefinedScoreWarning, stacklevel=2)
    iou = intersection / union.where(~undefined, torch.ones_like(union))
    return iou.masked_fill(undefined, float("nan")).cpu()
