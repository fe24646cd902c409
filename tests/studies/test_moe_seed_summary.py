"""``summarise_seeds``: means and spreads over seeds and the MoE's paired difference to the CNN of the same seed."""

import math

import pandas as pd
import pytest

from audioxai.studies.moe_routing import summarise_seeds


def table():
    acc = {"moe (accuracy)": [0.90, 0.80, 0.70], "moe (latency)": [0.85, 0.85, 0.60], "monolithic CNN": [0.88, 0.80, 0.75]}
    rows = []
    for model, values in acc.items():
        for seed, value in zip((0, 1, 2), values):
            rows.append({"seed": seed, "model": model, "accuracy": value, "flops_per_sample": 10.0 + seed,
                         "seconds_per_sample": 1e-3, "mean_k": math.nan if model == "monolithic CNN" else 2.0 + seed})
    return pd.DataFrame(rows)


def test_summary_has_means_spreads_and_paired_differences():
    summary = summarise_seeds(table())
    moe = summary.loc["moe (accuracy)"]
    assert moe["seeds"] == 3
    assert moe["accuracy_mean"] == pytest.approx(0.8)
    assert moe["accuracy_std"] == pytest.approx(0.1)
    assert (moe["accuracy_min"], moe["accuracy_max"]) == (0.7, 0.9)
    assert moe["minus_cnn_mean"] == pytest.approx((0.02 + 0.0 - 0.05) / 3)
    assert moe["seeds_at_least_cnn"] == 2  # won seed 0, tied seed 1, lost seed 2
    assert summary.loc["moe (latency)", "seeds_at_least_cnn"] == 1  # won seed 1 only
    assert summary.loc["monolithic CNN", "minus_cnn_mean"] == 0.0
    assert summary.loc["moe (accuracy)", "flops_per_sample"] == pytest.approx(11.0)
    assert summary.loc["moe (accuracy)", "mean_k"] == pytest.approx(3.0)
    assert math.isnan(summary.loc["monolithic CNN", "mean_k"])
