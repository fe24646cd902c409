import json
import re

import pytest
import soundfile as sf
import torch

from audioxai.data.audiomnist import AudioMNIST, audiomnist_root, read_audiomnist, speaker_splits
from audioxai.data.synthdigits import DIGIT_WORDS, SynthDigitsConfig, speaker_roster, synth_digits
from audioxai.errors import ConfigError


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    # the same session cache that tests/data/conftest.py sets for every test
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOXAI_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        patch.delenv("AUDIOMNIST_ROOT", raising=False)
        yield synth_digits(num_speakers=5, repetitions=2, seed=3, progress=False)


def test_corpus_follows_the_audiomnist_layout(tiny_root):
    data = tiny_root / "data"
    wavs = sorted(data.glob("*/*.wav"))
    assert len(wavs) == 5 * 10 * 2
    assert all(re.fullmatch(r"\d_(\d\d)_\d+\.wav", w.name) and w.name.split("_")[1] == w.parent.name for w in wavs)
    meta = json.loads((data / "audioMNIST_meta.txt").read_text())
    assert sorted(meta) == ["01", "02", "03", "04", "05"]
    assert {"gender", "accent", "age", "native speaker", "origin"} <= set(meta["01"])
    assert sf.info(str(wavs[0])).samplerate == 16000


def test_speakers_are_distinct_voices_with_declared_gender():
    roster = speaker_roster(60, seed=0)
    assert len({(s.voice, s.variant) for s in roster}) == 60
    assert len({s.variant for s in roster[:30]}) == 30  # variants spread before repeating
    assert {s.gender for s in roster} == {"male", "female"}


def test_alignment_marks_where_the_digit_is(tiny_root):
    recordings, _ = read_audiomnist(tiny_root)
    for rec in recordings[:20]:
        wave, rate = sf.read(str(rec.path))
        start, end = rec.word_span
        inside = (wave[int(start * rate): int(end * rate)] ** 2).sum()
        assert inside / (wave ** 2).sum() > 0.99
        assert start >= 0.02 and end <= len(wave) / rate


def test_takes_differ_but_regeneration_is_identical(tiny_root, tmp_path, monkeypatch):
    a, _ = sf.read(str(tiny_root / "data" / "01" / "3_01_0.wav"))
    b, _ = sf.read(str(tiny_root / "data" / "01" / "3_01_1.wav"))
    assert len(a) != len(b) or abs(a - b).max() > 0.01
    monkeypatch.setenv("AUDIOXAI_CACHE", str(tmp_path))
    again = synth_digits(num_speakers=5, repetitions=2, seed=3, progress=False)
    assert again != tiny_root
    c, _ = sf.read(str(again / "data" / "01" / "3_01_0.wav"))
    assert (a == c).all()


def test_cache_is_reused_for_the_same_config_and_not_for_another(tiny_root):
    stamp = (tiny_root / "corpus_config.json").stat().st_mtime_ns
    assert synth_digits(num_speakers=5, repetitions=2, seed=3, progress=False) == tiny_root
    assert (tiny_root / "corpus_config.json").stat().st_mtime_ns == stamp
    assert synth_digits(num_speakers=5, repetitions=2, seed=4, progress=False) != tiny_root


def test_dataset_splits_are_speaker_disjoint(tiny_root):
    parts = {s: AudioMNIST(tiny_root, split=s, duration=1.0) for s in ("train", "val", "test")}
    speakers = [set(r.speaker for r in d.recordings) for d in parts.values()]
    assert not (speakers[0] & speakers[1]) and not (speakers[0] & speakers[2]) and not (speakers[1] & speakers[2])
    assert sum(len(d) for d in parts.values()) == 100
    wave, digit = parts["train"][0]
    assert wave.shape == (16000,) and 0 <= digit <= 9
    mask = parts["train"].word_mask(0, 100)
    assert 5 < int(mask.sum()) < 100


def test_speaker_splits_follow_five_groups():
    splits = speaker_splits([f"{i:02d}" for i in range(1, 61)], fold=2)
    assert [len(splits[k]) for k in ("train", "val", "test")] == [36, 12, 12]
    assert speaker_splits([f"{i:02d}" for i in range(1, 61)], fold=2) == splits
    with pytest.raises(ConfigError, match="at least 3"):
        speaker_splits(["01", "02"])


def test_unknown_generator_parameter_is_named():
    with pytest.raises(ConfigError, match="num_speaker"):
        synth_digits(num_speaker=3)
    with pytest.raises(ConfigError, match="num_speakers=0"):
        speaker_roster(0)


def test_digit_words_are_the_ten_digits():
    assert DIGIT_WORDS[0] == "zero" and DIGIT_WORDS[9] == "nine" and len(DIGIT_WORDS) == 10


def test_audiomnist_root_prefers_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOMNIST_ROOT", str(tmp_path))
    assert audiomnist_root() == tmp_path
