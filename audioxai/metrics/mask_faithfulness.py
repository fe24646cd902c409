"""Mask faithfulness: does the classifier still decide the same on what a mask keeps, and not on what it drops?

The metrics of the L-MAC paper (Paissan, Ravanelli & Subakan, 2024, "Listenable Maps for Audio
Classifiers", ICML) for a mask m in [0, 1] over an input x. They compare three probability vectors
of the frozen classifier (softmax applied once, rows summing to 1):

- ``p_orig`` on the original input x;
- ``p_in`` on the masked-in input x_in = x * m, the explanation itself (in the STFT domain
  x_in = iSTFT(m * STFT(x)), as ``audioxai.explain.lmac``);
- ``p_out`` on the masked-out input x_out = x * (1 - m), what the explanation leaves behind.

The class c is the one the classifier predicts on the original input, c = argmax p_orig (not the
label: an explanation explains the decision, right or wrong). With p_c = p_orig[c]:

    AI     = 1[p_in_c > p_c]                   average increase, higher is better
    AD     = max(0, p_c - p_in_c) / p_c        average drop, lower is better
    AG     = max(0, p_in_c - p_c) / (1 - p_c)  average gain, higher is better
    FF     = p_c - p_out_c                     faithfulness on spectra, higher is better
    Fid-In = 1[argmax p_in = argmax p_orig]    input fidelity, higher is better

AI and AD come from Grad-CAM++ (Chattopadhay, Sarkar, Howlader & Balasubramanian, 2018, WACV), AG
from Opti-CAM (Zhang et al., 2024, Computer Vision and Image Understanding), FF and Fid-In from
L2I (Parekh, Parekh, Mozharovskyi, d'Alché-Buc & Richard, 2022, "Listen to Interpret", NeurIPS).

Each function returns one score per sample; the chapter, as the paper and the recipe, reports the means of AI, AD
and AG x 100 as percentages and the means of FF and Fid-In as plain numbers in [-1, 1] and [0, 1].

Two deliberate differences from the authors' reference implementation, SpeechBrain's ESC-50
``interpret`` recipe (``interpreter_brain.py`` and ``train_lmac.py``):

- **One softmax.** The recipe passes probabilities (``predictions.softmax(1)``) to its AD, which
  applies ``F.softmax`` to them a second time. Softmax of values in [0, 1] is nearly uniform, so
  with many classes the drop shrinks: on 50 classes a collapse from p_c = 0.99 to uniform
  (AD = 0.98) scores about 0.62. We apply no second softmax; its AI, AG and FF use one, as we do.
- **No epsilon.** The recipe divides by p_c + 1e-10 and 1 - p_c + 1e-10, so a sample whose p_c
  rounds to exactly 1 (common for a confident classifier in float32) scores AG = 0. Its gain is
  0 / 0, so we return NaN with an ``UndefinedScoreWarning`` (means then skip it); compute the
  softmax in float64 to keep such samples.
"""

from __future__ import annotations

import warnings

import torch

from audioxai.errors import ConfigError
from audioxai.metrics.base import UndefinedScoreWarning, register_metric

__all__ = ["average_increase", "average_drop", "average_gain", "faithfulness_on_spectra", "input_fidelity",
           "SUM_TOLERANCE"]

SUM_TOLERANCE = 1e-4
"""How far a row of probabilities may sum from 1: float32 softmax rounding stays near 1e-6; logits miss by more."""


def _check_probabilities(p: torch.Tensor, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """Raise ConfigError unless ``p`` holds (B, C) probabilities summing to 1 per row; return it in float64."""
    if not torch.is_tensor(p) or p.ndim != 2 or p.shape[0] == 0 or p.shape[1] == 0:
        raise ConfigError(f"{name} must be class probabilities of shape (B, C), got shape "
                          f"{tuple(getattr(p, 'shape', ()))}")
    if like is not None and p.shape != like.shape:
        raise ConfigError(f"{name} of shape {tuple(p.shape)} does not match p_orig of shape {tuple(like.shape)}: "
                          f"score the same batch with the same classifier")
    if not torch.isfinite(p).all():
        bad = (~torch.isfinite(p)).any(dim=1).nonzero().flatten().tolist()
        raise ConfigError(f"{name} of sample(s) {bad} contain NaN or infinite values: check the classifier's output")
    p = p.detach().to(like.device if like is not None else p.device, torch.float64)
    off = (p.sum(dim=1) - 1).abs() > SUM_TOLERANCE
    if (p < 0).any() or (p > 1 + SUM_TOLERANCE).any() or off.any():
        bad = (off | (p < 0).any(dim=1)).nonzero().flatten().tolist()
        raise ConfigError(f"{name} must be probabilities in [0, 1] summing to 1 per row (within {SUM_TOLERANCE}); "
                          f"sample(s) {bad[:10]} are not (row sums {p.sum(dim=1)[bad[:10]].tolist()}): pass "
                          f"model(x).softmax(dim=1), not logits or log-probabilities")
    return p


def _target_probabilities(p_orig: torch.Tensor, p_other: torch.Tensor, target: torch.Tensor,
                          other_name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate the pair and the targets; return (p_orig[c], p_other[c]) in float64 on p_orig's device."""
    p_orig = _check_probabilities(p_orig, "p_orig")
    p_other = _check_probabilities(p_other, other_name, like=p_orig)
    batch, num_classes = p_orig.shape
    if not torch.is_tensor(target) or target.shape != (batch,) or target.dtype != torch.long:
        raise ConfigError(f"target must be a long tensor of shape ({batch},), got "
                          f"{getattr(target, 'dtype', type(target).__name__)} {tuple(getattr(target, 'shape', ()))}: "
                          f"pass p_orig.argmax(dim=1), the class predicted on the original input")
    target = target.to(p_orig.device)
    if target.min() < 0 or target.max() >= num_classes:
        raise ConfigError(f"target must lie in 0..{num_classes - 1} (the columns of p_orig), got "
                          f"{target.min().item()}..{target.max().item()}")
    index = target[:, None]
    return p_orig.gather(1, index).squeeze(1), p_other.gather(1, index).squeeze(1)


def _ratio_or_nan(numerator: torch.Tensor, denominator: torch.Tensor, name: str, why: str) -> torch.Tensor:
    undefined = denominator <= 0
    if undefined.any():
        warnings.warn(f"{name} is undefined ({why}) for {int(undefined.sum())} sample(s); set to NaN",
                      UndefinedScoreWarning, stacklevel=3)
    ratio = numerator / denominator.where(~undefined, torch.ones_like(denominator))
    return ratio.masked_fill(undefined, float("nan"))


@register_metric("average_increase", category="faithfulness", higher_is_better=True)
def average_increase(p_orig: torch.Tensor, p_in: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Average Increase (AI): 1 where the masked-in input raises the target's probability, p_in_c > p_orig_c.

    Args:
        p_orig, p_in: (B, C) probabilities on the original and on the masked-in input x * m.
        target: (B,) long, the class predicted on the original input (``p_orig.argmax(1)``).

    Returns:
        (B,) float64 zeros and ones on the CPU; the chapter reports their mean x 100 (%).
    """
    p_c, p_in_c = _target_probabilities(p_orig, p_in, target, "p_in")
    return (p_in_c > p_c).double().cpu()


@register_metric("average_drop", category="faithfulness", higher_is_better=False)
def average_drop(p_orig: torch.Tensor, p_in: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Average Drop (AD): max(0, p_orig_c - p_in_c) / p_orig_c, the target's relative loss of probability.

    On probabilities softmaxed once (SpeechBrain's recipe softmaxes them twice; see the module docstring).

    Args:
        p_orig, p_in: (B, C) probabilities on the original and on the masked-in input x * m.
        target: (B,) long, the class predicted on the original input (``p_orig.argmax(1)``).

    Returns:
        (B,) float64 drops in [0, 1] on the CPU (mean x 100 is the reported %); NaN with an
        ``UndefinedScoreWarning`` where p_orig_c = 0 (impossible when the target is argmax p_orig).
    """
    p_c, p_in_c = _target_probabilities(p_orig, p_in, target, "p_in")
    return _ratio_or_nan((p_c - p_in_c).clamp_min(0), p_c, "average drop", "p_orig of the target is 0").cpu()


@register_metric("average_gain", category="faithfulness", higher_is_better=True)
def average_gain(p_orig: torch.Tensor, p_in: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Average Gain (AG): max(0, p_in_c - p_orig_c) / (1 - p_orig_c), the share of the possible gain achieved.

    Args:
        p_orig, p_in: (B, C) probabilities on the original and on the masked-in input x * m.
        target: (B,) long, the class predicted on the original input (``p_orig.argmax(1)``).

    Returns:
        (B,) float64 gains in [0, 1] on the CPU (mean x 100 is the reported %); NaN with an
        ``UndefinedScoreWarning`` where p_orig_c = 1, no gain being possible (SpeechBrain scores 0).
    """
    p_c, p_in_c = _target_probabilities(p_orig, p_in, target, "p_in")
    return _ratio_or_nan((p_in_c - p_c).clamp_min(0), 1 - p_c, "average gain", "p_orig of the target is 1").cpu()


@register_metric("faithfulness_on_spectra", category="faithfulness", higher_is_better=True)
def faithfulness_on_spectra(p_orig: torch.Tensor, p_out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Faithfulness on spectra (FF, Parekh et al., 2022): p_orig_c - p_out_c, the probability the mask takes away.

    Args:
        p_orig: (B, C) probabilities on the original input.
        p_out: (B, C) probabilities on the masked-out input x * (1 - m), what the mask drops.
        target: (B,) long, the class predicted on the original input (``p_orig.argmax(1)``).

    Returns:
        (B,) float64 differences in [-1, 1] on the CPU; the chapter reports their plain mean.
    """
    p_c, p_out_c = _target_probabilities(p_orig, p_out, target, "p_out")
    return (p_c - p_out_c).cpu()


@register_metric("input_fidelity", category="faithfulness", higher_is_better=True)
def input_fidelity(p_orig: torch.Tensor, p_in: torch.Tensor) -> torch.Tensor:
    """Input fidelity (Fid-In, Parekh et al., 2022): 1 where the masked-in input keeps the predicted class.

    1[argmax p_in = argmax p_orig]; ties go to the lowest class index, as ``torch.argmax``.

    Args:
        p_orig, p_in: (B, C) probabilities on the original and on the masked-in input x * m.

    Returns:
        (B,) float64 zeros and ones on the CPU; the chapter reports their plain mean.
    """
    p_orig = _check_probabilities(p_orig, "p_orig")
    p_in = _check_probabilities(p_in, "p_in", like=p_orig)
    return (p_in.argmax(dim=1) == p_orig.argmax(dim=1)).double().cpu()
