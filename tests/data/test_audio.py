"""Tests for audioxai.data.audio: loading, checking, resampling and atomic saving of waveforms."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import soundfile as sf
import torch

from audioxai.data import audio
from audioxai.data.audio import check_waveform, load_audio, resample_to, save_audio, to_mono
from audioxai.errors import AudioInputError


def _tone(n: int = 1600, sample_rate: int = 16000, freq: float = 440.0) -> torch.Tensor:
    t = torch.arange(n) / sample_rate
    return 0.5 * torch.sin(2 * math.pi * freq * t)


def test_save_then_load_round_trips_within_pcm16_precision(tmp_path):
    x = _tone()
    path = save_audio(tmp_path / "tone.wav", x, 16000)
    y, rate = load_audio(path)
    assert rate == 16000
    assert y.dtype == torch.float32 and y.shape == (1600,)
    assert torch.allclose(y, x, atol=1e-4)


def test_load_keeps_file_rate_when_sample_rate_is_none(tmp_path):
    sf.write(tmp_path / "a.wav", _tone(800, 8000).numpy(), 8000)
    y, rate = load_audio(tmp_path / "a.wav", sample_rate=None)
    assert rate == 8000 and y.shape == (800,)


def test_stereo_file_becomes_channel_mean_and_is_logged(tmp_path, caplog):
    left, right = _tone(), 0.25 * torch.ones(1600)
    sf.write(tmp_path / "stereo.wav", torch.stack([left, right], dim=1).numpy(), 16000, subtype="FLOAT")
    with caplog.at_level(logging.INFO, logger="audioxai.data.audio"):
        y, _ = load_audio(tmp_path / "stereo.wav")
    assert torch.allclose(y, (left + right) / 2, atol=1e-6)
    assert any("stereo.wav" in r.getMessage() and "mono" in r.getMessage() for r in caplog.records)


def test_load_without_mono_keeps_channels_first(tmp_path):
    data = np.stack([np.full(100, 0.1), np.full(100, -0.2)], axis=1).astype(np.float32)
    sf.write(tmp_path / "stereo.wav", data, 16000, subtype="FLOAT")
    y, _ = load_audio(tmp_path / "stereo.wav", mono=False)
    assert y.shape == (2, 100)
    assert torch.allclose(y[1], torch.full((100,), -0.2))


def test_resampling_8k_to_16k_doubles_length_and_logs_both_rates(tmp_path, caplog):
    sf.write(tmp_path / "low.wav", _tone(800, 8000).numpy(), 8000)
    with caplog.at_level(logging.INFO, logger="audioxai.data.audio"):
        y, rate = load_audio(tmp_path / "low.wav", sample_rate=16000)
    assert rate == 16000 and y.shape == (1600,)
    messages = [r.getMessage() for r in caplog.records]
    assert any("low.wav" in m and "8000" in m and "16000" in m for m in messages)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(AudioInputError, match=r"nothere\.wav does not exist"):
        load_audio(tmp_path / "nothere.wav")


def test_corrupt_file_is_named(tmp_path):
    (tmp_path / "notes.wav").write_text("this is not audio\n")
    with pytest.raises(AudioInputError, match=r"cannot read audio file .*notes\.wav"):
        load_audio(tmp_path / "notes.wav")


def test_empty_file_is_named(tmp_path):
    sf.write(tmp_path / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioInputError, match=r"empty\.wav is empty \(0 samples\)"):
        load_audio(tmp_path / "empty.wav")


def test_nan_samples_are_named(tmp_path):
    data = np.zeros(100, dtype=np.float32)
    data[10], data[20] = np.nan, np.inf
    sf.write(tmp_path / "nan.wav", data, 16000, subtype="FLOAT")
    with pytest.raises(AudioInputError, match=r"nan\.wav has 2 NaN or infinite samples"):
        load_audio(tmp_path / "nan.wav")


def test_check_waveform_accepts_1d_and_1xT_and_returns_1d():
    x = _tone(100)
    assert check_waveform(x, 16000).shape == (100,)
    assert torch.equal(check_waveform(x[None], 16000, expected_sample_rate=16000), x)


def test_check_waveform_rejects_stereo_with_to_mono_hint():
    with pytest.raises(AudioInputError, match=r"2 channels.*to_mono"):
        check_waveform(torch.zeros(2, 100), 16000)


@pytest.mark.parametrize(
    ("x", "pattern"),
    [
        (torch.zeros(0), "empty"),
        (torch.tensor([0.0, float("nan")]), "NaN"),
        (torch.tensor([0.0, float("inf")]), "NaN or infinite"),
        (torch.zeros(10, dtype=torch.int16), "dtype torch.int16"),
        (torch.zeros(1, 1, 10), "shape"),
        ([0.0, 0.1], "not a torch.Tensor"),
    ],
)
def test_check_waveform_rejects_bad_input(x, pattern):
    with pytest.raises(AudioInputError, match=pattern):
        check_waveform(x, 16000, name="clip")


def test_check_waveform_rate_mismatch_names_both_rates_and_the_fix():
    with pytest.raises(AudioInputError, match=r"8000 Hz but 16000 Hz.*resample_to"):
        check_waveform(torch.zeros(100), 8000, expected_sample_rate=16000)


def test_to_mono_averages_channels():
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert torch.equal(to_mono(x), torch.tensor([2.0, 3.0]))
    row = x[0]
    assert to_mono(row) is row


def test_resample_to_is_identity_for_equal_rates_and_scales_length_otherwise():
    x = _tone(1600)
    assert resample_to(x, 16000, 16000) is x
    assert resample_to(x, 16000, 8000).shape == (800,)


def test_save_clips_out_of_range_samples_with_warning(tmp_path, caplog):
    x = torch.tensor([0.0, 1.5, -2.0, 0.5])
    with caplog.at_level(logging.WARNING, logger="audioxai.data.audio"):
        save_audio(tmp_path / "loud.wav", x, 16000)
    y, _ = load_audio(tmp_path / "loud.wav")
    assert y.max() <= 1.0 and y.min() >= -1.0
    assert y[2] == -1.0 and abs(float(y[1]) - 1.0) < 1e-4
    assert any("clipping 2 of 4" in r.getMessage() for r in caplog.records)


def test_save_float_subtype_keeps_values_above_one(tmp_path):
    x = torch.tensor([0.0, 1.5, -2.0])
    save_audio(tmp_path / "f.wav", x, 16000, subtype="FLOAT")
    y, _ = load_audio(tmp_path / "f.wav")
    assert torch.equal(y, x)


def test_save_rejects_nan_and_bad_extension(tmp_path):
    with pytest.raises(AudioInputError, match="NaN"):
        save_audio(tmp_path / "x.wav", torch.tensor([float("nan")]), 16000)
    with pytest.raises(AudioInputError, match=r"unknown audio extension '\.xyz'"):
        save_audio(tmp_path / "x.xyz", torch.zeros(10), 16000)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file_and_no_temp_file(tmp_path, monkeypatch):
    def write_half_then_fail(file, data, *args, **kwargs):
        sf_write(file, data[: len(data) // 2], *args, **kwargs)
        raise OSError("disk full")

    sf_write = sf.write
    monkeypatch.setattr(audio.sf, "write", write_half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_audio(tmp_path / "out.wav", _tone(), 16000)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = save_audio(tmp_path / "out.wav", _tone(), 16000)
    before = target.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(audio.sf, "write", fail)
    with pytest.raises(OSError):
        save_audio(target, torch.zeros(10), 16000)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_speed_ratio_is_exact_and_refuses_what_no_small_ratio_gives() -> None:
    from fractions import Fraction

    from audioxai.data.audio import speed_ratio
    from audioxai.errors import ConfigError
    assert speed_ratio(0.95) == Fraction(19, 20) and speed_ratio(1.1) == Fraction(11, 10) and speed_ratio(2) == 2
    assert speed_ratio(1.0) == 1
    for bad in (1.004, 0.0, -1.1, float("nan"), float("inf"), True, "fast", None):
        with pytest.raises(ConfigError, match="speed factor"):
            speed_ratio(bad)


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_change_speed_scales_frequency_and_length_by_the_factor(factor) -> None:
    from audioxai.data.audio import change_speed
    tone = _tone(32000, freq=400.0)
    fast = change_speed(tone, factor)
    assert fast.shape == (round(32000 / factor),)
    window = fast[:16000] * torch.hann_window(16000)
    assert float(torch.fft.rfft(window).abs().argmax()) == pytest.approx(400 * factor, abs=1.0)  # 1 Hz bins
    assert change_speed(tone, 1.0) is tone
