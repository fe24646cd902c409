"""Spoken digits in noise, with every part kept: the mixture, the clean digit, the noise and the timings.

``noisy_digits(dataset, noise_types, snr_range_db, seed)`` mixes each clip of an ``AudioMNIST``
split (SynthDigits or the real corpus) with a segment of one noise drawn from ``noise_types`` at a
whole-clip SNR drawn uniformly from ``snr_range_db`` (``audioxai.data.mixing.mix_at_snr``). As with
recorded noise corpora, each noise type is one long recording (``noise_bank``: ``bank_seconds`` of
it, generated once per type, seed and rate and cached on disk) from which clips are cut at random
offsets; give each split its own seed so train and test never share noise. It then peak-normalises
the three parts by one factor (``peak_normalise``), so ``mixture == clean + noise`` still holds and
ideal masks can be computed from the parts. Every draw comes from ``seed``: the same call gives
the same mixtures. Word spans and phoneme timings come with SynthDigits (None/empty for real data).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from audioxai.data.audiomnist import AudioMNIST
from audioxai.data.cache import cached_corpus
from audioxai.data.mixing import mix_at_snr, peak_normalise
from audioxai.data.noise import NOISE_TYPES, make_noise
from audioxai.errors import ConfigError

__all__ = ["NoisyDigits", "noisy_digits", "noise_bank", "RemixingLoader"]


@lru_cache(maxsize=32)
def _bank(kind: str, seconds: float, sample_rate: int, seed: int) -> torch.Tensor:
    config = {"kind": kind, "seconds": seconds, "sample_rate": sample_rate, "seed": seed}

    def build(folder: Path) -> None:
        noise = make_noise(kind, int(round(seconds * sample_rate)), sample_rate, seed=seed)
        np.save(folder / "noise.npy", noise.numpy())

    folder = cached_corpus("noise_bank", config, build)
    return torch.from_numpy(np.load(folder / "noise.npy"))


def noise_bank(kind: str, seconds: float = 20.0, sample_rate: int = 16000, seed: int = 0) -> torch.Tensor:
    """``seconds`` of noise ``kind`` (unit RMS, 1-D float32), generated once and cached under ``$AUDIOXAI_CACHE``."""
    if kind not in NOISE_TYPES:
        raise ConfigError(f"unknown noise kind {kind!r}: choose one of {', '.join(NOISE_TYPES)}")
    return _bank(kind, float(seconds), int(sample_rate), int(seed))


@dataclass
class NoisyDigits:
    """Mixtures and their parts, row-aligned.

    Attributes:
        mixture, clean, noise: (N, T) float32 with ``mixture == clean + noise``.
        labels: (N,) digits.
        snr_db: (N,) whole-clip SNR of each mixture.
        noise_type: the noise kind of each row.
        word_span: (start, end) seconds of the spoken digit, or None when unknown.
        phonemes: ((IPA label, start, end), ...) of each row, empty when unknown.
        sample_rate: of every waveform.
    """

    mixture: torch.Tensor
    clean: torch.Tensor
    noise: torch.Tensor
    labels: torch.Tensor
    snr_db: torch.Tensor
    noise_type: list[str]
    word_span: list[tuple[float, float] | None]
    phonemes: list[tuple[tuple[str, float, float], ...]]
    sample_rate: int

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: torch.Tensor | list[int]) -> NoisyDigits:
        idx = torch.as_tensor(index, dtype=torch.long)
        pick = idx.tolist()
        return NoisyDigits(self.mixture[idx], self.clean[idx], self.noise[idx], self.labels[idx], self.snr_db[idx],
                           [self.noise_type[i] for i in pick], [self.word_span[i] for i in pick],
                           [self.phonemes[i] for i in pick], self.sample_rate)


def _check_mixing(noise_types, snr_range_db) -> tuple[float, float]:
    unknown = [k for k in noise_types if k not in NOISE_TYPES]
    if not noise_types or unknown:
        raise ConfigError(f"noise_types {list(noise_types)}: choose from {', '.join(NOISE_TYPES)}")
    low, high = (float(v) for v in snr_range_db)
    if not low <= high:
        raise ConfigError(f"snr_range_db={snr_range_db}: give (low, high) with low <= high, in dB")
    return low, high


def _mix(clean: torch.Tensor, noise_types, snr_range_db, banks: dict[str, torch.Tensor], g: torch.Generator,
         peak: float):
    """Draw a noise kind, SNR and segment offset per row (in that order) and mix; returns mixture parts and draws."""
    low, high = snr_range_db
    n, length = clean.shape
    kinds = torch.randint(len(noise_types), (n,), generator=g).tolist()
    snr = low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64)
    offsets = torch.rand(n, generator=g, dtype=torch.float64).tolist()
    segments = []
    for k, u in zip(kinds, offsets):
        bank = banks[noise_types[k]]
        start = int(u * (bank.numel() - length))
        segments.append(bank[start:start + length])
    mix = peak_normalise(mix_at_snr(clean, torch.stack(segments), snr), peak=peak)
    return mix, snr, [noise_types[k] for k in kinds]


def _banks(noise_types, length: int, sample_rate: int, seed: int, bank_seconds: float) -> dict[str, torch.Tensor]:
    return {k: noise_bank(k, max(bank_seconds, 2 * length / sample_rate), sample_rate, seed) for k in set(noise_types)}


def noisy_digits(dataset: AudioMNIST, noise_types: tuple[str, ...] | list[str] = ("babble", "music", "white"),
                 snr_range_db: tuple[float, float] = (-5.0, 10.0), seed: int = 0, peak: float = 0.9,
                 limit: int | None = None, bank_seconds: float = 20.0) -> NoisyDigits:
    """Mix every clip of ``dataset`` (or its first ``limit``) with seeded noise at a seeded SNR.

    Args:
        dataset: an ``AudioMNIST`` split; its sample rate and clip length are kept.
        noise_types: kinds from ``audioxai.data.noise.NOISE_TYPES``; each clip gets one, drawn uniformly.
        snr_range_db: (low, high) in dB, SNR drawn uniformly per clip.
        seed: every draw (noise kind, SNR, segment offset) and the noise banks follow from it.
        peak: the mixtures' peak after normalisation.
        limit: take only the first ``limit`` clips.
        bank_seconds: length of each noise type's recording the segments are cut from.
    """
    snr_range = _check_mixing(noise_types, snr_range_db)
    n = len(dataset) if limit is None else min(int(limit), len(dataset))
    if n == 0:
        raise ConfigError("the dataset split is empty: nothing to mix (check the split and the corpus size)")
    clean = torch.stack([dataset[i][0] for i in range(n)])
    banks = _banks(noise_types, clean.shape[1], dataset.sample_rate, seed, bank_seconds)
    mix, snr, kinds = _mix(clean, tuple(noise_types), snr_range, banks, torch.Generator().manual_seed(int(seed)), peak)
    recs = dataset.recordings[:n]
    return NoisyDigits(mix.mixture.float(), mix.clean.float(), mix.noise.float(),
                       torch.tensor([r.digit for r in recs]), snr.float(), kinds,
                       [r.word_span for r in recs], [tuple(r.phonemes) for r in recs], dataset.sample_rate)


class RemixingLoader:
    """Batches of ``(mixture, label)`` whose noise is drawn anew every epoch (on-the-fly augmentation).

    Each pass (``iter``) shuffles the clean clips and mixes them with fresh segments of the noise
    banks at fresh SNRs, all from ``seed`` and the pass number, so a classifier cannot memorise the
    noise of a small corpus; pass k of two loaders with the same arguments gives the same batches.

    Args:
        clean: (N, T) clean clips; labels: (N,).
        noise_types, snr_range_db, seed, peak, bank_seconds: as ``noisy_digits`` (use the train seed).
        batch_size: rows per batch; sample_rate: of the clips.
    """

    def __init__(self, clean: torch.Tensor, labels: torch.Tensor, noise_types=("babble", "music", "white"),
                 snr_range_db=(-5.0, 10.0), seed: int = 0, batch_size: int = 32, sample_rate: int = 16000,
                 peak: float = 0.9, bank_seconds: float = 20.0) -> None:
        if clean.ndim != 2 or clean.shape[0] != labels.shape[0] or clean.shape[0] == 0:
            raise ConfigError(f"clean must be (N, samples) with one label per row, got {tuple(clean.shape)} and "
                              f"{tuple(labels.shape)} labels")
        self.snr_range = _check_mixing(noise_types, snr_range_db)
        self.clean, self.labels, self.noise_types = clean, labels, tuple(noise_types)
        self.seed, self.batch_size, self.peak = int(seed), int(batch_size), peak
        self.banks = _banks(noise_types, clean.shape[1], sample_rate, seed, bank_seconds)
        self.epoch = 0

    def __len__(self) -> int:
        return -(-self.clean.shape[0] // self.batch_size)

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(self.clean.shape[0], generator=g)
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            mix, _, _ = _mix(self.clean[idx], self.noise_types, self.snr_range, self.banks, g, self.peak)
            yield mix.mixture.float(), self.labels[idx]
