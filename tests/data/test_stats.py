from audioxai.data.sentences import sentence_corpus
from audioxai.data.stats import digits_corpus_statistics, sentence_corpus_statistics
from audioxai.data.synthdigits import synth_digits


def test_digit_statistics_count_what_was_generated():
    stats = digits_corpus_statistics(synth_digits(num_speakers=3, repetitions=1, seed=9, progress=False))
    assert stats["recordings"] == 30 and stats["speakers"] == 3 and stats["digits"] == 10
    assert stats["takes per digit and speaker"] == 1 and stats["sample rate (Hz)"] == 16000
    assert 0.15 < stats["mean spoken-digit duration (s)"] < stats["mean clip duration (s)"] < 1.5


def test_sentence_statistics_cover_all_utterances():
    stats = sentence_corpus_statistics(sentence_corpus(num_sentences=12, num_speakers=5, seed=2, progress=False))
    assert stats["utterances"] == 12 and sum(stats["utterances per split"].values()) == 12
    assert 1 <= stats["vocabulary (words)"] <= 26 and stats["phonemes"] > stats["words"]
