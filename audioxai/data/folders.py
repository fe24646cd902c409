"""Folder datasets described by a ``metadata.csv``: the format shared by several chapters.

Layout: a dataset root folder holding audio files and a ``metadata.csv`` whose header has the
columns ``filepath,split,label`` (in any order; extra columns are allowed and kept):

- ``filepath``: the audio file, relative to the dataset root (no absolute paths, nothing that
  resolves outside the root, symlinks included);
- ``split``: ``train``, ``val`` or ``test``;
- ``label``: a class name; several labels for multi-label data are separated by ``;``.

Every bad row is reported at once, each by its line in the csv and its path, with the fix.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
import torch
from torch.utils.data import Dataset

from audioxai.atomic import atomic_write_text
from audioxai.data.audio import load_audio
from audioxai.data.audiomnist import fix_length
from audioxai.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)

__all__ = ["MetadataRow", "read_metadata", "write_metadata", "FolderDataset", "SPLITS", "REQUIRED_COLUMNS"]

SPLITS = ("train", "val", "test")
REQUIRED_COLUMNS = ("filepath", "split", "label")
LABEL_SEPARATOR = ";"
_MAX_REPORTED = 20


@dataclass(frozen=True)
class MetadataRow:
    """One row of ``metadata.csv``.

    Attributes:
        filepath: the audio file, absolute and resolved (inside the dataset root).
        relpath: the ``filepath`` cell as written, relative to the dataset root.
        split: ``train``, ``val`` or ``test``.
        labels: the label cell split on ``;`` (one entry for single-label data).
        row_number: the 1-based line of the row in the csv (the header is line 1).
        extra: the row's other columns, by header name, as strings.
    """

    filepath: Path
    relpath: str
    split: str
    labels: tuple[str, ...]
    row_number: int
    extra: dict[str, str] = field(default_factory=dict)


def _read_header(reader: csv.reader, csv_path: Path) -> list[str]:
    """The stripped header names, after checking the required columns are there once each."""
    header = next(reader, None)
    if header is None or not any(h.strip() for h in header):
        raise DatasetError(f"{csv_path} is empty: its first line must be the header {','.join(REQUIRED_COLUMNS)}")
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DatasetError(
            f"{csv_path} has no {', '.join(repr(m) for m in missing)} column (found columns: {header}): "
            f"the header must contain {','.join(REQUIRED_COLUMNS)}"
        )
    doubled = sorted(c for c, n in Counter(header).items() if n > 1)
    if doubled:
        raise DatasetError(f"{csv_path} header repeats the columns {doubled}: give every column a unique name")
    return header


def _resolve_in_root(rel: str, root: Path) -> tuple[Path | None, str | None]:
    """``(absolute path, None)`` for a file inside ``root``, else ``(None, what is wrong and the fix)``."""
    if not rel:
        return None, "has an empty filepath: give the audio file's path relative to the dataset root"
    if Path(rel).is_absolute() or os.path.isabs(rel):
        return None, f"has the absolute filepath {rel!r}: write it relative to the dataset root {root}"
    path = (root / rel).resolve()
    if not path.is_relative_to(root):
        return None, (f"has filepath {rel!r}, which resolves to {path}, outside the dataset root {root} "
                      f"('..' or a symlink): move the file inside the root and point at it there")
    if not path.is_file():
        return None, f"names {rel!r}, which does not exist under {root}: fix the path or remove the row"
    return path, None


def _audio_problem(path: Path, rel: str) -> str | None:
    """``None`` when libsndfile can open ``path`` and it holds at least one frame, else the problem."""
    try:
        frames = sf.info(str(path)).frames
    except (sf.SoundFileError, RuntimeError) as err:
        return f"names {rel!r}, which is not readable audio ({err}): re-export it as WAV/FLAC or remove the row"
    if frames == 0:
        return f"names {rel!r}, which is empty (0 samples): re-record it or remove the row"
    return None


def _parse_row(cells: list[str], header: list[str], line: int, root: Path,
               check_audio: bool) -> tuple[MetadataRow | None, str | None]:
    """One data row as a ``MetadataRow``, or ``(None, "row N ...: problem")``."""
    if len(cells) > len(header):
        return None, (f"row {line} has {len(cells)} fields but the header has {len(header)}: "
                      f"quote cells that contain commas (\"a, b\")")
    values = dict(zip(header, cells + [""] * (len(header) - len(cells))))  # short rows: empty trailing cells
    rel, split = values["filepath"].strip(), values["split"].strip()
    where = f"row {line} ({rel or '<empty filepath>'})"
    if split not in SPLITS:
        return None, f"{where} has split {split!r}: use one of {', '.join(SPLITS)}"
    labels = tuple(dict.fromkeys(s.strip() for s in values["label"].split(LABEL_SEPARATOR) if s.strip()))
    if not labels:
        return None, f"{where} has an empty label: give a class name (several separated by ';')"
    path, problem = _resolve_in_root(rel, root)
    if problem is None and check_audio:
        problem = _audio_problem(path, rel)
    if problem is not None:
        return None, f"row {line} {problem}"
    extra = {k: v for k, v in values.items() if k not in REQUIRED_COLUMNS}
    return MetadataRow(path, rel, split, labels, line, extra), None


def read_metadata(metadata_csv: str | os.PathLike[str], dataset_root: str | os.PathLike[str] | None = None,
                  check_audio: bool = False) -> list[MetadataRow]:
    """Read and validate ``metadata.csv``; return its rows in file order.

    Args:
        metadata_csv: the csv (UTF-8; a byte-order mark is ignored; blank lines are skipped).
        dataset_root: the folder that ``filepath`` is relative to; defaults to the csv's folder.
        check_audio: also open every file with libsndfile and reject unreadable or empty ones.

    Raises:
        DatasetError: a missing or empty csv, a missing column, or (all listed together) rows with an
            unknown split, an empty label, a path outside the root, or a missing or bad file.
    """
    csv_path = Path(metadata_csv)
    if not csv_path.is_file():
        raise DatasetError(f"metadata file {csv_path} does not exist: write a metadata.csv with the header "
                           f"{','.join(REQUIRED_COLUMNS)} (see audioxai.data.folders)")
    root = Path(dataset_root) if dataset_root is not None else csv_path.parent
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} for {csv_path} is not a folder: pass the folder holding the audio")
    root = root.resolve()
    rows, problems = [], []
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = _read_header(reader, csv_path)
        last_line = reader.line_num
        for cells in reader:
            line, last_line = last_line + 1, reader.line_num
            if not any(c.strip() for c in cells):
                continue
            row, problem = _parse_row(cells, header, line, root, check_audio)
            if problem is None:
                rows.append(row)
            else:
                problems.append(problem)
    if problems:
        shown = "\n  ".join(problems[:_MAX_REPORTED])
        more = f"\n  ... and {len(problems) - _MAX_REPORTED} more" if len(problems) > _MAX_REPORTED else ""
        raise DatasetError(f"{csv_path}: {len(problems)} bad row(s):\n  {shown}{more}")
    return rows


def _row_cells(row: MetadataRow | Mapping[str, object]) -> dict[str, str]:
    """A row as csv cells: ``filepath``, ``split``, ``label`` (labels joined by ``;``) and the extras."""
    if isinstance(row, MetadataRow):
        return {"filepath": row.relpath, "split": row.split, "label": LABEL_SEPARATOR.join(row.labels),
                **{k: str(v) for k, v in row.extra.items()}}
    missing = [c for c in REQUIRED_COLUMNS if c not in row]
    if missing:
        raise DatasetError(f"metadata row {dict(row)} has no {missing}: give filepath, split and label")
    label = row["label"]
    if not isinstance(label, str):
        label = LABEL_SEPARATOR.join(str(x) for x in label)
    return {**{k: str(v) for k, v in row.items()}, "label": label}


def write_metadata(rows: Iterable[MetadataRow | Mapping[str, object]], path: str | os.PathLike[str]) -> Path:
    """Write ``rows`` (``MetadataRow``s or mappings with filepath, split, label) as a csv, atomically.

    The header is ``filepath,split,label`` then the extra columns in first-seen order; a label given as a
    sequence is joined with ``;``. Returns ``path``.
    """
    cells = [_row_cells(r) for r in rows]
    for i, c in enumerate(cells, start=2):
        if c["split"] not in SPLITS or not c["label"].strip() or Path(c["filepath"]).is_absolute():
            raise DatasetError(f"cannot write {path}: row {i} {c} needs a split in {SPLITS}, a non-empty label "
                               f"and a filepath relative to the dataset root")
    header = list(REQUIRED_COLUMNS) + list(dict.fromkeys(k for c in cells for k in c if k not in REQUIRED_COLUMNS))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(cells)
    return atomic_write_text(path, buf.getvalue())


class FolderDataset(Dataset):
    """One split of a ``metadata.csv`` folder dataset; items are ``(waveform, target)``.

    Args:
        dataset_root: the folder holding the audio.
        metadata_csv: the csv; defaults to ``dataset_root / "metadata.csv"``.
        split: ``train``, ``val`` or ``test``.
        sample_rate: rate of the returned waveforms (files are made mono and resampled, logged).
        labels: the class names in index order; defaults to the sorted labels of the whole csv, so
            every split of one csv shares class indices. Rows with a label outside it are an error.
        multi_label: targets are multi-hot float vectors over ``classes`` instead of class indices.
        duration: seconds; when given, each waveform keeps its first ``duration`` seconds and shorter
            ones are zero-padded at the end (the start stays put, so time annotations stay valid).
    """

    def __init__(self, dataset_root: str | os.PathLike[str], metadata_csv: str | os.PathLike[str] | None = None,
                 split: str = "train", sample_rate: int = 16000, labels: Sequence[str] | None = None,
                 multi_label: bool = False, duration: float | None = None) -> None:
        root = Path(dataset_root)
        csv_path = Path(metadata_csv) if metadata_csv is not None else root / "metadata.csv"
        if split not in SPLITS:
            raise DatasetError(f"unknown split {split!r} for {csv_path}: use one of {', '.join(SPLITS)}")
        if duration is not None and not duration > 0:
            raise ConfigError(f"duration is {duration!r}: pass a positive number of seconds, or None for full files")
        all_rows = read_metadata(csv_path, root)
        self.classes = list(labels) if labels is not None else sorted({lab for r in all_rows for lab in r.labels})
        self.class_to_index = {name: i for i, name in enumerate(self.classes)}
        self._check_labels(all_rows, csv_path, multi_label)
        self.rows = [r for r in all_rows if r.split == split]
        if not self.rows:
            raise DatasetError(f"split {split!r} of {csv_path} has no rows: add rows with split={split} "
                               f"or choose another split")
        self.split, self.sample_rate, self.multi_label = split, sample_rate, multi_label
        self.num_samples = None if duration is None else round(duration * sample_rate)
        logger.info("%s: %d %s rows, %d classes", csv_path, len(self.rows), split, len(self.classes))

    def _check_labels(self, rows: list[MetadataRow], csv_path: Path, multi_label: bool) -> None:
        if len(self.class_to_index) != len(self.classes):
            raise DatasetError(f"labels {self.classes} repeat a name: pass each class once")
        for r in rows:
            unknown = [lab for lab in r.labels if lab not in self.class_to_index]
            if unknown:
                raise DatasetError(f"{csv_path} row {r.row_number} ({r.relpath}) has labels {unknown} not in "
                                   f"labels={self.classes}: add them to labels, or leave labels=None")
            if not multi_label and len(r.labels) > 1:
                raise DatasetError(f"{csv_path} row {r.row_number} ({r.relpath}) has {len(r.labels)} labels "
                                   f"{list(r.labels)}: pass multi_label=True, or give one label per row")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor | int]:
        row = self.rows[index]
        waveform, _ = load_audio(row.filepath, sample_rate=self.sample_rate)
        if self.num_samples is not None:
            waveform = fix_length(waveform, self.num_samples)
        if self.multi_label:
            target = torch.zeros(len(self.classes))
            target[[self.class_to_index[lab] for lab in row.labels]] = 1.0
            return waveform, target
        return waveform, self.class_to_index[row.labels[0]]

    def label_counts(self) -> dict[str, int]:
        """Rows per class in this split, in class order (zeros included; multi-label rows count once per label)."""
        counts = Counter(lab for r in self.rows for lab in r.labels)
        return {name: counts.get(name, 0) for name in self.classes}
