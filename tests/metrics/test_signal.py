"""SI-SDR: analytic values, a numpy transcription of Le Roux et al. (2019), silent signals and bad input.

torchaudio 2.11 has no SI-SDR function (``torchaudio.functional`` has none and ``torchaudio.prototype``
is gone), so the reference is the formula written out in numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audioxai.errors import ConfigError
from audioxai.metrics import UndefinedScoreWarning, si_sdr

T = 4000


def sine(cycles: int, amplitude: float = 1.0) -> torch.Tensor:
    """A whole number of periods over T samples: zero-mean, and orthogonal to sines of other cycle counts."""
    return amplitude * torch.sin(2 * torch.pi * cycles * torch.arange(T, dtype=torch.float64) / T)


def numpy_si_sdr(estimate: np.ndarray, reference: np.ndarray, eps: float = 1e-8) -> float:
    s_hat, s = estimate - estimate.mean(), reference - reference.mean()
    target = np.dot(s_hat, s) / np.dot(s, s) * s
    distortion = s_hat - target
    return float(10 * np.log10(np.sum(target ** 2) / (np.sum(distortion ** 2) + eps) + eps))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scaled_and_shifted_reference_scores_above_100_db(dtype) -> None:
    reference = torch.randn(3, T, generator=torch.Generator().manual_seed(0), dtype=dtype)
    scores = si_sdr(2.5 * reference + 0.3, reference)                 # gain and DC offset are not distortion
    assert scores.dtype == torch.float64 and scores.shape == (3,)
    assert (scores > 100).all()
    if dtype == torch.float64:                                        # float32 rounding leaves ||e||^2 ~ 4e-11
        energy = (2.5 * (reference - reference.mean(dim=1, keepdim=True))).pow(2).sum(dim=1)
        torch.testing.assert_close(scores, 10 * torch.log10(energy / 1e-8), atol=1e-6, rtol=0)


@pytest.mark.parametrize("noise_amplitude, expected_db", [(0.1, 20.0), (1.0, 0.0), (10 ** 0.5, -10.0)])
def test_reference_plus_orthogonal_noise_scores_its_signal_to_noise_ratio(noise_amplitude: float,
                                                                           expected_db: float) -> None:
    """||s||^2 / ||n||^2 = 1 / amplitude^2 for two unit sines; gain on the estimate changes nothing.

    The eps added to the ratio shifts the score by 10 log10(1 + eps / ratio) dB, under 5e-7 dB here.
    """
    reference, noise = sine(5), sine(11, noise_amplitude)
    estimate = torch.stack([reference + noise, 0.5 * (reference + noise) - 2.0])
    scores = si_sdr(estimate, reference.expand(2, T))
    torch.testing.assert_close(scores, torch.full((2,), expected_db, dtype=torch.float64), atol=1e-6, rtol=0)


def test_random_noise_made_orthogonal_with_known_power() -> None:
    gen = torch.Generator().manual_seed(1)
    reference = torch.randn(T, generator=gen, dtype=torch.float64)
    reference -= reference.mean()
    noise = torch.randn(T, generator=gen, dtype=torch.float64)
    noise -= noise.mean()
    noise -= noise.dot(reference) / reference.dot(reference) * reference
    noise *= (reference.pow(2).sum() / 50).sqrt() / noise.norm()     # noise power = signal power / 50
    score = si_sdr((reference + noise)[None], reference[None])
    assert score.item() == pytest.approx(10 * np.log10(50), abs=1e-8)


def test_equals_numpy_transcription_on_random_pairs() -> None:
    gen = torch.Generator().manual_seed(2)
    reference = torch.randn(6, 1000, generator=gen)
    estimate = torch.linspace(0.0, 3.0, 6)[:, None] * reference + torch.randn(6, 1000, generator=gen) + 0.1
    theirs = [numpy_si_sdr(e.double().numpy(), r.double().numpy()) for e, r in zip(estimate, reference)]
    np.testing.assert_allclose(si_sdr(estimate, reference).numpy(), theirs, rtol=0, atol=1e-9)
    # the first estimate is pure noise (gain 0): near -inf dB without eps, about -30 dB here
    assert theirs[0] < -20


def test_silent_estimate_is_floored_at_10_log10_eps() -> None:
    reference = sine(3).expand(2, T)
    estimate = torch.stack([torch.zeros(T, dtype=torch.float64), torch.full((T,), 0.7, dtype=torch.float64)])
    torch.testing.assert_close(si_sdr(estimate, reference), torch.full((2,), -80.0, dtype=torch.float64))
    assert si_sdr(estimate, reference, eps=1e-6)[0].item() == pytest.approx(-60.0)


def test_silent_or_constant_reference_is_nan_with_warning() -> None:
    reference = torch.stack([torch.zeros(T), torch.full((T,), 0.2), sine(4).float()])
    estimate = torch.randn(3, T, generator=torch.Generator().manual_seed(3))
    with pytest.warns(UndefinedScoreWarning, match="silent reference"):
        scores = si_sdr(estimate, reference)
    assert torch.isnan(scores[:2]).all() and torch.isfinite(scores[2])


@pytest.mark.parametrize("case, match", [
    ("shape", "does not match reference"),
    ("one_dim", r"shape \(B, T\)"),
    ("three_dim", r"shape \(B, T\)"),
    ("nan", r"estimate of sample\(s\) \[1\] contains NaN"),
    ("inf_reference", r"reference of sample\(s\) \[0\] contains NaN or infinite"),
    ("eps", "eps must be a finite number >= 0"),
])
def test_bad_input_raises_config_error(case: str, match: str) -> None:
    estimate, reference, eps = torch.randn(2, 100), torch.randn(2, 100), 1e-8
    if case == "shape":
        estimate = estimate[:, :99]
    elif case == "one_dim":
        estimate, reference = estimate[0], reference[0]
    elif case == "three_dim":
        estimate, reference = estimate[:, None], reference[:, None]
    elif case == "nan":
        estimate[1, 5] = float("nan")
    elif case == "inf_reference":
        reference[0, 0] = float("inf")
    elif case == "eps":
        eps = -1.0
    with pytest.raises(ConfigError, match=match):
        si_sdr(estimate, reference, eps=eps)
