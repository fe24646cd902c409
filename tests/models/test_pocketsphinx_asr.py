import logging

import numpy as np
import pytest
import torch

from audioxai.data.audio import resample_to
from audioxai.data.sentences import GRAMMAR
from audioxai.data.speech import synthesize
from audioxai.data.synthdigits import DIGIT_WORDS
from audioxai.errors import AudioInputError, ConfigError
from audioxai.models.pocketsphinx_asr import (
    PocketSphinxRecognizer, corpus_jsgf, corpus_vocabulary, pocketsphinx_value_fn, to_pcm16,
)

TEXT = "place blue at seven now"
# en-us+m3 at 160 wpm: 1 word wrong in 38 over eight corpus sentences (this one: 0 of 5). Allow 2 of 5.
MAX_WER = 0.4


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = reference.split(), hypothesis.split()
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diag, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diag, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diag + (r != h))
    return row[len(hyp)] / len(ref)


@pytest.fixture(scope="module")
def recognizer():
    return PocketSphinxRecognizer()


@pytest.fixture(scope="module")
def utterance():
    return synthesize(TEXT, voice="en-us", variant="m3", rate=160, sample_rate=16000)


@pytest.fixture(scope="module")
def value_fn(recognizer):
    return pocketsphinx_value_fn(recognizer, TEXT)


def test_word_error_rate_helper_counts_edits():
    assert word_error_rate("a b c d", "a x c") == 0.5 and word_error_rate("a b", "a b") == 0.0


def test_corpus_grammar_has_every_corpus_word_and_accepts_exactly_corpus_sentences(recognizer):
    words = {w for slot in GRAMMAR.values() for w in slot} | set(DIGIT_WORDS)
    assert set(corpus_vocabulary()) == words
    fsg = recognizer.decoder.parse_jsgf(corpus_jsgf())
    assert all(fsg.word_id(w) >= 0 for w in words)
    recognizer.check_words(sorted(words))  # every word has a CMUdict pronunciation
    assert fsg.accept("place blue at seven now") and fsg.accept("bin white with zero again")
    assert fsg.accept("three one four") and fsg.accept("nine nine nine nine nine nine")
    assert not fsg.accept("place blue at seven") and not fsg.accept("three one")
    assert not fsg.accept("one two three four five six seven") and not fsg.accept("blue place at seven now")


def test_a_custom_jsgf_string_is_a_grammar_too():
    two_digits = PocketSphinxRecognizer(grammar=corpus_jsgf(2, 2))
    fsg = two_digits.decoder.get_fsg("grammar")
    assert fsg.accept("one two") and not fsg.accept("one two three")


def test_transcribe_a_synthesised_sentence_into_corpus_words(recognizer, utterance):
    before = recognizer.num_utterances
    text = recognizer.transcribe(utterance.waveform)
    assert text and set(text.split()) <= set(corpus_vocabulary())
    assert word_error_rate(TEXT, text) <= MAX_WER
    assert recognizer.num_utterances == before + 1 and 0 < recognizer.seconds_per_utterance < 5
    assert recognizer.transcribe(utterance.waveform.numpy()) == text  # NumPy input, same result


def test_other_rates_are_resampled_and_logged(recognizer, utterance, caplog):
    x22 = resample_to(utterance.waveform, 16000, 22050)
    with caplog.at_level(logging.INFO, logger="audioxai.models.pocketsphinx_asr"):
        text = recognizer.transcribe(x22, sample_rate=22050)
    assert "22050 Hz: resampling to 16000 Hz" in caplog.text
    assert word_error_rate(TEXT, text) <= MAX_WER


def test_pcm_conversion_clips_and_dithers_deterministically():
    pcm = np.frombuffer(to_pcm16(torch.tensor([2.0, -2.0, 0.0, 0.0, 0.5])), dtype=np.int16)
    assert pcm[0] >= 32766 and pcm[1] <= -32766 and abs(pcm[2]) <= 1 and abs(int(pcm[4]) - 16384) <= 1
    assert to_pcm16(torch.zeros(1000)) == to_pcm16(torch.zeros(1000)) and any(to_pcm16(torch.zeros(1000)))


def test_value_fn_shape_finite_and_deterministic(value_fn, utterance):
    fn, words = value_fn
    assert words == TEXT.split() and 0.3 < fn.min_seconds() < 1.0
    x = utterance.waveform
    calls = fn.num_calls
    out = fn(torch.stack([x, x, torch.zeros_like(x)]))
    assert out.shape == (3, len(words) + 1) and out.dtype == torch.float32 and not out.requires_grad
    assert torch.isfinite(out).all() and (out <= 0).all()
    assert torch.equal(out[0], out[1]) and torch.equal(fn(x)[0], out[0])  # same input, same row, any history
    assert fn.num_calls == calls + 4 and fn.num_fallbacks == 0


def test_value_fn_scores_drop_when_speech_is_replaced_by_silence(value_fn, utterance):
    fn, words = value_fn
    x = utterance.waveform
    silenced = x.clone()
    for w in utterance.words:
        silenced[int(w.start * 16000):int(w.end * 16000)] = 0.0
    masked = x.clone()  # only "seven" silenced
    seven = utterance.words[3]
    masked[int(seven.start * 16000):int(seven.end * 16000)] = 0.0
    clean, quiet, one = fn(torch.stack([x, silenced, masked]))
    assert clean[-1] > quiet[-1] + 1.0  # whole transcript, nats per frame
    drop = clean[:-1] - one[:-1]
    assert drop[3] > 1.0 and int(drop.argmax()) == 3


def test_bad_audio_is_refused_with_the_fix(recognizer, value_fn):
    fn, _ = value_fn
    with pytest.raises(AudioInputError, match="empty"):
        recognizer.transcribe(torch.zeros(0))
    with pytest.raises(AudioInputError, match="NaN"):
        recognizer.transcribe(torch.full((16000,), float("nan")))
    with pytest.raises(AudioInputError, match="to_mono"):
        recognizer.transcribe(torch.zeros(2, 16000))
    with pytest.raises(AudioInputError, match="floating-point"):
        recognizer.transcribe(torch.zeros(16000, dtype=torch.int16))
    with pytest.raises(AudioInputError, match="analysis window"):
        recognizer.transcribe(torch.zeros(100))
    with pytest.raises(AudioInputError, match="NaN"):
        fn(torch.full((2, 16000), float("nan")))
    with pytest.raises(AudioInputError, match=r"\(B, N\)"):
        fn(torch.zeros(1, 2, 16000))
    with pytest.raises(AudioInputError, match="too short, pass at least"):
        fn(torch.zeros(1, 1600))


def test_bad_transcripts_and_settings_are_refused(recognizer):
    with pytest.raises(ConfigError, match="not in pocketsphinx's dictionary"):
        pocketsphinx_value_fn(recognizer, "place blue xqzzy")
    with pytest.raises(ConfigError, match="no words"):
        pocketsphinx_value_fn(recognizer, "  ")
    with pytest.raises(ConfigError, match="does not parse"):
        PocketSphinxRecognizer(grammar="not a grammar")
    with pytest.raises(ConfigError, match="min_digits"):
        corpus_jsgf(4, 3)
    with pytest.raises(ConfigError, match="sample_rate"):
        PocketSphinxRecognizer(sample_rate=0)
    with pytest.raises(ConfigError, match="no_such_option.*describe"):
        PocketSphinxRecognizer(decoder_options={"no_such_option": 1})
