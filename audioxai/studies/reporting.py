"""Files of the cross-modality study, named as in the design note.

Under the notebook's results folder:
``visualizations/{dataset}_{method}_{resolution}_{sample_id}.png`` and ``.npy`` (the attribution),
``metrics/{metric}_{dataset}_{method}_{resolution}.csv`` (one score per explained sample),
``summaries/cross_modality_summary.md``, ``summaries/resolution_summary.md`` and
``summaries/method_ranking.png``. Every file is written atomically.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from audioxai.atomic import atomic_path, atomic_write_text
from audioxai.metrics.aggregate import rank_methods
from audioxai.viz.explanations import plot_attribution, plot_input, plot_ranking_heatmap
from audioxai.viz.figures import save_figure

__all__ = ["write_visualizations", "write_metric_csvs", "write_summaries", "format_interval", "metric_disagreement",
           "resolution_trend"]


def resolution_trend(means, lows, highs) -> str:
    """How a score moves from the lowest to the highest resolution, judged with the 95% intervals.

    "rises" or "falls" when the means move monotonically and the intervals at the two ends do not
    overlap; "flat" when the end intervals overlap; "mixed" when the end intervals are apart but the
    means go up and down on the way; "n/a" when a mean is undefined.
    """
    means, lows, highs = (np.asarray(v, dtype=float) for v in (means, lows, highs))
    if len(means) < 2 or np.isnan(means).any():
        return "n/a"
    apart = lows[-1] > highs[0] or highs[-1] < lows[0]
    if not apart:
        return "flat"
    steps = np.diff(means)
    if (steps > 0).all():
        return "rises"
    if (steps < 0).all():
        return "falls"
    return "mixed"


def write_visualizations(out: Path, dataset: str, resolution: int, data, attributions: dict[str, torch.Tensor],
                         num: int) -> list[Path]:
    """Input beside each method's attribution for the first ``num`` explained samples; PNG and NPY."""
    written = []
    folder = Path(out) / "visualizations"
    for i in range(min(num, len(data))):
        span = None
        if data.kind == "spectrogram" and data.truth is not None:
            frames = data.truth[i, 0, 0].nonzero().flatten()
            if frames.numel():
                hop = data.duration / data.resolution
                span = (float(frames[0]) * hop, float(frames[-1]) * hop)
        for method, attr in attributions.items():
            stem = folder / f"{dataset}_{method}_{resolution}_{i}"
            fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.0))
            plot_input(axes[0], data.inputs[i], data.kind, data.duration, data.sample_rate, f"digit {int(data.labels[i])}")
            plot_attribution(axes[1], attr[i], data.kind, data.duration, data.sample_rate, method.replace("_", " "), span)
            fig.tight_layout()
            save_figure(fig, stem.with_suffix(".png"))
            plt.close(fig)
            with atomic_path(stem.with_suffix(".npy")) as tmp:
                np.save(tmp, attr[i].numpy())
            written.append(stem.with_suffix(".png"))
    return written


def write_metric_csvs(out: Path, scores: pd.DataFrame) -> int:
    """One CSV of per-sample scores per metric, dataset, method and resolution; returns how many."""
    count = 0
    for (metric, dataset, method, resolution), group in scores.groupby(["metric", "dataset", "method", "resolution"]):
        buffer = io.StringIO()
        group[["sample", "score"]].to_csv(buffer, index=False)
        atomic_write_text(Path(out) / "metrics" / f"{metric}_{dataset}_{method}_{resolution}.csv", buffer.getvalue())
        count += 1
    return count


def format_interval(row) -> str:
    return "n/a" if np.isnan(row["mean"]) else f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def metric_disagreement(summary: pd.DataFrame) -> pd.DataFrame:
    """Spearman correlation between metrics of the direction-aligned method means across all cells.

    Each metric's means are signed so that higher is better, then correlated over the (dataset,
    resolution, method) cells; a low or negative value means two metrics order the methods differently.
    """
    from audioxai.studies.cross_modality import higher_is_better

    directions = higher_is_better()
    signed = summary.assign(value=summary["mean"] * summary["metric"].map(lambda m: 1 if directions[m] else -1))
    wide = signed.pivot_table(index=["dataset", "resolution", "method"], columns="metric", values="value")
    return wide.corr(method="spearman")


def _markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _findings(summary: pd.DataFrame, ranked: pd.DataFrame, directions: dict[str, bool]) -> list[str]:
    lines = []
    mean_rank = ranked.groupby(["dataset", "method"])["rank"].mean().unstack(0)
    for dataset in mean_rank.columns:
        best = mean_rank[dataset].idxmin()
        lines.append(f"- On {dataset}, the best mean rank over all metrics and resolutions is {best.replace('_', ' ')} "
                     f"({mean_rank.loc[best, dataset]:.2f}).")
    for metric, better in directions.items():
        per = summary[summary["metric"] == metric].groupby(["dataset", "method"])["mean"].mean().unstack(0)
        if per.shape[1] == 2 and per.notna().all().all():
            order = {d: list(per[d].sort_values(ascending=not better).index) for d in per.columns}
            same = order[per.columns[0]] == order[per.columns[1]]
            lines.append(f"- {metric}: method order {'is the same' if same else 'differs'} on images "
                         f"({' > '.join(order.get('images', []))}) and audio ({' > '.join(order.get('audio', []))}).")
    return lines


def write_summaries(out: Path, summary: pd.DataFrame, accuracies: pd.DataFrame, directions: dict[str, bool]) -> dict[str, Path]:
    """The two Markdown summaries and the ranking heatmap; returns their paths."""
    folder = Path(out) / "summaries"
    ranked = rank_methods(summary, directions)
    table = summary.assign(value=summary.apply(format_interval, axis=1))
    wide = table.pivot_table(index=["metric", "method"], columns=["dataset", "resolution"], values="value", aggfunc="first")
    wide.columns = [f"{d} {r}" for d, r in wide.columns]
    wide = wide.reset_index()
    arrows = {m: "higher is better" if b else "lower is better" for m, b in directions.items()}
    cross = ["# Cross-modality summary", "", "Test accuracy of each model:", "", _markdown_table(accuracies), "",
             "Mean score over the explained test samples with its 95% bootstrap interval "
             "(" + "; ".join(f"{m}: {a}" for m, a in arrows.items()) + ").", "", _markdown_table(wide), "",
             "## Findings", "", *_findings(summary, ranked, directions), "",
             "## Where metrics disagree", "",
             "Spearman correlation between metrics of the direction-aligned means over all cells:", "",
             _markdown_table(metric_disagreement(summary).round(2).reset_index())]
    res_rows = []
    for (dataset, method, metric), group in summary.groupby(["dataset", "method", "metric"]):
        group = group.sort_values("resolution")
        values = group["mean"].to_numpy()
        trend = resolution_trend(values, group["ci_low"].to_numpy(), group["ci_high"].to_numpy())
        res_rows.append((dataset, method, metric, *[f"{v:.3f}" for v in values], trend))
    resolutions = max(len(g) for _, g in summary.groupby(["dataset", "method", "metric"]))
    columns = ["dataset", "method", "metric", *[f"resolution {i + 1}" for i in range(resolutions)], "low to high"]
    resolution_md = ["# Resolution summary", "", "Mean score at each resolution, lowest first (images 28, 64, 128; "
                     "spectrograms 32, 64, 128 mel bands and frames). Low to high: rises or falls when the means move "
                     "one way and the 95% intervals at the two ends do not overlap, flat when they overlap, mixed "
                     "when the ends differ but the means go up and down.",
                     "", _markdown_table(pd.DataFrame(res_rows, columns=columns[: len(res_rows[0])]))]
    paths = {"cross": folder / "cross_modality_summary.md", "resolution": folder / "resolution_summary.md",
             "heatmap": folder / "method_ranking.png"}
    atomic_write_text(paths["cross"], "\n".join(cross) + "\n")
    atomic_write_text(paths["resolution"], "\n".join(resolution_md) + "\n")
    fig = plot_ranking_heatmap(ranked, "method ranks per metric (1 = best, direction-aware)")
    save_figure(fig, paths["heatmap"])
    plt.close(fig)
    return paths
