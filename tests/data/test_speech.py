import pytest
import torch

from audioxai.data.speech import ENGLISH_VOICES, list_variants, synthesize
from audioxai.errors import ConfigError


def test_synthesis_is_deterministic_whatever_was_said_before():
    first = synthesize("seven three nine", variant="f2")
    synthesize("something else entirely", voice="en-gb-scotland", variant="m3", rate=300)
    again = synthesize("seven three nine", variant="f2")
    assert torch.equal(first.waveform, again.waveform)
    assert first.words == again.words and first.phonemes == again.phonemes


def test_noisy_voices_are_deterministic_across_clock_ticks():
    """The engine seeds its noise generator from the clock at start-up; we fix that seed."""
    import time

    first = synthesize("three four", variant="whisper")
    time.sleep(1.1)
    assert torch.equal(first.waveform, synthesize("three four", variant="whisper").waveform)


def test_words_are_aligned_in_order_and_inside_the_audio():
    utt = synthesize("place blue at seven now", voice="en-gb-x-rp", sample_rate=16000)
    assert [w.label for w in utt.words] == ["place", "blue", "at", "seven", "now"]
    assert utt.waveform.dtype == torch.float32 and utt.sample_rate == 16000
    ends = [w.end for w in utt.words]
    assert all(0 <= w.start < w.end <= utt.duration + 1e-3 for w in utt.words)
    assert all(a.end <= b.start + 1e-9 for a, b in zip(utt.words, utt.words[1:]))
    assert ends[-1] > 0.8 * utt.duration


def test_phonemes_are_ipa_and_tile_their_words():
    utt = synthesize("seven", voice="en-us")
    labels = "".join(p.label for p in utt.phonemes)
    assert "ɛ" in labels and "v" in labels  # IPA, not eSpeak mnemonics
    word = utt.words[0]
    assert utt.phonemes[0].start == pytest.approx(word.start)
    assert utt.phonemes[-1].end == pytest.approx(word.end)


def test_energy_sits_inside_the_word_spans():
    utt = synthesize("four", voice="en-us", sample_rate=16000)
    start, end = utt.speech_span()
    x = utt.waveform
    inside = x[int(start * 16000): int(end * 16000)].pow(2).sum()
    assert inside / x.pow(2).sum() > 0.97


def test_rate_changes_duration_and_sample_rate_changes_length():
    slow = synthesize("one two three four", rate=120)
    fast = synthesize("one two three four", rate=300)
    assert fast.duration < 0.7 * slow.duration
    native = synthesize("one two three four", rate=120, sample_rate=22050)
    assert native.waveform.numel() == pytest.approx(slow.waveform.numel() * 22050 / 16000, abs=2)


def test_voices_and_variants_are_shipped():
    assert {"m3", "f2", "klatt"} <= set(list_variants())
    waves = [synthesize("zero", voice=v).waveform for v in ENGLISH_VOICES[:3]]
    assert not torch.equal(waves[0][:1000], waves[1][:1000]) or waves[0].numel() != waves[1].numel()


@pytest.mark.parametrize(
    "kwargs, match",
    [({"text": "  ,. "}, "nothing to say"), ({"text": "hi", "rate": 20}, "rate=20"),
     ({"text": "hi", "pitch": 140}, "pitch=140"), ({"text": "hi", "variant": "nope"}, "unknown voice variant"),
     ({"text": "hi", "voice": "xx-nope"}, "no voice 'xx-nope'")],
)
def test_bad_synthesis_parameters_are_named(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        synthesize(**kwargs)
