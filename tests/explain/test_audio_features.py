import pytest
import torch

from audioxai.errors import AudioInputError, ConfigError
from audioxai.explain.audio_features import (AudioFeatures, AudioGame, AudioMasker, ShapleyExplanation,
                                             additivity_error)

SR, N = 16000, 4000  # 0.25 s


def _waveform(seed: int = 0, n: int = N) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(n) / SR
    return (0.3 * torch.sin(2 * torch.pi * 440 * t) * torch.linspace(0, 1, n) + 0.05 * torch.randn(n, generator=g))


def _is_partition(features: AudioFeatures) -> bool:
    r = features.regions
    return bool(((r == 0) | (r == 1)).all() and torch.equal(r.sum(0), torch.ones(r.shape[1:])))


def test_time_segments_tile_the_stft_grid_in_order():
    f = AudioFeatures.time_segments(N, SR, num_segments=5)
    assert f.regions.shape == (5, 257, N // 128 + 1) and f.kind == "time" and _is_partition(f)
    frames = f.regions[:, 0, :].argmax(0)
    assert torch.equal(frames, frames.sort().values)  # segment index grows with time
    assert (f.regions[:, :, :].amax(1) == f.regions[:, 0, :]).all()  # whole spectrum per frame
    assert f.bounds[0][:2] == (0.0, 0.05) and f.bounds[-1][1] == pytest.approx(0.25) and f.bounds[2][3] == 8000.0
    w = AudioFeatures.time_segments(N, SR, window_seconds=0.1)
    assert w.num_features == 3 and _is_partition(w) and w.bounds[-1][:2] == (0.2, 0.25)


def test_aligned_boundaries_get_gap_features_between_them():
    f = AudioFeatures.time_segments(N, SR, boundaries=[("world", 0.15, 0.22), ("hello", 0.03, 0.12)])
    assert f.labels == ["gap", "hello", "gap", "world", "gap"] and _is_partition(f)
    assert [b[:2] for b in f.bounds] == [(0.0, 0.03), (0.03, 0.12), (0.12, 0.15), (0.15, 0.22), (0.22, 0.25)]
    frames = f.regions[1, 0].nonzero().squeeze(1) * 128 / SR  # frame centres of "hello"
    assert frames.min() >= 0.03 and frames.max() < 0.12
    tight = AudioFeatures.time_segments(N, SR, boundaries=[("a", 0.0, 0.1), ("b", 0.1002, 0.25)])
    assert tight.labels == ["a", "b"]  # a 0.2 ms gap holds no frame centre: dropped


def test_aligned_boundaries_keep_time_order_whatever_their_labels():
    # a phoneme alignment repeats labels and is not in alphabetical order
    f = AudioFeatures.time_segments(N, SR, boundaries=[("t", 0.0, 0.06), ("a", 0.06, 0.12), ("t", 0.12, 0.25)])
    assert f.labels == ["t", "a", "t"] and _is_partition(f)
    assert [b[:2] for b in f.bounds] == [(0.0, 0.06), (0.06, 0.12), (0.12, 0.25)]


def test_time_frequency_patches_are_mel_bands_by_windows():
    f = AudioFeatures.time_frequency_patches(N, SR, num_bands=4, num_windows=3)
    assert f.num_features == 12 and f.kind == "time_frequency" and _is_partition(f)
    widths = [b[3] - b[2] for b in f.bounds[:4]]
    assert widths == sorted(widths) and f.bounds[0][2] == 0.0 and f.bounds[3][3] == 8000.0  # mel: wider up high
    assert f.bounds[5][:2] == f.bounds[4][:2] != f.bounds[0][:2]  # time-major: window 1 holds features 4..7
    low = AudioFeatures.time_frequency_patches(N, SR, num_bands=3, num_windows=2, fmin=300.0, fmax=4000.0)
    assert _is_partition(low)  # bins outside [fmin, fmax] join the first and last bands


def test_bad_feature_requests_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match="exactly one of"):
        AudioFeatures.time_segments(N, SR, num_segments=4, window_seconds=0.1)
    with pytest.raises(ConfigError, match="holds no STFT frame"):
        AudioFeatures.time_segments(N, SR, num_segments=100)
    with pytest.raises(ConfigError, match="must not overlap"):
        AudioFeatures.time_segments(N, SR, boundaries=[("a", 0.0, 0.1), ("b", 0.05, 0.2)])
    with pytest.raises(ConfigError, match="hold no STFT bin"):
        AudioFeatures.time_frequency_patches(N, SR, num_bands=128, num_windows=2)
    f = AudioFeatures.time_segments(N, SR, num_segments=2)
    with pytest.raises(ConfigError, match="do not partition"):
        AudioFeatures(f.regions * 2, f.labels, f.kind, f.bounds, N)
    with pytest.raises(AudioInputError, match="4000"):
        AudioMasker(_waveform(n=3000), f)
    with pytest.raises(AudioInputError, match="empty"):
        AudioFeatures.time_segments(0, SR, num_segments=1)
    with pytest.raises(ConfigError, match="replacement='zeros'"):
        AudioMasker(_waveform(), f, replacement="zeros")


@pytest.mark.parametrize("replacement", ["silence", "noise", "mean"])
def test_masker_keeps_everything_at_one_and_is_affine_in_z(replacement):
    x = _waveform()
    f = AudioFeatures.time_frequency_patches(N, SR, num_bands=3, num_windows=4)
    masker = AudioMasker(x, f, replacement, seed=1)
    assert (masker(torch.ones(1, 12))[0] - x).abs().max() < 1e-4
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.rand(3, 12, generator=g), (torch.rand(3, 12, generator=g) > 0.5).float()
    mixed = masker(0.3 * z1 + 0.7 * z2)
    assert torch.allclose(mixed, 0.3 * masker(z1) + 0.7 * masker(z2), atol=1e-5)
    direct = torch.istft(masker.masked_spectrogram(z2), 512, 128, window=torch.hann_window(512), center=True,
                         length=N)
    assert torch.allclose(masker(z2), direct, atol=1e-5)  # the basis shortcut is the formula


def test_silence_removes_everything_and_noise_sits_20_db_down():
    x = _waveform()
    f = AudioFeatures.time_segments(N, SR, num_segments=4)
    silent = AudioMasker(x, f, "silence")
    assert silent(torch.zeros(2, 4)).abs().max() < 1e-7
    assert torch.allclose(silent(2 * torch.eye(4)[:1]), 2 * silent(torch.eye(4)[:1]))  # linear, not just affine
    noise = AudioMasker(x, f, "noise", seed=3)(torch.zeros(1, 4))[0]
    assert noise.pow(2).mean().sqrt() / x.pow(2).mean().sqrt() == pytest.approx(0.1, rel=0.02)
    assert torch.equal(noise, AudioMasker(x, f, "noise", seed=3)(torch.zeros(1, 4))[0])  # seeded
    mean = AudioMasker(x, f, "mean").masked_spectrogram(torch.zeros(1, 4))[0].abs()
    assert torch.allclose(mean, mean[:, :1].expand_as(mean), atol=1e-5)  # one magnitude per bin


def test_game_counts_evaluations_and_chunks_without_changing_values():
    x = _waveform()
    f = AudioFeatures.time_segments(N, SR, num_segments=6)

    def energies(w):
        return torch.stack([w.pow(2).sum(1), w[:, :1000].abs().sum(1)], 1)

    z = (torch.rand(10, 6, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    small, large = AudioGame(x, f, energies, batch_size=3), AudioGame(x, f, energies, batch_size=64)
    v = small(z)
    assert v.shape == (10, 2) and small.num_evaluations == 10 and not v.requires_grad
    assert torch.allclose(v, large(z), rtol=1e-6)
    z.requires_grad_(True)
    small.forward_with_grad(z)[:, 0].sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and small.num_evaluations == 20
    v0, v1 = small.endpoints()
    assert small.num_evaluations == 20 and v1[0] == pytest.approx(x.pow(2).sum().item(), rel=1e-4) and v0[0] == 0
    with pytest.raises(ConfigError, match="return \\(B, K\\)"):
        AudioGame(x, f, lambda w: w[None])(z.detach())
    with pytest.raises(ConfigError, match="expected \\(B, 6\\)"):
        small(torch.ones(2, 5))


def test_explanation_reports_the_additivity_error_as_is():
    values = torch.tensor([[1.0, 2.0], [0.5, -1.0]])
    e = ShapleyExplanation.build(values, torch.tensor([0.0, 1.0]), torch.tensor([1.5, 2.5]), 4, 0.1, "hand")
    assert e.values.dtype == torch.float64 and e.additivity_error.tolist() == [0.0, 0.5]
    assert e.max_additivity_error == 0.5
    assert additivity_error(values, torch.zeros(2), torch.zeros(2)).tolist() == [1.5, 1.0]
