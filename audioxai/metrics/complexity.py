"""Complexity: how concentrated is an explanation? Fewer, stronger features are easier to read.

``complexity_entropy``, registered as "complexity" (Bhatt, Weller & Moura, 2020, "Evaluating and
Aggregating Feature-based Model Explanations", IJCAI): the Shannon entropy (natural log) of the attribution distribution
p_i = |a_i| / sum_j |a_j| over the n features of a sample,

    H = -sum_i p_i ln p_i        (0 ln 0 = 0)

0 when one feature gets all the mass, ln n when every feature gets the same. Lower is better.
Equals Quantus 0.6.0's ``Complexity`` (default ``abs=True``, ``normalise=True``) to about n x 1e-12:
Quantus divides by the batch's max |a| first, which the ratio p_i cancels, and takes
ln(p_i + 1e-12), which we do not. An all-zero explanation, 0 / 0 in Quantus too (NaN and a numpy
warning), is NaN with an ``UndefinedScoreWarning`` here.

``sparseness`` (Chalasani, Chen, Chowdhury, Wu & Jha, 2020, "Concise Explanations of Neural
Networks using Adversarial Training", ICML): the Gini index of the absolute attributions. With
the n values of |a| (divided by their max, plus ``eps``) sorted ascending, v_1 <= ... <= v_n,

    G = sum_i (2i - n - 1) v_i / (n sum_i v_i)

0 when every feature gets the same mass, (n - 1)/n when one feature gets it all. Higher is better.

Computes exactly Quantus 0.6.0's ``Sparseness`` formula (default ``abs=True``, ``normalise=True``,
the ``+ 1e-7`` included) with these differences:

- **Per-sample normalisation.** The Gini index itself ignores scale, but Quantus adds its 1e-7 after
  dividing by the maximum over the *whole batch*, so the same explanation scores differently next
  to a batch-mate with larger attributions (much so for sparse maps). We divide each sample by its
  own max |a| first, so ``eps`` is relative to the sample and a score depends on it alone; calling
  Quantus on one sample at a time gives our numbers.
- **All-zero explanations.** Quantus adds 1e-7 to zeros and reports G = 0, "perfectly dense", for
  an explanation that says nothing. We report NaN with an ``UndefinedScoreWarning``.
"""

from __future__ import annotations

import warnings

import torch

from audioxai.errors import ConfigError
from audioxai.metrics.base import UndefinedScoreWarning, normalise_per_sample, register_metric

__all__ = ["sparseness", "complexity_entropy"]


def _check_attributions(attributions: torch.Tensor) -> None:
    if not torch.is_tensor(attributions) or attributions.ndim < 2 or attributions.shape[0] == 0:
        raise ConfigError(f"attributions must be a batched tensor (B, ...), got shape "
                          f"{tuple(getattr(attributions, 'shape', ()))}")
    if not torch.isfinite(attributions).all():
        raise ConfigError("attributions contain NaN or infinite values: fix the explainer output before scoring it")


@register_metric("sparseness", category="complexity", higher_is_better=True)
def sparseness(attributions: torch.Tensor, *, eps: float = 1e-7) -> torch.Tensor:
    """Gini index of each sample's |attributions| (Chalasani et al., 2020), as Quantus's ``Sparseness``.

    Args:
        attributions: (B, ...) attributions.
        eps: added to every |a| / max|a| before the index, as Quantus's 1e-7 (default, so that scores
            equal Quantus's on one sample at a time); 0 gives the plain Gini index.

    Returns:
        (B,) float64 indices in [0, 1) on the CPU; NaN with an ``UndefinedScoreWarning`` for
        all-zero attributions.
    """
    _check_attributions(attributions)
    a = attributions.detach().flatten(1).abs()
    empty = (a == 0).all(dim=1)
    a = (normalise_per_sample(a) + eps).sort(dim=1).values.double()
    n = a.shape[1]
    weights = 2 * torch.arange(1, n + 1, dtype=torch.float64, device=a.device) - n - 1
    gini = (weights * a).sum(dim=1) / (n * a.sum(dim=1))
    if empty.any():
        warnings.warn(f"sparseness is undefined for {int(empty.sum())} all-zero explanation(s); set to NaN",
                      UndefinedScoreWarning, stacklevel=2)
    return gini.masked_fill(empty, float("nan")).cpu()


@register_metric("complexity", category="complexity", higher_is_better=False)
def complexity_entropy(attributions: torch.Tensor) -> torch.Tensor:
    """Entropy of each sample's |a| / sum |a| (Bhatt et al., 2020), as Quantus's ``Complexity``.

    Args:
        attributions: (B, ...) attributions, signed or not (only |a| counts).

    Returns:
        (B,) float64 entropies in nats, in [0, ln n] for n features per sample, on the CPU; NaN with
        an ``UndefinedScoreWarning`` for all-zero attributions.
    """
    _check_attributions(attributions)
    a = attributions.detach().flatten(1).abs().double()
    total = a.sum(dim=1, keepdim=True)
    empty = total[:, 0] == 0
    p = a / total.where(~empty[:, None], torch.ones_like(total))
    entropy = -torch.special.xlogy(p, p).sum(dim=1)
    if empty.any():
        warnings.warn(f"complexity is undefined for {int(empty.sum())} all-zero explanation(s); set to NaN",
                      UndefinedScoreWarning, stacklevel=2)
    return entropy.masked_fill(empty, float("nan")).cpu()
