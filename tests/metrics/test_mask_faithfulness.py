"""L-MAC's mask faithfulness metrics: AI, AD, AG, FF and Fid-In on class probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.metrics import (METRICS, UndefinedScoreWarning, average_drop, average_gain, average_increase,
                              faithfulness_on_spectra, input_fidelity)

P_ORIG = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.5, 0.25, 0.25]])
P_IN = torch.tensor([[0.8, 0.1, 0.1], [0.35, 0.3, 0.35], [0.5, 0.3, 0.2]])
TARGET = torch.tensor([0, 1, 0])                                      # argmax of P_ORIG


def random_probabilities(batch: int, classes: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(batch, classes, generator=gen)).softmax(dim=1)


def test_hand_computed_scores() -> None:
    """Sample 0 gains (0.6 -> 0.8), sample 1 drops (0.7 -> 0.3) and flips class, sample 2 ties (0.5 -> 0.5)."""
    torch.testing.assert_close(average_increase(P_ORIG, P_IN, TARGET),
                               torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(average_drop(P_ORIG, P_IN, TARGET),
                               torch.tensor([0.0, 0.4 / 0.7, 0.0], dtype=torch.float64))
    torch.testing.assert_close(average_gain(P_ORIG, P_IN, TARGET),
                               torch.tensor([0.2 / 0.4, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(faithfulness_on_spectra(P_ORIG, P_IN, TARGET),
                               torch.tensor([-0.2, 0.4, 0.0], dtype=torch.float64))
    torch.testing.assert_close(input_fidelity(P_ORIG, P_IN), torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64))


def test_equal_to_a_per_sample_numpy_transcription_of_the_formulas() -> None:
    p_orig, p_in, p_out = (random_probabilities(64, 50, seed) for seed in (0, 1, 2))
    target = p_orig.argmax(dim=1)
    po, pi, pt = (p.double().numpy() for p in (p_orig, p_in, p_out))
    rows = np.arange(64)
    c, ci, co = po[rows, target.numpy()], pi[rows, target.numpy()], pt[rows, target.numpy()]
    expected = {
        average_increase: (ci > c).astype(float),
        average_drop: np.maximum(0, c - ci) / c,
        average_gain: np.maximum(0, ci - c) / (1 - c),
    }
    for fn, values in expected.items():
        out = fn(p_orig, p_in, target)
        assert out.dtype == torch.float64 and out.shape == (64,)
        np.testing.assert_allclose(out.numpy(), values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(faithfulness_on_spectra(p_orig, p_out, target).numpy(), c - co, atol=1e-12)
    np.testing.assert_allclose(input_fidelity(p_orig, p_in).numpy(), (pi.argmax(1) == po.argmax(1)).astype(float))


def speechbrain_average_drop(p_orig: torch.Tensor, p_in: torch.Tensor) -> torch.Tensor:
    """SpeechBrain's ``compute_AD`` (ESC-50 interpret recipe) fed probabilities, as the recipe does: softmax twice."""
    p_orig, p_in = p_orig.softmax(dim=1), p_in.softmax(dim=1)
    index = p_orig.argmax(1, keepdim=True)
    pc, oc = p_orig.gather(1, index).squeeze(1), p_in.gather(1, index).squeeze(1)
    return (pc - oc).clamp_min(0) / (pc + 1e-10)


def test_one_softmax_where_speechbrain_applies_a_second_that_compresses_the_drop() -> None:
    """Trap: on 50 classes a collapse from 0.99 to uniform is a 98% drop; a second softmax reports about 62%."""
    p_orig = torch.full((1, 50), 0.01 / 49, dtype=torch.float64)
    p_orig[0, 0] = 0.99
    p_in = torch.full((1, 50), 1 / 50, dtype=torch.float64)
    assert average_drop(p_orig, p_in, torch.tensor([0])).item() == pytest.approx((0.99 - 0.02) / 0.99)
    assert speechbrain_average_drop(p_orig, p_in).item() == pytest.approx(0.6158, abs=1e-4)


def test_gain_is_nan_with_warning_when_the_original_probability_is_one() -> None:
    """SpeechBrain divides by 1 - p + 1e-10 and scores 0 here; 0 / 0 is undefined."""
    p_orig = torch.tensor([[1.0, 0.0], [0.8, 0.2]])
    p_in = torch.tensor([[0.9, 0.1], [0.9, 0.1]])
    with pytest.warns(UndefinedScoreWarning, match="average gain is undefined"):
        gain = average_gain(p_orig, p_in, torch.tensor([0, 0]))
    assert torch.isnan(gain[0]) and gain[1].item() == pytest.approx(0.5)


def test_drop_is_nan_with_warning_for_a_target_of_probability_zero() -> None:
    p_orig = torch.tensor([[1.0, 0.0], [0.8, 0.2]])
    with pytest.warns(UndefinedScoreWarning, match="average drop is undefined"):
        drop = average_drop(p_orig, p_orig, torch.tensor([1, 1]))
    assert torch.isnan(drop[0]) and drop[1].item() == 0.0


def test_scores_are_float64_on_the_cpu_from_float32_inputs() -> None:
    for fn in (average_increase, average_drop, average_gain, faithfulness_on_spectra):
        out = fn(P_ORIG, P_IN, TARGET)
        assert out.dtype == torch.float64 and out.device.type == "cpu" and out.shape == (3,)


@pytest.mark.parametrize("case, match", [
    ("shape", "does not match p_orig"),
    ("one_dim", r"shape \(B, C\)"),
    ("nan", "NaN or infinite"),
    ("logits", "summing to 1"),
    ("negative", "summing to 1"),
    ("target_range", r"target must lie in 0\.\.2"),
    ("target_dtype", "target must be a long tensor"),
    ("target_shape", r"target must be a long tensor of shape \(3,\)"),
])
def test_bad_input_raises_config_error(case: str, match: str) -> None:
    p_orig, p_in, target = P_ORIG.clone(), P_IN.clone(), TARGET.clone()
    if case == "shape":
        p_in = p_in[:, :2].softmax(dim=1)
    elif case == "one_dim":
        p_orig = p_orig[0]
    elif case == "nan":
        p_in[1, 1] = float("nan")
    elif case == "logits":
        p_in = torch.log(p_in)
    elif case == "negative":
        p_in[0] = torch.tensor([1.2, -0.1, -0.1])
    elif case == "target_range":
        target[2] = 3
    elif case == "target_dtype":
        target = target.float()
    elif case == "target_shape":
        target = target[:2]
    for fn in (average_increase, average_drop, average_gain, faithfulness_on_spectra):
        with pytest.raises(ConfigError, match=match):
            fn(p_orig, p_in, target)
    if not case.startswith("target"):                                 # Fid-In takes no target
        with pytest.raises(ConfigError, match=match):
            input_fidelity(p_orig, p_in)


def test_float32_softmax_rounding_is_accepted() -> None:
    p = random_probabilities(32, 527, seed=3)                         # AudioSet-sized rows in float32
    assert average_drop(p, p, p.argmax(dim=1)).eq(0).all()


@pytest.mark.parametrize("name, higher_is_better", [
    ("average_increase", True), ("average_drop", False), ("average_gain", True),
    ("faithfulness_on_spectra", True), ("input_fidelity", True),
])
def test_registered_as_faithfulness_with_direction(name: str, higher_is_better: bool) -> None:
    spec = METRICS[name]
    assert spec.category == "faithfulness" and spec.higher_is_better is higher_is_better
    assert spec.fn.__name__ == name
