"""Figures and the explorer of the prototype-XAI chapter: frame importance over spectrograms with the true
spoofed segments shaded, training curves of both stages."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import torch

from audioxai.data.spoofs import FRAME_SECONDS
from audioxai.features.spectrogram import stft_magnitude
from audioxai.viz.figures import audio_player, plot_spectrogram

__all__ = ["spoofed_spans", "frame_gate", "plot_importance_over_spectrogram", "plot_stage_curves", "importance_explorer"]


def spoofed_spans(frame_labels: torch.Tensor, frame_seconds: float = FRAME_SECONDS) -> list[tuple[float, float]]:
    """Runs of spoofed frames as (start, end) seconds."""
    spans, start = [], None
    values = [bool(v) for v in frame_labels.tolist()] + [False]
    for k, v in enumerate(values):
        if v and start is None:
            start = k
        elif not v and start is not None:
            spans.append((start * frame_seconds, k * frame_seconds))
            start = None
    return spans


def _label_frame_centres(num_frames: int, step: float) -> torch.Tensor:
    """Centres ``(k + 0.5) * step`` of ``num_frames`` label frames ``step`` long from 0 (float64): where a
    map is drawn and gated when the detector's own frame centres are not given."""
    return (torch.arange(num_frames, dtype=torch.float64) + 0.5) * step


def frame_gate(keep: torch.Tensor, num_samples: int, frame_centres: torch.Tensor) -> torch.Tensor:
    """Per-sample values ``(num_samples,)`` from per-frame ones ``keep`` ``(F,)``: each sample takes the frame
    whose centre (``frame_centres``, in samples, evenly spaced: ``SpoofDetector.frame_centres``) is nearest."""
    keep = keep.detach().float().cpu().flatten()
    centres = frame_centres.detach().double().cpu().flatten()
    if keep.numel() != centres.numel() or keep.numel() == 0:
        raise ValueError(f"frame_gate: {keep.numel()} frame values for {centres.numel()} frame centres")
    hop = float(centres[1] - centres[0]) if centres.numel() > 1 else float(num_samples)
    index = torch.floor((torch.arange(num_samples, dtype=torch.float64) - centres[0]) / hop + 0.5).long()
    return keep[index.clamp(0, keep.numel() - 1)]


def _shade(ax: plt.Axes, spans: Sequence[tuple[float, float]]) -> None:
    for start, end in spans:
        ax.axvspan(start, end, color="tab:red", alpha=0.18, lw=0)


def plot_importance_over_spectrogram(waveform: torch.Tensor, sample_rate: int, maps: dict[str, torch.Tensor],
                                     frame_labels: torch.Tensor, splice_points: Sequence[float] = (),
                                     title: str = "", frame_seconds: float = FRAME_SECONDS,
                                     frame_times: torch.Tensor | None = None) -> plt.Figure:
    """The spectrogram, then each method's frame map (scaled to its maximum for display), with the true
    spoofed frames shaded red and splice points dashed.

    ``frame_labels``: the clip's label frames (``frame_seconds`` each, from 0). ``frame_times``: the time
    in seconds each map value is drawn at (``detector.frame_centres(T) / sample_rate``); by default the
    label frames' centres, ``(k + 0.5) * frame_seconds``."""
    duration = waveform.numel() / sample_rate
    fig, axes = plt.subplots(1 + len(maps), 1, figsize=(9, 1.2 + 1.3 * (1 + len(maps))), sharex=True,
                             gridspec_kw={"height_ratios": [2] + [1] * len(maps)})
    db = 20 * torch.log10(stft_magnitude(waveform, 512, 128).clamp_min(1e-5))
    plot_spectrogram(axes[0], db, duration, "spectrogram (dB); red: spoofed frames", ylabel="bin",
                     vmin=float(db.max()) - 80)
    spans = spoofed_spans(frame_labels, frame_seconds)
    _shade(axes[0], spans)
    for ax, (name, w) in zip(axes[1:], maps.items()):
        w = w.detach().double().cpu()
        shown = w / w.max().clamp_min(1e-12)
        t = _label_frame_centres(len(w), frame_seconds) if frame_times is None else frame_times.double().cpu()
        ax.plot(t.numpy(), shown.numpy(), color="tab:blue", lw=1.2)
        _shade(ax, spans)
        for p in splice_points:
            ax.axvline(p, color="0.3", lw=0.8, ls="--")
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("w" if name.startswith("prototype") else "a / max", fontsize=8)
        ax.set_title(name.replace("_", " "), fontsize=9)
    axes[-1].set_xlabel("time (s)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_stage_curves(detector_history, stage2_histories: dict[str, object]) -> plt.Figure:
    """Stage 1: losses and validation EER per epoch (averaged epochs marked); stage 2: validation loss and
    non-degenerate share per epoch for each prototype mode."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    axes[0].plot(detector_history.train_loss, label="train loss")
    axes[0].plot(detector_history.val_loss, label="val loss")
    axes[0].set_title("stage 1: detector")
    axes[1].plot(detector_history.val_eer, label="val EER", color="tab:red")
    for epoch in getattr(detector_history, "averaged_epochs", []):
        axes[1].axvline(epoch - 1, color="0.6", lw=0.8, ls=":")
    axes[1].set_title("detector val EER (dotted: averaged epochs)")
    for mode, history in stage2_histories.items():
        axes[2].plot(history.val_loss, label=f"{mode} val loss")
        axes[2].plot(history.val_nondegenerate, ls="--", label=f"{mode} 0.05<w<0.95")
    axes[2].set_title("stage 2: XAI module")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def importance_explorer(waveforms: torch.Tensor, sample_rate: int, maps: dict[str, torch.Tensor],
                        frame_labels: torch.Tensor, captions: Sequence[str] = (), frame_seconds: float = FRAME_SECONDS,
                        frame_centres: torch.Tensor | None = None):
    """Pick an utterance and a method and a threshold: see the map over the spectrogram and hear the frames
    whose importance reaches the threshold (the rest silenced). ``frame_centres``: where each map frame is
    centred, in samples (``detector.frame_centres(T)``); by default the label frames' centres."""
    from audioxai.viz.widgets import threshold_explorer

    hop = frame_seconds * sample_rate

    def draw(method: str, i: int, threshold: float) -> tuple:
        x, w = waveforms[i], maps[method][i]
        centres = _label_frame_centres(len(w), hop) if frame_centres is None else frame_centres
        gate = frame_gate(w / w.max().clamp_min(1e-12) >= threshold, x.numel(), centres).to(x.dtype)
        caption = captions[i] if len(captions) else f"utterance {i}"
        fig = plot_importance_over_spectrogram(x, sample_rate, {method: w}, frame_labels[i], title=caption,
                                               frame_seconds=frame_seconds, frame_times=centres / sample_rate)
        return fig, audio_player(x * gate, sample_rate)

    return threshold_explorer(list(maps), len(waveforms), draw, sample_label="utterance", threshold=0.5)
