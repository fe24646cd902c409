"""Figures and the explorer of the L-MAC chapter: masks under the phoneme alignment, training curves."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

from audioxai.features.spectrogram import stft_magnitude
from audioxai.viz.figures import audio_player, plot_spectrogram

__all__ = ["plot_mask_over_phonemes", "plot_lmac_curves", "lmac_explorer", "threshold_mask"]


def _phoneme_marks(ax: plt.Axes, phonemes: Sequence[tuple[str, float, float]], color: str, y: float) -> None:
    for label, start, end in phonemes:
        ax.axvline(start, color=color, lw=0.7, ls=":")
        ax.text((start + end) / 2, y, label, ha="center", va="bottom", fontsize=8, color=color,
                transform=ax.get_xaxis_transform())


def plot_mask_over_phonemes(mixture: torch.Tensor, masks: dict[str, torch.Tensor], sample_rate: int,
                            phonemes: Sequence[tuple[str, float, float]] = (), n_fft: int = 512,
                            hop_length: int = 128, title: str = "") -> plt.Figure:
    """The mixture's spectrogram, then each method's mask, all with the eSpeak phoneme boundaries (IPA).

    Time-frequency masks are drawn as images over the same frequency bins (0 to 1, viridis);
    temporal masks as a line over time.
    """
    duration = mixture.numel() / sample_rate
    fig, axes = plt.subplots(1 + len(masks), 1, figsize=(9, 1.9 * (1 + len(masks))), sharex=True)
    db = 20 * torch.log10(stft_magnitude(mixture, n_fft, hop_length).clamp_min(1e-5))
    plot_spectrogram(axes[0], db, duration, "mixture (dB)", ylabel="bin", vmin=float(db.max()) - 80)
    _phoneme_marks(axes[0], phonemes, "white", 0.02)
    for ax, (name, mask) in zip(axes[1:], masks.items()):
        if mask.ndim == 2:
            plot_spectrogram(ax, mask, duration, name.replace("_", " "), ylabel="bin", cmap="viridis", vmin=0, vmax=1)
            _phoneme_marks(ax, phonemes, "white", 0.02)
        else:
            t = torch.arange(mask.numel()) / sample_rate
            ax.plot(t.numpy(), mask.detach().cpu().numpy(), color="tab:green", lw=1)
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("mask")
            ax.set_title(name.replace("_", " "))
            _phoneme_marks(ax, phonemes, "0.3", 0.02)
    axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_lmac_curves(classifier_history, lmac_history) -> plt.Figure:
    """Classifier loss and accuracy per epoch; L-MAC's loss terms, mask mean and validation Fid-In."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot(classifier_history.train_loss, label="train loss")
    axes[0].plot(classifier_history.val_loss, label="val loss")
    axes[0].plot(classifier_history.val_acc, label="val accuracy")
    axes[0].set_title("classifier")
    axes[1].plot(lmac_history.train_loss, label="L-MAC loss")
    axes[1].plot(lmac_history.ce_in, label="CE in-mask")
    axes[1].plot(lmac_history.ce_out, label="CE out-mask")
    axes[1].set_title("interpreter training")
    axes[2].plot(lmac_history.mask_mean, label="mean mask")
    axes[2].plot(lmac_history.val_fid_in, label="val Fid-In")
    axes[2].set_title("mask size and fidelity")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def threshold_mask(mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """The mask with every value below ``threshold`` set to 0 (0 keeps the soft mask as it is)."""
    return mask * (mask >= threshold)


def lmac_explorer(lmac, waveforms: torch.Tensor, masks: dict[str, torch.Tensor], phonemes: Sequence = (),
                  labels: Sequence[int] = ()):
    """Pick sample, method and threshold; see the mask under the phonemes and hear the masked audio."""
    from audioxai.viz.widgets import threshold_explorer

    device = next(lmac.decoder.parameters()).device

    def draw(method: str, i: int, threshold: float) -> tuple:
        x = waveforms[i]
        m = threshold_mask(masks[method][i], threshold)
        with torch.no_grad():
            heard = lmac.apply_mask(x[None].to(device), m[None].to(device))[0].cpu()
        digit = f", digit {labels[i]}" if len(labels) else ""
        fig = plot_mask_over_phonemes(x, {method: m}, lmac.sample_rate, phonemes[i] if len(phonemes) else (),
                                      lmac.config.n_fft, lmac.config.hop_length, f"sample {i}{digit}")
        return fig, audio_player(heard, lmac.sample_rate)

    return threshold_explorer(list(masks), len(waveforms), draw)
