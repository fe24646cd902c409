"""Dataset profiling: what a ``metadata.csv`` folder dataset sounds like, in a few numbers (``profile.json``).

``profile_dataset`` reads one split at each file's own rate and measures, with these definitions:

- ``fs_mode``, ``fs_unique``, ``fs_counts``: the files' sample rates (from the headers of every file of
  the split; the mode's ties go to the higher rate).
- ``duration``: min, median, mean and max seconds over every file of the split.
- ``fmin_eff``, ``fmax_eff`` (effective band): per file a Welch PSD ``P(f)`` (Hann window of
  ``2^ceil(log2(0.05 fs))`` samples, half overlap) and its 5-bin moving average ``S(f)``; the noise floor
  ``F`` is the 5th percentile of ``S`` over the bins above DC, and the energy above the floor is
  ``E(f) = S(f) - F`` where ``S(f) > 10 F`` (10 dB above the floor), else 0 (a file with no bin 10 dB
  above its floor, such as white noise filling the band, keeps ``E = S``). ``E`` is normalised to unit
  area, so every file weighs the same, and mapped onto one Hz grid (5 Hz steps up to the highest Nyquist
  frequency; zero above a file's own), which pools the sample-rate groups. The pooled density is the mean
  over files; ``fmin_eff`` and ``fmax_eff`` are its 0.5 % and 99.5 % quantiles: the band holding the
  central ``ENERGY_SHARE`` (99 %) of the energy above the noise floor. For a file band-limited at ``B``
  whose content reaches ``B`` this lands just below ``B``; for speech, whose energy falls off well below
  its band edge, it lands where the energy does.
- ``snr_db_proxy``: per file, the energies ``e_t = mean(x^2)`` of 20 ms frames, ``lo`` and ``hi`` their
  10th and 90th percentiles (background and foreground), and ``10 log10(max(hi / lo - 1, 0.01))``
  (``lo`` at least ``1e-10 hi``), so the proxy lies in [-20, 100] dB; the dataset value is the mean.
- ``transient_rate``: per file, the share of active 20 ms frames (energy within 30 dB of the loudest
  frame) whose excess kurtosis ``E[(x - m)^4] / s^4 - 3`` exceeds 20 (a click in a 20 ms frame gives
  about 3 T / tau, hundreds; tones give -1.5, Gaussian noise 0); the dataset value is the mean.
- ``spectral_flatness``: per file, ``exp(mean(log P)) / mean(P)`` over the bins between the file's own
  0.5 % and 99.5 % quantiles of ``E`` (1 for white noise, near 0 for lines); the dataset value is the mean.
- ``clipping_rate``: a file is at full scale when ``max |x| >= 0.999``; its clipped samples are those with
  ``|x| >= 0.999 max |x|`` (none when not at full scale); the rate is clipped samples / all samples,
  pooled over files. Clipping below full scale (a clipped file scaled down afterwards) goes unseen, and a
  file peak-normalised to full scale without clipping is counted too: a few samples of noise or speech,
  but about 2.8 % of a pure tone's samples lie within 0.1 % of its peak.
- ``quality_score`` ``Q = mean_i clip(snr_i / 30, 0, 1) * exp(-clipping_rate / 0.01)`` with ``snr_i`` the
  files' SNR proxies (dB) and ``clipping_rate`` the pooled one: 1 for a clean dataset (every file 30 dB or
  more, no clipping), lower with the share and depth of noisy files, and with clipping (1 % of the
  samples clipped multiplies Q by 0.37).
- ``per_class``: the same proxies per label (a multi-label file counts for each of its labels), plus
  ``num_files`` and ``mean_duration``.

``max_files`` profiles a seeded random subset of the split (rates, durations and counts still cover all).
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.ndimage import uniform_filter1d
from scipy.signal import welch
from scipy.stats import kurtosis

from audioxai.atomic import atomic_write_text
from audioxai.config import load_config
from audioxai.data.audio import load_audio
from audioxai.data.folders import SPLITS, MetadataRow, read_metadata
from audioxai.errors import AudioInputError, ConfigError, DatasetError

logger = logging.getLogger(__name__)

__all__ = ["DatasetProfile", "profile_dataset", "save_profile", "load_profile", "quality_score"]

ENERGY_SHARE = 0.99
FLOOR_PERCENTILE = 5.0
FLOOR_MARGIN_DB = 10.0
WELCH_SECONDS = 0.05
GRID_HZ = 5.0
FRAME_SECONDS = 0.02
SNR_PERCENTILES = (10.0, 90.0)
ACTIVE_DB = 30.0
TRANSIENT_KURTOSIS = 20.0
FULL_SCALE = 0.999
Q_SNR_DB = 30.0
Q_CLIP_SCALE = 0.01


@dataclass
class DatasetProfile:
    """The profile of one split of a folder dataset; every field is defined in the module docstring.

    Attributes:
        fs_mode, fs_unique, fs_counts: sample rates (Hz; ``fs_counts`` keyed by the rate as a string).
        fmin_eff, fmax_eff: effective band in Hz. duration: ``min``, ``median``, ``mean``, ``max`` seconds.
        snr_db_proxy, transient_rate, spectral_flatness, clipping_rate: the proxies.
        num_files: files of the split; num_profiled: those measured (``max_files``).
        num_classes, class_counts: labels of the split. multi_label: some row has several labels.
        quality_score: Q in [0, 1]. per_class: per label, the band, proxies, Q, ``num_files`` and
            ``mean_duration``. split: the split profiled.
        total_seconds: summed duration of the split.
    """

    fs_mode: int
    fs_unique: list[int]
    fmin_eff: float
    fmax_eff: float
    duration: dict[str, float]
    snr_db_proxy: float
    transient_rate: float
    spectral_flatness: float
    clipping_rate: float
    num_files: int
    num_classes: int
    class_counts: dict[str, int]
    quality_score: float
    per_class: dict[str, dict[str, float]]
    split: str = "train"
    num_profiled: int = 0
    fs_counts: dict[str, int] = field(default_factory=dict)
    multi_label: bool = False
    total_seconds: float = 0.0


@dataclass
class _FileStats:
    """What one file contributes: its density on the grid and its proxies."""

    density: np.ndarray | None
    num_samples: int
    seconds: float
    snr_db: float
    transient_rate: float
    flatness: float
    clipped: int


def quality_score(file_snr_db: Sequence[float], clipping_rate: float) -> float:
    """``Q = mean_i clip(snr_i / 30, 0, 1) * exp(-clipping_rate / 0.01)``, in [0, 1]; higher is cleaner.

    Args:
        file_snr_db: the SNR proxy of every file, in dB.
        clipping_rate: clipped samples / all samples over those files.
    """
    snr_quality = float(np.mean(np.clip(np.asarray(file_snr_db, dtype=np.float64) / Q_SNR_DB, 0.0, 1.0)))
    return snr_quality * math.exp(-max(clipping_rate, 0.0) / Q_CLIP_SCALE)


def _psd(x: np.ndarray, fs: int) -> tuple[np.ndarray, np.ndarray]:
    """Frequencies and Welch PSD (Hann, ``2^ceil(log2(0.05 fs))`` samples, half overlap)."""
    nperseg = 2 ** math.ceil(math.log2(WELCH_SECONDS * fs))
    if x.size < nperseg:
        x = np.pad(x, (0, nperseg - x.size))
    return welch(x, fs, window="hann", nperseg=nperseg, noverlap=nperseg // 2)


def _above_floor(p: np.ndarray) -> np.ndarray:
    """``P - F`` where ``P`` is 10 dB above the floor ``F`` (5th percentile), else 0; ``P`` when nothing is."""
    floor = np.percentile(p[1:], FLOOR_PERCENTILE)
    energy = np.where(p > floor * 10 ** (FLOOR_MARGIN_DB / 10), p - floor, 0.0)
    if energy[1:].sum() <= 0:
        energy = p.copy()
    energy[0] = 0.0
    return energy


def _quantile_freqs(freqs: np.ndarray, mass: np.ndarray) -> tuple[float, float]:
    """The frequencies at the (1 - share)/2 and (1 + share)/2 quantiles of the nonnegative ``mass``."""
    cdf = np.cumsum(mass)
    cdf /= cdf[-1]
    tail = (1.0 - ENERGY_SHARE) / 2
    lo = freqs[min(int(np.searchsorted(cdf, tail)), freqs.size - 1)]
    hi = freqs[min(int(np.searchsorted(cdf, 1.0 - tail)), freqs.size - 1)]
    return float(lo), float(hi)


def _spectral_stats(x: np.ndarray, fs: int, grid: np.ndarray) -> tuple[np.ndarray | None, float]:
    """The file's energy-above-floor density on ``grid`` (None when silent) and its spectral flatness."""
    freqs, p = _psd(x, fs)
    energy = _above_floor(uniform_filter1d(p, 5, mode="nearest"))
    if energy.sum() <= 0:
        return None, 0.0
    lo, hi = _quantile_freqs(freqs, energy)
    band = p[(freqs >= lo) & (freqs <= hi)]
    band = np.maximum(band, 1e-30)
    flatness = float(np.exp(np.mean(np.log(band))) / np.mean(band)) if band.size else 0.0
    density = np.interp(grid, freqs, energy / energy.sum(), right=0.0)
    total = density.sum()
    return (density / total if total > 0 else None), flatness


def _frames(x: np.ndarray, fs: int) -> np.ndarray:
    """Non-overlapping 20 ms frames ``(T, L)`` (one frame for a shorter clip)."""
    length = max(4, round(FRAME_SECONDS * fs))
    count = x.size // length
    return x[None, :] if count == 0 else x[: count * length].reshape(count, length)


def _temporal_stats(x: np.ndarray, fs: int) -> tuple[float, float]:
    """The file's SNR proxy (dB) and transient rate (share of active frames with excess kurtosis > 20)."""
    frames = _frames(x, fs)
    energy = np.mean(frames ** 2, axis=1)
    lo, hi = np.percentile(energy, SNR_PERCENTILES)
    ratio = hi / max(lo, 1e-10 * hi) if hi > 0 else 1.0
    snr_db = 10 * math.log10(max(ratio - 1.0, 0.01))
    active = (energy > 0) & (energy >= energy.max() * 10 ** (-ACTIVE_DB / 10))
    if not active.any():
        return snr_db, 0.0
    kurt = np.nan_to_num(kurtosis(frames[active], axis=1, fisher=True, bias=True))
    return snr_db, float(np.mean(kurt > TRANSIENT_KURTOSIS))


def _clipped_samples(x: np.ndarray) -> int:
    """Samples with ``|x| >= 0.999 max |x|`` when ``max |x| >= 0.999`` (full scale), else 0."""
    peak = float(np.abs(x).max())
    return int(np.count_nonzero(np.abs(x) >= FULL_SCALE * peak)) if peak >= FULL_SCALE else 0


def _file_stats(row: MetadataRow, grid: np.ndarray, csv_path: Path) -> _FileStats:
    """Load one row's audio at its own rate and measure it."""
    try:
        waveform, fs = load_audio(row.filepath, sample_rate=None)
    except AudioInputError as err:
        raise DatasetError(f"{csv_path} row {row.row_number} ({row.relpath}): {err}") from err
    x = waveform.numpy().astype(np.float64)
    density, flatness = _spectral_stats(x, fs, grid)
    snr_db, transient = _temporal_stats(x, fs)
    return _FileStats(density, x.size, x.size / fs, snr_db, transient, flatness, _clipped_samples(x))


def _aggregate(stats: list[_FileStats], grid: np.ndarray) -> dict[str, float]:
    """The proxies of a group of files: pooled band, means, pooled clipping rate."""
    densities = [s.density for s in stats if s.density is not None]
    fmin, fmax = _quantile_freqs(grid, np.mean(densities, axis=0)) if densities else (0.0, 0.0)
    clipping = sum(s.clipped for s in stats) / max(1, sum(s.num_samples for s in stats))
    return {
        "fmin_eff": fmin, "fmax_eff": fmax,
        "snr_db_proxy": float(np.mean([s.snr_db for s in stats])),
        "transient_rate": float(np.mean([s.transient_rate for s in stats])),
        "spectral_flatness": float(np.mean([s.flatness for s in stats])),
        "clipping_rate": clipping,
        "quality_score": quality_score([s.snr_db for s in stats], clipping),
    }


def _split_rows(dataset_dir: str | os.PathLike[str], metadata_csv: str | os.PathLike[str],
                split: str) -> list[MetadataRow]:
    """The validated rows of ``split`` (every file opened by libsndfile), or a DatasetError naming the fix."""
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    rows = [r for r in read_metadata(metadata_csv, dataset_dir, check_audio=True) if r.split == split]
    if not rows:
        raise DatasetError(f"split {split!r} of {metadata_csv} has no rows: add rows with split={split} "
                           f"or profile another split")
    return rows


def _headers(rows: list[MetadataRow]) -> tuple[list[int], list[float]]:
    """Sample rate and duration (seconds) of every row, from the file headers."""
    infos = [sf.info(str(r.filepath)) for r in rows]
    return [int(i.samplerate) for i in infos], [i.frames / i.samplerate for i in infos]


def _choose(rows: list[MetadataRow], max_files: int | None, seed: int) -> list[MetadataRow]:
    """All rows, or ``max_files`` of them drawn without replacement by ``seed`` (kept in file order)."""
    if max_files is not None and (isinstance(max_files, bool) or not isinstance(max_files, int) or max_files < 1):
        raise ConfigError(f"max_files={max_files!r}: pass a positive integer, or None to profile every file")
    if max_files is None or max_files >= len(rows):
        return rows
    picked = np.random.default_rng(seed).choice(len(rows), size=max_files, replace=False)
    return [rows[i] for i in sorted(picked.tolist())]


def profile_dataset(dataset_dir: str | os.PathLike[str], metadata_csv: str | os.PathLike[str],
                    split: str = "train", max_files: int | None = None, seed: int = 0) -> DatasetProfile:
    """Profile one split of a ``metadata.csv`` folder dataset (definitions in the module docstring).

    Args:
        dataset_dir: the folder ``filepath`` is relative to.
        metadata_csv: the csv (``audioxai.data.folders`` layout).
        split: ``train``, ``val`` or ``test``.
        max_files: measure at most this many files (a seeded random subset); None measures all.
        seed: draws that subset.

    Raises:
        DatasetError: a missing or malformed csv, bad rows (empty label, path outside the root, missing or
            unreadable audio: each named by row and file), or a split without rows.
    """
    csv_path = Path(metadata_csv)
    rows = _split_rows(dataset_dir, csv_path, split)
    rates, seconds = _headers(rows)
    chosen = _choose(rows, max_files, seed)
    grid = np.arange(0.0, max(rates) / 2 + GRID_HZ, GRID_HZ)
    stats = [_file_stats(r, grid, csv_path) for r in chosen]
    overall = _aggregate(stats, grid)
    labels = sorted({lab for r in rows for lab in r.labels})
    per_class = {}
    for label in labels:
        members = [s for r, s in zip(chosen, stats) if label in r.labels]
        if members:
            per_class[label] = {"num_files": float(len(members)), **_aggregate(members, grid),
                                "mean_duration": float(np.mean([s.seconds for s in members]))}
    counts = Counter(rates)
    profile = DatasetProfile(
        fs_mode=max(counts, key=lambda r: (counts[r], r)), fs_unique=sorted(counts),
        duration={"min": float(np.min(seconds)), "median": float(np.median(seconds)),
                  "mean": float(np.mean(seconds)), "max": float(np.max(seconds))},
        **overall, num_files=len(rows), num_classes=len(labels),
        class_counts=dict(sorted(Counter(lab for r in rows for lab in r.labels).items())),
        per_class=per_class,
        split=split, num_profiled=len(chosen), fs_counts={str(r): counts[r] for r in sorted(counts)},
        multi_label=any(len(r.labels) > 1 for r in rows), total_seconds=float(np.sum(seconds)))
    logger.info("profiled %d/%d %s files of %s: fs %s, band %.0f-%.0f Hz, SNR proxy %.1f dB, Q %.2f",
                len(chosen), len(rows), split, csv_path, profile.fs_unique, profile.fmin_eff, profile.fmax_eff,
                profile.snr_db_proxy, profile.quality_score)
    return profile


def save_profile(profile: DatasetProfile, path: str | os.PathLike[str]) -> Path:
    """Write ``profile`` as JSON (``profile.json``), atomically; return the path."""
    return atomic_write_text(path, json.dumps(asdict(profile), indent=2, allow_nan=False) + "\n")


def load_profile(path: str | os.PathLike[str]) -> DatasetProfile:
    """Read a ``profile.json`` written by ``save_profile``.

    Raises:
        ConfigError: the file is missing, not JSON, or has unknown, missing or mistyped fields (named).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"profile file {path} does not exist: write one with save_profile(profile_dataset(...))")
    try:
        return load_config(DatasetProfile, path)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}; rewrite it with save_profile(profile_dataset(...))") from err
