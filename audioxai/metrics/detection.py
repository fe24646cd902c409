"""Spoofing detection and spoofed-frame localisation scores (chapter 3).

- ``equal_error_rate``: the operating point where the false-acceptance rate (bona fide scored as
  spoof) equals the miss rate (spoof scored as bona fide), linearly interpolated between the two
  ROC points around the crossing; the standard ASVspoof utterance metric. Lower is better.
- ``frame_auc`` and ``frame_eer``: PartialSpoof's segment-level protocol at 20 ms frames: every
  frame of every evaluated utterance is pooled into one set of (score, label) pairs, so a method
  must also rank the frames of different utterances consistently (a map normalised per utterance
  loses that). Frames marked invalid (padding) are left out.
- ``region_scores``: relative importance per region in the manner of RCQ (mean importance inside a
  region divided by the utterance's mean importance; 1 = no preference): bona fide speech, spoofed
  speech, transitions at splice points, non-speech.

Scores are higher = more spoof; labels are 1 = spoof, 0 = bona fide.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

from audioxai.errors import ConfigError

__all__ = ["equal_error_rate", "frame_auc", "frame_eer", "region_scores", "REGIONS"]

REGIONS = ("bonafide_speech", "spoofed_speech", "transition", "non_speech")


def _pairs(scores, labels, valid=None) -> tuple[np.ndarray, np.ndarray]:
    s = torch.as_tensor(scores).detach().double().cpu()
    y = torch.as_tensor(labels).detach().cpu()
    if s.shape != y.shape:
        raise ConfigError(f"scores {tuple(s.shape)} and labels {tuple(y.shape)} must have the same shape")
    if valid is not None:
        v = torch.as_tensor(valid).detach().cpu().bool()
        if v.shape != s.shape:
            raise ConfigError(f"valid {tuple(v.shape)} must match scores {tuple(s.shape)}")
        s, y = s[v], y[v]
    s, y = s.reshape(-1).numpy(), y.reshape(-1).long().numpy()
    if not np.isfinite(s).all():
        raise ConfigError("scores hold NaN or inf; explain with a finite map (check the model's inputs)")
    if set(np.unique(y)) - {0, 1}:
        raise ConfigError(f"labels must be 0 (bona fide) or 1 (spoof), got {sorted(set(np.unique(y)))}")
    if y.min() == y.max():
        raise ConfigError("labels hold only one class; EER and AUC need both bona fide and spoof")
    return s, y


def equal_error_rate(scores, labels, valid=None) -> float:
    """EER in [0, 1] of ``scores`` (higher = spoof) against ``labels`` (1 = spoof).

    From the ROC: false-acceptance rate ``fpr`` and miss rate ``fnr = 1 - tpr`` at every threshold;
    the EER is where ``fnr - fpr`` changes sign, interpolated linearly between the two points
    around it (exact when a threshold gives equal rates).
    """
    s, y = _pairs(scores, labels, valid)
    fpr, tpr, _ = roc_curve(y, s)
    fnr = 1 - tpr
    diff = fnr - fpr  # starts at 1 (threshold above every score), ends at -1
    i = int(np.argmax(diff <= 0))
    if diff[i] == 0 or i == 0:
        return float(fpr[i])
    # interpolate between points i - 1 (diff > 0) and i (diff <= 0)
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def frame_auc(scores, frame_labels, valid=None) -> float:
    """ROC AUC of frame scores against frame labels, all frames of all utterances pooled (``valid`` selects)."""
    s, y = _pairs(scores, frame_labels, valid)
    return float(roc_auc_score(y, s))


def frame_eer(scores, frame_labels, valid=None) -> float:
    """EER of frame scores against frame labels, all frames pooled (PartialSpoof's segment-level EER)."""
    return equal_error_rate(scores, frame_labels, valid)


def region_scores(importance: torch.Tensor, frame_labels: torch.Tensor, speech: torch.Tensor,
                  transition: torch.Tensor, valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Mean importance per region relative to the utterance mean, one value per utterance.

    Regions (disjoint): ``transition`` (frames at splice points), ``bonafide_speech`` and
    ``spoofed_speech`` (speech frames by label, transitions excluded), ``non_speech`` (the rest).
    ``score = mean(w in region) / mean(w over the utterance)``; NaN where a region is empty or the
    utterance's importance is all zero.

    Args:
        importance: (N, F) non-negative frame importance.
        frame_labels: (N, F) 0/1; speech, transition: (N, F) bool; valid: (N, F) bool or None (all).
    """
    w = importance.detach().double().cpu()
    if w.ndim != 2 or any(t.shape != w.shape for t in (frame_labels, speech, transition)):
        raise ConfigError(f"importance, frame_labels, speech and transition must all be (N, F); got "
                          f"{tuple(w.shape)}, {tuple(frame_labels.shape)}, {tuple(speech.shape)}, {tuple(transition.shape)}")
    valid = torch.ones_like(w, dtype=torch.bool) if valid is None else valid.cpu().bool()
    label, speech, transition = frame_labels.cpu().bool(), speech.cpu().bool(), transition.cpu().bool()
    regions = {
        "bonafide_speech": speech & ~label & ~transition,
        "spoofed_speech": speech & label & ~transition,
        "transition": transition,
        "non_speech": ~speech & ~transition,
    }
    total = (w * valid).sum(dim=1) / valid.sum(dim=1).clamp_min(1)
    out = {}
    for name, region in regions.items():
        region = region & valid
        count = region.sum(dim=1)
        mean = (w * region).sum(dim=1) / count.clamp_min(1)
        score = mean / total
        out[name] = torch.where((count > 0) & (total > 0), score, torch.full_like(score, float("nan")))
    return out
