"""MNIST-format (IDX) files on disk: Fashion-MNIST offline, from Debian's `dataset-fashion-mnist` package.

The IDX format (LeCun et al.'s MNIST distribution, reused by Fashion-MNIST): a big-endian header, then raw bytes.
  images: magic 0x00000803 (uint8, 3 dimensions), count, rows, columns (4 x int32), then count*rows*cols uint8;
  labels: magic 0x00000801 (uint8, 1 dimension), count (2 x int32), then count uint8.
Files may be gzipped (`.gz`, as the Debian package and the original downloads ship them) or not.

`apt-get install dataset-fashion-mnist` (Debian/Ubuntu, as root) installs the four files TFDS's `fashion_mnist`
builder downloads into `DEBIAN_FASHION_MNIST_DIR`.
"""

import gzip
import os

import numpy as np

DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
# split -> (images file, labels file), without the optional ".gz".
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IMAGES_MAGIC = 0x00000803
_LABELS_MAGIC = 0x00000801


class IDXFormatError(ValueError):
    """A file is not a well-formed IDX file of the expected kind."""


def _read_bytes(path):
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            return f.read()
    except (OSError, EOFError) as error:  # gzip raises BadGzipFile (an OSError) or EOFError when cut short.
        raise IDXFormatError(f"Cannot read IDX file {path!r}: {error}. Reinstall or re-download it.") from None


def read_idx(path, kind):
    """Reads one IDX file: kind "images" -> uint8 [N, rows, cols, 1]; kind "labels" -> int64 [N].

    Raises:
        IDXFormatError naming the file when the magic number, the header or the length is wrong.
    """
    data = _read_bytes(path)
    magic, header = (_IMAGES_MAGIC, 16) if kind == "images" else (_LABELS_MAGIC, 8)
    if len(data) < header:
        raise IDXFormatError(f"IDX file {path!r} is {len(data)} bytes, shorter than its {header}-byte header.")
    dims = np.frombuffer(data[:header], dtype=">i4")
    if int(dims[0]) != magic:
        raise IDXFormatError(
            f"IDX file {path!r} has magic number {int(dims[0]):#010x}; an IDX {kind} file has {magic:#010x}. "
            "Check that the images and labels files are not swapped."
        )
    shape = tuple(int(d) for d in dims[1:])
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise IDXFormatError(
            f"IDX file {path!r} holds {len(data)} bytes; its header {shape} needs {expected}. The file is "
            "truncated or damaged: reinstall or re-download it."
        )
    values = np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)
    return values[..., np.newaxis].copy() if kind == "images" else values.astype(np.int64)


def find_idx_file(directory, stem):
    """The path of `stem` or `stem.gz` in `directory`, or None."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def idx_directory(directory):
    """True when `directory` holds the four IDX files (each plain or gzipped)."""
    return directory is not None and all(
        find_idx_file(directory, stem) is not None for pair in IDX_FILES.values() for stem in pair
    )


def load_idx_split(directory, split):
    """(images uint8 [N, H, W, 1], labels int64 [N]) of `split` ("train" or "test") from the files in `directory`."""
    images_stem, labels_stem = IDX_FILES[split]
    images = read_idx(find_idx_file(directory, images_stem), "images")
    labels = read_idx(find_idx_file(directory, labels_stem), "labels")
    if len(images) != len(labels):
        raise IDXFormatError(
            f"The {split} files in {directory!r} disagree: {len(images)} images but {len(labels)} labels."
        )
    return images, labels


def write_idx(path, array):
    """Writes uint8 images [N, H, W(, 1)] or labels [N] as an IDX file (gzipped if `path` ends in .gz).

    Used by tests to build small fixtures; the inverse of `read_idx`.
    """
    array = np.asarray(array)
    if array.ndim == 4:
        array = array[..., 0]
    magic = _IMAGES_MAGIC if array.ndim == 3 else _LABELS_MAGIC
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    payload = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(payload)
