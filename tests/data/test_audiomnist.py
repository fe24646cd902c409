"""The reader on a tiny fixture in the real AudioMNIST layout (48 kHz files, no alignments)."""

import json

import numpy as np
import pytest
import soundfile as sf

from audioxai.data.audiomnist import AudioMNIST, fix_length, read_audiomnist
from audioxai.errors import DatasetError


@pytest.fixture
def real_layout(tmp_path):
    data = tmp_path / "AudioMNIST" / "data"
    meta = {}
    rng = np.random.default_rng(0)
    for spk in ("01", "02", "03", "04", "05"):
        meta[spk] = {"accent": "german", "age": "30", "gender": "male", "native speaker": "no",
                     "origin": "Europe, Germany, Wuerzburg", "recordingdate": "17-06-22-11-04-28", "recordingroom": "Kino"}
        for digit in (0, 7):
            for rep in (0, 1):
                (data / spk).mkdir(parents=True, exist_ok=True)
                sf.write(str(data / spk / f"{digit}_{spk}_{rep}.wav"), 0.1 * rng.standard_normal(24000), 48000)
    (data / "audioMNIST_meta.txt").write_text(json.dumps(meta))
    return tmp_path / "AudioMNIST"


def test_reads_the_real_layout_unchanged_and_resamples(real_layout, monkeypatch, caplog):
    recordings, meta = read_audiomnist(real_layout)
    assert len(recordings) == 20 and meta["03"]["origin"].startswith("Europe")
    assert {r.digit for r in recordings} == {0, 7} and all(r.word_span is None for r in recordings)
    assert read_audiomnist(real_layout / "data")[0] == recordings  # root or data/ both work
    with caplog.at_level("INFO"):
        dataset = AudioMNIST(real_layout, split="test", sample_rate=16000, duration=1.0)
    wave, digit = dataset[0]
    assert wave.shape == (16000,) and digit in (0, 7)
    assert "48000" in caplog.text  # the resampling is logged
    assert dataset.word_mask(0, 10) is None


def test_badly_named_file_is_reported(real_layout):
    (real_layout / "data" / "02" / "seven.wav").write_bytes(b"")
    with pytest.raises(DatasetError, match="seven.wav"):
        read_audiomnist(real_layout)


def test_speaker_missing_from_metadata_is_reported(real_layout):
    (real_layout / "data" / "09").mkdir()
    with pytest.raises(DatasetError, match="09"):
        read_audiomnist(real_layout)


def test_not_an_audiomnist_folder(tmp_path):
    with pytest.raises(DatasetError, match="audioMNIST_meta.txt"):
        read_audiomnist(tmp_path)


def test_fix_length_crops_and_pads_at_the_end():
    import torch

    x = torch.arange(1, 6, dtype=torch.float32)
    assert fix_length(x, 3).tolist() == [1, 2, 3]
    assert fix_length(x, 7).tolist() == [1, 2, 3, 4, 5, 0, 0]
