"""Handwritten digit images: MNIST from IDX files when ``MNIST_ROOT`` is set, else scikit-learn's digits.

scikit-learn ships the UCI "Optical Recognition of Handwritten Digits" test set: 1,797 real
handwritten digits as 8x8 images with 17 grey levels (0..16). It is what the book uses when no MNIST
is on disk, and it is always named as such (``DigitsImages.name``), never passed off as MNIST.
"""

from __future__ import annotations

import gzip
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from audioxai.errors import ConfigError, DatasetError

logger = logging.getLogger(__name__)

__all__ = ["DigitsImages", "read_idx", "load_mnist", "load_sklearn_digits", "load_digits_images"]

SKLEARN_DIGITS_NAME = "scikit-learn handwritten digits (UCI, 8x8)"
_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class DigitsImages:
    """Images in [0, 1] shaped (N, 1, H, W), integer labels, split names per image, and the source's name."""

    images: torch.Tensor
    labels: torch.Tensor
    splits: list[str]
    name: str

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels of one split (``train``, ``val`` or ``test``)."""
        idx = torch.tensor([i for i, s in enumerate(self.splits) if s == name], dtype=torch.long)
        if idx.numel() == 0:
            raise ConfigError(f"split {name!r} is empty in {self.name}: use one of {sorted(set(self.splits))}")
        return self.images[idx], self.labels[idx]


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (LeCun's MNIST format), gzipped or not, into an array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as err:
        raise DatasetError(f"cannot read IDX file {path}: {err}; re-download or decompress it") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DatasetError(f"{path} is not an IDX file (bad magic number): expected MNIST's *-idx?-ubyte files")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4: 4 + 4 * ndim])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim:]
    if len(body) != expected:
        raise DatasetError(f"{path} holds {len(body)} bytes of data but its header promises {expected}: the file is truncated")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz", root / stem.replace("-idx", ".idx")):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"MNIST file {stem} (or {stem}.gz) not found in {root}: point MNIST_ROOT at the folder holding it")


def load_mnist(root: str | os.PathLike[str], val_fraction: float = 1 / 6, seed: int = 0) -> DigitsImages:
    """MNIST from IDX files under ``root``; the last ``val_fraction`` of a seeded shuffle of train is val."""
    root = Path(root).expanduser()
    images, labels, splits = [], [], []
    for split, (img_stem, lab_stem) in _MNIST_FILES.items():
        x, y = read_idx(_find(root, img_stem)), read_idx(_find(root, lab_stem))
        if len(x) != len(y):
            raise DatasetError(f"{img_stem} has {len(x)} images but {lab_stem} {len(y)} labels in {root}")
        names = [split] * len(x)
        if split == "train":
            order = np.random.default_rng(seed).permutation(len(x))
            for i in order[: int(round(val_fraction * len(x)))]:
                names[i] = "val"
        images.append(x), labels.append(y), splits.extend(names)
    x = torch.from_numpy(np.concatenate(images).astype(np.float32) / 255.0).unsqueeze(1)
    return DigitsImages(x, torch.from_numpy(np.concatenate(labels).astype(np.int64)), splits, "MNIST")


def load_sklearn_digits(val_fraction: float = 0.15, test_fraction: float = 0.25, seed: int = 0) -> DigitsImages:
    """scikit-learn's bundled 8x8 handwritten digits, scaled from 0..16 to [0, 1], with stratified splits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    index = np.arange(len(bunch.target))
    rest, test = train_test_split(index, test_size=test_fraction, random_state=seed, stratify=bunch.target)
    train, val = train_test_split(rest, test_size=val_fraction / (1 - test_fraction), random_state=seed,
                                  stratify=bunch.target[rest])
    splits = np.empty(len(index), dtype=object)
    splits[train], splits[val], splits[test] = "train", "val", "test"
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    return DigitsImages(x, torch.from_numpy(bunch.target.astype(np.int64)), list(splits), SKLEARN_DIGITS_NAME)


def load_digits_images(seed: int = 0) -> DigitsImages:
    """MNIST when ``MNIST_ROOT`` is set, else scikit-learn's 8x8 digits (named as such)."""
    root = os.environ.get("MNIST_ROOT")
    if root:
        logger.info("reading MNIST from MNIST_ROOT=%s", root)
        return load_mnist(root, seed=seed)
    return load_sklearn_digits(seed=seed)
