"""Figures of waveforms, spectrograms, alignments and masks (matplotlib), and saving them atomically."""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

import matplotlib.pyplot as plt
import torch

from audioxai.atomic import atomic_path
from audioxai.data.speech import Segment
from audioxai.features.spectrogram import log_mel_spectrogram

__all__ = ["plot_alignment", "plot_spectrogram", "plot_masks", "save_figure", "audio_player"]


def save_figure(fig: matplotlib.figure.Figure, path: str | os.PathLike[str], dpi: int = 80) -> None:
    """Save ``fig`` to ``path`` atomically (format from the suffix)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=str(path).rsplit(".", 1)[-1])


def plot_spectrogram(ax: plt.Axes, spec_db: torch.Tensor, duration: float, title: str = "", ylabel: str = "mel band",
                     cmap: str = "magma", vmin: float | None = None, vmax: float | None = None) -> matplotlib.image.AxesImage:
    """Draw a (bands, frames) array on ``ax`` with time in seconds on the x axis."""
    image = ax.imshow(spec_db.detach().cpu().numpy(), origin="lower", aspect="auto", cmap=cmap,
                      extent=(0.0, duration, 0, spec_db.shape[0]), vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return image


def plot_alignment(waveform: torch.Tensor, sample_rate: int, words: Sequence[Segment], phonemes: Sequence[Segment],
                   n_mels: int = 80, title: str = "") -> matplotlib.figure.Figure:
    """Waveform and log-mel spectrogram with word boundaries (solid) and phoneme boundaries (dotted, IPA)."""
    duration = waveform.numel() / sample_rate
    fig, (ax_wave, ax_spec) = plt.subplots(2, 1, figsize=(11, 5.5), sharex=True, height_ratios=(1, 2.4))
    t = torch.arange(waveform.numel()) / sample_rate
    ax_wave.plot(t.numpy(), waveform.numpy(), lw=0.5, color="0.25")
    ax_wave.set_ylabel("amplitude")
    spec = log_mel_spectrogram(waveform, sample_rate, n_mels=n_mels)
    plot_spectrogram(ax_spec, spec, duration)
    for ax in (ax_wave, ax_spec):
        for w in words:
            ax.axvspan(w.start, w.end, color="tab:cyan", alpha=0.08 if ax is ax_wave else 0.0)
            for edge in (w.start, w.end):
                ax.axvline(edge, color="tab:cyan", lw=1.2)
    for w in words:
        ax_wave.text((w.start + w.end) / 2, 1.02, w.label, transform=ax_wave.get_xaxis_transform(),
                     ha="center", va="bottom", fontsize=10, color="tab:blue")
    for p in phonemes:
        ax_spec.axvline(p.start, color="white", lw=0.6, ls=":")
        ax_spec.text((p.start + p.end) / 2, 2, p.label, ha="center", va="bottom", fontsize=8, color="white")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_masks(mixture: torch.Tensor, clean: torch.Tensor, sample_rate: int, ibm: torch.Tensor, irm: torch.Tensor,
               hop_length: int, title: str = "") -> matplotlib.figure.Figure:
    """Clean and mixture spectrograms beside the ideal binary and ideal ratio masks of the mixture."""
    from audioxai.features.spectrogram import stft_magnitude

    n_fft = 2 * (ibm.shape[0] - 1)
    duration = mixture.numel() / sample_rate
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.6), sharey=True)
    for ax, wave, name in ((axes[0], clean, "clean speech"), (axes[1], mixture, "mixture")):
        mag = stft_magnitude(wave, n_fft, hop_length)
        db = 20 * torch.log10(mag.clamp_min(1e-5))
        plot_spectrogram(ax, db, duration, name, ylabel="frequency bin", vmin=float(db.max()) - 80)
    plot_spectrogram(axes[2], ibm, duration, "ideal binary mask", ylabel="frequency bin", cmap="gray", vmin=0, vmax=1)
    image = plot_spectrogram(axes[3], irm, duration, "ideal ratio mask", ylabel="frequency bin", cmap="viridis", vmin=0, vmax=1)
    fig.colorbar(image, ax=axes[3], fraction=0.05)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def audio_player(waveform: torch.Tensor, sample_rate: int):
    """An IPython audio element for a waveform (not normalised, so relative loudness is kept)."""
    from IPython.display import Audio

    return Audio(waveform.detach().cpu().clamp(-1, 1).numpy(), rate=sample_rate, normalize=False)
