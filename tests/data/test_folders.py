"""Tests for audioxai.data.folders: the metadata.csv folder-dataset format."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch

from audioxai.data.folders import FolderDataset, MetadataRow, read_metadata, write_metadata
from audioxai.errors import ConfigError, DatasetError

RATE = 8000
# (relpath, split, label, number of samples, constant value)
FILES = [
    ("cats/a.wav", "train", "cat", 800, 0.1),
    ("cats/b.wav", "train", "cat", 400, 0.2),
    ("dogs/c.wav", "train", "dog", 1200, 0.3),
    ("cats/d.wav", "val", "cat", 800, 0.4),
    ("dogs/e.wav", "val", "dog", 800, 0.5),
    ("dogs/f.wav", "test", "dog", 800, 0.6),
]


def _write_csv(root, lines: list[str], name: str = "metadata.csv"):
    path = root / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def dataset(tmp_path):
    """Six constant-valued wav files at 8 kHz, three splits, two labels, one extra column."""
    root = tmp_path / "ds"
    lines = ["filepath,split,label,speaker"]
    for rel, split, label, n, value in FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, np.full(n, value, dtype=np.float32), RATE, subtype="FLOAT")
        lines.append(f"{rel},{split},{label},spk{len(lines)}")
    _write_csv(root, lines)
    return root


def _bad_csv(root, row: str):
    """The valid dataset's csv plus one bad row (at line 8)."""
    lines = (root / "metadata.csv").read_text().splitlines() + [row]
    return _write_csv(root, lines)


def test_read_metadata_parses_every_row(dataset):
    rows = read_metadata(dataset / "metadata.csv")
    assert [r.relpath for r in rows] == [f[0] for f in FILES]
    assert [r.split for r in rows] == [f[1] for f in FILES]
    assert rows[0].labels == ("cat",)
    assert rows[0].row_number == 2 and rows[-1].row_number == 7
    assert rows[0].filepath == (dataset / "cats/a.wav").resolve() and rows[0].filepath.is_absolute()
    assert rows[2].extra == {"speaker": "spk3"}


def test_folder_dataset_items_have_shared_class_ids_and_shapes(dataset):
    train = FolderDataset(dataset, split="train", sample_rate=RATE)
    val = FolderDataset(dataset, split="val", sample_rate=RATE)
    assert train.classes == val.classes == ["cat", "dog"]
    assert len(train) == 3 and len(val) == 2
    waveform, target = train[2]
    assert waveform.shape == (1200,) and waveform.dtype == torch.float32
    assert target == 1
    assert torch.allclose(waveform, torch.full((1200,), 0.3))
    assert [val[i][1] for i in range(2)] == [0, 1]
    assert train.label_counts() == {"cat": 2, "dog": 1}
    assert FolderDataset(dataset, split="test", sample_rate=RATE).label_counts() == {"cat": 0, "dog": 1}


def test_folder_dataset_resamples_to_requested_rate(dataset):
    waveform, _ = FolderDataset(dataset, split="test", sample_rate=16000)[0]
    assert waveform.shape == (1600,)


def test_given_labels_fix_the_class_order(dataset):
    ds = FolderDataset(dataset, split="train", sample_rate=RATE, labels=["dog", "cat", "bird"])
    assert [ds[i][1] for i in range(3)] == [1, 1, 0]
    assert ds.label_counts() == {"dog": 1, "cat": 2, "bird": 0}
    with pytest.raises(DatasetError, match=r"row 2 \(cats/a\.wav\) has labels \['cat'\] not in"):
        FolderDataset(dataset, split="train", labels=["dog"])


def test_fixed_duration_keeps_first_samples_and_pads_end_with_zeros(dataset):
    ds = FolderDataset(dataset, split="train", sample_rate=RATE, duration=0.1)  # 800 samples
    long_wave, _ = ds[2]  # 1200 samples of 0.3
    short_wave, _ = ds[1]  # 400 samples of 0.2
    assert long_wave.shape == short_wave.shape == (800,)
    assert torch.allclose(long_wave, torch.full((800,), 0.3))
    assert torch.allclose(short_wave[:400], torch.full((400,), 0.2))
    assert torch.equal(short_wave[400:], torch.zeros(400))


def test_multi_label_targets_are_multi_hot(dataset):
    _bad_csv(dataset, "cats/a.wav,test,cat;dog")
    ds = FolderDataset(dataset, split="test", sample_rate=RATE, multi_label=True)
    assert ds.classes == ["cat", "dog"]
    assert torch.equal(ds[0][1], torch.tensor([0.0, 1.0]))
    assert torch.equal(ds[1][1], torch.tensor([1.0, 1.0]))
    assert ds.label_counts() == {"cat": 1, "dog": 2}
    assert ds.rows[1].extra == {"speaker": ""}  # a short row gets empty trailing cells


def test_multiple_labels_without_multi_label_flag_is_an_error(dataset):
    _bad_csv(dataset, "cats/a.wav,test,cat;dog")
    with pytest.raises(DatasetError, match=r"row 8 \(cats/a\.wav\) has 2 labels.*multi_label=True"):
        FolderDataset(dataset, split="test")


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        ("cats/a.wav,training,cat", r"row 8 \(cats/a\.wav\) has split 'training': use one of train, val, test"),
        ("cats/a.wav,train,", r"row 8 \(cats/a\.wav\) has an empty label"),
        ("cats/a.wav,train, ; ", r"row 8 \(cats/a\.wav\) has an empty label"),
        ("../x.wav,train,cat", r"row 8 has filepath '\.\./x\.wav'.*outside the dataset root"),
        ("cats/missing.wav,train,cat", r"row 8 names 'cats/missing\.wav', which does not exist"),
        (",train,cat", r"row 8 has an empty filepath"),
        ("cats/a.wav,train,cat,spk,oops", r"row 8 has 5 fields but the header has 4"),
    ],
)
def test_bad_rows_raise_with_row_number_and_path(dataset, row, pattern):
    csv_path = _bad_csv(dataset, row)
    with pytest.raises(DatasetError, match=pattern) as err:
        read_metadata(csv_path)
    assert str(csv_path) in str(err.value)


def test_absolute_path_is_rejected(dataset):
    absolute = (dataset / "cats/a.wav").resolve()
    csv_path = _bad_csv(dataset, f"{absolute},train,cat")
    with pytest.raises(DatasetError, match=rf"row 8 has the absolute filepath '{absolute}'.*relative"):
        read_metadata(csv_path)


def test_symlink_resolving_outside_root_is_rejected(dataset, tmp_path):
    outside = tmp_path / "outside.wav"
    sf.write(outside, np.zeros(100, dtype=np.float32), RATE)
    os.symlink(outside, dataset / "link.wav")
    csv_path = _bad_csv(dataset, "link.wav,train,cat")
    with pytest.raises(DatasetError, match=r"row 8 has filepath 'link\.wav', which resolves to .*outside\.wav"):
        read_metadata(csv_path)


def test_check_audio_reports_empty_and_corrupt_files_by_row(dataset):
    sf.write(dataset / "empty.wav", np.zeros(0, dtype=np.float32), RATE)
    (dataset / "text.wav").write_text("not audio")
    lines = (dataset / "metadata.csv").read_text().splitlines() + ["empty.wav,train,cat", "text.wav,val,dog"]
    csv_path = _write_csv(dataset, lines)
    assert len(read_metadata(csv_path)) == 8  # existence only, without check_audio
    with pytest.raises(DatasetError, match=r"2 bad row") as err:
        read_metadata(csv_path, check_audio=True)
    message = str(err.value)
    assert "row 8 names 'empty.wav', which is empty (0 samples)" in message
    assert "row 9 names 'text.wav', which is not readable audio" in message


def test_all_bad_rows_are_reported_together(dataset):
    lines = (dataset / "metadata.csv").read_text().splitlines() + ["a.wav,x,cat", "", "b.wav,train,"]
    with pytest.raises(DatasetError, match=r"(?s)2 bad row\(s\).*row 8 \(a\.wav\).*row 10 \(b\.wav\)"):
        read_metadata(_write_csv(dataset, lines))


def test_missing_column_lists_found_columns(tmp_path):
    csv_path = _write_csv(tmp_path, ["path,split,label", "a.wav,train,cat"])
    with pytest.raises(DatasetError, match=r"no 'filepath' column \(found columns: \['path', 'split', 'label'\]\)"):
        read_metadata(csv_path)


def test_missing_and_empty_csv(tmp_path):
    with pytest.raises(DatasetError, match=r"metadata file .*nothere\.csv does not exist"):
        read_metadata(tmp_path / "nothere.csv")
    (tmp_path / "metadata.csv").write_text("")
    with pytest.raises(DatasetError, match=r"metadata\.csv is empty"):
        read_metadata(tmp_path / "metadata.csv")


def test_csv_elsewhere_with_explicit_root(dataset, tmp_path):
    moved = tmp_path / "elsewhere.csv"
    moved.write_text((dataset / "metadata.csv").read_text())
    assert len(read_metadata(moved, dataset_root=dataset)) == 6
    assert len(FolderDataset(dataset, metadata_csv=moved, split="val")) == 2


def test_unknown_or_empty_split_and_bad_duration(dataset):
    with pytest.raises(DatasetError, match=r"unknown split 'dev'.*train, val, test"):
        FolderDataset(dataset, split="dev")
    _write_csv(dataset, ["filepath,split,label", "cats/a.wav,train,cat"])
    with pytest.raises(DatasetError, match=r"split 'test' of .*metadata\.csv has no rows"):
        FolderDataset(dataset, split="test")
    with pytest.raises(ConfigError, match="duration"):
        FolderDataset(dataset, duration=0)


def test_write_metadata_round_trips_rows_and_mappings(dataset, tmp_path):
    rows = read_metadata(dataset / "metadata.csv")
    out = write_metadata(rows, dataset / "copy.csv")
    again = read_metadata(out)
    assert [(r.relpath, r.split, r.labels, r.extra) for r in again] == [
        (r.relpath, r.split, r.labels, r.extra) for r in rows
    ]
    write_metadata([{"filepath": "cats/a.wav", "split": "test", "label": ["cat", "dog"], "text": "a, b"}],
                   dataset / "multi.csv")
    (row,) = read_metadata(dataset / "multi.csv")
    assert isinstance(row, MetadataRow)
    assert row.labels == ("cat", "dog") and row.extra == {"text": "a, b"}
    with pytest.raises(DatasetError, match=r"row 2"):
        write_metadata([{"filepath": "a.wav", "split": "dev", "label": "cat"}], tmp_path / "bad.csv")
    assert not (tmp_path / "bad.csv").exists()
