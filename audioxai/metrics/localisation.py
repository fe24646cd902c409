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
"""

from __future__ import annotations

import warnings

import torch

from audioxai.errors import ConfigError
from audioxai.metrics.base import UndefinedScoreWarning, check_batch, register_metric

__all__ = ["attribution_mass_inside", "time_span_mask", "ink_mask"]


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
