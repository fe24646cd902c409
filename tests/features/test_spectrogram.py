import math

import pytest
import torch

from audioxai.features.spectrogram import frame_times, log_mel_spectrogram, stft_magnitude


def test_stft_of_a_sine_peaks_at_its_bin():
    sr, f = 16000, 1000.0
    x = torch.sin(2 * math.pi * f * torch.arange(sr) / sr)
    mag = stft_magnitude(x, n_fft=512, hop_length=128)
    assert mag.shape == (257, sr // 128 + 1)
    assert int(mag[:, 10:-10].mean(dim=1).argmax()) == round(f * 512 / sr)


def test_log_mel_is_batched_per_sample_and_floored():
    sr = 16000
    loud = torch.randn(sr)
    quiet = 1e-3 * torch.randn(sr)
    batch = log_mel_spectrogram(torch.stack([loud, quiet]), sr, n_mels=32)
    assert batch.shape == (2, 32, 101)
    assert torch.allclose(batch[1], log_mel_spectrogram(quiet, sr, n_mels=32), atol=1e-4)
    for spec in batch:
        assert float(spec.max() - spec.min()) <= 80.0 + 1e-4
    # a 1e-3 amplitude is 60 dB quieter
    assert float(batch[0].mean() - batch[1].mean()) == pytest.approx(60.0, abs=1.0)


def test_frame_times():
    assert frame_times(3, 16000, 160).tolist() == pytest.approx([0.0, 0.01, 0.02])
