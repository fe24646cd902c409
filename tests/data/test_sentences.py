import random

import pytest
import soundfile as sf

from audioxai.data.folders import read_metadata
from audioxai.data.sentences import GRAMMAR, draw_sentence, load_sentence_corpus, sentence_corpus
from audioxai.errors import ConfigError


def test_drawn_sentences_follow_the_grammar_or_are_digit_strings():
    rng = random.Random(0)
    for _ in range(200):
        words = draw_sentence(rng, 0.5).split()
        if len(words) == 5 and words[0] in GRAMMAR["command"]:
            assert all(w in options for w, options in zip(words, GRAMMAR.values()))
        else:
            assert 3 <= len(words) <= 6 and all(w in GRAMMAR["digit"] for w in words)


def test_corpus_has_aligned_words_and_held_out_speakers(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOXAI_CACHE", str(tmp_path))
    root = sentence_corpus(num_sentences=24, num_speakers=6, seed=1, progress=False)
    items = load_sentence_corpus(root)
    assert len(items) == 24
    by_split = {s: {i.speaker for i in items if i.split == s} for s in ("train", "val", "test")}
    assert not (by_split["train"] & by_split["test"]) and not (by_split["train"] & by_split["val"])
    for item in items:
        assert [w.label for w in item.words] == item.text.split()
        assert item.words[-1].end <= sf.info(str(item.path)).duration + 1e-3
    rows = read_metadata(root / "metadata.csv")
    assert [r.labels[0] for r in rows] == [i.text for i in items]
    assert [r.split for r in rows] == [i.split for i in items]


def test_bad_parameters_are_named():
    with pytest.raises(ConfigError, match="num_sentence"):
        sentence_corpus(num_sentence=3)
    with pytest.raises(ConfigError, match="min_digits"):
        sentence_corpus(min_digits=5, max_digits=2)
