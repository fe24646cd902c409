"""Mixing speech with noise at a set SNR, and the ideal time-frequency masks of a mixture.

SNR here is always over the whole clip: ``SNR = 10 log10(P_clean / P_noise)`` with ``P = mean(x**2)``
over the last (time) axis. Masks follow the standard definitions: the ideal binary mask (Wang 2005,
"On ideal binary mask as the computational goal of auditory scene analysis") and the ideal ratio
mask (Wang, Narayanan & Wang 2014, "On training targets for supervised speech separation").
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from audioxai.errors import AudioInputError, ConfigError
from audioxai.features.spectrogram import stft_magnitude

logger = logging.getLogger(__name__)

__all__ = [
    "Mixture",
    "rms",
    "signal_to_noise_ratio",
    "mix_at_snr",
    "peak_normalise",
    "ideal_binary_mask",
    "ideal_ratio_mask",
]


@dataclass
class Mixture:
    """A noisy mixture and its parts: ``mixture == clean + noise`` sample for sample.

    Attributes:
        mixture: ``clean + noise``, shaped like the clean input.
        clean: the clean signal as it sits in the mixture (scaled only by ``peak_normalise``).
        noise: the noise tiled or cropped to the clean length and scaled to the requested SNR.
        snr_db: the requested SNR in dB (a float, or a tensor with one value per batch row).
    """

    mixture: torch.Tensor
    clean: torch.Tensor
    noise: torch.Tensor
    snr_db: float | torch.Tensor


def _check_waveform(x: torch.Tensor, name: str) -> torch.Tensor:
    """A float tensor (T,) or (B, T) with at least one finite sample per row, or an AudioInputError."""
    if not isinstance(x, torch.Tensor):
        raise AudioInputError(f"{name} is a {type(x).__name__}, not a torch.Tensor: wrap it with torch.as_tensor")
    if x.dim() not in (1, 2):
        raise AudioInputError(
            f"{name} has {x.dim()} dimensions (shape {tuple(x.shape)}): pass a 1-D waveform (T,) or a batch (B, T)"
        )
    if x.shape[-1] == 0 or x.numel() == 0:
        raise AudioInputError(f"{name} is empty ({x.shape[-1]} samples): pass at least one sample")
    if not x.is_floating_point():
        raise AudioInputError(f"{name} has dtype {x.dtype}: pass floating-point samples, e.g. x.float() / 32768")
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise AudioInputError(
            f"{name} has {bad} NaN or infinite values out of {x.numel()}: remove or replace them "
            f"(e.g. torch.nan_to_num) before mixing"
        )
    return x


def _check_pair(clean: torch.Tensor, noise: torch.Tensor) -> None:
    """Noise must be 1-D or have clean's batch size."""
    if noise.dim() == 2 and (clean.dim() != 2 or noise.shape[0] != clean.shape[0]):
        clean_batch = clean.shape[0] if clean.dim() == 2 else "no batch"
        raise AudioInputError(
            f"noise has batch size {noise.shape[0]} but clean has {clean_batch}: "
            f"pass one noise row per clean row, or a single 1-D noise"
        )


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square over the last axis: ``sqrt(mean(x**2))``; (..., T) -> (...)."""
    return x.square().mean(dim=-1).sqrt()


def signal_to_noise_ratio(clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Whole-clip SNR in dB, ``10 log10(sum(clean**2) / sum(noise**2))`` over the last axis.

    Computed in float64; equal-length inputs give ``10 log10(P_clean / P_noise)`` with P the mean power.
    """
    return 10.0 * torch.log10(clean.double().square().sum(-1) / noise.double().square().sum(-1))


def _fit_length(noise: torch.Tensor, length: int) -> torch.Tensor:
    """Tile the noise (repeat it end to end) and crop it to ``length`` samples along the last axis."""
    reps = math.ceil(length / noise.shape[-1])
    if reps > 1:
        noise = noise.repeat(*([1] * (noise.dim() - 1)), reps)
    return noise[..., :length]


def mix_at_snr(clean: torch.Tensor, noise: torch.Tensor, snr_db: float | torch.Tensor) -> Mixture:
    """Add ``noise`` to ``clean`` scaled so that the mixture has the requested whole-clip SNR.

    ``SNR = 10 log10(P_clean / P_noise)`` with ``P = mean(x**2)`` over the whole clip (per batch row).
    The noise is first tiled (repeated end to end) or cropped to the clean length, then scaled by
    ``g = sqrt(P_clean / (P_noise 10^(SNR/10)))``; the scale is computed in float64, so the achieved SNR
    matches the requested one to better than 1e-4 dB. The clean signal is not changed.

    Args:
        clean: clean waveform (T,) or batch (B, T), finite, not silent.
        noise: noise waveform (T_n,) or (B, T_n); any length, tiled or cropped to T. Must not be silent
            unless ``snr_db`` is +inf.
        snr_db: target SNR in dB, a float or a tensor of B values; +inf gives zero noise.

    Returns:
        A ``Mixture`` with ``mixture = clean + noise``, all in clean's dtype and shape.
    """
    clean, noise = _check_waveform(clean, "clean"), _check_waveform(noise, "noise")
    _check_pair(clean, noise)
    snr = torch.as_tensor(snr_db, dtype=torch.float64)
    if torch.isnan(snr).any() or (snr == -math.inf).any():
        raise ConfigError(f"snr_db={snr_db} is not a usable SNR: pass a finite value in dB, or +inf for no noise")
    batch = clean.shape[:-1]
    if snr.dim() > 0 and snr.shape != batch:
        raise ConfigError(
            f"snr_db has shape {tuple(snr.shape)} but clean has batch shape {tuple(batch)}: "
            f"pass one SNR per clean row, or a single float"
        )
    noise = _fit_length(noise, clean.shape[-1]).expand(*batch, clean.shape[-1])
    p_clean = clean.double().square().mean(-1)
    p_noise = noise.double().square().mean(-1)
    if (p_clean == 0).any():
        raise AudioInputError("clean is silent (all zeros): the SNR is undefined, pass a clean signal with energy")
    finite = torch.isfinite(snr).expand(batch)
    if ((p_noise == 0) & finite).any():
        raise AudioInputError(
            f"noise is silent (all zeros) but snr_db={snr_db} is finite: no gain can reach that SNR, "
            f"pass a noise with energy or snr_db=float('inf')"
        )
    gain = torch.where(finite, torch.sqrt(p_clean / (p_noise.clamp_min(1e-300) * 10.0 ** (snr / 10.0))), 0.0)
    scaled = (noise.double() * gain[..., None]).to(clean.dtype)
    logger.debug("mixing at %s dB SNR, noise gain %s", snr_db, gain)
    return Mixture(mixture=clean + scaled, clean=clean, noise=scaled, snr_db=snr_db)


def peak_normalise(mix: Mixture, peak: float = 0.99) -> Mixture:
    """Scale mixture, clean and noise by one factor so that ``max |mixture| == peak`` (per batch row).

    One factor for all three parts keeps ``mixture == clean + noise`` and the SNR unchanged, and a
    ``peak`` below 1 keeps the mixture from clipping when written as fixed-point audio.
    """
    if not 0 < peak:
        raise ConfigError(f"peak={peak} must be positive: pass e.g. 0.99")
    top = mix.mixture.abs().amax(dim=-1, keepdim=True)
    if (top == 0).any():
        raise AudioInputError("mixture is silent (all zeros): there is no peak to normalise")
    factor = peak / top
    return Mixture(mixture=mix.mixture * factor, clean=mix.clean * factor, noise=mix.noise * factor,
                   snr_db=mix.snr_db)


def _magnitudes(clean: torch.Tensor, noise: torch.Tensor, n_fft: int, hop_length: int):
    clean, noise = _check_waveform(clean, "clean"), _check_waveform(noise, "noise")
    if clean.shape != noise.shape:
        raise AudioInputError(
            f"noise has shape {tuple(noise.shape)} but clean has {tuple(clean.shape)}: pass the two parts "
            f"of one mixture, e.g. Mixture.clean and Mixture.noise from mix_at_snr"
        )
    if clean.shape[-1] <= n_fft // 2:
        raise AudioInputError(
            f"clean has {clean.shape[-1]} samples, fewer than the n_fft // 2 + 1 = {n_fft // 2 + 1} the centred "
            f"STFT needs: pass a longer waveform or a smaller n_fft"
        )
    return stft_magnitude(clean, n_fft, hop_length), stft_magnitude(noise, n_fft, hop_length)


def ideal_binary_mask(
    clean: torch.Tensor,
    noise: torch.Tensor,
    n_fft: int = 512,
    hop_length: int = 128,
    local_criterion_db: float = 0.0,
) -> torch.Tensor:
    """Ideal binary mask (Wang 2005): ``IBM(f, t) = 1 if 20 log10(|S(f,t)| / |N(f,t)|) > LC else 0``.

    S and N are the STFTs (periodic Hann window, centred frames, ``audioxai.features.spectrogram.
    stft_magnitude``) of the clean signal and the noise as they sit in the mixture. The local SNR is
    ``20 (log10 |S| - log10 |N|)``: a bin where N = 0 and S > 0 has +inf and is 1; a bin where S = 0
    has -inf (or is undefined when N = 0 too) and is 0 for every LC, so ``LC = -inf`` gives 1 exactly
    where S != 0.

    Args:
        clean, noise: waveforms of the same shape, (T,) or (B, T).
        n_fft, hop_length: STFT size and hop in samples.
        local_criterion_db: LC in dB (0 dB in Wang 2005; -5 dB and -6 dB are also common).

    Returns:
        A float mask of 0s and 1s, (F, frames) or (B, F, frames) with ``F = n_fft // 2 + 1``.
    """
    if math.isnan(local_criterion_db) or local_criterion_db == math.inf:
        raise ConfigError(f"local_criterion_db={local_criterion_db} is not usable: pass a number in dB or -inf")
    s, n = _magnitudes(clean, noise, n_fft, hop_length)
    local_snr_db = 20.0 * (torch.log10(s) - torch.log10(n))  # NaN where both are 0: compares False
    return (local_snr_db > local_criterion_db).to(s.dtype)


def ideal_ratio_mask(
    clean: torch.Tensor,
    noise: torch.Tensor,
    n_fft: int = 512,
    hop_length: int = 128,
    beta: float = 0.5,
) -> torch.Tensor:
    """Ideal ratio mask (Wang, Narayanan & Wang 2014): ``IRM = (|S|^2 / (|S|^2 + |N|^2))^beta``.

    S and N are the STFTs of the clean signal and the noise as in ``ideal_binary_mask``. Values lie in
    [0, 1]; a bin where both S and N are zero (0/0) is set to 0. ``beta = 0.5`` is the paper's choice
    (a square-root Wiener-like gain); ``beta = 1`` gives the Wiener filter gain.

    Returns:
        A float mask, (F, frames) or (B, F, frames) with ``F = n_fft // 2 + 1``.
    """
    if not beta > 0:
        raise ConfigError(f"beta={beta} must be positive: the paper uses 0.5")
    s, n = _magnitudes(clean, noise, n_fft, hop_length)
    ps, total = s.square(), s.square() + n.square()
    ratio = torch.where(total > 0, ps / total.clamp_min(torch.finfo(total.dtype).tiny), 0.0)
    return ratio.clamp(0.0, 1.0) ** beta
