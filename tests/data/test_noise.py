import functools

import numpy as np
import pytest
import scipy.signal
import torch

from audioxai.data.noise import (
    NOISE_TYPES,
    babble_noise,
    make_noise,
    music_noise,
    pink_noise,
    traffic_noise,
    white_noise,
    wind_noise,
)
from audioxai.errors import ConfigError

SR = 16000
N = 2 * SR

try:
    import audioxai.data.speech  # noqa: F401

    HAS_SPEECH = True
except ImportError:
    HAS_SPEECH = False

needs_speech = pytest.mark.skipif(not HAS_SPEECH, reason="audioxai.data.speech cannot be imported")
KINDS = [pytest.param(k, marks=needs_speech) if k == "babble" else k for k in NOISE_TYPES]


@functools.lru_cache(maxsize=None)
def _noise(kind: str, seed: int = 0, num_samples: int = N) -> torch.Tensor:
    return make_noise(kind, num_samples, SR, seed=seed)


def _psd(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    return scipy.signal.welch(x.numpy().astype(np.float64), SR, nperseg=1024)


def _fraction(x: torch.Tensor, low: float, high: float) -> float:
    f, p = _psd(x)
    return float(p[(f >= low) & (f < high)].sum() / p.sum())


def _flatness(x: torch.Tensor) -> float:
    """Spectral flatness: geometric over arithmetic mean of the Welch PSD (DC excluded)."""
    _, p = _psd(x)
    return float(np.exp(np.log(p[1:]).mean()) / p[1:].mean())


def _envelope_variation(x: torch.Tensor, frame: int) -> float:
    """Coefficient of variation (std / mean) of the frame RMS."""
    frames = x[: x.numel() // frame * frame].double().reshape(-1, frame)
    env = frames.square().mean(1).sqrt()
    return float(env.std() / env.mean())


@pytest.mark.parametrize("kind", KINDS)
def test_every_noise_is_float32_finite_1d_with_unit_rms(kind):
    x = _noise(kind)
    assert x.shape == (N,) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    assert abs(float(x.double().square().mean().sqrt()) - 1.0) < 1e-5


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_identical_samples_and_another_seed_differs(kind):
    assert torch.equal(make_noise(kind, N, SR, seed=0), _noise(kind, 0))
    assert not torch.allclose(_noise(kind, 0), _noise(kind, 1), atol=1e-3)


def test_a_generator_seed_matches_the_int_seed_and_is_advanced():
    g = torch.Generator().manual_seed(5)
    first = pink_noise(1000, seed=g)
    assert torch.equal(first, pink_noise(1000, seed=5))
    assert not torch.equal(first, pink_noise(1000, seed=g))


@pytest.mark.parametrize("kind, slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_power_law_noise_has_its_log_power_slope(kind, slope):
    f, p = _psd(_noise(kind))
    band = (f >= 50) & (f <= 6000)
    fitted = np.polyfit(np.log10(f[band]), np.log10(p[band]), 1)[0]
    assert abs(fitted - slope) < 0.3


def test_traffic_energy_lies_below_500_hz_and_swells_slowly():
    for seed in range(3):
        x = _noise("traffic", seed, 4 * SR)
        assert _fraction(x, 0, 500) > 0.9
        assert _envelope_variation(x, SR // 4) > 0.2  # vehicles passing: 250 ms RMS varies
    assert _fraction(_noise("white"), 0, 500) < 0.1
    assert _envelope_variation(_noise("white"), SR // 4) < 0.05


def test_traffic_has_an_engine_hum_line_below_300_hz():
    f, p = scipy.signal.welch(_noise("traffic").numpy().astype(np.float64), SR, nperseg=8192)
    low = f < 300
    assert p[low].max() > 5 * np.median(p[low])


def test_wind_energy_lies_below_1_khz_and_gusts():
    for seed in range(3):
        x = _noise("wind", seed, 4 * SR)
        assert _fraction(x, 0, 1000) > 0.9
        assert _envelope_variation(x, SR // 4) > 0.2
    assert _fraction(_noise("pink"), 0, 1000) < 0.8


def test_music_has_harmonic_peaks_far_from_a_flat_spectrum():
    white = _flatness(_noise("white"))
    assert white > 0.9
    for seed in range(3):
        assert _flatness(_noise("music", seed)) < 0.01 * white


def test_music_spectral_peaks_sit_on_equal_tempered_pitches():
    # Notes are MIDI pitches and their strong harmonics (k <= 4) land within 0.03 semitones of one;
    # peaks at random frequencies would miss 0.1 semitones with probability 0.8 each.
    for seed in range(3):
        x = _noise("music", seed).numpy().astype(np.float64)
        f, p = scipy.signal.welch(x, SR, nperseg=16384)
        peaks, _ = scipy.signal.find_peaks(p, height=p.max() * 0.05)
        peaks = peaks[f[peaks] > 150]  # 1 Hz bins: below 150 Hz a bin exceeds 0.1 semitones
        semitones = 12 * np.log2(f[peaks] / 440.0)
        assert len(peaks) >= 5
        assert np.abs(semitones - np.round(semitones)).max() < 0.1


@needs_speech
def test_babble_energy_is_in_the_speech_band_and_its_envelope_is_modulated():
    for seed in range(2):
        x = _noise("babble", seed)
        assert _fraction(x, 100, 4000) > 0.9
        assert _envelope_variation(x, SR // 50) > 0.15  # 20 ms frames: syllables and pauses
    assert _envelope_variation(_noise("white"), SR // 50) < 0.08
    assert _fraction(_noise("white"), 100, 4000) < 0.6


@needs_speech
def test_babble_talkers_are_summed_so_one_talker_differs_from_six():
    one = babble_noise(SR, SR, seed=3, num_talkers=1)
    six = babble_noise(SR, SR, seed=3, num_talkers=6)
    assert one.shape == six.shape == (SR,)
    assert not torch.allclose(one, six, atol=1e-3)


def test_babble_rejects_zero_talkers():
    with pytest.raises(ConfigError, match="num_talkers=0"):
        babble_noise(SR, SR, seed=0, num_talkers=0)


def test_make_noise_dispatches_to_the_named_generator():
    assert torch.equal(make_noise("white", 500, SR, seed=2), white_noise(500, SR, seed=2))
    assert torch.equal(make_noise("music", 500, SR, seed=2), music_noise(500, SR, seed=2))
    assert torch.equal(make_noise("wind", 500, SR, seed=2), wind_noise(500, SR, seed=2))
    assert torch.equal(make_noise("traffic", 500, SR, seed=2), traffic_noise(500, SR, seed=2))


def test_make_noise_names_the_bad_kind_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown noise kind 'purple': choose one of white, pink, brown, babble"):
        make_noise("purple", 100)


@pytest.mark.parametrize("num_samples", [0, 1, 2.5])
def test_too_few_samples_are_refused(num_samples):
    with pytest.raises(ConfigError, match="num_samples"):
        white_noise(num_samples)


@pytest.mark.parametrize("kind", [k for k in NOISE_TYPES if k != "babble"])
def test_short_and_odd_lengths_work(kind):
    x = make_noise(kind, 7, SR, seed=0)
    assert x.shape == (7,) and torch.isfinite(x).all()
