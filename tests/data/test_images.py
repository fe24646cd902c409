import gzip
import struct

import numpy as np
import pytest

from audioxai.data.images import SKLEARN_DIGITS_NAME, load_digits_images, load_mnist, read_idx
from audioxai.errors import DatasetError


def _write_idx(path, array, code=0x08):
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(">u1" if code == 0x08 else array.dtype).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (12, 28, 28)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(12) % 10)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (4, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([3, 1, 4, 1]))
    return tmp_path


def test_mnist_idx_files_are_read_with_splits(mnist_dir, monkeypatch):
    monkeypatch.setenv("MNIST_ROOT", str(mnist_dir))
    images = load_digits_images()
    assert images.name == "MNIST" and images.images.shape == (16, 1, 28, 28)
    assert float(images.images.max()) <= 1.0 and images.labels[-4:].tolist() == [3, 1, 4, 1]
    assert images.splits.count("test") == 4 and images.splits.count("val") == 2
    raw = read_idx(mnist_dir / "t10k-images-idx3-ubyte")
    assert np.allclose(images.split("test")[0][:, 0].numpy() * 255, raw)


def test_truncated_or_foreign_idx_files_are_reported(mnist_dir):
    path = mnist_dir / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError, match="truncated"):
        load_mnist(mnist_dir)
    path.write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(path)
    with pytest.raises(DatasetError, match="MNIST_ROOT"):
        load_mnist(mnist_dir / "nowhere")


def test_without_mnist_the_sklearn_digits_are_named_as_such():
    images = load_digits_images(seed=0)
    assert images.name == SKLEARN_DIGITS_NAME
    assert images.images.shape == (1797, 1, 8, 8)
    assert float(images.images.max()) == 1.0 and float(images.images.min()) == 0.0
    train, test = images.split("train")[1], images.split("test")[1]
    assert len(train) + len(test) + images.splits.count("val") == 1797
    assert set(train.tolist()) == set(range(10)) and set(test.tolist()) == set(range(10))
    assert load_digits_images(seed=0).splits == images.splits
