import math

import numpy as np
import pytest
import torch

from audioxai.data.mixing import (
    ideal_binary_mask,
    ideal_ratio_mask,
    mix_at_snr,
    peak_normalise,
    rms,
    signal_to_noise_ratio,
)
from audioxai.errors import AudioInputError, ConfigError

SR = 16000
N_FFT, HOP = 512, 128


def _clean(num_samples: int = SR, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """A speech-like test signal: a 220 Hz harmonic tone, amplitude-modulated at 4 Hz, plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(num_samples, dtype=torch.float64) / SR
    tone = sum(torch.sin(2 * math.pi * 220 * k * t) / k for k in range(1, 6))
    hiss = 0.05 * torch.randn(num_samples, generator=g, dtype=torch.float64)
    x = tone * (0.6 + 0.4 * torch.sin(2 * math.pi * 4 * t)) + hiss
    return (0.3 * x).to(dtype)


def _noise(num_samples: int, seed: int = 1, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(num_samples, generator=g, dtype=torch.float64).to(dtype)


def _snr_numpy(clean: torch.Tensor, noise: torch.Tensor) -> float:
    c, n = clean.numpy().astype(np.float64), noise.numpy().astype(np.float64)
    return 10 * np.log10(np.mean(c**2) / np.mean(n**2))


def _stft_numpy(x: np.ndarray) -> np.ndarray:
    """Centred STFT by hand: reflect padding, periodic Hann window, rfft per frame; (F, frames)."""
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    padded = np.pad(x, N_FFT // 2, mode="reflect")
    num_frames = 1 + (padded.size - N_FFT) // HOP
    frames = np.stack([padded[i * HOP: i * HOP + N_FFT] * window for i in range(num_frames)])
    return np.fft.rfft(frames, axis=1).T


@pytest.mark.parametrize("snr_db", [-5.0, 0.0, 10.0, 23.7])
def test_mixture_has_the_requested_whole_clip_snr(snr_db):
    clean = _clean()
    mix = mix_at_snr(clean, _noise(3000), snr_db)
    assert abs(_snr_numpy(mix.clean, mix.noise) - snr_db) < 1e-4
    assert abs(float(signal_to_noise_ratio(mix.clean, mix.noise)) - snr_db) < 1e-4
    assert mix.snr_db == snr_db


def test_mixture_is_clean_plus_noise_and_clean_is_untouched():
    clean = _clean()
    mix = mix_at_snr(clean, _noise(SR), 5.0)
    assert torch.equal(mix.mixture, mix.clean + mix.noise)
    assert torch.equal(mix.clean, clean)
    assert mix.mixture.shape == clean.shape and mix.mixture.dtype == clean.dtype


def test_short_noise_is_tiled_and_long_noise_is_cropped():
    clean, short = _clean(), _noise(3000)
    mix = mix_at_snr(clean, short, 0.0)
    gain = mix.noise[:3000].double() / short.double()
    assert torch.allclose(gain, gain[0].expand_as(gain), rtol=1e-5)
    assert torch.equal(mix.noise[3000:6000], mix.noise[:3000])
    long = _noise(3 * SR)
    mix = mix_at_snr(clean, long, 0.0)
    ratio = mix.noise.double() / long[:SR].double()
    assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-5)


def test_batched_mixing_gives_each_row_its_own_snr():
    clean = torch.stack([_clean(seed=s) * (s + 1) for s in range(3)])
    snrs = torch.tensor([-5.0, 0.0, 10.0])
    mix = mix_at_snr(clean, _noise(SR), snrs)
    assert mix.mixture.shape == (3, SR)
    for row, target in enumerate(snrs.tolist()):
        assert abs(_snr_numpy(mix.clean[row], mix.noise[row]) - target) < 1e-4


def test_infinite_snr_adds_no_noise_even_when_the_noise_is_silent():
    clean = _clean()
    mix = mix_at_snr(clean, torch.zeros(100), math.inf)
    assert torch.equal(mix.mixture, clean) and not mix.noise.any()


def test_peak_normalise_keeps_the_snr_and_the_sum():
    mix = peak_normalise(mix_at_snr(_clean() * 10, _noise(SR), -5.0), peak=0.99)
    assert abs(float(mix.mixture.abs().max()) - 0.99) < 1e-6
    assert abs(_snr_numpy(mix.clean, mix.noise) + 5.0) < 1e-4
    assert torch.allclose(mix.mixture, mix.clean + mix.noise, atol=1e-6)


def test_rms_is_the_root_mean_square_over_time():
    x = torch.tensor([[3.0, -3.0, 3.0, -3.0], [1.0, 1.0, 1.0, 1.0]])
    assert torch.allclose(rms(x), torch.tensor([3.0, 1.0]))
    assert rms(x[0]).shape == ()


@pytest.mark.parametrize("lc", [-5.0, 0.0, 5.0])
def test_ibm_is_binary_and_one_exactly_where_the_local_snr_exceeds_lc(lc):
    mix = mix_at_snr(_clean(dtype=torch.float64), _noise(SR, dtype=torch.float64), 0.0)
    mask = ideal_binary_mask(mix.clean, mix.noise, N_FFT, HOP, local_criterion_db=lc)
    s, n = np.abs(_stft_numpy(mix.clean.numpy())), np.abs(_stft_numpy(mix.noise.numpy()))
    reference = (20 * np.log10(s / n) > lc).astype(np.float64)
    assert mask.shape == (N_FFT // 2 + 1, 1 + SR // HOP)
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(mask.numpy(), reference)
    assert 100 < reference.sum() < reference.size - 100  # both classes present: the comparison has teeth


def test_ibm_in_float32_agrees_with_the_reference_away_from_the_threshold():
    mix = mix_at_snr(_clean(), _noise(SR), 0.0)
    mask = ideal_binary_mask(mix.clean, mix.noise, N_FFT, HOP).numpy()
    s = np.abs(_stft_numpy(mix.clean.numpy().astype(np.float64)))
    n = np.abs(_stft_numpy(mix.noise.numpy().astype(np.float64)))
    local = 20 * np.log10(s / n)
    clear = np.abs(local) > 1e-2
    np.testing.assert_array_equal(mask[clear], (local > 0)[clear].astype(np.float32))


def test_ibm_with_minus_infinite_lc_is_one_wherever_clean_has_energy():
    clean = _clean(dtype=torch.float64)
    clean[4000:8000] = 0.0  # long enough that whole frames see no clean energy
    noise = _noise(SR, dtype=torch.float64)
    mask = ideal_binary_mask(clean, noise, N_FFT, HOP, local_criterion_db=-math.inf)
    s = np.abs(_stft_numpy(clean.numpy()))
    np.testing.assert_array_equal(mask.numpy(), (s > 0).astype(np.float64))
    assert mask[:, 40:55].sum() == 0 and mask[:, :25].all()


def test_ibm_is_one_where_the_noise_is_silent_and_the_clean_is_not():
    clean, noise = _clean(), _noise(SR)
    noise[4000:8000] = 0.0
    mask = ideal_binary_mask(clean, noise, N_FFT, HOP, local_criterion_db=60.0)
    assert mask[:, 40:55].all()


@pytest.mark.parametrize("beta", [0.5, 1.0])
def test_irm_lies_in_unit_interval_and_matches_the_formula(beta):
    mix = mix_at_snr(_clean(dtype=torch.float64), _noise(SR, dtype=torch.float64), 0.0)
    mask = ideal_ratio_mask(mix.clean, mix.noise, N_FFT, HOP, beta=beta)
    s2 = np.abs(_stft_numpy(mix.clean.numpy())) ** 2
    n2 = np.abs(_stft_numpy(mix.noise.numpy())) ** 2
    np.testing.assert_allclose(mask.numpy(), (s2 / (s2 + n2)) ** beta, rtol=1e-9, atol=1e-12)
    assert mask.min() >= 0 and mask.max() <= 1


def test_clean_and_noise_irm_with_beta_one_sum_to_one():
    mix = mix_at_snr(_clean(), _noise(SR), 3.0)
    total = ideal_ratio_mask(mix.clean, mix.noise, beta=1.0) + ideal_ratio_mask(mix.noise, mix.clean, beta=1.0)
    assert torch.allclose(total, torch.ones_like(total), atol=1e-5)


def test_irm_is_zero_where_both_parts_are_silent():
    clean, noise = _clean(), _noise(SR)
    clean[4000:8000] = 0.0
    noise[4000:8000] = 0.0
    mask = ideal_ratio_mask(clean, noise)
    assert torch.isfinite(mask).all() and mask[:, 40:55].sum() == 0


def test_masks_accept_a_batch_and_match_the_single_signal_masks():
    mix = mix_at_snr(torch.stack([_clean(seed=0), _clean(seed=1)]), torch.stack([_noise(SR, 1), _noise(SR, 2)]), 0.0)
    ibm = ideal_binary_mask(mix.clean, mix.noise)
    irm = ideal_ratio_mask(mix.clean, mix.noise)
    assert ibm.shape == irm.shape == (2, N_FFT // 2 + 1, 1 + SR // HOP)
    for row in range(2):
        assert torch.equal(ibm[row], ideal_binary_mask(mix.clean[row], mix.noise[row]))
        assert torch.allclose(irm[row], ideal_ratio_mask(mix.clean[row], mix.noise[row]), atol=1e-6)


@pytest.mark.parametrize(
    "clean, noise, match",
    [
        (_clean(), torch.zeros(0), r"noise is empty \(0 samples\): pass at least one sample"),
        (torch.zeros(0), _noise(100), r"clean is empty \(0 samples\)"),
        (torch.tensor([0.1, float("nan"), 0.2]), _noise(10), r"clean has 1 NaN or infinite values"),
        (_clean(), torch.tensor([0.1, float("inf")]), r"noise has 1 NaN or infinite values"),
        (torch.zeros(1, 2, 100), _noise(10), r"clean has 3 dimensions \(shape \(1, 2, 100\)\)"),
        (_clean(), torch.zeros(SR), r"noise is silent \(all zeros\) but snr_db=0.0 is finite"),
        (torch.zeros(SR), _noise(SR), r"clean is silent"),
        (torch.ones(2, 100), torch.ones(3, 100), r"noise has batch size 3 but clean has 2"),
        (torch.ones(100, dtype=torch.int16), _noise(100), r"clean has dtype torch.int16"),
        (np.ones(100), _noise(100), r"clean is a ndarray, not a torch.Tensor"),
    ],
)
def test_bad_mixing_inputs_raise_a_named_error(clean, noise, match):
    with pytest.raises(AudioInputError, match=match):
        mix_at_snr(clean, noise, 0.0)


@pytest.mark.parametrize("snr_db", [float("nan"), -math.inf])
def test_unusable_snr_is_refused(snr_db):
    with pytest.raises(ConfigError, match="snr_db="):
        mix_at_snr(_clean(), _noise(SR), snr_db)


def test_one_snr_per_row_must_match_the_batch():
    with pytest.raises(ConfigError, match=r"snr_db has shape \(2,\) but clean has batch shape \(3,\)"):
        mix_at_snr(torch.ones(3, 100), _noise(100), torch.tensor([0.0, 1.0]))


def test_masks_refuse_parts_of_different_shapes_and_too_short_signals():
    with pytest.raises(AudioInputError, match=r"noise has shape \(900,\) but clean has \(1000,\)"):
        ideal_binary_mask(_clean(1000), _noise(900))
    with pytest.raises(AudioInputError, match=r"clean has 200 samples, fewer than the n_fft // 2 \+ 1 = 257"):
        ideal_ratio_mask(_clean(200), _noise(200))
    with pytest.raises(ConfigError, match="beta=0"):
        ideal_ratio_mask(_clean(1000), _noise(1000), beta=0)
