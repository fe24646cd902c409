"""What a mixture-of-experts run reports: its architecture, expert usage, scores and routing figures."""

from __future__ import annotations

from collections import Counter

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score

from audioxai.moe.policy import policy_summary

__all__ = ["architecture_text", "expert_usage", "classification_scores", "plot_confusion", "plot_saliency_and_gradcam",
           "plot_patch_selection"]


def architecture_text(network: torch.nn.Module, policy, spectro, labels) -> str:
    """A plain-text description: front-end, policy (experts, masks, rules), parameter counts, classes."""
    params = sum(p.numel() for p in network.parameters())
    experts = sum(p.numel() for p in network.experts.parameters())
    return "\n".join([
        f"front-end: {spectro.kind} at {spectro.sample_rate} Hz, band {spectro.fmin:.0f}-{spectro.fmax:.0f} Hz, "
        f"n_fft {spectro.n_fft}, hop {spectro.hop_length}, {spectro.num_samples} samples per clip",
        f"  why: {spectro.reason}",
        policy_summary(policy),
        f"parameters: {params:,} in all, {experts:,} in the experts",
        f"classes ({'multi-label' if labels.multi_label else 'single-label'}): {', '.join(labels.names)}",
    ]) + "\n"


def expert_usage(selected: torch.Tensor, k: torch.Tensor, gates: torch.Tensor, expert_names: list[str],
                 class_index: torch.Tensor | None = None, class_names: tuple[str, ...] = ()) -> dict:
    """Selection rate per expert, K histogram and mean K (overall and per class), and load balance.

    Load balance is the Switch Transformer auxiliary quantity ``N * sum_i f_i * P_i`` over the whole set
    (f_i: share of the samples' expert slots routed to expert i, P_i: mean gate probability of expert i;
    1 = perfectly uniform, N = everything on one expert), and the coefficient of variation of f.
    """
    selected, gates = selected.float(), gates.float()
    n = selected.shape[1]
    f = selected.sum(0) / selected.sum().clamp_min(1)
    usage = {
        "selection_rate": {name: float(r) for name, r in zip(expert_names, selected.mean(0))},
        "k_histogram": {str(key): int(v) for key, v in sorted(Counter(k.tolist()).items())},
        "mean_k": float(k.float().mean()),
        "load_balance": float(n * (f * gates.mean(0)).sum()),
        "usage_cv": float(f.std(unbiased=False) / f.mean().clamp_min(1e-12)),
    }
    if class_index is not None and class_names:
        usage["per_class"] = {
            name: {"mean_k": float(k[class_index == c].float().mean()),
                   "selection_rate": {e: float(r) for e, r in zip(expert_names, selected[class_index == c].mean(0))}}
            for c, name in enumerate(class_names) if bool((class_index == c).any())}
    return usage


def classification_scores(logits: torch.Tensor, targets: torch.Tensor, multi_label: bool) -> dict:
    """Single-label: accuracy, macro F1 and the confusion matrix; multi-label: mAP (macro average
    precision over classes present), micro and macro F1 at probability 0.5."""
    if multi_label:
        probs, truth = torch.sigmoid(logits).numpy(), targets.numpy().astype(int)
        present = truth.sum(0) > 0
        return {"mAP": float(average_precision_score(truth[:, present], probs[:, present], average="macro")),
                "f1_micro": float(f1_score(truth, probs >= 0.5, average="micro", zero_division=0)),
                "f1_macro": float(f1_score(truth, probs >= 0.5, average="macro", zero_division=0))}
    pred, truth = logits.argmax(1).numpy(), targets.numpy()
    return {"accuracy": float((pred == truth).mean()),
            "f1_macro": float(f1_score(truth, pred, average="macro", zero_division=0)),
            "confusion_matrix": confusion_matrix(truth, pred, labels=list(range(logits.shape[1]))).tolist()}


def plot_confusion(matrix: list[list[int]], names: tuple[str, ...]) -> matplotlib.figure.Figure:
    """The confusion matrix (rows: true class, columns: predicted)."""
    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * len(names), 0.8 + 0.5 * len(names)))
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v > m.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fig.tight_layout()
    return fig


def plot_saliency_and_gradcam(spec: torch.Tensor, saliency: torch.Tensor, cam: torch.Tensor | None,
                              title: str = "") -> matplotlib.figure.Figure:
    """The spectrogram, the router's fast saliency (|gradient x input|) and, when given, Grad-CAM."""
    panels = [("spectrogram", spec, "magma"), ("router saliency", saliency.abs(), "viridis")]
    if cam is not None:
        panels.append(("Grad-CAM", cam, "inferno"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3), sharey=True)
    for ax, (name, image, cmap) in zip(np.atleast_1d(axes), panels):
        ax.imshow(image.detach().cpu().numpy(), origin="lower", aspect="auto", cmap=cmap)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("frame")
    np.atleast_1d(axes)[0].set_ylabel("frequency row")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_patch_selection(importance: torch.Tensor, grid: tuple[int, int], selected: torch.Tensor,
                         expert_names: list[str], titles: list[str]) -> matplotlib.figure.Figure:
    """Per sample: the router's patch importance on its (frequency, time) patch grid, and the experts it ran."""
    count = importance.shape[0]
    fig, axes = plt.subplots(1, count, figsize=(3.2 * count, 3), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(importance[i].reshape(grid).cpu().numpy(), origin="lower", aspect="auto", cmap="viridis")
        chosen = [n for n, s in zip(expert_names, selected[i].tolist()) if s]
        ax.set_title(f"{titles[i]}\nexperts: {', '.join(chosen)}", fontsize=7)
        ax.set_xlabel("time patch")
        ax.set_ylabel("frequency patch")
    fig.tight_layout()
    return fig
