"""Chapter 4 test sets: clean and noisy sentences with exact SNRs, ideal masks, metadata, save and load."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from audioxai.data.asr_testset import METADATA_COLUMNS, ASRTestSetConfig, build_asr_testset, load_testset, save_testset
from audioxai.data.asr_testset import asr_metadata_frame as metadata_frame
from audioxai.data.audio import load_audio
from audioxai.data.mixing import signal_to_noise_ratio
from audioxai.data.sentences import load_sentence_corpus, sentence_corpus
from audioxai.data.synthdigits import ACCENTS
from audioxai.errors import ConfigError, DatasetError

NOISES = ("white", "pink", "babble", "music", "traffic", "wind")
SNRS = (0.0, 5.0, 20.0)
CONFIG = ASRTestSetConfig(noise_types=NOISES, snrs_db=SNRS, max_utterances=3, seed=1)


@pytest.fixture(scope="module")
def items(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AUDIOXAI_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        root = sentence_corpus(num_sentences=40, num_speakers=20, seed=0, progress=False)
    return load_sentence_corpus(root, "test")


@pytest.fixture(scope="module")
def samples(items):
    return build_asr_testset(items, CONFIG)


def by_id(samples):
    return {s.id: s for s in samples}


def test_every_utterance_comes_clean_and_in_every_noise_and_snr(items, samples):
    utterances = sorted({s.metadata["utterance"] for s in samples})
    assert len(utterances) == 3 and set(utterances) <= {i.path.stem for i in items}
    assert len(samples) == 3 * (1 + len(NOISES) * len(SNRS)) and len(by_id(samples)) == len(samples)
    first = [s.id for s in samples[:1 + len(NOISES) * len(SNRS)]]
    u = utterances[0]
    assert first == [f"{u}_clean"] + [f"{u}_{k}_{snr:g}dB" for k in NOISES for snr in SNRS]
    item = {i.path.stem: i for i in items}[u]
    assert torch.equal(samples[0].waveform, load_audio(item.path)[0]) and samples[0].noise is None


def test_mixtures_are_clean_plus_noise_at_the_requested_snr(items, samples):
    noisy = [s for s in samples if s.noise is not None]
    for s in noisy:
        assert abs(float(signal_to_noise_ratio(s.clean, s.noise)) - s.metadata["snr_db"]) < 0.01, s.id
        assert torch.allclose(s.waveform, s.clean + s.noise, atol=1e-6)
    clean = {s.metadata["utterance"]: s.clean for s in samples if s.noise is None}
    assert all(torch.equal(s.clean, clean[s.metadata["utterance"]]) for s in noisy)  # speech never rescaled


def test_noise_is_per_utterance_and_type_and_shared_across_snrs(samples):
    ids = by_id(samples)
    u = sorted({s.metadata["utterance"] for s in samples})
    low, high = ids[f"{u[0]}_white_0dB"].noise, ids[f"{u[0]}_white_20dB"].noise
    assert torch.allclose(low, high * 10.0, rtol=1e-4, atol=1e-6)  # same noise, 20 dB apart
    a, b = ids[f"{u[0]}_white_0dB"].noise, ids[f"{u[1]}_white_0dB"].noise
    n = min(a.numel(), b.numel())
    assert abs(float(torch.corrcoef(torch.stack([a[:n], b[:n]]))[0, 1])) < 0.1
    assert not torch.allclose(ids[f"{u[0]}_pink_0dB"].noise, ids[f"{u[0]}_wind_0dB"].noise)


def stft_power(x: torch.Tensor) -> torch.Tensor:
    spec = torch.stft(x.double(), 512, 128, window=torch.hann_window(512, periodic=True, dtype=torch.float64),
                      center=True, return_complex=True)
    return spec.abs().square()


def test_masks_follow_the_definitions_on_the_stft_grid(samples):
    noisy = [s for s in samples if s.noise is not None]
    assert all(s.ibm is None and s.irm is None for s in samples if s.noise is None)
    for s in noisy[::5]:
        frames = 1 + s.waveform.numel() // 128
        assert s.ibm.shape == s.irm.shape == (257, frames)
        assert float(s.irm.min()) >= 0.0 and float(s.irm.max()) <= 1.0
        ps, pn = stft_power(s.clean), stft_power(s.noise)
        audible = (ps + pn) > 1e-6 * float((ps + pn).max())  # float32 STFTs differ in the faintest bins
        torch.testing.assert_close(s.irm.double()[audible], (ps / (ps + pn)).sqrt()[audible], atol=1e-4, rtol=0)
        # LC = 0 dB, beta = 0.5: |S|^2 > |N|^2  <=>  IRM^2 > 0.5  (bins at the boundary left out)
        clear = (s.irm.double().square() - 0.5).abs() > 1e-4
        assert torch.equal(s.ibm[clear] == 1, (s.irm.double().square() > 0.5)[clear])
        assert set(s.ibm.unique().tolist()) <= {0.0, 1.0}
    ids, u = by_id(samples), samples[0].metadata["utterance"]
    for kind in NOISES:  # less noise leaves more bins to the speech
        assert float(ids[f"{u}_{kind}_0dB"].ibm.mean()) < float(ids[f"{u}_{kind}_20dB"].ibm.mean())


def test_metadata_frame_has_the_columns_and_values(items, samples):
    frame = metadata_frame(samples)
    assert list(frame.columns) == list(METADATA_COLUMNS) and len(frame) == len(samples)
    corpus = {i.path.stem: i for i in items}
    for s, row in zip(samples, frame.itertuples(index=False)):
        item = corpus[row.utterance]
        assert (row.id, row.text, row.speaker, row.voice, row.variant, row.rate) == (
            s.id, item.text, item.speaker, item.voice, item.variant, item.rate)
        assert row.accent == ACCENTS[item.voice] and row.num_words == len(item.words) == len(s.words)
        assert row.duration_s == pytest.approx(s.clean.numel() / 16000)
        assert (row.noise_type == "clean") == math.isinf(row.snr_db) == (s.noise is None)
    assert frame.loc[frame.noise_type != "clean", "snr_db"].isin(SNRS).all()
    per_utt = frame.drop_duplicates("utterance").sort_values("duration_s")
    assert per_utt.length_class.tolist() == ["short", "medium", "long"]  # three distinct durations, one tercile each


def test_same_seed_same_testset_other_seed_other_noise(items, samples):
    small = dataclasses.replace(CONFIG, noise_types=("white", "music"), snrs_db=(5.0,))
    a, b = build_asr_testset(items, small), build_asr_testset(items, small)
    assert [s.id for s in a] == [s.id for s in b]
    assert all(torch.equal(x.waveform, y.waveform) and (x.ibm is None or torch.equal(x.irm, y.irm))
               for x, y in zip(a, b))
    # the noise of (utterance, type) does not depend on which other types or SNRs are built
    five, zero = by_id(a)[samples[1].id.replace("_0dB", "_5dB")], by_id(samples)[samples[1].id]
    assert samples[1].id.endswith("_white_0dB")
    assert torch.allclose(five.noise * 10 ** (5 / 20), zero.noise, rtol=1e-4, atol=1e-6)
    c = build_asr_testset(items, dataclasses.replace(small, seed=2, max_utterances=None))
    shared = set(by_id(a)) & set(by_id(c))
    assert shared and all(not torch.equal(by_id(a)[i].waveform, by_id(c)[i].waveform)
                          for i in shared if "white" in i)


def test_save_and_load_round_trip(samples, tmp_path):
    subset = samples[:2 * (1 + len(NOISES) * len(SNRS))]
    folder = save_testset(subset, tmp_path / "testset")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["testset"]  # no temporary folder left behind
    assert len(list((folder / "clean").glob("*.wav"))) == 2  # each clean utterance written once
    loaded = load_testset(folder)
    assert [s.id for s in loaded] == [s.id for s in subset]
    for x, y in zip(subset, loaded):
        assert torch.equal(x.waveform, y.waveform) and torch.equal(x.clean, y.clean)
        assert (x.noise is None and y.noise is None) or torch.equal(x.noise, y.noise)
        assert (x.ibm is None and y.ibm is None) or (torch.equal(x.ibm, y.ibm) and torch.equal(x.irm, y.irm))
        assert x.metadata == y.metadata and x.text == y.text
        assert x.words == y.words and x.phonemes == y.phonemes
    pd.testing.assert_frame_equal(metadata_frame(loaded), metadata_frame(subset))
    with pytest.raises(DatasetError, match="already exists.*overwrite=True"):
        save_testset(subset[:3], folder)
    save_testset(subset[:3], folder, overwrite=True)
    assert len(load_testset(folder)) == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["testset"]


def test_load_names_a_missing_column_and_refuses_paths_outside(samples, tmp_path):
    folder = save_testset(samples[:3], tmp_path / "ts")
    csv_path = folder / "metadata.csv"
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    table.drop(columns=["noise_type"]).to_csv(csv_path, index=False)
    with pytest.raises(DatasetError, match="no column 'noise_type'"):
        load_testset(folder)
    (tmp_path / "outside.npz").write_bytes((folder / table.loc[1, "masks_filepath"]).read_bytes())
    escaped = table.copy()
    escaped.loc[1, "masks_filepath"] = "../outside.npz"
    escaped.to_csv(csv_path, index=False)
    with pytest.raises(DatasetError, match="masks_filepath='../outside.npz', outside the test-set folder"):
        load_testset(folder)
    escaped.loc[1, ["masks_filepath", "filepath"]] = [table.loc[1, "masks_filepath"], "../../x.wav"]
    escaped.to_csv(csv_path, index=False)
    with pytest.raises(DatasetError, match="outside the dataset root"):
        load_testset(folder)


def test_bad_configurations_are_named(items):
    with pytest.raises(ConfigError, match="unknown kinds \\['jet'\\]"):
        build_asr_testset(items, ASRTestSetConfig(noise_types=("jet",)))
    with pytest.raises(ConfigError, match="non-finite"):
        build_asr_testset(items, ASRTestSetConfig(snrs_db=(0.0, float("inf"))))
    with pytest.raises(ConfigError, match="no utterances"):
        build_asr_testset([], ASRTestSetConfig())
    with pytest.raises(ConfigError, match="max_utterances=0"):
        build_asr_testset(items, ASRTestSetConfig(max_utterances=0))
    assert np.isinf(build_asr_testset(items, ASRTestSetConfig(noise_types=(), max_utterances=1))[0].snr_db)
