"""Sentences for speech recognition: digit strings and a small-vocabulary command grammar.

Two kinds of transcript, all lower-case words so a character vocabulary covers them:

- digit strings: ``min_digits`` to ``max_digits`` digit words ("four one seven");
- commands in the manner of the GRID corpus (Cooke et al., 2006): command, colour, preposition,
  digit, adverb ("place blue at seven now"), 4 x 4 x 4 x 10 x 4 = 2,560 sentences from 26 words.

Each sentence is said by one speaker of the SynthDigits roster (a distinct accent voice and variant)
at a drawn rate. Speakers are split speaker-disjointly into train, val and test, so test voices are
held out. The corpus is cached as wav files plus ``metadata.json`` (text, speaker, voice, rate and the
exact word and phoneme alignments) and a ``metadata.csv`` (``filepath,split,label``) with the
transcript as label, so the folder reader reads it too.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from audioxai.data.audio import save_audio
from audioxai.data.audiomnist import speaker_splits
from audioxai.config import load_config
from audioxai.data.cache import cached_corpus
from audioxai.data.folders import write_metadata
from audioxai.data.speech import Segment, synthesize
from audioxai.data.synthdigits import DIGIT_WORDS, speaker_roster
from audioxai.errors import ConfigError

__all__ = ["SentenceCorpusConfig", "SentenceItem", "GRAMMAR", "sentence_corpus", "load_sentence_corpus", "draw_sentence"]

GRAMMAR: dict[str, tuple[str, ...]] = {
    "command": ("bin", "lay", "place", "set"),
    "colour": ("blue", "green", "red", "white"),
    "preposition": ("at", "by", "in", "with"),
    "digit": DIGIT_WORDS,
    "adverb": ("again", "now", "please", "soon"),
}


@dataclass(frozen=True)
class SentenceCorpusConfig:
    """What the sentence corpus holds; its hash keys the cache.

    Attributes:
        num_sentences: utterances in all splits together.
        digit_string_fraction: share of digit strings; the rest are grammar sentences.
        min_digits, max_digits: length range of digit strings.
        num_speakers: speakers drawn from the SynthDigits roster (split 3:1:1 by speaker).
        min_rate, max_rate: speaking-rate range in words per minute, uniform per sentence.
        sample_rate: rate of the written files.
        seed: draws texts, speakers and rates.
    """

    num_sentences: int = 1200
    digit_string_fraction: float = 0.3
    min_digits: int = 3
    max_digits: int = 6
    num_speakers: int = 20
    min_rate: int = 140
    max_rate: int = 220
    sample_rate: int = 16000
    seed: int = 0


@dataclass
class SentenceItem:
    """One utterance of the corpus, with its alignments in seconds."""

    path: Path
    text: str
    split: str
    speaker: str
    voice: str
    variant: str
    rate: int
    words: list[Segment]
    phonemes: list[Segment]


def draw_sentence(rng: random.Random, digit_string_fraction: float = 0.3, min_digits: int = 3, max_digits: int = 6) -> str:
    """Draw one transcript: a digit string with probability ``digit_string_fraction``, else a grammar sentence."""
    if rng.random() < digit_string_fraction:
        return " ".join(rng.choice(DIGIT_WORDS) for _ in range(rng.randint(min_digits, max_digits)))
    return " ".join(rng.choice(words) for words in GRAMMAR.values())


def _build(root: Path, cfg: SentenceCorpusConfig, progress: bool) -> None:
    rng = random.Random(cfg.seed)
    roster = speaker_roster(cfg.num_speakers, cfg.seed)
    split_of = {s: name for name, group in speaker_splits([v.speaker for v in roster], seed=cfg.seed).items() for s in group}
    records, rows = [], []
    # Each utterance is scaled to a peak of 0.9 (resampled synthesis can overshoot full scale).
    for i in tqdm(range(cfg.num_sentences), desc="sentences", disable=not progress, leave=False):
        text = draw_sentence(rng, cfg.digit_string_fraction, cfg.min_digits, cfg.max_digits)
        spk = rng.choice(roster)
        rate = rng.randint(cfg.min_rate, cfg.max_rate)
        utt = synthesize(text, voice=spk.voice, variant=spk.variant, rate=rate, pitch=spk.pitch, sample_rate=cfg.sample_rate)
        rel = f"{split_of[spk.speaker]}/{i:05d}.wav"
        save_audio(root / rel, utt.waveform * (0.9 / float(utt.waveform.abs().max())), cfg.sample_rate)
        records.append({
            "filepath": rel, "text": text, "split": split_of[spk.speaker], "speaker": spk.speaker,
            "voice": spk.voice, "variant": spk.variant, "rate": rate,
            "words": [[w.label, w.start, w.end] for w in utt.words],
            "phonemes": [[p.label, p.start, p.end] for p in utt.phonemes],
        })
        rows.append({"filepath": rel, "split": split_of[spk.speaker], "label": text, "speaker": spk.speaker})
    (root / "metadata.json").write_text(json.dumps(records))
    write_metadata(rows, root / "metadata.csv")


def sentence_corpus(config: SentenceCorpusConfig | None = None, progress: bool = True, **overrides) -> Path:
    """The cached sentence corpus folder for ``config`` (built on first use)."""
    cfg = load_config(SentenceCorpusConfig, asdict(config or SentenceCorpusConfig()), **overrides)
    if cfg.min_digits < 1 or cfg.max_digits < cfg.min_digits:
        raise ConfigError(f"digit-string lengths {cfg.min_digits}..{cfg.max_digits}: need 1 <= min_digits <= max_digits")
    return cached_corpus("sentences", cfg, lambda root: _build(root, cfg, progress))


def load_sentence_corpus(root: Path, split: str | None = None) -> list[SentenceItem]:
    """Read the items of a sentence corpus folder, optionally one split."""
    records = json.loads((Path(root) / "metadata.json").read_text())
    return [
        SentenceItem(
            path=Path(root) / r["filepath"], text=r["text"], split=r["split"], speaker=r["speaker"],
            voice=r["voice"], variant=r["variant"], rate=r["rate"],
            words=[Segment(*w) for w in r["words"]], phonemes=[Segment(*p) for p in r["phonemes"]],
        )
        for r in records
        if split is None or r["split"] == split
    ]
