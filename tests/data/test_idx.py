"""Fashion-MNIST offline: the IDX reader against hand-built files, and `load_splits("fashion_mnist")`'s sources."""

import gzip
import os
import tempfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from fitnets_tf.data import DataNotFoundError, load_splits
from fitnets_tf.data import idx, sources


def _write_fixture(directory, num_train=30, num_test=12, gz=True):
    """Four IDX files whose image i is filled with i (train) or 100 + i (test); labels i % 10."""
    suffix = ".gz" if gz else ""
    for split, n, offset in (("train", num_train, 0), ("test", num_test, 100)):
        images = np.stack([np.full((28, 28), offset + i, np.uint8) for i in range(n)])
        labels = np.arange(n, dtype=np.uint8) % 10
        images_stem, labels_stem = idx.IDX_FILES[split]
        idx.write_idx(str(directory / (images_stem + suffix)), images)
        idx.write_idx(str(directory / (labels_stem + suffix)), labels)
    return directory


def test_read_idx_parses_a_hand_written_header():
    # magic 0x00000803, 2 images of 2x3, then the pixels, all big-endian as in LeCun's format description.
    payload = bytes([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3]) + bytes(range(12))
    labels_payload = bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 9])
    with tempfile.TemporaryDirectory() as d:
        images_path, labels_path = os.path.join(d, "i"), os.path.join(d, "l.gz")
        open(images_path, "wb").write(payload)
        with gzip.open(labels_path, "wb") as f:
            f.write(labels_payload)
        images = idx.read_idx(images_path, "images")
        labels = idx.read_idx(labels_path, "labels")
    assert images.dtype == np.uint8 and images.shape == (2, 2, 3, 1)
    np.testing.assert_array_equal(images[1, :, :, 0], [[6, 7, 8], [9, 10, 11]])
    assert labels.dtype == np.int64 and labels.tolist() == [7, 9]


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[: len(b) // 2], "truncated or damaged"),
    (lambda b: b[:10], "shorter than its 16-byte header"),
    (lambda b: bytes([0, 0, 8, 1]) + b[4:], "magic number"),
])
def test_damaged_idx_files_are_refused_with_the_file_named(tmp_path, damage, message):
    path = tmp_path / "train-images-idx3-ubyte"
    idx.write_idx(str(path), np.zeros((4, 28, 28), np.uint8))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(idx.IDXFormatError, match=message) as error:
        idx.read_idx(str(path), "images")
    assert str(path) in str(error.value)


def test_a_cut_gzip_file_is_refused_with_the_file_named(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    idx.write_idx(str(path), np.zeros(1000, np.uint8))
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(idx.IDXFormatError, match="Cannot read IDX file"):
        idx.read_idx(str(path), "labels")


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_from_idx_files_in_data_dir(tmp_path, gz):
    _write_fixture(tmp_path, gz=gz)
    splits = load_splits("fashion_mnist", data_dir=str(tmp_path), validation_size=10)
    assert splits.num_examples == {"train": 20, "validation": 10, "test": 12}
    first = lambda ds: [int(x[0, 0, 0]) for x, _ in ds.as_numpy_iterator()]  # noqa: E731
    # Validation is the END of the train split (the paper's MNIST 50K/10K); test is untouched.
    assert first(splits.train) == list(range(20))
    assert first(splits.validation) == list(range(20, 30))
    assert first(splits.test) == list(range(100, 112))
    image, label = next(splits.train.as_numpy_iterator())
    assert image.shape == (28, 28, 1) and image.dtype == np.uint8 and label.dtype == np.int64
    assert splits.info.name == "fashion_mnist" and splits.info.num_classes == 10


def test_fashion_mnist_falls_back_to_the_debian_package_path(tmp_path, monkeypatch):
    (tmp_path / "debian").mkdir()
    debian = _write_fixture(tmp_path / "debian")
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", str(debian))
    empty_tfds = tmp_path / "tfds"
    empty_tfds.mkdir()
    splits = load_splits("fashion_mnist", data_dir=str(empty_tfds), validation_size=0)
    assert splits.validation is None and splits.num_examples["train"] == 30


def test_fashion_mnist_absent_everywhere_names_both_ways_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError) as error:
        load_splits("fashion_mnist", data_dir=str(tmp_path), validation_size=0.1)
    message = str(error.value)
    assert "apt-get install dataset-fashion-mnist" in message and "`data_dir`" in message
    assert "`download`" in message


def test_fashion_mnist_through_tfds_when_prepared(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "DEBIAN_FASHION_MNIST_DIR", str(tmp_path / "nowhere"))
    with tfds.testing.mock_data(num_examples=6):
        splits = load_splits("fashion_mnist", data_dir=str(tmp_path), validation_size=0.2)
        image, label = next(splits.test.as_numpy_iterator())
    assert image.shape == (28, 28, 1) and image.dtype == np.uint8
    assert splits.num_examples["test"] == 6
