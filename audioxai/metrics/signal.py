"""Signal fidelity: how close is a waveform (e.g. a listenable explanation) to a reference one?

``si_sdr``: the scale-invariant signal-to-distortion ratio (Le Roux, Wisdom, Erdogan & Hershey,
2019, "SDR - Half-baked or Well Done?", ICASSP). Both waveforms are first made zero-mean (a DC
offset is neither signal nor distortion); then the estimate s^ is split into the scaled reference
it contains and the rest,

    alpha = <s^, s> / ||s||^2,   t = alpha s,   e = s^ - t
    SI-SDR = 10 log10( ||t||^2 / (||e||^2 + eps) + eps )   dB

Rescaling the estimate leaves it unchanged (gain is not distortion). Higher is better. The two
``eps`` (default 1e-8) are those of the SI-SDR losses of Asteroid and SpeechBrain (both use
1e-8): a perfect estimate gets a large finite value, 10 log10(||s||^2 / eps) (102 dB for one
second at 16 kHz with an RMS of 0.1), and a silent (constant) estimate 10 log10(eps) = -80 dB
instead of 0 / 0. The first ``eps`` is in energy units: it bites only where ||e||^2 nears 1e-8,
i.e. for very quiet references or near-perfect estimates. Unlike those losses, we add no ``eps``
to ||s||^2: a silent (constant) reference has no signal to find and scores NaN with an
``UndefinedScoreWarning``.

torchaudio 2.11 has no SI-SDR function (only the SQUIM model that predicts one); the tests check
ours against a plain numpy transcription of the formula and against analytic values.
"""

from __future__ import annotations

import warnings

import torch

from audioxai.config import is_finite_number
from audioxai.errors import ConfigError
from audioxai.metrics.base import UndefinedScoreWarning

__all__ = ["si_sdr"]


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB of each estimate against its reference (Le Roux et al., 2019), zero-meaned first.

    Args:
        estimate, reference: (B, T) waveforms of the same shape and sample rate.
        eps: guard against division by zero, default 1e-8 (as Asteroid and SpeechBrain); it caps a
            perfect estimate at 10 log10(||s||^2 / eps) and floors a silent one at 10 log10(eps).

    Returns:
        (B,) float64 SI-SDRs in dB on the CPU, computed in float64 on the inputs' device; NaN with
        an ``UndefinedScoreWarning`` where the reference is silent (constant, so zero once zero-meaned).
    """
    for name, x in (("estimate", estimate), ("reference", reference)):
        if not torch.is_tensor(x) or x.ndim != 2 or 0 in x.shape:
            raise ConfigError(f"{name} must be a batch of waveforms of shape (B, T), got shape "
                              f"{tuple(getattr(x, 'shape', ()))}: stack mono signals of equal length")
        if not torch.isfinite(x).all():
            bad = (~torch.isfinite(x)).any(dim=1).nonzero().flatten().tolist()
            raise ConfigError(f"{name} of sample(s) {bad} contains NaN or infinite values: clean the audio first")
    if estimate.shape != reference.shape:
        raise ConfigError(f"estimate of shape {tuple(estimate.shape)} does not match reference of shape "
                          f"{tuple(reference.shape)}: trim or pad both to the same length")
    if not is_finite_number(eps) or eps < 0:
        raise ConfigError(f"eps must be a finite number >= 0, got {eps!r}")
    s_hat = estimate.detach().double()
    s = reference.detach().to(estimate.device, torch.float64)
    s_hat = s_hat - s_hat.mean(dim=1, keepdim=True)
    s = s - s.mean(dim=1, keepdim=True)
    energy = (s * s).sum(dim=1, keepdim=True)
    silent = energy[:, 0] == 0
    if silent.any():
        warnings.warn(f"SI-SDR is undefined (silent reference) for {int(silent.sum())} sample(s); set to NaN",
                      UndefinedScoreWarning, stacklevel=2)
    alpha = (s_hat * s).sum(dim=1, keepdim=True) / energy.where(~silent[:, None], torch.ones_like(energy))
    target = alpha * s
    distortion = s_hat - target
    ratio = (target * target).sum(dim=1) / ((distortion * distortion).sum(dim=1) + eps) + eps
    return (10 * torch.log10(ratio)).masked_fill(silent, float("nan")).cpu()
