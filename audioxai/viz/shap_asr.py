"""Figures and the listening widget of chapter 4: Shapley values of a recogniser's words over time and frequency."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import display

from audioxai.data.speech import Segment
from audioxai.features.spectrogram import log_mel_spectrogram
from audioxai.viz.figures import audio_player, plot_spectrogram

__all__ = ["plot_training_curves", "patch_grid", "plot_time_shap", "plot_word_bars", "plot_tf_comparison", "plot_estimator_costs",
           "keep_segments", "word_listener"]

Bounds = Sequence[tuple[float, float, float, float]]


def plot_training_curves(history) -> matplotlib.figure.Figure:
    """CTC loss (train and validation) and validation WER per epoch of an ``ASRHistory``; the kept epoch marked."""
    epochs = np.arange(1, len(history.train_loss) + 1)
    fig, (ax_loss, ax_wer) = plt.subplots(1, 2, figsize=(9, 3))
    ax_loss.plot(epochs, history.train_loss, label="train")
    ax_loss.plot(epochs, history.val_loss, label="validation")
    ax_loss.set_ylabel("CTC loss")
    ax_loss.legend()
    ax_wer.plot(epochs, history.val_wer, color="tab:green")
    ax_wer.set_ylabel("validation WER")
    for ax in (ax_loss, ax_wer):
        ax.axvline(history.best_epoch, color="0.5", ls="--", lw=0.8)
        ax.set_xlabel("epoch")
    fig.tight_layout()
    return fig


def patch_grid(values: torch.Tensor | np.ndarray, bounds: Bounds) -> tuple[np.ndarray, list[float], list[float]]:
    """Arrange one value per feature on the (frequency band, time window) grid the features tile.

    Returns ``(grid (bands, windows), time edges in s, frequency edges in Hz)``; cells no feature covers are NaN.
    """
    values = np.asarray(torch.as_tensor(values, dtype=torch.float64).cpu())
    times = sorted({(b[0], b[1]) for b in bounds})
    freqs = sorted({(b[2], b[3]) for b in bounds})
    grid = np.full((len(freqs), len(times)), np.nan)
    for v, b in zip(values, bounds):
        grid[freqs.index((b[2], b[3])), times.index((b[0], b[1]))] = v
    return grid, [t[0] for t in times] + [times[-1][1]], [f[0] for f in freqs] + [freqs[-1][1]]


def _word_lines(ax: plt.Axes, words: Sequence[Segment], label_y: float | None = None) -> None:
    for w in words:
        for edge in (w.start, w.end):
            ax.axvline(edge, color="tab:cyan", lw=1.0)
        if label_y is not None:
            ax.text((w.start + w.end) / 2, label_y, w.label, transform=ax.get_xaxis_transform(), ha="center",
                    va="bottom", fontsize=9, color="tab:blue")


def plot_time_shap(waveform: torch.Tensor, sample_rate: int, words: Sequence[Segment], values: torch.Tensor,
                   bounds: Bounds, output_names: Sequence[str], title: str = "") -> matplotlib.figure.Figure:
    """Log-mel spectrogram with the reference word boundaries, under it one row of SHAP values over time
    per explained output (each hypothesis word and the whole transcript), each row scaled to its own
    largest magnitude (red: the segment raises the output's log-probability; blue: lowers it)."""
    duration = waveform.numel() / sample_rate
    values = torch.as_tensor(values, dtype=torch.float64).cpu()
    edges = [b[0] for b in bounds] + [bounds[-1][1]]
    rows = (values / values.abs().amax(0).clamp_min(1e-12)).T.numpy()
    fig, (ax_spec, ax_shap) = plt.subplots(2, 1, figsize=(11, 3 + 0.32 * len(output_names)), sharex=True,
                                           height_ratios=(2, max(1.0, 0.3 * len(output_names))))
    plot_spectrogram(ax_spec, log_mel_spectrogram(waveform, sample_rate, n_mels=64), duration)
    _word_lines(ax_spec, words, label_y=1.01)
    ax_shap.pcolormesh(edges, np.arange(len(output_names) + 1), rows, cmap="RdBu_r", vmin=-1, vmax=1)
    ax_shap.set_yticks(np.arange(len(output_names)) + 0.5, labels=list(output_names), fontsize=8)
    ax_shap.invert_yaxis()
    ax_shap.set_xlabel("time (s)")
    _word_lines(ax_shap, words)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_word_bars(values: torch.Tensor, bounds: Bounds, word: Segment | None, name: str,
                   ax: plt.Axes | None = None) -> plt.Axes:
    """Bars of one output's SHAP value per time segment, with the word's aligned interval shaded."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 2.4))
    values = torch.as_tensor(values, dtype=torch.float64).cpu().numpy()
    left = np.array([b[0] for b in bounds])
    width = np.array([b[1] - b[0] for b in bounds])
    ax.bar(left, values, width=width, align="edge", color=np.where(values >= 0, "tab:red", "tab:blue"),
           edgecolor="white", linewidth=0.3)
    if word is not None:
        ax.axvspan(word.start, word.end, color="tab:cyan", alpha=0.2, label=f"'{word.label}' aligned")
        ax.legend(loc="upper right", fontsize=8)
    ax.axhline(0, color="0.3", lw=0.6)
    ax.set_title(name, fontsize=10)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("SHAP value (nats)")
    return ax


def plot_tf_comparison(values: torch.Tensor, bounds: Bounds, masks: dict[str, torch.Tensor],
                       title: str = "") -> matplotlib.figure.Figure:
    """Time-frequency SHAP values on the patch grid beside the ideal masks' mean per patch."""
    panels = {"SHAP value": values, **masks}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.2), sharey=True)
    for ax, (name, v) in zip(np.atleast_1d(axes), panels.items()):
        grid, t_edges, f_edges = patch_grid(v, bounds)
        if name == "SHAP value":
            scale = np.nanmax(np.abs(grid)) or 1.0
            image = ax.pcolormesh(t_edges, np.arange(len(f_edges)), grid, cmap="RdBu_r", vmin=-scale, vmax=scale)
        else:
            image = ax.pcolormesh(t_edges, np.arange(len(f_edges)), grid, cmap="viridis", vmin=0, vmax=1)
        ax.set_yticks(np.arange(len(f_edges)), labels=[f"{f / 1000:.1f}" for f in f_edges], fontsize=7)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("time (s)")
        fig.colorbar(image, ax=ax, fraction=0.05)
    np.atleast_1d(axes)[0].set_ylabel("band edge (kHz, mel-spaced)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_estimator_costs(costs, ax: plt.Axes | None = None) -> plt.Axes:
    """Seconds per explanation against model evaluations per explanation, one point per estimator.

    ``costs`` is a table with columns ``estimator``, ``seconds`` and ``evaluations``.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    for row in costs.itertuples():
        ax.scatter(max(row.evaluations, 1), row.seconds, s=30)
        ax.annotate(row.estimator, (max(row.evaluations, 1), row.seconds), fontsize=8, xytext=(4, 2),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("model evaluations per explanation")
    ax.set_ylabel("seconds per explanation")
    return ax


def keep_segments(waveform: torch.Tensor, sample_rate: int, values: torch.Tensor, bounds: Bounds,
                  top: int) -> torch.Tensor:
    """The waveform with only its ``top`` segments of largest positive SHAP value audible (others silent)."""
    keep = torch.zeros_like(waveform)
    order = torch.argsort(torch.as_tensor(values, dtype=torch.float64), descending=True)[:top]
    for m in order.tolist():
        if float(values[m]) <= 0:
            continue
        a, b = int(round(bounds[m][0] * sample_rate)), int(round(bounds[m][1] * sample_rate))
        keep[a:b] = 1.0
    return waveform * keep


def word_listener(waveforms: Sequence[torch.Tensor], sample_rate: int, words: Sequence[Sequence[Segment]],
                  values: Sequence[torch.Tensor], bounds: Sequence[Bounds], output_names: Sequence[Sequence[str]],
                  captions: Sequence[str], top: int = 3) -> widgets.VBox:
    """Pick an utterance and one of its explained words; see that word's SHAP bars and listen to the whole
    utterance and to only the ``top`` segments that raised the word's log-probability most.

    ``values[i]`` is utterance i's (M, K) time-segment SHAP values, ``output_names[i]`` its K output names.
    The box's ``rendered`` lists each ``(utterance, word)`` drawn, in order.
    """
    utterance = widgets.Dropdown(options=[(c, i) for i, c in enumerate(captions)], description="utterance")
    word = widgets.Dropdown(description="word")
    count = widgets.IntSlider(value=top, min=1, max=12, description="segments")
    output = widgets.Output()
    rendered: list[tuple[int, int]] = []
    syncing = [False]

    def sync(_=None) -> None:
        syncing[0] = True
        word.options = [(n, k) for k, n in enumerate(output_names[utterance.value])]
        word.value = 0  # a Dropdown given its first options has no selection yet
        syncing[0] = False

    def render(_=None) -> None:
        i, k = utterance.value, word.value
        if k is None or syncing[0]:
            return
        name = output_names[i][k]
        match = next((w for w in words[i] if w.label == name.split(" ")[0]), None)
        fig, ax = plt.subplots(figsize=(8, 2.6))
        plot_word_bars(values[i][:, k], bounds[i], match, f"{captions[i]}: {name}", ax=ax)
        with output:
            output.clear_output(wait=True)
            display(fig)
            plt.close(fig)
            display(widgets.HTML("whole utterance"), audio_player(waveforms[i], sample_rate))
            kept = keep_segments(waveforms[i], sample_rate, values[i][:, k], bounds[i], count.value)
            display(widgets.HTML(f"only the {count.value} segments that mattered most for '{name}'"),
                    audio_player(kept, sample_rate))
        rendered.append((i, k))

    utterance.observe(lambda change: (sync(), render()), names="value")
    for control in (word, count):
        control.observe(render, names="value")
    sync()
    render()
    box = widgets.VBox([widgets.HBox([utterance, word, count]), output])
    box.rendered = rendered
    return box
