"""Reading a ``metadata.csv`` dataset for the mixture of experts: labels, splits, clips at the front-end's rate.

Labels come from the ``label`` column (several labels separated by ``;`` for multi-label data). Every
clip is read at its own rate, resampled to the front-end's ``sample_rate`` (logged by
``audioxai.data.audio.load_audio``) and cut or zero-padded to ``num_samples`` from its start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from audioxai.data.audio import load_audio
from audioxai.data.audiomnist import fix_length
from audioxai.data.folders import MetadataRow, read_metadata
from audioxai.errors import AudioInputError, DatasetError

__all__ = ["LabelSet", "label_set", "split_rows", "load_clip", "load_split"]


@dataclass(frozen=True)
class LabelSet:
    """The class names (sorted) and whether a sample may carry several of them."""

    names: tuple[str, ...]
    multi_label: bool = False

    def encode(self, labels: tuple[str, ...], where: str) -> torch.Tensor:
        """A class index (single-label) or a multi-hot float vector; DatasetError naming ``where`` for an
        unknown label or, in single-label data, several labels."""
        unknown = [lab for lab in labels if lab not in self.names]
        if unknown:
            raise DatasetError(f"{where}: label(s) {unknown} are not among the model's classes {list(self.names)}: "
                               f"the checkpoint was trained on another label set; retrain, or evaluate on data "
                               f"with these classes")
        if self.multi_label:
            target = torch.zeros(len(self.names))
            target[[self.names.index(lab) for lab in labels]] = 1.0
            return target
        if len(labels) != 1:
            raise DatasetError(f"{where}: {len(labels)} labels {list(labels)} in single-label data: use "
                               f"task='multi_label' or give each row one label")
        return torch.tensor(self.names.index(labels[0]))


def split_rows(dataset_dir: str | os.PathLike[str], metadata_csv: str | os.PathLike[str],
               split: str) -> list[MetadataRow]:
    """The validated rows of one split (DatasetError when it has none)."""
    rows = [r for r in read_metadata(metadata_csv, dataset_dir) if r.split == split]
    if not rows:
        raise DatasetError(f"{metadata_csv} has no rows with split '{split}': add some, or choose train, val or test")
    return rows


def label_set(rows: list[MetadataRow], multi_label: bool) -> LabelSet:
    """The classes of the training rows; DatasetError for a single-class dataset."""
    names = tuple(sorted({lab for r in rows for lab in r.labels}))
    if len(names) < 2:
        raise DatasetError(f"the training rows hold {len(names)} class(es) {list(names)}: a classifier needs at least "
                           f"two; add rows of other classes to metadata.csv")
    return LabelSet(names, multi_label)


def load_clip(path: str | os.PathLike[str], sample_rate: int, num_samples: int) -> torch.Tensor:
    """One clip as (num_samples,) float32 at ``sample_rate`` (mono, resampled, cut or zero-padded)."""
    x, _ = load_audio(path, sample_rate=sample_rate)
    return fix_length(x, num_samples)


def load_split(rows: list[MetadataRow], labels: LabelSet, sample_rate: int,
               num_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveforms (B, num_samples) and targets ((B,) indices or (B, C) multi-hot) of ``rows``.

    Raises:
        DatasetError: naming the row and file of an unreadable clip or an unknown label.
    """
    waves, targets = [], []
    for row in rows:
        where = f"row {row.row_number} ({row.relpath})"
        targets.append(labels.encode(row.labels, where))
        try:
            waves.append(load_clip(row.filepath, sample_rate, num_samples))
        except AudioInputError as err:
            raise DatasetError(f"{where}: {err}") from err
    return torch.stack(waves), torch.stack(targets)


def output_dir_is_free(path: str | os.PathLike[str], overwrite: bool) -> Path:
    """``path`` as a Path, refusing a non-empty existing folder unless ``overwrite``."""
    path = Path(path)
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise DatasetError(f"output folder {path} exists and is not empty: choose another --out, or pass "
                           f"overwrite=True to replace it")
    return path
