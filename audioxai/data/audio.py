"""Reading, checking and writing waveforms: one place that turns audio into a clean float tensor.

Every loader in ``audioxai`` goes through ``load_audio`` (files) or ``check_waveform`` (tensors), so
corrupt, empty, non-finite, multi-channel or wrongly sampled audio is caught once, with a message that
names the file and the fix. Files are read and written with ``soundfile`` (libsndfile); resampling is
``torchaudio.functional.resample`` (windowed sinc).
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from audioxai.atomic import atomic_path
from audioxai.config import is_finite_number
from audioxai.errors import AudioInputError, ConfigError

logger = logging.getLogger(__name__)

__all__ = ["load_audio", "check_waveform", "to_mono", "resample_to", "speed_ratio", "change_speed", "save_audio"]

_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


def _check_rate(sample_rate: object, name: str) -> int:
    """A positive integer sample rate, or an AudioInputError."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioInputError(f"{name} is {sample_rate!r}: pass a positive integer number of samples per second")
    return int(sample_rate)


def to_mono(x: torch.Tensor) -> torch.Tensor:
    """Average the channels of a channels-first waveform ``(C, T)`` into ``(T,)``; 1-D input is returned as is."""
    if x.dim() == 1:
        return x
    if x.dim() != 2:
        raise AudioInputError(f"to_mono expects (T,) or (C, T), got shape {tuple(x.shape)}")
    return x.mean(dim=0)


def resample_to(x: torch.Tensor, orig: int, new: int) -> torch.Tensor:
    """Resample ``x`` (``(..., T)``) from ``orig`` Hz to ``new`` Hz; a no-op when the rates are equal."""
    orig, new = _check_rate(orig, "orig"), _check_rate(new, "new")
    if orig == new:
        return x
    return AF.resample(x, orig, new)


def speed_ratio(factor: float, max_denominator: int = 100) -> Fraction:
    """``factor`` as the exact ratio p/q (q <= ``max_denominator``) that ``change_speed`` resamples by.

    Raises:
        ConfigError: ``factor`` is not a positive finite number equal (to 1e-9) to such a ratio; two
            decimals always are (0.95 = 19/20).
    """
    if is_finite_number(factor) and factor > 0:
        ratio = Fraction(float(factor)).limit_denominator(max_denominator)
        if ratio > 0 and abs(float(ratio) - factor) < 1e-9:
            return ratio
    raise ConfigError(f"speed factor {factor!r}: use a positive ratio p/q with q <= {max_denominator}, "
                      f"e.g. 0.95 or 1.1 (1.0 = unchanged)")


def change_speed(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` (``(..., T)``) played ``factor`` times faster: about ``T / factor`` samples, every frequency times ``factor``.

    Polyphase resampling from p to q where ``factor`` = p / q (``speed_ratio``), as in speed
    perturbation (Ko et al., 2015): pitch, formants and tempo move together, as for another speaker.
    A no-op at 1.
    """
    ratio = speed_ratio(factor)
    return resample_to(x, ratio.numerator, ratio.denominator)


def _check_finite(x: torch.Tensor, what: str, fix: str) -> None:
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise AudioInputError(f"{what} has {bad} NaN or infinite samples out of {x.numel()}: {fix}")


def load_audio(path: str | os.PathLike[str], sample_rate: int | None = 16000,
               mono: bool = True) -> tuple[torch.Tensor, int]:
    """Read an audio file as float32 in [-1, 1] (PCM) and return ``(waveform, sample_rate)``.

    Args:
        path: any format libsndfile reads (WAV, FLAC, OGG, ...).
        sample_rate: rate of the returned waveform; files at another rate are resampled (logged at
            INFO). ``None`` keeps the file's own rate.
        mono: average the channels into one (logged at INFO when the file has more than one).

    Returns:
        ``(T,)`` when ``mono`` else ``(C, T)``, and the waveform's sample rate.

    Raises:
        AudioInputError: the file is missing, unreadable, empty or holds NaN/inf samples.
    """
    path = Path(path)
    if sample_rate is not None:
        sample_rate = _check_rate(sample_rate, "sample_rate")
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise AudioInputError(f"audio file {path} {what}: check the path (relative paths start at {Path.cwd()})")
    try:
        data, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as err:
        raise AudioInputError(
            f"cannot read audio file {path}: {err}. Re-export it as WAV/FLAC (e.g. ffmpeg -i in out.wav) "
            f"or remove it from the dataset"
        ) from err
    if data.shape[0] == 0:
        raise AudioInputError(f"audio file {path} is empty (0 samples): re-record or remove it")
    waveform = torch.from_numpy(np.ascontiguousarray(data.T))  # (C, T)
    _check_finite(waveform, f"audio file {path}", "re-export it, or remove it from the dataset")
    if mono:
        if waveform.shape[0] > 1:
            logger.info("%s has %d channels: averaging them to mono", path.name, waveform.shape[0])
        waveform = to_mono(waveform)
    if sample_rate is not None and sample_rate != file_rate:
        logger.info("%s is sampled at %d Hz: resampling to %d Hz", path.name, file_rate, sample_rate)
        waveform = resample_to(waveform, file_rate, sample_rate)
        file_rate = sample_rate
    return waveform.contiguous(), int(file_rate)


def _stereo_message(name: str, x: torch.Tensor) -> str:
    channels, frames = x.shape
    hint = ""
    if channels > frames:
        hint = f" (if it is ({channels} samples, {frames} channels), transpose it first with .T)"
    return (f"{name} has shape {tuple(x.shape)}, i.e. {channels} channels{hint}: the models take one channel; "
            f"average the channels with audioxai.data.audio.to_mono(x) or x.mean(dim=0)")


def check_waveform(x: torch.Tensor, sample_rate: int, expected_sample_rate: int | None = None,
                   name: str = "waveform") -> torch.Tensor:
    """Validate an in-memory mono waveform and return it as ``(T,)``.

    Accepts a float tensor (or NumPy array) of shape ``(T,)`` or ``(1, T)``.

    Raises:
        AudioInputError: not a tensor, not floating point, more than one channel, empty, NaN/inf,
            or ``sample_rate`` differs from ``expected_sample_rate`` (when given).
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise AudioInputError(f"{name} is a {type(x).__name__}, not a torch.Tensor: wrap it with torch.as_tensor")
    sample_rate = _check_rate(sample_rate, "sample_rate")
    if x.dim() == 2 and x.shape[0] > 1:
        raise AudioInputError(_stereo_message(name, x))
    if x.dim() not in (1, 2):
        raise AudioInputError(f"{name} has shape {tuple(x.shape)}: pass a mono waveform of shape (T,) or (1, T)")
    x = x.reshape(-1)
    if x.numel() == 0:
        raise AudioInputError(f"{name} is empty (0 samples): pass at least one sample")
    if not x.is_floating_point():
        raise AudioInputError(
            f"{name} has dtype {x.dtype}: pass floating-point samples in [-1, 1], e.g. x.float() / 32768 for int16"
        )
    _check_finite(x, name, "replace them (e.g. torch.nan_to_num) or reload the audio")
    if expected_sample_rate is not None:
        expected = _check_rate(expected_sample_rate, "expected_sample_rate")
        if expected != sample_rate:
            raise AudioInputError(
                f"{name} is sampled at {sample_rate} Hz but {expected} Hz is expected: resample it with "
                f"audioxai.data.audio.resample_to(x, {sample_rate}, {expected}) "
                f"(torchaudio.functional.resample)"
            )
    return x


def _check_writable(path: Path, subtype: str) -> str:
    """The libsndfile format for ``path``'s extension, after checking it can hold ``subtype``."""
    fmt = path.suffix.lstrip(".").upper()
    if fmt not in sf.available_formats():
        raise AudioInputError(f"cannot write {path}: unknown audio extension {path.suffix!r}; use .wav or .flac")
    if not sf.check_format(fmt, subtype):
        raise AudioInputError(
            f"cannot write {path} as {subtype}: {fmt} does not support it; use one of "
            f"{sorted(sf.available_subtypes(fmt))}"
        )
    return fmt


def save_audio(path: str | os.PathLike[str], waveform: torch.Tensor, sample_rate: int,
               subtype: str = "PCM_16") -> Path:
    """Write ``waveform`` (``(T,)`` or channels-first ``(C, T)``) to ``path`` atomically; return the path.

    The file appears only once fully written. For integer subtypes (``PCM_16`` ...) samples outside
    [-1, 1] are clipped, with a logged warning saying how many.

    Raises:
        AudioInputError: empty, non-float or non-finite waveform, bad rate, or an extension/subtype
            libsndfile cannot write.
    """
    path = Path(path)
    sample_rate = _check_rate(sample_rate, "sample_rate")
    if isinstance(waveform, np.ndarray):
        waveform = torch.from_numpy(waveform)
    if not isinstance(waveform, torch.Tensor) or waveform.dim() not in (1, 2):
        shape = tuple(waveform.shape) if hasattr(waveform, "shape") else type(waveform).__name__
        raise AudioInputError(f"cannot write {path}: pass a tensor of shape (T,) or (C, T), got {shape}")
    if waveform.numel() == 0:
        raise AudioInputError(f"cannot write {path}: the waveform is empty (shape {tuple(waveform.shape)})")
    if not waveform.is_floating_point():
        raise AudioInputError(f"cannot write {path}: waveform has dtype {waveform.dtype}; pass floats in [-1, 1]")
    _check_finite(waveform, f"waveform for {path}", "replace them (e.g. torch.nan_to_num) before saving")
    subtype = subtype.upper()
    fmt = _check_writable(path, subtype)
    data = waveform.detach().to("cpu", torch.float32)
    if subtype not in _FLOAT_SUBTYPES:
        over = int((data.abs() > 1.0).sum())
        if over:
            logger.warning("%s: clipping %d of %d samples to [-1, 1] (peak %.3f) for %s",
                           path.name, over, data.numel(), float(data.abs().max()), subtype)
            data = data.clamp(-1.0, 1.0)
    frames = data.numpy().T if data.dim() == 2 else data.numpy()
    with atomic_path(path) as tmp:
        sf.write(tmp, frames, sample_rate, subtype=subtype, format=fmt)
    return path
