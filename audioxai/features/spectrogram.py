"""Spectrogram front-ends: STFT magnitude and log-mel, in torch, batched, on the input's device."""

from __future__ import annotations

import functools

import torch
import torchaudio

__all__ = ["stft_magnitude", "log_mel_spectrogram", "frame_times"]


def stft_magnitude(waveform: torch.Tensor, n_fft: int = 512, hop_length: int = 128) -> torch.Tensor:
    """|STFT| with a periodic Hann window; (..., T) -> (..., n_fft // 2 + 1, frames), centred frames."""
    window = torch.hann_window(n_fft, device=waveform.device, dtype=waveform.dtype)
    spec = torch.stft(waveform.reshape(-1, waveform.shape[-1]), n_fft, hop_length, window=window,
                      center=True, return_complex=True)
    return spec.abs().reshape(*waveform.shape[:-1], *spec.shape[-2:])


@functools.lru_cache(maxsize=16)
def _mel_fb(n_freqs: int, n_mels: int, sample_rate: int, f_min: float, f_max: float) -> torch.Tensor:
    return torchaudio.functional.melscale_fbanks(n_freqs, f_min, f_max, n_mels, sample_rate, norm="slaney", mel_scale="slaney")


def log_mel_spectrogram(
    waveform: torch.Tensor,
    sample_rate: int = 16000,
    n_mels: int = 64,
    n_fft: int = 512,
    hop_length: int = 160,
    f_min: float = 0.0,
    f_max: float | None = None,
    top_db: float | None = 80.0,
) -> torch.Tensor:
    """Log-mel power spectrogram in dB: (..., T) -> (..., n_mels, frames).

    10 log10(max(mel power, 1e-10)); with ``top_db`` the floor is ``top_db`` below each sample's maximum
    (per sample, not per batch), so silence maps to the same floor whatever the batch holds.
    """
    power = stft_magnitude(waveform, n_fft, hop_length) ** 2
    fb = _mel_fb(n_fft // 2 + 1, n_mels, sample_rate, f_min, f_max or sample_rate / 2).to(power)
    mel = torch.matmul(power.transpose(-1, -2), fb).transpose(-1, -2)
    db = 10.0 * torch.log10(mel.clamp_min(1e-10))
    if top_db is not None:
        peak = db.amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - top_db)
    return db


def frame_times(num_frames: int, sample_rate: int, hop_length: int) -> torch.Tensor:
    """Centre time in seconds of each frame of a centred STFT."""
    return torch.arange(num_frames, dtype=torch.float32) * hop_length / sample_rate
