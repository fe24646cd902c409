"""Reader for the AudioMNIST layout, shared by the real corpus and SynthDigits.

Layout (Becker et al., "AudioMNIST: Exploring Explainable Artificial Intelligence for audio
analysis on a simple benchmark", 2018/2023): ``data/NN/{digit}_{NN}_{rep}.wav`` with ``NN`` the
two-digit speaker, and ``data/audioMNIST_meta.txt``, a JSON object keyed by speaker with gender,
accent, age and so on. Set ``AUDIOMNIST_ROOT`` to a clone of the real dataset (the folder holding
``data/``, or ``data/`` itself) and every loader here reads it unchanged; otherwise SynthDigits is used.
Splits are speaker-disjoint: speakers are divided into five disjoint groups, three for training, one
for validation and one for test, rotating with ``fold``, as in the AudioMNIST paper.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from audioxai.data.audio import load_audio
from audioxai.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)

__all__ = ["DigitRecording", "AudioMNIST", "read_audiomnist", "speaker_splits", "audiomnist_root", "fix_length"]

_NAME = re.compile(r"^(\d)_(\d{2})_(\d+)\.wav$")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class DigitRecording:
    """One recording: file, digit, speaker and take; word span and phonemes when known (SynthDigits)."""

    path: Path
    digit: int
    speaker: str
    repetition: int
    word_span: tuple[float, float] | None = None
    phonemes: tuple[tuple[str, float, float], ...] = ()


def _data_dir(root: str | os.PathLike[str]) -> Path:
    root = Path(root).expanduser()
    if (root / "data" / "audioMNIST_meta.txt").is_file():
        return root / "data"
    if (root / "audioMNIST_meta.txt").is_file():
        return root
    raise DatasetError(
        f"{root} is not an AudioMNIST folder: expected data/audioMNIST_meta.txt under it "
        f"(point AUDIOMNIST_ROOT at the folder that holds data/, or unset it to use SynthDigits)"
    )


def read_audiomnist(root: str | os.PathLike[str]) -> tuple[list[DigitRecording], dict[str, dict]]:
    """List every recording under ``root`` and return them with the speaker metadata.

    Raises DatasetError naming the file for a wav whose name breaks the ``{digit}_{NN}_{rep}.wav``
    pattern, a file in the wrong speaker folder, or a speaker missing from the metadata.
    """
    data = _data_dir(root)
    try:
        meta = json.loads((data / "audioMNIST_meta.txt").read_text())
    except json.JSONDecodeError as err:
        raise DatasetError(f"{data / 'audioMNIST_meta.txt'} is not valid JSON ({err}): restore it from the dataset") from err
    align_file = data / "synth_alignments.json"
    alignments = json.loads(align_file.read_text()) if align_file.is_file() else {}
    recordings = []
    for speaker_dir in sorted(p for p in data.iterdir() if p.is_dir() and p.name.isdigit()):
        if speaker_dir.name not in meta:
            raise DatasetError(f"speaker folder {speaker_dir} has no entry in {data / 'audioMNIST_meta.txt'}: add it or remove the folder")
        for wav in sorted(speaker_dir.glob("*.wav")):
            match = _NAME.match(wav.name)
            if not match or match.group(2) != speaker_dir.name:
                raise DatasetError(f"{wav} does not follow AudioMNIST's {{digit}}_{speaker_dir.name}_{{rep}}.wav naming: rename or remove it")
            rel = f"{speaker_dir.name}/{wav.name}"
            align = alignments.get(rel)
            recordings.append(DigitRecording(
                path=wav, digit=int(match.group(1)), speaker=speaker_dir.name, repetition=int(match.group(3)),
                word_span=tuple(align["span"]) if align else None,
                phonemes=tuple(tuple(p) for p in align["phonemes"]) if align else (),
            ))
    if not recordings:
        raise DatasetError(f"no recordings found under {data}: expected data/NN/{{digit}}_NN_{{rep}}.wav files")
    return recordings, meta


def speaker_splits(speakers: list[str], fold: int = 0, num_folds: int = 5, seed: int = 0) -> dict[str, list[str]]:
    """Speaker-disjoint train/val/test lists: ``num_folds`` groups; test is group ``fold``, val the next.

    Needs at least three speakers; with fewer than ``num_folds`` speakers the groups are as many
    as there are speakers.
    """
    speakers = sorted(set(speakers))
    if len(speakers) < 3:
        raise ConfigError(f"{len(speakers)} speaker(s) cannot make speaker-disjoint train/val/test splits: use at least 3")
    k = min(num_folds, len(speakers))
    if not 0 <= fold < k:
        raise ConfigError(f"fold={fold}: choose 0 to {k - 1}")
    order = speakers[:]
    random.Random(seed).shuffle(order)
    groups = [sorted(order[i::k]) for i in range(k)]
    test, val = groups[fold], groups[(fold + 1) % k]
    train = sorted(s for g in groups for s in g if s not in test and s not in val)
    return {"train": train, "val": val, "test": test}


def audiomnist_root(**synth_overrides) -> Path:
    """``AUDIOMNIST_ROOT`` when set (the real corpus), else the cached SynthDigits for the overrides."""
    env = os.environ.get("AUDIOMNIST_ROOT")
    if env:
        logger.info("reading AudioMNIST from AUDIOMNIST_ROOT=%s", env)
        return Path(env).expanduser()
    from audioxai.data.synthdigits import synth_digits

    return synth_digits(**synth_overrides)


def fix_length(waveform: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Crop the end or zero-pad the end to ``num_samples`` (the start stays put, so alignments stay valid)."""
    if waveform.numel() >= num_samples:
        return waveform[:num_samples]
    return torch.nn.functional.pad(waveform, (0, num_samples - waveform.numel()))


class AudioMNIST(Dataset):
    """Spoken digits in the AudioMNIST layout, one speaker-disjoint split; items are (waveform, digit).

    Args:
        root: the dataset folder (see ``audiomnist_root``).
        split: ``train``, ``val`` or ``test`` (see ``speaker_splits``).
        fold, seed: choose the speaker partition.
        sample_rate: rate of the returned waveforms (files at other rates are resampled, logged).
        duration: seconds; each waveform is cropped or zero-padded at the end to this length.
        preload: read every file once into memory (fast epochs for small corpora).
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "train", fold: int = 0, seed: int = 0,
                 sample_rate: int = 16000, duration: float = 1.0, preload: bool = True) -> None:
        if split not in SPLITS:
            raise ConfigError(f"unknown split {split!r}: use one of {SPLITS}")
        recordings, self.speaker_meta = read_audiomnist(root)
        self.speakers = speaker_splits([r.speaker for r in recordings], fold=fold, seed=seed)[split]
        chosen = set(self.speakers)
        self.recordings = [r for r in recordings if r.speaker in chosen]
        self.split, self.sample_rate = split, sample_rate
        self.num_samples = int(round(duration * sample_rate))
        self._cache = [self._load(i) for i in range(len(self.recordings))] if preload else None

    def _load(self, index: int) -> torch.Tensor:
        waveform, _ = load_audio(self.recordings[index].path, sample_rate=self.sample_rate)
        return fix_length(waveform, self.num_samples)

    def __len__(self) -> int:
        return len(self.recordings)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        waveform = self._cache[index] if self._cache is not None else self._load(index)
        return waveform, self.recordings[index].digit

    def word_mask(self, index: int, num_frames: int) -> torch.Tensor | None:
        """Boolean mask over ``num_frames`` equal frames of the fixed-length clip: True inside the spoken digit."""
        span = self.recordings[index].word_span
        if span is None:
            return None
        duration = self.num_samples / self.sample_rate
        centres = (torch.arange(num_frames) + 0.5) * duration / num_frames
        return (centres >= span[0]) & (centres <= span[1])
