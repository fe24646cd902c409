"""Summaries of per-sample scores: bootstrap confidence intervals and direction-aware method ranks."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["bootstrap_ci", "rank_methods"]


def bootstrap_ci(scores, num_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval of the mean, NaN scores dropped (Efron & Tibshirani, 1993).

    Returns ``(mean, low, high)``; all NaN when no finite score is left.
    """
    values = np.asarray(scores, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"),) * 3
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(num_resamples, values.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(values.mean()), float(low), float(high)


def rank_methods(table: pd.DataFrame, higher_is_better: dict[str, bool]) -> pd.DataFrame:
    """Rank methods (1 = best) within each group of a long table, respecting each metric's direction.

    ``table`` has columns ``dataset, resolution, metric, method, mean``; returns it with a ``rank``
    column (average ranks for ties; NaN means rank last).
    """
    ranked = table.copy()
    signed = ranked["mean"] * ranked["metric"].map(lambda m: -1.0 if higher_is_better[m] else 1.0)
    ranked["rank"] = signed.groupby([ranked["dataset"], ranked["resolution"], ranked["metric"]]).rank(
        method="average", na_option="bottom")
    return ranked
