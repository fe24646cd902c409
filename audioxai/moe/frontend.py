"""Spectrogram front-end of the mixture of experts: its config, PCEN in torch, the module, and the automatic choice.

``choose_frontend(profile)`` reads a dataset profile and returns a :class:`SpectroConfig` (saved as
``spectro_config.json``); ``Frontend(cfg)`` turns waveforms ``(B, N)`` into ``(B, 1, F, T)`` features in
dB (``stft``, ``logmel``) or PCEN units (``logmel_pcen``). Rows run from low to high frequency and
``band_edges_hz()`` gives their ``F + 1`` edges, so experts' bands in Hz map onto rows.

Rules of ``choose_frontend`` (each overridable):

* sample rate: the lowest of :data:`STANDARD_RATES` whose Nyquist frequency covers ``fmax_eff`` plus
  :data:`BAND_MARGIN` (or the requested ``fmax``), never above ``fs_mode``; ``fs_mode`` when none does;
* band: ``[fmin_eff * (1 - margin), fmax_eff * (1 + margin)]``, cut to ``[0, Nyquist]``;
* kind: ``stft`` when narrow-band and tonal (``fmax_eff`` < :data:`NARROWBAND_HZ` and ``spectral_flatness`` <
  :data:`TONAL_FLATNESS`: lines dominate the spectrum, which noise would prevent; checked first because the
  SNR proxy reads steady tones as noise); else ``logmel_pcen`` when noisy (``snr_db_proxy`` <
  :data:`NOISY_SNR_DB` or ``quality_score`` < :data:`LOW_QUALITY`); else ``logmel``;
* window: the power of two nearest :data:`WINDOW_S` seconds (:data:`FINE_WINDOW_S` for ``stft``), hop
  :data:`HOP_S`; ``n_mels`` at most :data:`MAX_MELS`, fewer when the band is too narrow for that many
  non-empty filters;
* clip length: the longest file when it is at most 1.5 x the median duration, else the median.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import nn

from audioxai.config import is_finite_number, load_config_json, save_config_json
from audioxai.errors import AudioInputError, ConfigError
from audioxai.features.spectrogram import stft_magnitude

if TYPE_CHECKING:
    from audioxai.moe.profiling import DatasetProfile

logger = logging.getLogger(__name__)

__all__ = ["SpectroConfig", "PCEN", "Frontend", "choose_frontend", "save_spectro_config", "load_spectro_config",
           "frontend_shape", "band_edges_hz", "KINDS", "SPECTRO_CONFIG_NAME"]

KINDS = ("stft", "logmel", "logmel_pcen")
SPECTRO_CONFIG_NAME = "spectro_config.json"
STANDARD_RATES = (8000, 16000, 22050, 32000, 44100, 48000)
BAND_MARGIN = 0.10       # the chosen band exceeds the effective band by 10% on each side
NOISY_SNR_DB = 10.0      # SNR proxy below this: noisy data, PCEN
LOW_QUALITY = 0.4        # quality score Q below this: noisy data, PCEN
NARROWBAND_HZ = 2000.0   # fmax_eff below this and ...
TONAL_FLATNESS = 0.1     # ... spectral flatness below this: narrow-band tonal data, linear STFT
WINDOW_S, FINE_WINDOW_S, HOP_S = 0.025, 0.064, 0.010
MAX_MELS = 64
TOP_DB = 80.0            # dB features are floored this far below each sample's peak

SpectroKind = Literal["stft", "logmel", "logmel_pcen"]


@dataclass
class SpectroConfig:
    """What the front-end computes; ``n_mels`` is 0 (unused) for ``stft``; ``reason`` says why it was chosen."""

    kind: SpectroKind = "logmel"
    sample_rate: int = 16000
    n_fft: int = 512
    hop_length: int = 160
    n_mels: int = 64
    fmin: float = 0.0
    fmax: float = 8000.0
    num_samples: int = 16000
    reason: str = ""

    def __post_init__(self) -> None:
        _check_spectro_config(self)


def _check_spectro_config(cfg: SpectroConfig) -> None:
    """Raise ConfigError naming the first impossible field of ``cfg``."""
    if cfg.kind not in KINDS:
        raise ConfigError(f"kind={cfg.kind!r} is not a front-end kind: use one of {list(KINDS)}")
    for key in ("sample_rate", "n_fft", "hop_length", "num_samples", "n_mels"):
        value = getattr(cfg, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if key == "n_mels" else 1):
            raise ConfigError(f"{key}={value!r} should be a positive integer")
    if cfg.kind != "stft" and cfg.n_mels < 1:
        raise ConfigError(f"n_mels={cfg.n_mels} with kind={cfg.kind!r}: give at least 1 mel band")
    nyquist = cfg.sample_rate / 2
    if not 0 <= cfg.fmin < cfg.fmax:
        raise ConfigError(f"fmin={cfg.fmin} Hz and fmax={cfg.fmax} Hz: need 0 <= fmin < fmax")
    if cfg.fmax > nyquist:
        raise ConfigError(f"fmax={cfg.fmax} Hz is above the Nyquist frequency {nyquist:g} Hz of "
                          f"sample_rate={cfg.sample_rate}: lower fmax to at most {nyquist:g} or raise sample_rate")
    if cfg.num_samples < cfg.n_fft:
        raise ConfigError(f"num_samples={cfg.num_samples} is shorter than n_fft={cfg.n_fft}: lengthen the clips "
                          f"or shorten the window")


def save_spectro_config(cfg: SpectroConfig, path: str | os.PathLike[str]) -> Path:
    """Write ``cfg`` as JSON, atomically; a folder gets ``spectro_config.json`` inside it. Returns the file."""
    return save_config_json(cfg, path, SPECTRO_CONFIG_NAME)


def load_spectro_config(path: str | os.PathLike[str]) -> SpectroConfig:
    """Read a ``spectro_config.json`` (or the one inside a folder), checking keys, types and values.

    Raises:
        ConfigError: naming the file and the unknown key, wrong type or impossible value.
    """
    return load_config_json(SpectroConfig, path, SPECTRO_CONFIG_NAME)


class PCEN(nn.Module):
    """Per-channel energy normalisation (Wang et al. 2017, "Trainable frontend for robust and far-field keyword
    spotting").

    ``M[t] = (1 - s) M[t-1] + s E[t]`` with ``M[-1] = E[0]`` (a first-order IIR smoother over time, run by
    ``torchaudio.functional.lfilter``, no Python loop), then ``PCEN = (E / (eps + M)^alpha + delta)^r - delta^r``.
    Each channel has its own ``s, alpha, delta, r``, stored as logarithms; learnable when ``trainable``.
    Defaults: ``s=0.025, alpha=0.98, delta=2, r=0.5, eps=1e-6``.
    """

    def __init__(self, num_channels: int, s: float = 0.025, alpha: float = 0.98, delta: float = 2.0,
                 r: float = 0.5, eps: float = 1e-6, trainable: bool = False) -> None:
        super().__init__()
        if not 0 < s <= 1 or min(alpha, delta, r, eps) <= 0 or num_channels < 1:
            raise ConfigError(f"PCEN needs num_channels >= 1, 0 < s <= 1 and positive alpha, delta, r, eps; got "
                              f"{num_channels=}, {s=}, {alpha=}, {delta=}, {r=}, {eps=}")
        self.eps = eps
        for name, value in (("log_s", s), ("log_alpha", alpha), ("log_delta", delta), ("log_r", r)):
            tensor = torch.full((num_channels,), math.log(value))
            if trainable:
                self.register_parameter(name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)

    def smoother(self, energy: torch.Tensor) -> torch.Tensor:
        """The smoothed energy ``M``, same shape as ``energy`` ``(..., C, T)``."""
        s = self.log_s.exp().clamp(max=1.0).to(energy.dtype)
        # zero initial state; a first input of E[0] / s makes M[0] = E[0], as if M[-1] = E[0]
        first = energy[..., :1] / s[:, None]
        a_coeffs = torch.stack([torch.ones_like(s), s - 1.0], dim=1)
        b_coeffs = torch.stack([s, torch.zeros_like(s)], dim=1)
        return AF.lfilter(torch.cat([first, energy[..., 1:]], dim=-1), a_coeffs, b_coeffs, clamp=False)

    def forward(self, energy: torch.Tensor) -> torch.Tensor:
        """PCEN of non-negative energies ``(..., C, T)`` (C channels, T frames); same shape."""
        if energy.dim() < 2 or energy.shape[-2] != self.log_s.shape[0]:
            raise AudioInputError(f"PCEN input has shape {tuple(energy.shape)}: pass (..., {self.log_s.shape[0]}, "
                                  f"frames) energies, channels second to last")
        alpha, delta, r = (p.exp().to(energy.dtype)[:, None] for p in (self.log_alpha, self.log_delta, self.log_r))
        smooth = self.smoother(energy)
        return (energy / (self.eps + smooth) ** alpha + delta) ** r - delta ** r


_MEL_LOGSTEP = math.log(6.4) / 27.0


def _slaney_hz_to_mel(hz: torch.Tensor) -> torch.Tensor:
    """Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above (as torchaudio's ``slaney``)."""
    return torch.where(hz < 1000.0, hz * 3.0 / 200.0, 15.0 + torch.log(hz.clamp_min(1e-9) / 1000.0) / _MEL_LOGSTEP)


def _slaney_mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    return torch.where(mel < 15.0, mel * 200.0 / 3.0, 1000.0 * torch.exp(_MEL_LOGSTEP * (mel - 15.0)))


def _stft_rows(cfg: SpectroConfig) -> tuple[int, int]:
    """First and one-past-last STFT bins whose centre frequency lies in ``[fmin, fmax]``."""
    bin_hz = cfg.sample_rate / cfg.n_fft
    low, high = math.ceil(cfg.fmin / bin_hz - 1e-9), math.floor(cfg.fmax / bin_hz + 1e-9) + 1
    if high <= low:
        raise ConfigError(f"no STFT bin ({bin_hz:g} Hz apart) lies in fmin={cfg.fmin}..fmax={cfg.fmax} Hz: "
                          f"widen the band or raise n_fft")
    return low, min(high, cfg.n_fft // 2 + 1)


def frontend_shape(cfg: SpectroConfig) -> tuple[int, int]:
    """``(F, T)``: the number of frequency rows and of frames (centred STFT) the front-end produces."""
    low, high = _stft_rows(cfg) if cfg.kind == "stft" else (0, cfg.n_mels)
    return high - low, 1 + cfg.num_samples // cfg.hop_length


def band_edges_hz(cfg: SpectroConfig) -> torch.Tensor:
    """The ``F + 1`` frequency edges (Hz, ascending) of the rows; row ``i`` covers ``[edges[i], edges[i+1]]``.

    STFT rows: half a bin either side of each bin's centre; mel rows: half-way (in Hz) between neighbouring
    filter centres, where the two triangles weigh a tone equally. The outer edges are ``fmin`` and ``fmax``, so
    every row lies in ``[fmin, fmax]`` and holds its own centre frequency.
    """
    if cfg.kind == "stft":
        low, high = _stft_rows(cfg)
        edges = (torch.arange(low, high + 1, dtype=torch.float64) - 0.5) * cfg.sample_rate / cfg.n_fft
    else:
        lo, hi = _slaney_hz_to_mel(torch.tensor([cfg.fmin, cfg.fmax], dtype=torch.float64))
        centres = _slaney_mel_to_hz(torch.linspace(float(lo), float(hi), cfg.n_mels + 2, dtype=torch.float64)[1:-1])
        edges = torch.cat([centres[:1], (centres[1:] + centres[:-1]) / 2, centres[-1:]])
    edges[0], edges[-1] = cfg.fmin, cfg.fmax
    return edges.clamp(cfg.fmin, cfg.fmax).float()


def _to_db(power: torch.Tensor) -> torch.Tensor:
    """10 log10(power), floored :data:`TOP_DB` below each sample's peak; ``(B, F, T)``."""
    db = 10.0 * torch.log10(power.clamp_min(1e-10))
    return torch.maximum(db, db.amax(dim=(-2, -1), keepdim=True) - TOP_DB)


class Frontend(nn.Module):
    """Waveforms ``(B, N)`` at ``cfg.sample_rate`` -> features ``(B, 1, F, T)``, rows from low to high frequency.

    Clips are cut to their first ``cfg.num_samples`` samples or zero-padded at the end. ``stft``: log power (dB)
    of the bins in ``[fmin, fmax]``; ``logmel``: log power (dB) of ``n_mels`` triangular slaney-scale filters
    (unnormalised, so PCEN's ``eps`` is a floor relative to full scale) between ``fmin`` and ``fmax``;
    ``logmel_pcen``: the same mel energies through :class:`PCEN` (learnable when ``trainable_pcen``).
    """

    def __init__(self, cfg: SpectroConfig, trainable_pcen: bool = False) -> None:
        super().__init__()
        _check_spectro_config(cfg)
        self.config = cfg
        self.num_rows, self.num_frames = frontend_shape(cfg)
        self.register_buffer("edges", band_edges_hz(cfg), persistent=False)
        self.rows = _stft_rows(cfg) if cfg.kind == "stft" else (0, 0)
        self.register_buffer("mel_fb", _mel_filterbank(cfg) if cfg.kind != "stft" else torch.empty(0),
                             persistent=False)
        self.pcen = PCEN(cfg.n_mels, trainable=trainable_pcen) if cfg.kind == "logmel_pcen" else None

    def band_edges_hz(self) -> torch.Tensor:
        """The ``F + 1`` row edges in Hz (see :func:`band_edges_hz`)."""
        return self.edges

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """Features ``(B, 1, F, T)`` of waveforms ``(B, N)`` (or one ``(N,)``)."""
        x = self._fit_length(_check_batch(waveform, self.config.sample_rate))
        power = stft_magnitude(x, self.config.n_fft, self.config.hop_length) ** 2
        if self.config.kind == "stft":
            features = _to_db(power[:, self.rows[0]:self.rows[1]])
        else:
            mel = torch.matmul(self.mel_fb.to(power.dtype).T, power)
            features = self.pcen(mel) if self.pcen is not None else _to_db(mel)
        return features.unsqueeze(1)

    def _fit_length(self, x: torch.Tensor) -> torch.Tensor:
        n = self.config.num_samples
        return x[:, :n] if x.shape[-1] >= n else F.pad(x, (0, n - x.shape[-1]))


def _mel_filterbank(cfg: SpectroConfig) -> torch.Tensor:
    """``(n_fft // 2 + 1, n_mels)`` triangular filters; ConfigError when a filter catches no STFT bin."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchaudio warns about empty filters; we raise instead
        fb = AF.melscale_fbanks(cfg.n_fft // 2 + 1, cfg.fmin, cfg.fmax, cfg.n_mels, cfg.sample_rate,
                                norm=None, mel_scale="slaney")
    empty = (fb.amax(dim=0) <= 0).nonzero().flatten().tolist()
    if empty:
        raise ConfigError(f"n_mels={cfg.n_mels} is too many for {cfg.fmin:g}-{cfg.fmax:g} Hz with n_fft={cfg.n_fft}: "
                          f"mel filters {empty[:5]} catch no STFT bin; lower n_mels or raise n_fft")
    return fb


def _check_batch(waveform: Any, sample_rate: int) -> torch.Tensor:
    """``waveform`` as a finite floating-point ``(B, N)`` tensor, or AudioInputError naming the problem."""
    if not isinstance(waveform, torch.Tensor):
        raise AudioInputError(f"waveform is a {type(waveform).__name__}, not a torch.Tensor: "
                              f"wrap it with torch.as_tensor")
    x = waveform.unsqueeze(0) if waveform.dim() == 1 else waveform
    if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise AudioInputError(f"waveform has shape {tuple(waveform.shape)}: pass a non-empty batch (B, N) of mono "
                              f"waveforms at {sample_rate} Hz (average or pick channels first)")
    if not x.is_floating_point():
        raise AudioInputError(f"waveform has dtype {x.dtype}: pass floating-point samples in [-1, 1], "
                              f"e.g. x.float() / 32768 for int16")
    finite = torch.isfinite(x).all(dim=1)
    if not bool(finite.all()):
        rows = (~finite).nonzero().flatten().tolist()
        raise AudioInputError(f"waveform rows {rows[:10]} hold NaN or inf: replace them (torch.nan_to_num) or "
                              f"reload the audio")
    return x


def choose_frontend(profile: DatasetProfile, target_sample_rate: int | None = None, fmin: float | None = None,
                    fmax: float | None = None, kind: str | None = None,
                    duration_s: float | None = None) -> SpectroConfig:
    """The front-end for a profiled dataset, by the rules in the module docstring; overrides win.

    Args:
        profile: a ``DatasetProfile`` (``fs_mode``, ``fmin_eff``, ``fmax_eff``, ``duration``, ``snr_db_proxy``,
            ``quality_score``, ``spectral_flatness`` are read).
        target_sample_rate, fmin, fmax, kind, duration_s: overrides (Hz, Hz, Hz, one of :data:`KINDS`, seconds).

    Returns:
        The :class:`SpectroConfig`, its ``reason`` saying why in one sentence.

    Raises:
        ConfigError: an override out of range (named), e.g. ``fmax`` above the Nyquist frequency.
    """
    rate, rate_why = _choose_rate(profile, target_sample_rate, fmax)
    low, high = _choose_band(profile, rate, fmin, fmax)
    chosen, kind_why = _choose_kind(profile, kind)
    n_fft = 2 ** round(math.log2((FINE_WINDOW_S if chosen == "stft" else WINDOW_S) * rate))
    seconds, dur_why = _choose_duration(profile, duration_s)
    n_mels = 0 if chosen == "stft" else _fit_mels(rate, n_fft, low, high)
    reason = (f"{chosen} because {kind_why}, at {rate} Hz ({rate_why}) over {low:g}-{high:g} Hz, "
              f"on {seconds:.2f} s clips ({dur_why}).")
    return SpectroConfig(kind=chosen, sample_rate=rate, n_fft=n_fft, hop_length=max(1, round(HOP_S * rate)),
                         n_mels=n_mels, fmin=low, fmax=high, num_samples=max(n_fft, round(seconds * rate)),
                         reason=reason)


def _number(value: Any, key: str, positive: bool = True) -> float:
    if not is_finite_number(value) or (value <= 0 if positive else value < 0):
        raise ConfigError(f"{key}={value!r} should be a {'positive' if positive else 'non-negative'} number")
    return float(value)


def _choose_rate(profile: DatasetProfile, target: int | None, fmax: float | None) -> tuple[int, str]:
    fs_mode = int(_number(profile.fs_mode, "profile.fs_mode"))
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, numbers.Integral) or target <= 0:
            raise ConfigError(f"target_sample_rate={target!r} should be a positive integer number of Hz")
        if target > fs_mode:
            logger.warning("target_sample_rate=%d is above the dataset's fs_mode=%d: most files get upsampled",
                           target, fs_mode)
        return int(target), "target_sample_rate override"
    if fmax is not None:
        need, what = _number(fmax, "fmax"), f"the requested fmax {fmax:g} Hz"
    else:
        need = _number(profile.fmax_eff, "profile.fmax_eff") * (1 + BAND_MARGIN)
        what = f"fmax_eff {profile.fmax_eff:g} Hz + {BAND_MARGIN:.0%}"
    for rate in STANDARD_RATES:
        if rate <= fs_mode and rate / 2 >= need:
            return rate, f"the lowest standard rate <= fs_mode {fs_mode} Hz covering {what}"
    if fmax is not None and fmax > fs_mode / 2:
        raise ConfigError(f"fmax={fmax:g} Hz is above the Nyquist frequency {fs_mode / 2:g} Hz of the dataset's "
                          f"fs_mode {fs_mode} Hz: lower fmax or pass target_sample_rate >= {2 * fmax:g}")
    return fs_mode, f"fs_mode; no lower standard rate covers {what}"


def _choose_band(profile: DatasetProfile, rate: int, fmin: float | None, fmax: float | None) -> tuple[float, float]:
    nyquist = rate / 2
    high = _number(fmax, "fmax") if fmax is not None else \
        min(nyquist, round(_number(profile.fmax_eff, "profile.fmax_eff") * (1 + BAND_MARGIN), 1))
    low = _number(fmin, "fmin", positive=False) if fmin is not None else \
        round(_number(profile.fmin_eff, "profile.fmin_eff", positive=False) * (1 - BAND_MARGIN), 1)
    if high > nyquist:
        raise ConfigError(f"fmax={high:g} Hz is above the Nyquist frequency {nyquist:g} Hz of the {rate} Hz sample "
                          f"rate: lower fmax to at most {nyquist:g} or raise target_sample_rate")
    if low >= high:
        key = "fmin" if fmin is not None else "profile.fmin_eff"
        raise ConfigError(f"{key}={low:g} Hz is not below fmax={high:g} Hz: lower fmin or raise fmax")
    return low, high


def _choose_kind(profile: DatasetProfile, kind: str | None) -> tuple[str, str]:
    if kind is not None:
        if kind not in KINDS:
            raise ConfigError(f"kind={kind!r} is not a front-end kind: use one of {list(KINDS)}")
        return kind, "it was asked for"
    if profile.fmax_eff < NARROWBAND_HZ and profile.spectral_flatness < TONAL_FLATNESS:
        return "stft", (f"the data are narrow-band (fmax_eff {profile.fmax_eff:g} Hz < {NARROWBAND_HZ:g}) and tonal "
                        f"(flatness {profile.spectral_flatness:.3f} < {TONAL_FLATNESS:g}), needing linear bins")
    snr, quality = profile.snr_db_proxy, profile.quality_score
    if snr < NOISY_SNR_DB or quality < LOW_QUALITY:
        return "logmel_pcen", (f"the data are noisy (SNR proxy {snr:.1f} dB vs {NOISY_SNR_DB:g}, quality "
                               f"{quality:.2f} vs {LOW_QUALITY:g}) and PCEN normalises gain and stationary noise")
    return "logmel", "the data are clean enough and not narrow-band tonal"


def _choose_duration(profile: DatasetProfile, duration_s: float | None) -> tuple[float, str]:
    if duration_s is not None:
        return _number(duration_s, "duration_s"), "duration_s override"
    try:
        median, longest = float(profile.duration["median"]), float(profile.duration["max"])
    except (KeyError, TypeError, ValueError) as err:
        raise ConfigError(f"profile.duration={profile.duration!r} needs 'median' and 'max' seconds: "
                          f"re-run profiling or pass duration_s") from err
    if longest <= 1.5 * median:
        return _number(longest, "profile.duration['max']"), "the longest file, at most 1.5 x the median"
    return _number(median, "profile.duration['median']"), "the median duration; longer files are cut"


def _fit_mels(rate: int, n_fft: int, low: float, high: float) -> int:
    """The most mel bands (<= :data:`MAX_MELS`) whose narrowest filter still spans two STFT bins."""
    lo, hi = _slaney_hz_to_mel(torch.tensor([low, high], dtype=torch.float64)).tolist()
    for n_mels in range(MAX_MELS, 0, -1):
        step = (hi - lo) / (n_mels + 1)
        width = float(_slaney_mel_to_hz(torch.tensor(lo + 2 * step, dtype=torch.float64))) - low
        if width >= 2 * rate / n_fft:
            return n_mels
    return 1
