"""MoECorpus: a ``metadata.csv`` folder dataset with known sample rates, bands, noise and clipping.

The corpus exists to check the dataset profiler (``audioxai.moe.profiling``) and the MoE classifier
against ground truth. It is written in the layout ``audioxai.data.folders`` reads:
``<root>/{train,val,test}/<class>_<k>.wav`` (16-bit PCM), ``<root>/metadata.csv`` and ``<root>/truth.json``
(per-file and per-dataset truth: ``FileTruth``, ``DatasetTruth``, read back by ``load_truth``). Besides
``filepath,split,label`` the csv holds each file's truth: ``sample_rate``, ``duration_s``, ``subset``
(``clean``, ``noisy`` or ``clipped``), ``band_limited`` (0/1), ``true_fmax_hz``, ``snr_db`` and
``noise_kind`` (noisy files), ``clip_threshold`` and ``clipping_rate`` (clipped files; 0 elsewhere).

Classes: any of ``SOUND_CLASSES`` (``audioxai.data.moe_sounds`` documents each process): the
band-limited sonar family ``sonar_ping`` and ``sonar_hum`` (under ``band_edge_hz``, 2 kHz or less), the
transient-heavy ``clicks``, the broadband ``engine`` (harmonic) and ``rain`` (noise-like), and spoken
digits ``digit_zero`` ... ``digit_nine`` (eSpeak NG).

Every clip lasts ``duration_s`` (longer when a word needs it): the class event fills 35-65 % of it at
a random place, over a white background ``background_db`` below the event RMS. Everything in a clip is
then low-passed by an FFT brick wall (every bin above the edge set to zero) at its band edge
``true_fmax_hz``: ``band_edge_hz`` for the band-limited classes, ``broadband_fraction * fs`` for the
others (speech: at most ``broadband_fraction * 22050``, eSpeak's own rate). The clip is peak-normalised
to 0.3-0.9.

Sample rates: within every (split, class), file k gets ``sample_rates[(k + class + split) % R]``, so
each class holds every rate in near equal shares and the rate does not give the label away.

Subsets (per split and class, exact counts ``round(share * n)`` (Python's round, halves to even), files
drawn by a seeded permutation):
``noisy`` files are mixed with a ``noise_kinds`` noise (``audioxai.data.noise.make_noise``) at a
whole-clip SNR drawn in ``snr_db`` (``audioxai.data.mixing.mix_at_snr``; the clean clip, background
included, is the signal), then scaled back to the clean clip's peak; ``clipped`` files are hard-clipped as an
ADC would: ``y = clamp(x / t, -1, 1)`` with ``t`` a ``clip_threshold`` fraction of the clip's peak, so
the clipped samples sit at full scale and ``clipping_rate = #(|x| >= t) / #samples`` exactly. The
band edge of noisy and clipped files is that of their clean signal (noise and clipping add energy
above it). Multi-label corpora mix a second class into ``mix_share`` of the files (0-6 dB below the
first, each part band-limited at its own edge, the file's edge the higher one); the label cell holds
the sorted labels joined by ``;``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from audioxai.atomic import atomic_write_text
from audioxai.config import load_config
from audioxai.data.audio import save_audio
from audioxai.data.cache import cached_corpus
from audioxai.data.folders import LABEL_SEPARATOR, SPLITS, write_metadata
from audioxai.data.mixing import mix_at_snr
from audioxai.data.noise import NOISE_TYPES, make_noise
from audioxai.data.moe_sounds import BAND_LIMITED_CLASSES, SOUND_CLASSES, brickwall, rms, synthesize_event
from audioxai.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)

__all__ = ["SOUND_CLASSES", "BAND_LIMITED_CLASSES", "MoECorpusConfig", "FileTruth", "DatasetTruth", "CorpusTruth",
           "generate_moe_corpus", "moe_corpus", "load_truth"]

_EVENT_SHARE = (0.35, 0.65)
_PEAK = (0.3, 0.9)
_ESPEAK_RATE = 22050


@dataclass(frozen=True)
class MoECorpusConfig:
    """What MoECorpus generates; its hash keys the cache.

    Attributes:
        classes: class names from ``SOUND_CLASSES``.
        num_per_class: files per class (per first label) over the three splits.
        split_fractions: shares of val and test are ``round(f * n)`` (at least 1 each); train gets the rest.
        sample_rates: rates in Hz, cycled within every class (see the module docstring).
        duration_s: clip length range in seconds (uniform).
        band_edge_hz: band edge of the band-limited classes (above 400 Hz, below
            ``broadband_fraction * min(sample_rates)``).
        broadband_fraction: band edge of the broadband classes as a fraction of the file's rate.
        background_db: level of the white background relative to the event RMS.
        noisy_share, clipped_share: shares of the noisy and clipped subsets (disjoint; sum at most 1).
        snr_db: SNR range (dB, whole clip) of the noisy subset.
        noise_kinds: ``audioxai.data.noise.NOISE_TYPES`` drawn for the noisy subset.
        clip_threshold: range of the clipping threshold as a fraction of the clip's peak.
        multi_label: mix a second class into ``mix_share`` of the files; labels joined by ``;``.
        mix_share: share of mixtures when ``multi_label``.
        seed: draws every file.
    """

    classes: tuple[str, ...] = ("sonar_ping", "sonar_hum", "clicks", "engine", "rain", "digit_zero", "digit_one")
    num_per_class: int = 30
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    sample_rates: tuple[int, ...] = (8000, 16000, 22050, 44100)
    duration_s: tuple[float, float] = (0.6, 1.2)
    band_edge_hz: float = 1800.0
    broadband_fraction: float = 0.45
    background_db: float = -40.0
    noisy_share: float = 0.25
    clipped_share: float = 0.25
    snr_db: tuple[float, float] = (0.0, 15.0)
    noise_kinds: tuple[str, ...] = ("white", "pink", "babble", "traffic")
    clip_threshold: tuple[float, float] = (0.4, 0.9)
    multi_label: bool = False
    mix_share: float = 0.5
    seed: int = 0


def _check(cfg: MoECorpusConfig) -> None:
    """Raise ConfigError naming the first impossible field of ``cfg`` and the fix."""
    unknown = [c for c in cfg.classes if c not in SOUND_CLASSES]
    problems = [
        (unknown, f"unknown classes {unknown}: choose from {list(SOUND_CLASSES)}"),
        (not cfg.classes or len(set(cfg.classes)) != len(cfg.classes), f"classes={cfg.classes}: give each class once"),
        (cfg.num_per_class < 3, f"num_per_class={cfg.num_per_class}: give at least 3 (one file per split)"),
        (not cfg.sample_rates or min(cfg.sample_rates) <= 0, f"sample_rates={cfg.sample_rates}: give positive rates"),
        (not 0 < cfg.duration_s[0] <= cfg.duration_s[1], f"duration_s={cfg.duration_s}: give 0 < low <= high"),
        (not 0 < cfg.broadband_fraction <= 0.5,
         f"broadband_fraction={cfg.broadband_fraction}: give a value in (0, 0.5]"),
        (not 400 < cfg.band_edge_hz < cfg.broadband_fraction * min(cfg.sample_rates or [1]),
         f"band_edge_hz={cfg.band_edge_hz}: give a value above 400 (chirps start at 200 Hz) and below "
         f"broadband_fraction * min(sample_rates)"),
        (min(cfg.noisy_share, cfg.clipped_share) < 0 or cfg.noisy_share + cfg.clipped_share > 1,
         f"noisy_share={cfg.noisy_share}, clipped_share={cfg.clipped_share}: give shares >= 0 summing to at most 1"),
        (cfg.snr_db[0] > cfg.snr_db[1], f"snr_db={cfg.snr_db}: give low <= high"),
        (not cfg.noise_kinds or any(k not in NOISE_TYPES for k in cfg.noise_kinds),
         f"noise_kinds={cfg.noise_kinds}: choose one or more of {list(NOISE_TYPES)}"),
        (not 0 < cfg.clip_threshold[0] <= cfg.clip_threshold[1] < 1,
         f"clip_threshold={cfg.clip_threshold}: give 0 < low <= high < 1 (fractions of the peak)"),
        (cfg.multi_label and len(cfg.classes) < 2, "multi_label needs at least 2 classes: add classes"),
        (not 0 <= cfg.mix_share <= 1, f"mix_share={cfg.mix_share}: give a value in [0, 1]"),
        (min(cfg.split_fractions) < 0 or sum(cfg.split_fractions) > 1 + 1e-9,
         f"split_fractions={cfg.split_fractions}: give three shares >= 0 summing to 1"),
    ]
    for bad, message in problems:
        if bad:
            raise ConfigError(f"MoECorpusConfig: {message}")


def _split_counts(cfg: MoECorpusConfig) -> dict[str, int]:
    n = cfg.num_per_class
    val = max(1, round(cfg.split_fractions[1] * n))
    test = max(1, round(cfg.split_fractions[2] * n))
    return {"train": max(1, n - val - test), "val": val, "test": test}


def _edge(label: str, fs: int, cfg: MoECorpusConfig) -> float:
    """The band edge in Hz of class ``label`` at rate ``fs``."""
    if label in BAND_LIMITED_CLASSES:
        return float(cfg.band_edge_hz)
    limit = cfg.broadband_fraction * fs
    return float(min(limit, cfg.broadband_fraction * _ESPEAK_RATE) if label.startswith("digit_") else limit)


def _clean_clip(labels: list[str], rng: np.random.Generator, fs: int, cfg: MoECorpusConfig) -> tuple[np.ndarray, float]:
    """The clean clip (events over a background, each band-limited) and its band edge."""
    seconds, share = rng.uniform(*cfg.duration_s), rng.uniform(*_EVENT_SHARE)
    events = [(synthesize_event(lab, rng, seconds * share, fs, _edge(lab, fs, cfg)), _edge(lab, fs, cfg))
              for lab in labels]
    n = max(int(seconds * fs), int(np.ceil(max(e.size for e, _ in events) / _EVENT_SHARE[1])))
    clip = np.zeros(n)
    for i, (event, edge) in enumerate(events):
        start = int(rng.integers(0, n - event.size + 1))
        placed = np.zeros(n)
        placed[start:start + event.size] = event
        placed = brickwall(placed, fs, edge)
        gain = 1.0 if i == 0 else 10 ** (-rng.uniform(0, 6) / 20)
        clip += placed * gain / rms(placed[start:start + event.size])
    edge = max(e for _, e in events)
    background = brickwall(rng.standard_normal(n), fs, edge)
    clip += background * 10 ** (cfg.background_db / 20) / rms(background)
    return clip * rng.uniform(*_PEAK) / np.abs(clip).max(), edge


def _degrade(x: np.ndarray, subset: str, rng: np.random.Generator, fs: int,
             cfg: MoECorpusConfig) -> tuple[np.ndarray, dict]:
    """The noisy or clipped version of clean clip ``x`` and its truth fields."""
    info = {"snr_db": None, "noise_kind": None, "clip_threshold": None, "clipped_samples": 0}
    peak = float(np.abs(x).max())
    if subset == "noisy":
        kind, snr = cfg.noise_kinds[int(rng.integers(len(cfg.noise_kinds)))], float(rng.uniform(*cfg.snr_db))
        noise = make_noise(kind, x.size, fs, seed=int(rng.integers(2 ** 31))).double()
        mixed = mix_at_snr(torch.from_numpy(x), noise, snr).mixture.numpy()
        info.update(snr_db=round(snr, 4), noise_kind=kind)
        return mixed * peak / np.abs(mixed).max(), info
    if subset == "clipped":
        fraction = float(rng.uniform(*cfg.clip_threshold))
        threshold = fraction * peak
        info.update(clip_threshold=round(fraction, 6), clipped_samples=int((np.abs(x) >= threshold).sum()))
        return np.clip(x / threshold, -1.0, 1.0), info
    return x, info


def _plan(cfg: MoECorpusConfig) -> list[tuple[str, int, int, str]]:
    """One ``(split, class index, k, subset)`` per file, in writing order."""
    jobs = []
    for s, (split, count) in enumerate(_split_counts(cfg).items()):
        for c in range(len(cfg.classes)):
            order = np.random.default_rng([cfg.seed, s, c, 7919]).permutation(count)  # order[i]: the i-th file drawn
            noisy, clipped = round(cfg.noisy_share * count), round(cfg.clipped_share * count)
            drawn = ["noisy"] * noisy + ["clipped"] * min(clipped, count - noisy) + ["clean"] * count
            subset_of = {int(k): drawn[i] for i, k in enumerate(order)}
            jobs += [(split, c, k, subset_of[k]) for k in range(count)]
    return jobs


def _file(cfg: MoECorpusConfig, split: str, c: int, k: int, subset: str) -> tuple[np.ndarray, dict]:
    """Synthesise one file; returns its samples and its truth (without the path)."""
    s = SPLITS.index(split)
    rng = np.random.default_rng([cfg.seed, s, c, k])
    fs = cfg.sample_rates[(k + c + s) % len(cfg.sample_rates)]
    labels = [cfg.classes[c]]
    if cfg.multi_label and rng.random() < cfg.mix_share:
        others = [x for x in cfg.classes if x != labels[0]]
        labels.append(others[int(rng.integers(len(others)))])
    clean, edge = _clean_clip(labels, rng, fs, cfg)
    wave, info = _degrade(clean, subset, rng, fs, cfg)
    truth = {"split": split, "labels": sorted(labels), "sample_rate": fs, "num_samples": int(wave.size),
             "subset": subset, "band_limited": all(lab in BAND_LIMITED_CLASSES for lab in labels),
             "true_fmax_hz": round(edge, 3), **info}
    return wave, truth


def _cell(value: object) -> object:
    return "" if value is None else value


def generate_moe_corpus(root: Path, config: MoECorpusConfig = MoECorpusConfig(), progress: bool = True) -> Path:
    """Write MoECorpus under ``root`` (split folders, ``metadata.csv``, ``truth.json``) and return ``root``."""
    _check(config)
    root = Path(root)
    truths, rows = [], []
    for split, c, k, subset in tqdm(_plan(config), desc="MoECorpus", disable=not progress, leave=False):
        wave, truth = _file(config, split, c, k, subset)
        rel = f"{split}/{config.classes[c]}_{k:04d}.wav"
        save_audio(root / rel, torch.from_numpy(wave.astype(np.float32)), truth["sample_rate"])
        truths.append({"filepath": rel, **truth})
        rows.append({"filepath": rel, "split": split, "label": LABEL_SEPARATOR.join(truth["labels"]),
                     "sample_rate": truth["sample_rate"], "duration_s": round(wave.size / truth["sample_rate"], 6),
                     "subset": subset, "band_limited": int(truth["band_limited"]),
                     "true_fmax_hz": truth["true_fmax_hz"], "snr_db": _cell(truth["snr_db"]),
                     "noise_kind": _cell(truth["noise_kind"]), "clip_threshold": _cell(truth["clip_threshold"]),
                     "clipping_rate": round(truth["clipped_samples"] / wave.size, 8)})
    write_metadata(rows, root / "metadata.csv")
    files = [_file_truth(t) for t in truths]
    datasets = {name: asdict(_summarise([f for f in files if name == "all" or f.split == name]))
                for name in ("all", *SPLITS)}
    payload = {"config": asdict(config), "files": truths, "datasets": datasets}
    atomic_write_text(root / "truth.json", json.dumps(payload, indent=1))
    logger.info("wrote %d MoECorpus files (%s) under %s", len(files), ", ".join(config.classes), root)
    return root


def moe_corpus(config: MoECorpusConfig | None = None, progress: bool = True, **overrides) -> Path:
    """The cached MoECorpus root for ``config`` plus ``overrides`` (built on first use; see ``audioxai.data.cache``)."""
    cfg = load_config(MoECorpusConfig, asdict(config or MoECorpusConfig()), **overrides)
    _check(cfg)
    return cached_corpus("moe_corpus", cfg, lambda root: generate_moe_corpus(root, cfg, progress))


@dataclass(frozen=True)
class FileTruth:
    """The truth of one file: its rate, band edge, subset, SNR (noisy files) and clipped samples."""

    filepath: str
    split: str
    labels: tuple[str, ...]
    sample_rate: int
    num_samples: int
    subset: str
    band_limited: bool
    true_fmax_hz: float
    snr_db: float | None
    noise_kind: str | None
    clip_threshold: float | None
    clipped_samples: int

    @property
    def clipping_rate(self) -> float:
        """Clipped samples (at full scale) / all samples."""
        return self.clipped_samples / self.num_samples


@dataclass(frozen=True)
class DatasetTruth:
    """The truth of a set of files (a split or the whole corpus).

    Attributes:
        fmax_hz: the highest band edge of its files; clipping_rate: clipped samples / all samples (pooled);
        mean_snr_db: mean SNR of its noisy files (None without any); fs_mode: the most common rate (ties:
        the highest); class_counts: files per label (a mixture counts for each of its labels).
    """

    num_files: int
    fs_unique: list[int]
    fs_mode: int
    fmax_hz: float
    band_limited: bool
    clipping_rate: float
    noisy_share: float
    clipped_share: float
    mean_snr_db: float | None
    class_counts: dict[str, int]


@dataclass(frozen=True)
class CorpusTruth:
    """What ``truth.json`` holds: the config, a ``FileTruth`` per file, a ``DatasetTruth`` per split and ``all``."""

    config: dict
    files: list[FileTruth]
    datasets: dict[str, DatasetTruth]


def _file_truth(d: dict) -> FileTruth:
    return FileTruth(**{**{f.name: d[f.name] for f in fields(FileTruth)}, "labels": tuple(d["labels"])})


def _summarise(files: list[FileTruth]) -> DatasetTruth:
    """The dataset truth of ``files`` (at least one)."""
    rates = Counter(f.sample_rate for f in files)
    snrs = [f.snr_db for f in files if f.snr_db is not None]
    return DatasetTruth(
        num_files=len(files), fs_unique=sorted(rates), fs_mode=max(rates, key=lambda r: (rates[r], r)),
        fmax_hz=max(f.true_fmax_hz for f in files), band_limited=all(f.band_limited for f in files),
        clipping_rate=sum(f.clipped_samples for f in files) / sum(f.num_samples for f in files),
        noisy_share=sum(f.subset == "noisy" for f in files) / len(files),
        clipped_share=sum(f.subset == "clipped" for f in files) / len(files),
        mean_snr_db=float(np.mean(snrs)) if snrs else None,
        class_counts=dict(sorted(Counter(lab for f in files for lab in f.labels).items())))


def load_truth(root: str | Path) -> CorpusTruth:
    """Read ``root/truth.json`` back as a ``CorpusTruth``.

    Raises:
        DatasetError: the file is missing or not a MoECorpus truth file.
    """
    path = Path(root) / "truth.json"
    if not path.is_file():
        raise DatasetError(f"{path} does not exist: pass the root of a corpus made by audioxai.data.moe_corpus")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        files = [_file_truth(d) for d in data["files"]]
        datasets = {name: DatasetTruth(**d) for name, d in data["datasets"].items()}
    except (ValueError, KeyError, TypeError) as err:
        raise DatasetError(f"{path} is not a MoECorpus truth file ({err!r}): regenerate the corpus") from err
    return CorpusTruth(config=data["config"], files=files, datasets=datasets)
