import json
import math
from types import SimpleNamespace

import pytest
import torch

from audioxai.errors import AudioInputError, ConfigError
from audioxai.moe.frontend import (PCEN, Frontend, SpectroConfig, band_edges_hz, choose_frontend, frontend_shape,
                                   load_spectro_config, save_spectro_config)


def make_profile(**overrides) -> SimpleNamespace:
    """A stand-in for DatasetProfile with the spec's fields: clean broadband 16 kHz data by default."""
    values = dict(fs_mode=16000, fs_unique=[16000], fmin_eff=50.0, fmax_eff=7000.0,
                  duration={"min": 0.8, "median": 1.0, "mean": 1.0, "max": 1.2}, snr_db_proxy=30.0,
                  transient_rate=0.05, spectral_flatness=0.3, clipping_rate=0.0, num_files=100, num_classes=4,
                  class_counts={"a": 25, "b": 25, "c": 25, "d": 25}, quality_score=0.8, per_class={})
    values.update(overrides)
    return SimpleNamespace(**values)


def pcen_loop(energy, s, alpha, delta, r, eps):
    """Reference PCEN, one frame at a time; per-channel parameters of shape (C,)."""
    smooth = energy[..., 0].clone()
    out = torch.empty_like(energy)
    for t in range(energy.shape[-1]):
        smooth = (1 - s) * smooth + s * energy[..., t]
        out[..., t] = (energy[..., t] / (eps + smooth) ** alpha + delta) ** r - delta ** r
    return out


def test_pcen_matches_a_loop_reference_with_defaults():
    gen = torch.Generator().manual_seed(0)
    energy = 10 ** (6 * torch.rand(2, 8, 300, generator=gen, dtype=torch.float64) - 4)  # 1e-4 .. 1e2
    ones = torch.ones(8, dtype=torch.float64)
    expected = pcen_loop(energy, 0.025 * ones, 0.98 * ones, 2.0 * ones, 0.5 * ones, 1e-6)
    got = PCEN(8)(energy)
    assert got.shape == energy.shape
    assert torch.allclose(got, expected, rtol=0, atol=1e-5)
    got32 = PCEN(8)(energy.float())
    assert torch.allclose(got32.double(), expected, rtol=1e-5, atol=1e-5)


def test_pcen_per_channel_parameters_match_the_loop_and_learn():
    gen = torch.Generator().manual_seed(1)
    energy = 5 * torch.rand(3, 4, 120, generator=gen, dtype=torch.float64)
    pcen = PCEN(4, trainable=True).double()
    s = torch.tensor([0.01, 0.05, 0.2, 1.0], dtype=torch.float64)
    alpha = torch.tensor([0.5, 0.8, 0.9, 0.98], dtype=torch.float64)
    delta = torch.tensor([0.5, 1.0, 2.0, 3.0], dtype=torch.float64)
    r = torch.tensor([0.25, 0.5, 0.3, 0.7], dtype=torch.float64)
    with torch.no_grad():
        for name, value in (("log_s", s), ("log_alpha", alpha), ("log_delta", delta), ("log_r", r)):
            getattr(pcen, name).copy_(value.log())
    got = pcen(energy)
    assert torch.allclose(got, pcen_loop(energy, s, alpha, delta, r, 1e-6), rtol=0, atol=1e-5)
    got.sum().backward()
    for name in ("log_s", "log_alpha", "log_delta", "log_r"):
        grad = getattr(pcen, name).grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_pcen_of_a_constant_input_is_constant_and_gain_normalised():
    loud, quiet = torch.full((1, 2, 50), 100.0), torch.full((1, 2, 50), 1.0)
    out_loud, out_quiet = PCEN(2)(loud), PCEN(2)(quiet)
    assert torch.allclose(out_loud, out_loud[..., :1].expand_as(out_loud), atol=1e-6)
    # a 100x gain changes E / M^0.98 only by 100^0.02: PCEN is almost gain-invariant
    assert float((out_loud - out_quiet).abs().max()) < 0.05


@pytest.mark.parametrize("kind", ["stft", "logmel", "logmel_pcen"])
def test_each_kind_gives_the_documented_shape_and_rows_inside_the_band(kind):
    cfg = SpectroConfig(kind=kind, sample_rate=16000, n_fft=1024 if kind == "stft" else 512, hop_length=160,
                        n_mels=0 if kind == "stft" else 40, fmin=100.0, fmax=6000.0, num_samples=16000)
    frontend = Frontend(cfg)
    out = frontend(torch.randn(3, 12000, generator=torch.Generator().manual_seed(0)))
    bin_hz = 16000 / 1024
    rows = sum(1 for k in range(513) if 100 <= k * bin_hz <= 6000) if kind == "stft" else 40
    assert out.shape == (3, 1, rows, 101) == (3, 1, *frontend_shape(cfg))
    assert torch.isfinite(out).all()
    edges = frontend.band_edges_hz()
    assert edges.shape == (rows + 1,)
    assert torch.equal(edges, band_edges_hz(cfg))
    assert float(edges[0]) == 100.0 and float(edges[-1]) == 6000.0
    assert bool((edges[1:] > edges[:-1]).all())


@pytest.mark.parametrize("kind", ["stft", "logmel", "logmel_pcen"])
@pytest.mark.parametrize("tone_hz", [1000.0, 3000.0])
def test_a_tone_peaks_in_the_row_whose_band_holds_it(kind, tone_hz):
    cfg = SpectroConfig(kind=kind, sample_rate=16000, n_fft=1024 if kind == "stft" else 512, hop_length=160,
                        n_mels=0 if kind == "stft" else 64, fmin=50.0, fmax=7000.0, num_samples=16000)
    frontend = Frontend(cfg)
    tone = 0.5 * torch.sin(2 * math.pi * tone_hz * torch.arange(16000) / 16000)
    row = int(frontend(tone[None])[0, 0, :, 10:-10].mean(dim=1).argmax())
    edges = frontend.band_edges_hz()
    assert float(edges[row]) <= tone_hz <= float(edges[row + 1])


def test_frontend_pads_and_crops_to_num_samples():
    cfg = SpectroConfig(kind="logmel", sample_rate=8000, n_fft=256, hop_length=80, n_mels=32, fmin=0.0,
                        fmax=4000.0, num_samples=8000)
    frontend = Frontend(cfg)
    x = torch.randn(2, 12000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(frontend(x), frontend(x[:, :8000]))
    short = x[:, :5000]
    padded = torch.cat([short, torch.zeros(2, 3000)], dim=1)
    assert torch.equal(frontend(short), frontend(padded))
    assert frontend(x[0]).shape == (1, 1, 32, 101)


def test_frontend_rejects_bad_waveforms_naming_the_problem():
    frontend = Frontend(SpectroConfig())
    with pytest.raises(AudioInputError, match="shape"):
        frontend(torch.zeros(2, 1, 16000))
    with pytest.raises(AudioInputError, match="shape"):
        frontend(torch.zeros(2, 0))
    with pytest.raises(AudioInputError, match="dtype"):
        frontend(torch.zeros(2, 16000, dtype=torch.int16))
    bad = torch.zeros(3, 16000)
    bad[1, 7] = float("nan")
    with pytest.raises(AudioInputError, match=r"rows \[1\]"):
        frontend(bad)


def test_too_many_mel_bands_for_a_narrow_band_is_a_config_error():
    cfg = SpectroConfig(kind="logmel", sample_rate=8000, n_fft=256, hop_length=80, n_mels=64, fmin=0.0,
                        fmax=1000.0, num_samples=8000)
    with pytest.raises(ConfigError, match="n_mels"):
        Frontend(cfg)


def test_choose_frontend_defaults_to_logmel_for_clean_broadband_data():
    cfg = choose_frontend(make_profile())
    assert (cfg.kind, cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.n_mels) == ("logmel", 16000, 512, 160, 64)
    assert (cfg.fmin, cfg.fmax) == (45.0, 7700.0)
    assert cfg.num_samples == 19200  # the longest file, 1.2 s <= 1.5 x median
    assert cfg.reason.startswith("logmel because")
    assert choose_frontend(make_profile(duration={"min": 0.5, "median": 1.0, "mean": 1.2, "max": 3.0})).num_samples \
        == 16000


@pytest.mark.parametrize("noisy", [{"snr_db_proxy": 3.0}, {"quality_score": 0.2}])
def test_choose_frontend_picks_pcen_for_noisy_data(noisy):
    cfg = choose_frontend(make_profile(**noisy))
    assert cfg.kind == "logmel_pcen"
    assert "noisy" in cfg.reason


def test_choose_frontend_picks_stft_for_narrow_band_tonal_data():
    cfg = choose_frontend(make_profile(fs_mode=44100, fmin_eff=100.0, fmax_eff=1500.0, spectral_flatness=0.02))
    assert cfg.kind == "stft" and cfg.n_mels == 0
    assert cfg.sample_rate == 8000  # the lowest standard rate covering 1650 Hz
    assert (cfg.fmin, cfg.fmax) == (90.0, 1650.0)
    assert cfg.n_fft == 512  # ~64 ms at 8 kHz
    assert "narrow-band" in cfg.reason
    assert Frontend(cfg)(torch.zeros(1, 8000)).shape[2] == frontend_shape(cfg)[0]
    # steady tones read as a low SNR proxy; line spectra still win over the noise rule
    steady = make_profile(fmax_eff=1500.0, spectral_flatness=0.02, snr_db_proxy=-15.0, quality_score=0.0)
    assert choose_frontend(steady).kind == "stft"
    assert choose_frontend(make_profile(fmax_eff=1500.0, spectral_flatness=0.3, snr_db_proxy=-15.0)).kind \
        == "logmel_pcen"


@pytest.mark.parametrize("fs_mode,fmax_eff,rate", [(8000, 3900.0, 8000), (22050, 9000.0, 22050),
                                                   (44100, 5000.0, 16000), (12000, 5800.0, 12000),
                                                   (48000, 21000.0, 48000)])
def test_choose_frontend_never_exceeds_fs_mode_or_nyquist(fs_mode, fmax_eff, rate):
    cfg = choose_frontend(make_profile(fs_mode=fs_mode, fmax_eff=fmax_eff))
    assert cfg.sample_rate == rate <= fs_mode
    assert cfg.fmax <= cfg.sample_rate / 2
    assert cfg.fmax == min(cfg.sample_rate / 2, round(fmax_eff * 1.1, 1))
    Frontend(cfg)  # the chosen mel bands all catch STFT bins


def test_narrow_band_logmel_gets_fewer_non_empty_mel_bands():
    cfg = choose_frontend(make_profile(fs_mode=8000, fmax_eff=1200.0, spectral_flatness=0.5))
    assert cfg.kind == "logmel" and 1 <= cfg.n_mels < 64
    out = Frontend(cfg)(torch.randn(1, 8000, generator=torch.Generator().manual_seed(0)))
    assert out.shape[2] == cfg.n_mels and torch.isfinite(out).all()


def test_choose_frontend_overrides_win():
    cfg = choose_frontend(make_profile(), target_sample_rate=22050, fmin=20.0, fmax=10000.0, kind="stft",
                          duration_s=0.5)
    assert (cfg.kind, cfg.sample_rate, cfg.fmin, cfg.fmax, cfg.num_samples) == ("stft", 22050, 20.0, 10000.0, 11025)
    assert choose_frontend(make_profile(fs_mode=44100), fmax=12000.0).sample_rate == 32000


@pytest.mark.parametrize("kwargs,key", [
    ({"fmax": 9000.0}, "fmax"),
    ({"fmax": 9000.0, "target_sample_rate": 16000}, "fmax"),
    ({"fmin": 8000.0}, "fmin"),
    ({"fmin": -5.0}, "fmin"),
    ({"kind": "cqt"}, "kind"),
    ({"target_sample_rate": 0}, "target_sample_rate"),
    ({"duration_s": -1.0}, "duration_s"),
])
def test_bad_overrides_raise_config_error_naming_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        choose_frontend(make_profile(), **kwargs)


def test_spectro_config_json_round_trip(tmp_path):
    cfg = choose_frontend(make_profile(snr_db_proxy=2.0))
    path = save_spectro_config(cfg, tmp_path)
    assert path == tmp_path / "spectro_config.json"
    assert load_spectro_config(path) == cfg
    assert load_spectro_config(tmp_path) == cfg
    assert [p.name for p in tmp_path.iterdir()] == ["spectro_config.json"]


@pytest.mark.parametrize("change,key", [({"n_melz": 64}, "n_melz"), ({"sample_rate": "16k"}, "sample_rate"),
                                        ({"fmax": 9000.0}, "fmax"), ({"kind": "cqt"}, "kind")])
def test_load_spectro_config_refuses_bad_files_naming_the_key(tmp_path, change, key):
    values = json.loads(save_spectro_config(SpectroConfig(), tmp_path).read_text())
    values.update(change)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(values))
    with pytest.raises(ConfigError, match=key):
        load_spectro_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_spectro_config(tmp_path / "missing.json")
