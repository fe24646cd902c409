"""Figures of explanations beside their inputs, and of method rankings.

An explanation is drawn in the same orientation, colour map and scale as its input's preprocessing
figure: images as images, spectrograms with time in seconds and frequency in Hz (mel-band centres),
low frequencies at the bottom. Attributions use a diverging map centred on zero, scaled per sample to
their maximum absolute value.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torchaudio

__all__ = ["plot_input", "plot_explanation_row", "plot_ranking_heatmap", "mel_band_hz"]


def mel_band_hz(n_mels: int, sample_rate: int) -> np.ndarray:
    """Centre frequency in Hz of each slaney-scale mel band from 0 to Nyquist."""
    edges = torchaudio.functional.melscale_fbanks(2049, 0.0, sample_rate / 2, n_mels, sample_rate, "slaney", "slaney")
    freqs = torch.linspace(0, sample_rate / 2, 2049)
    return (freqs[edges.argmax(dim=0)]).numpy()


def _axes_for(ax: plt.Axes, kind: str, resolution: int, duration: float, sample_rate: int) -> dict:
    if kind == "image":
        ax.set_xticks([]), ax.set_yticks([])
        return {"origin": "upper", "extent": None}
    hz = mel_band_hz(resolution, sample_rate)
    ticks = np.linspace(0, resolution - 1, 5).round().astype(int)
    ax.set_yticks(ticks + 0.5, [f"{hz[t]:.0f}" for t in ticks])
    ax.set_ylabel("frequency (Hz)")
    ax.set_xlabel("time (s)")
    return {"origin": "lower", "extent": (0.0, duration, 0, resolution)}


def plot_input(ax: plt.Axes, x: torch.Tensor, kind: str, duration: float = 1.0, sample_rate: int = 8000, title: str = ""):
    """The input as its preprocessing figure shows it: grey image, or magma spectrogram in dB."""
    geometry = _axes_for(ax, kind, x.shape[-1], duration, sample_rate)
    cmap = "gray_r" if kind == "image" else "magma"
    image = ax.imshow(x.squeeze(0).cpu().numpy(), cmap=cmap, aspect="auto" if kind != "image" else "equal",
                      interpolation="nearest", **geometry)
    ax.set_title(title, fontsize=9)
    return image


def plot_attribution(ax: plt.Axes, a: torch.Tensor, kind: str, duration: float = 1.0, sample_rate: int = 8000,
                     title: str = "", span: tuple[float, float] | None = None):
    """Attributions, diverging colours centred on zero, per-sample scale; the digit's span marked on spectrograms."""
    geometry = _axes_for(ax, kind, a.shape[-1], duration, sample_rate)
    values = a.squeeze(0).cpu().numpy()
    scale = float(np.abs(values).max()) or 1.0
    image = ax.imshow(values, cmap="RdBu_r", vmin=-scale, vmax=scale, aspect="auto" if kind != "image" else "equal",
                      interpolation="nearest", **geometry)
    if span is not None:
        for edge in span:
            ax.axvline(edge, color="k", lw=1, ls="--")
    ax.set_title(title, fontsize=9)
    return image


def plot_explanation_row(x: torch.Tensor, attributions: dict[str, torch.Tensor], kind: str, duration: float = 1.0,
                         sample_rate: int = 8000, title: str = "", span: tuple[float, float] | None = None) -> plt.Figure:
    """Input and one panel per method for a single sample."""
    fig, axes = plt.subplots(1, 1 + len(attributions), figsize=(3.2 * (1 + len(attributions)), 3.0))
    plot_input(axes[0], x, kind, duration, sample_rate, "input")
    for ax, (method, a) in zip(axes[1:], attributions.items()):
        plot_attribution(ax, a, kind, duration, sample_rate, method.replace("_", " "), span)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_ranking_heatmap(ranked: pd.DataFrame, title: str = "") -> plt.Figure:
    """Mean rank (1 = best, direction-aware) of each method per metric, one panel per dataset."""
    datasets = sorted(ranked["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 2.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        table = ranked[ranked["dataset"] == dataset].pivot_table(index="method", columns="metric", values="rank", aggfunc="mean")
        image = ax.imshow(table.to_numpy(), cmap="viridis_r", vmin=1, vmax=len(table.index))
        ax.set_xticks(range(len(table.columns)), [c.replace("_", "\n") for c in table.columns], fontsize=8)
        ax.set_yticks(range(len(table.index)), [m.replace("_", " ") for m in table.index], fontsize=8)
        for (i, j), value in np.ndenumerate(table.to_numpy()):
            ax.text(j, i, f"{value:.1f}", ha="center", va="center", color="w", fontsize=8)
        ax.set_title(dataset)
    fig.colorbar(image, ax=axes[0].tolist(), label="mean rank (1 = best)")
    if title:
        fig.suptitle(title)
    return fig
