"""The speech-recognition test sets of chapter 4: clean and noisy sentences with their ideal masks.

``build_asr_testset(items, config)`` takes utterances of the sentence corpus (its held-out test
speakers, ``audioxai.data.sentences``) and returns each one clean and mixed with every noise type of
``config.noise_types`` at every SNR of ``config.snrs_db`` (``audioxai.data.mixing.mix_at_snr``,
whole-clip SNR). The noise of one (utterance, noise type) is generated for that utterance alone
(``audioxai.data.noise.make_noise``, seeded from ``config.seed``, the utterance's file name and the
noise type), so different utterances get different noise and the SNRs of one type share one noise
scaled differently. The speech is never rescaled: the clean part of every mixture equals the clean
utterance, which keeps comparisons across noise conditions about the noise alone (mixtures can
therefore peak above 1; they are written as float wavs, which do not clip).

Each noisy sample carries the ideal binary mask (Wang 2005) and ideal ratio mask (Wang, Narayanan &
Wang 2014) of its mixture on the STFT grid ``n_fft`` x ``hop_length``, and every sample the word and
phoneme alignments and a metadata dict: speaker, voice, accent, variant, rate, noise type, SNR,
duration, number of words and a length class (duration terciles over the set's utterances).

``save_testset`` writes a folder in the ``metadata.csv`` layout of ``audioxai.data.folders``
(``filepath,split,label`` with the mixture, ``test`` and the transcript, plus the metadata
columns), the clean utterances once each under ``clean/``, the noises under ``noise/`` and the
masks as ``masks/<id>.npz``; ``load_testset`` reads it back.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from audioxai.data.audio import load_audio, save_audio
from audioxai.data.folders import read_metadata, write_metadata
from audioxai.data.mixing import ideal_binary_mask, ideal_ratio_mask, mix_at_snr
from audioxai.data.noise import NOISE_TYPES, make_noise
from audioxai.data.sentences import SentenceItem
from audioxai.data.speech import Segment
from audioxai.data.synthdigits import ACCENTS
from audioxai.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)

__all__ = ["ASRTestSetConfig", "ASRSample", "METADATA_COLUMNS", "LENGTH_CLASSES", "build_asr_testset",
           "asr_metadata_frame", "save_testset", "load_testset"]

SAMPLE_RATE = 16000
CLEAN = "clean"
#: Duration terciles over the set's utterances, shortest first.
LENGTH_CLASSES: tuple[str, ...] = ("short", "medium", "long")
#: The keys of ``ASRSample.metadata``, in the column order of ``asr_metadata_frame``.
METADATA_COLUMNS: tuple[str, ...] = ("id", "utterance", "text", "speaker", "voice", "accent", "variant", "rate",
                                     "noise_type", "snr_db", "duration_s", "num_words", "length_class")
# Columns metadata.csv holds besides the metadata: audio parts, masks and alignments (JSON lists).
_FILE_COLUMNS = ("clean_filepath", "noise_filepath", "masks_filepath", "words", "phonemes")


@dataclass(frozen=True)
class ASRTestSetConfig:
    """Which conditions the test set holds and how its masks are computed.

    Attributes:
        noise_types: kinds from ``audioxai.data.noise.NOISE_TYPES``, each mixed at every SNR.
        snrs_db: whole-clip SNRs in dB.
        include_clean: also keep each utterance without noise (noise type ``"clean"``).
        max_utterances: use at most this many utterances, drawn with ``seed`` (None: all of them).
        seed: draws the utterances and seeds every noise.
        n_fft, hop_length: STFT grid of the ideal masks (periodic Hann window, centred frames).
        local_criterion_db: LC of the ideal binary mask in dB.
        irm_beta: exponent of the ideal ratio mask.
    """

    noise_types: tuple[str, ...] = ("white", "pink", "babble", "music", "traffic", "wind")
    snrs_db: tuple[float, ...] = (0.0, 5.0, 10.0, 20.0)
    include_clean: bool = True
    max_utterances: int | None = None
    seed: int = 0
    n_fft: int = 512
    hop_length: int = 128
    local_criterion_db: float = 0.0
    irm_beta: float = 0.5


@dataclass
class ASRSample:
    """One test utterance in one noise condition.

    Attributes:
        id: unique name, ``<utterance>_clean`` or ``<utterance>_<noise>_<snr>dB``.
        waveform: the mixture (N,) float32 at 16 kHz (the clean utterance for clean samples).
        clean: the clean utterance as it sits in the mixture, (N,).
        noise: the scaled noise, (N,), with ``waveform == clean + noise``; None for clean samples.
        text: the reference transcript.
        words, phonemes: exact alignments of the clean utterance, in seconds.
        metadata: the ``METADATA_COLUMNS`` values (``snr_db`` is +inf for clean samples).
        ibm, irm: ideal binary and ratio masks (F, frames), F = n_fft // 2 + 1; None for clean samples.
    """

    id: str
    waveform: torch.Tensor
    clean: torch.Tensor
    noise: torch.Tensor | None
    text: str
    words: list[Segment]
    phonemes: list[Segment]
    metadata: dict = field(default_factory=dict)
    ibm: torch.Tensor | None = None
    irm: torch.Tensor | None = None

    @property
    def noise_type(self) -> str:
        return self.metadata["noise_type"]

    @property
    def snr_db(self) -> float:
        return self.metadata["snr_db"]


def _check_config(cfg: ASRTestSetConfig, items: list[SentenceItem]) -> None:
    unknown = [k for k in cfg.noise_types if k not in NOISE_TYPES]
    if unknown:
        raise ConfigError(f"noise_types {list(cfg.noise_types)} has unknown kinds {unknown}: choose from "
                          f"{', '.join(NOISE_TYPES)}")
    if cfg.noise_types and not cfg.snrs_db:
        raise ConfigError("snrs_db is empty but noise_types is not: give at least one SNR, e.g. (0, 5, 10, 20)")
    bad = [s for s in cfg.snrs_db if not math.isfinite(s)]
    if bad:
        raise ConfigError(f"snrs_db {list(cfg.snrs_db)} has non-finite values {bad}: use include_clean for no noise")
    if not cfg.noise_types and not cfg.include_clean:
        raise ConfigError("no condition to build: give noise_types or set include_clean=True")
    if cfg.max_utterances is not None and cfg.max_utterances < 1:
        raise ConfigError(f"max_utterances={cfg.max_utterances}: pass a positive count, or None for all")
    if not items:
        raise ConfigError("no utterances given: pass load_sentence_corpus(root, 'test') of a non-empty corpus")


def _pick(items: list[SentenceItem], cfg: ASRTestSetConfig) -> list[SentenceItem]:
    """All items, or ``max_utterances`` of them drawn with the seed, kept in corpus order."""
    if cfg.max_utterances is None or cfg.max_utterances >= len(items):
        return list(items)
    chosen = torch.randperm(len(items), generator=torch.Generator().manual_seed(cfg.seed))[:cfg.max_utterances]
    return [items[i] for i in sorted(chosen.tolist())]


def _noise_seed(seed: int, utterance: str, kind: str) -> int:
    """A seed of its own for each (seed, utterance, noise type), independent of which others are built."""
    state = np.random.SeedSequence([int(seed), zlib.crc32(utterance.encode()), NOISE_TYPES.index(kind)])
    return int(state.generate_state(1)[0])


def _length_classes(durations: list[float]) -> list[str]:
    """Each duration's tercile class among ``durations``: short up to the 1/3 quantile, long above 2/3."""
    low, high = np.quantile(np.asarray(durations, dtype=np.float64), [1 / 3, 2 / 3])
    return [LENGTH_CLASSES[0] if d <= low else LENGTH_CLASSES[1] if d <= high else LENGTH_CLASSES[2]
            for d in durations]


def _utterance_metadata(item: SentenceItem, duration_s: float, length_class: str) -> dict:
    return {"utterance": item.path.stem, "text": item.text, "speaker": item.speaker, "voice": item.voice,
            "accent": ACCENTS.get(item.voice, item.voice), "variant": item.variant, "rate": int(item.rate),
            "duration_s": duration_s, "num_words": len(item.words), "length_class": length_class}


def _noisy_samples(item: SentenceItem, clean: torch.Tensor, base: dict, cfg: ASRTestSetConfig) -> list[ASRSample]:
    """The utterance mixed with each noise type at each SNR, with its masks."""
    samples = []
    for kind in cfg.noise_types:
        noise = make_noise(kind, clean.numel(), SAMPLE_RATE, seed=_noise_seed(cfg.seed, base["utterance"], kind))
        for snr in cfg.snrs_db:
            mix = mix_at_snr(clean, noise, float(snr))
            ibm = ideal_binary_mask(mix.clean, mix.noise, cfg.n_fft, cfg.hop_length, cfg.local_criterion_db)
            irm = ideal_ratio_mask(mix.clean, mix.noise, cfg.n_fft, cfg.hop_length, cfg.irm_beta)
            sample_id = f"{base['utterance']}_{kind}_{float(snr):g}dB"
            meta = {"id": sample_id, **base, "noise_type": kind, "snr_db": float(snr)}
            samples.append(ASRSample(sample_id, mix.mixture, clean, mix.noise, item.text, list(item.words),
                                     list(item.phonemes), _ordered(meta), ibm, irm))
    return samples


def _ordered(meta: dict) -> dict:
    return {k: meta[k] for k in METADATA_COLUMNS}


def build_asr_testset(items: list[SentenceItem], config: ASRTestSetConfig | None = None) -> list[ASRSample]:
    """Every utterance clean (if ``include_clean``) and in every noise type x SNR, with masks and metadata.

    Args:
        items: sentence-corpus utterances, e.g. ``load_sentence_corpus(root, "test")``.
        config: conditions and mask parameters; defaults to ``ASRTestSetConfig()``.

    Returns:
        Samples grouped by utterance (corpus order), each group clean first, then noise types and SNRs
        in config order. The same items and config give the same samples.
    """
    cfg = config or ASRTestSetConfig()
    _check_config(cfg, items)
    chosen = _pick(items, cfg)
    cleans = [load_audio(item.path, sample_rate=SAMPLE_RATE)[0] for item in chosen]
    durations = [c.numel() / SAMPLE_RATE for c in cleans]
    samples: list[ASRSample] = []
    for item, clean, duration, length in zip(chosen, cleans, durations, _length_classes(durations)):
        base = _utterance_metadata(item, duration, length)
        if cfg.include_clean:
            sample_id = f"{base['utterance']}_{CLEAN}"
            meta = _ordered({"id": sample_id, **base, "noise_type": CLEAN, "snr_db": math.inf})
            samples.append(ASRSample(sample_id, clean, clean, None, item.text, list(item.words),
                                     list(item.phonemes), meta))
        samples.extend(_noisy_samples(item, clean, base, cfg))
    logger.info("ASR test set: %d utterances, %d samples", len(chosen), len(samples))
    return samples


def asr_metadata_frame(samples: list[ASRSample]) -> pd.DataFrame:
    """One row per sample with the ``METADATA_COLUMNS`` (for per-condition tables and groupings)."""
    return pd.DataFrame([s.metadata for s in samples], columns=list(METADATA_COLUMNS))


def _segments_json(segments: list[Segment]) -> str:
    return json.dumps([[s.label, s.start, s.end] for s in segments], ensure_ascii=False)


def _write_sample(sample: ASRSample, root: Path) -> dict:
    """Write one sample's audio and masks under ``root``; return its metadata.csv row."""
    meta = sample.metadata
    clean_rel = f"clean/{meta['utterance']}.wav"
    if not (root / clean_rel).is_file():
        save_audio(root / clean_rel, sample.clean, SAMPLE_RATE, subtype="FLOAT")
    row = {"filepath": clean_rel, "split": "test", "label": sample.text, **meta, "clean_filepath": clean_rel,
           "noise_filepath": "", "masks_filepath": "", "words": _segments_json(sample.words),
           "phonemes": _segments_json(sample.phonemes)}
    if sample.noise is not None:
        row["filepath"], row["noise_filepath"] = f"mixture/{sample.id}.wav", f"noise/{sample.id}.wav"
        save_audio(root / row["filepath"], sample.waveform, SAMPLE_RATE, subtype="FLOAT")
        save_audio(root / row["noise_filepath"], sample.noise, SAMPLE_RATE, subtype="FLOAT")
    if sample.ibm is not None and sample.irm is not None:
        row["masks_filepath"] = f"masks/{sample.id}.npz"
        (root / "masks").mkdir(exist_ok=True)
        np.savez_compressed(root / row["masks_filepath"], ibm=sample.ibm.numpy().astype(np.uint8),
                            irm=sample.irm.numpy().astype(np.float32))
    return row


def save_testset(samples: list[ASRSample], folder: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """Write ``samples`` to ``folder`` atomically: built in a temporary folder beside it, then renamed.

    Layout: ``metadata.csv`` (``filepath,split,label`` = mixture, ``test``, transcript; then the
    ``METADATA_COLUMNS`` and the clean, noise and mask paths and the JSON alignments),
    ``clean/<utterance>.wav`` once per utterance, ``mixture/<id>.wav`` and ``noise/<id>.wav`` per noisy
    sample (32-bit float wavs, exact), ``masks/<id>.npz`` (``ibm`` uint8, ``irm`` float32).

    Raises:
        DatasetError: ``folder`` exists and ``overwrite`` is False, or sample ids repeat.
    """
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise DatasetError(f"{folder} already exists: pass overwrite=True to replace it, or choose another folder")
    ids = [s.id for s in samples]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"sample ids repeat ({len(ids) - len(set(ids))} duplicates): give every sample its own id")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        write_metadata([_write_sample(s, tmp) for s in samples], tmp / "metadata.csv")
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
            os.replace(folder, old / "testset")
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _inside(root: Path, rel: str, column: str, line: int) -> Path:
    """``root / rel`` when it is a file inside ``root``; else a DatasetError naming the row and column."""
    path = (root / rel).resolve()
    if Path(rel).is_absolute() or not path.is_relative_to(root):
        raise DatasetError(f"metadata.csv row {line} has {column}={rel!r}, outside the test-set folder {root}: "
                           f"write paths relative to the folder, without '..'")
    if not path.is_file():
        raise DatasetError(f"metadata.csv row {line} names {column}={rel!r}, which does not exist under {root}: "
                           f"save the test set again with save_testset")
    return path


def _parse_metadata(extra: dict[str, str]) -> dict:
    meta = {k: extra[k] for k in METADATA_COLUMNS}
    meta["rate"], meta["num_words"] = int(meta["rate"]), int(meta["num_words"])
    meta["snr_db"], meta["duration_s"] = float(meta["snr_db"]), float(meta["duration_s"])
    return meta


def _read_sample(row, root: Path) -> ASRSample:
    """One ``ASRSample`` from a validated metadata row."""
    extra, line = row.extra, row.row_number
    meta = _parse_metadata(extra)
    clean = load_audio(_inside(root, extra["clean_filepath"], "clean_filepath", line), sample_rate=None)[0]
    waveform = load_audio(row.filepath, sample_rate=None)[0]
    noise = ibm = irm = None
    if extra["noise_filepath"]:
        noise = load_audio(_inside(root, extra["noise_filepath"], "noise_filepath", line), sample_rate=None)[0]
    if extra["masks_filepath"]:
        with np.load(_inside(root, extra["masks_filepath"], "masks_filepath", line)) as masks:
            ibm = torch.from_numpy(masks["ibm"].astype(np.float32))
            irm = torch.from_numpy(masks["irm"].astype(np.float32))
    words = [Segment(*w) for w in json.loads(extra["words"])]
    phonemes = [Segment(*p) for p in json.loads(extra["phonemes"])]
    return ASRSample(meta["id"], waveform, clean, noise, meta["text"], words, phonemes, meta, ibm, irm)


def load_testset(folder: str | os.PathLike[str]) -> list[ASRSample]:
    """Read a folder written by ``save_testset`` back into samples, in file order.

    Raises:
        DatasetError: no metadata.csv, a missing column (named), a path outside the folder or a
            missing file.
    """
    root = Path(folder).resolve()
    csv_path = root / "metadata.csv"
    if csv_path.is_file():
        with csv_path.open(newline="", encoding="utf-8-sig") as f:
            header = [h.strip() for h in next(csv.reader(f), [])]
        missing = [c for c in (*METADATA_COLUMNS, *_FILE_COLUMNS) if c not in header]
        if missing:
            raise DatasetError(f"{csv_path} has no column {', '.join(repr(m) for m in missing)}: it was not "
                               f"written by save_testset (or was edited); save the test set again")
    return [_read_sample(row, root) for row in read_metadata(csv_path, root)]
