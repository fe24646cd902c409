"""Summary statistics of the corpora, for chapter 0's table and for checking a generated corpus."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import soundfile as sf

from audioxai.data.audiomnist import read_audiomnist
from audioxai.data.sentences import load_sentence_corpus

__all__ = ["digits_corpus_statistics", "sentence_corpus_statistics"]


def _durations(paths) -> list[float]:
    return [sf.info(str(p)).duration for p in paths]


def digits_corpus_statistics(root: str | Path) -> dict:
    """Counts, speakers, genders, accents and durations of a corpus in the AudioMNIST layout."""
    recordings, meta = read_audiomnist(root)
    durations = _durations(r.path for r in recordings)
    spans = [r.word_span[1] - r.word_span[0] for r in recordings if r.word_span]
    info = sf.info(str(recordings[0].path))
    return {
        "recordings": len(recordings),
        "speakers": len({r.speaker for r in recordings}),
        "digits": len({r.digit for r in recordings}),
        "takes per digit and speaker": max(Counter((r.speaker, r.digit) for r in recordings).values()),
        "genders": dict(Counter(str(m.get("gender")) for m in meta.values())),
        "accents": len({str(m.get("accent")) for m in meta.values()}),
        "sample rate (Hz)": info.samplerate,
        "total duration (min)": round(sum(durations) / 60, 2),
        "mean clip duration (s)": round(sum(durations) / len(durations), 3),
        "mean spoken-digit duration (s)": round(sum(spans) / len(spans), 3) if spans else None,
    }


def sentence_corpus_statistics(root: str | Path) -> dict:
    """Counts, speakers, vocabulary and durations of the sentence corpus, per split."""
    items = load_sentence_corpus(Path(root))
    durations = _durations(i.path for i in items)
    words = [w for i in items for w in i.text.split()]
    return {
        "utterances": len(items),
        "speakers": len({i.speaker for i in items}),
        "utterances per split": dict(Counter(i.split for i in items)),
        "vocabulary (words)": len(set(words)),
        "words": len(words),
        "phonemes": sum(len(i.phonemes) for i in items),
        "sample rate (Hz)": sf.info(str(items[0].path)).samplerate,
        "total duration (min)": round(sum(durations) / 60, 2),
        "mean utterance duration (s)": round(sum(durations) / len(durations), 3),
        "accents": len({i.voice for i in items}),
    }
