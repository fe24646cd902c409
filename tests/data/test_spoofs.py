import json

import pytest
import torch

from audioxai.data.speech import synthesize
from audioxai.data.spoofs import FRAME_SECONDS, SPLITS, load_spoof_corpus, resynthesize, spoof_corpus
from audioxai.errors import ConfigError, DatasetError

TINY = dict(num_voices=5, utterances_per_voice=5, seed=3, progress=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIOXAI_CACHE", str(tmp_path_factory.mktemp("spoof_cache")))
        root = spoof_corpus(**TINY)
    return root, {split: load_spoof_corpus(root, split) for split in SPLITS}


def _rows(sets, kind, types=None):
    return [(s, i) for s in sets.values() for i in range(len(s))
            if s.kind[i] == kind and (types is None or s.spoof_type[i] in types)]


def test_splits_are_voice_disjoint_and_hold_their_spoof_types(corpus):
    _, sets = corpus
    voices = {name: set(s.voice) for name, s in sets.items()}
    assert not voices["train"] & voices["val"] and not voices["train"] & voices["test"]
    assert not voices["val"] & voices["test"] and voices["test_unseen"] == voices["test"]
    assert set(sets["train"].spoof_type) == {None, "griffin_lim", "mel_vocoder"}
    assert set(sets["val"].spoof_type) | set(sets["test"].spoof_type) <= {None, "griffin_lim", "mel_vocoder"}
    assert set(sets["test_unseen"].spoof_type) == {None, "klatt"}
    assert not set(sets["test"].text) & set(sets["test_unseen"].text)


def test_every_clip_is_exactly_clip_length_with_one_label_per_20ms_frame(corpus):
    _, sets = corpus
    for s in sets.values():
        assert s.waveform.shape[1] == round(2.56 * s.sample_rate) and s.frame_labels.shape[1] == 128
        assert s.speech_frames.shape == s.transition_frames.shape == s.frame_labels.shape
        assert s.waveform.abs().max() <= 1.0 and (s.waveform[:, :800].std(dim=1) > 0).all()  # noise floor, never zero


def test_bonafide_frames_are_all_zero_and_full_spoofs_all_one(corpus):
    _, sets = corpus
    for kind, value in (("bonafide", 0), ("full", 1)):
        rows = _rows(sets, kind)
        assert rows
        for s, i in rows:
            assert (s.frame_labels[i] == value).all() and not s.transition_frames[i].any()
            assert s.labels[i] == value and s.splice_points[i] == []
            assert s.speech_frames[i].any() and not s.speech_frames[i].all()


def test_partial_frame_labels_match_the_spoofed_interval(corpus):
    _, sets = corpus
    rows = _rows(sets, "partial")
    assert {s.spoof_type[i] for s, i in rows} == {"griffin_lim", "mel_vocoder", "klatt"}
    for s, i in rows:
        (start, end), = s.spoofed_intervals[i]
        assert s.labels[i] == 1 and 1 <= len(s.splice_points[i]) <= 2
        assert set(s.splice_points[i]) <= {start, end}
        assert abs(int(s.frame_labels[i].sum()) - (end - start) / FRAME_SECONDS) <= 1
        first, last = int(s.frame_labels[i].nonzero()[0]), int(s.frame_labels[i].nonzero()[-1])
        assert abs(first - start / FRAME_SECONDS) <= 1 and abs(last + 1 - end / FRAME_SECONDS) <= 1
        for p in s.splice_points[i]:
            assert s.transition_frames[i][int(p / FRAME_SECONDS)]
        starts = [w[1] for w in s.words[i]]
        assert starts == sorted(starts) and [w[0] for w in s.words[i]] == s.text[i].split()


def test_time_aligned_partial_spoofs_differ_only_inside_the_spoofed_interval(corpus):
    root, sets = corpus
    records = {r["id"]: r for r in json.loads((root / "metadata.json").read_text())["utterances"]}
    rows = _rows(sets, "partial", ("griffin_lim", "mel_vocoder"))
    for s, i in rows[:4]:
        r, sr, clip = records[s.ids[i]], s.sample_rate, s.waveform[i].double()
        utt = synthesize(r["text"], voice=r["accent"], variant=r["variant"], rate=r["rate"], pitch=r["pitch"])
        lead = max(0, int((utt.words[0].start - 0.02) * sr))
        tail = min(utt.waveform.numel(), int((utt.words[-1].end + 0.05) * sr))
        bona = torch.zeros_like(clip)
        offset = round(r["offset"] * sr)
        bona[offset:offset + tail - lead] = utt.waveform[lead:tail].double()
        (start, end), = s.spoofed_intervals[i]
        t = torch.arange(clip.numel()) / sr
        outside = (t < start - 0.005) | (t >= end + 0.005)
        gain = (clip[outside] @ bona[outside]) / (bona[outside] @ bona[outside])
        residual = clip - gain * bona
        assert residual[outside].pow(2).mean().sqrt() < 2e-3  # the -60 dB noise floor and 16-bit rounding
        inside = (t >= start) & (t < end)
        assert residual[inside].pow(2).mean().sqrt() > 10 * residual[outside].pow(2).mean().sqrt()


def test_same_config_builds_identical_wavs_in_two_caches(tmp_path, monkeypatch):
    small = dict(num_voices=3, utterances_per_voice=3, seed=5, progress=False)
    builds = []
    for name in ("a", "b"):
        monkeypatch.setenv("AUDIOXAI_CACHE", str(tmp_path / name))
        builds.append(spoof_corpus(**small))
    files = sorted(p.relative_to(builds[0]) for p in builds[0].rglob("*.wav"))
    assert files and files == sorted(p.relative_to(builds[1]) for p in builds[1].rglob("*.wav"))
    assert all((builds[0] / f).read_bytes() == (builds[1] / f).read_bytes() for f in files)
    assert (builds[0] / "metadata.json").read_text() == (builds[1] / "metadata.json").read_text()


def test_griffin_lim_changes_the_waveform_but_keeps_its_level():
    x = synthesize("place blue at nine again", voice="en-us", variant="f2").waveform
    y = resynthesize(x, "griffin_lim", seed=1)
    assert y.shape == x.shape and not torch.allclose(x, y, atol=1e-3)
    level_db = 20 * torch.log10(y.pow(2).mean().sqrt() / x.pow(2).mean().sqrt())
    assert abs(float(level_db)) < 3.0
    assert torch.equal(y, resynthesize(x, "griffin_lim", seed=1))
    with pytest.raises(ConfigError, match="klatt"):
        resynthesize(x, "klatt")


def test_subset_keeps_rows_aligned(corpus):
    _, sets = corpus
    part = sets["train"].subset([2, 0])
    assert len(part) == 2 and part.ids == [sets["train"].ids[2], sets["train"].ids[0]]
    assert torch.equal(part.frame_labels[1], sets["train"].frame_labels[0])


def test_bad_split_and_missing_metadata_are_named(corpus, tmp_path):
    root, _ = corpus
    with pytest.raises(ConfigError, match="train, val, test, test_unseen"):
        load_spoof_corpus(root, "dev")
    with pytest.raises(DatasetError, match="metadata.json"):
        load_spoof_corpus(tmp_path, "train")
    (tmp_path / "metadata.json").write_text("{not json")
    with pytest.raises(DatasetError, match="metadata.json"):
        load_spoof_corpus(tmp_path, "train")


def test_bad_configuration_is_refused_by_name():
    with pytest.raises(ConfigError, match="num_voice"):
        spoof_corpus(num_voice=3)
    with pytest.raises(ConfigError, match="unseen_spoof_types"):
        spoof_corpus(unseen_spoof_types=("griffin_lim",))
    with pytest.raises(ConfigError, match="clip_seconds"):
        spoof_corpus(clip_seconds=2.555)
