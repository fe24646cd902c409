"""Scoring masks of a waveform classifier (chapter 2): faithfulness, complexity and ground truth.

``score_masks`` takes the masks any method produced in L-MAC's domain (L-MAC's own or a gradient
baseline's from ``audioxai.explain.mask_baselines``) and returns one row per sample with:

- the mask faithfulness metrics of the L-MAC paper on the classifier's probabilities (softmax once,
  in float64): AI, AD, AG (x 100, percent), FF and Fid-In (``audioxai.metrics.mask_faithfulness``);
- sparseness (Gini) and complexity (entropy) of the mask;
- ground truth the published L-MAC evaluations lack: AUC and IoU (mask >= 0.5) of the mask against
  the spoken digit's time span and against the clean speech's ideal binary mask (time-frequency in
  the ``stft`` domain, per frame in the ``waveform`` domain), and the SI-SDR of the explanation audio
  x_in against the clean digit as it sits in the mixture (an objective listenability proxy).
"""

from __future__ import annotations

import pandas as pd
import torch
import torch.nn.functional as F

from audioxai.data.mixing import ideal_binary_mask
from audioxai.errors import ConfigError
from audioxai.explain.lmac import LMAC, temporal_ideal_binary_mask
from audioxai.metrics import (average_drop, average_gain, average_increase, complexity_entropy, faithfulness_on_spectra,
                              input_fidelity, mask_auc, mask_iou, si_sdr, sparseness)

__all__ = ["MASK_SCORES", "truth_masks", "score_masks"]

MASK_SCORES = ("AI", "AD", "AG", "FF", "fid_in", "sparseness", "complexity", "span_auc", "span_iou", "gt_auc",
               "gt_iou", "si_sdr")


def truth_masks(lmac: LMAC, clean: torch.Tensor, noise: torch.Tensor,
                spans: list[tuple[float, float] | None]) -> dict[str, torch.Tensor | None]:
    """Boolean ground truth in the mask's shape: ``span`` (the spoken digit) and ``ibm`` (the clean speech's IBM)."""
    cfg = lmac.config
    length, rate = clean.shape[-1], lmac.sample_rate
    if cfg.mask_domain == "stft":
        ibm = ideal_binary_mask(clean, noise, cfg.n_fft, cfg.hop_length, cfg.local_criterion_db) > 0.5
        times = torch.arange(ibm.shape[-1], dtype=torch.float64) * cfg.hop_length / rate
    else:
        frames = temporal_ideal_binary_mask(clean, noise, cfg.n_fft, cfg.hop_length, cfg.local_criterion_db)
        ibm = F.interpolate(frames[:, None], size=length, mode="nearest")[:, 0] > 0.5
        times = (torch.arange(length, dtype=torch.float64) + 0.5) / rate
    span = None
    if all(s is not None for s in spans):
        bounds = torch.tensor(spans, dtype=torch.float64)
        inside = (times[None] >= bounds[:, :1]) & (times[None] <= bounds[:, 1:])
        span = inside[:, None, :].expand_as(ibm) if ibm.ndim == 3 else inside
    return {"span": span, "ibm": ibm}


def _probabilities(classifier, waveform: torch.Tensor, batch_size: int) -> torch.Tensor:
    with torch.no_grad():
        logits = torch.cat([classifier(waveform[i:i + batch_size]) for i in range(0, len(waveform), batch_size)])
    return logits.double().softmax(dim=1)


def score_masks(lmac: LMAC, waveform: torch.Tensor, masks: torch.Tensor, clean: torch.Tensor, noise: torch.Tensor,
                spans: list[tuple[float, float] | None], batch_size: int = 64) -> pd.DataFrame:
    """Every score of ``MASK_SCORES`` for each sample (ground-truth columns NaN where the truth is unknown)."""
    if masks.shape[0] != waveform.shape[0] or clean.shape != waveform.shape or noise.shape != waveform.shape:
        raise ConfigError(f"masks, clean and noise must match the waveforms' batch: {tuple(masks.shape)}, "
                          f"{tuple(clean.shape)}, {tuple(noise.shape)} vs {tuple(waveform.shape)}")
    classifier = lmac.classifier
    with torch.no_grad():
        x_in = torch.cat([lmac.apply_mask(waveform[i:i + batch_size], masks[i:i + batch_size])
                          for i in range(0, len(waveform), batch_size)])
        x_out = torch.cat([lmac.apply_mask(waveform[i:i + batch_size], 1 - masks[i:i + batch_size])
                           for i in range(0, len(waveform), batch_size)])
    p, p_in, p_out = (_probabilities(classifier, x, batch_size) for x in (waveform, x_in, x_out))
    target = p.argmax(dim=1)
    flat = masks.reshape(masks.shape[0], 1, -1)
    truth = truth_masks(lmac, clean, noise, spans)
    nan = torch.full((len(waveform),), float("nan"), dtype=torch.float64)
    scores = {
        "AI": 100 * average_increase(p, p_in, target), "AD": 100 * average_drop(p, p_in, target),
        "AG": 100 * average_gain(p, p_in, target), "FF": faithfulness_on_spectra(p, p_out, target),
        "fid_in": input_fidelity(p, p_in), "sparseness": sparseness(flat), "complexity": complexity_entropy(flat),
        "span_auc": mask_auc(masks, truth["span"]) if truth["span"] is not None else nan,
        "span_iou": mask_iou(masks, truth["span"]) if truth["span"] is not None else nan,
        "gt_auc": mask_auc(masks, truth["ibm"]), "gt_iou": mask_iou(masks, truth["ibm"]),
        "si_sdr": si_sdr(x_in, clean),
    }
    return pd.DataFrame({k: v.detach().double().cpu().numpy() for k, v in scores.items()})
