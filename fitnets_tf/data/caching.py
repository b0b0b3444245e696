"""Arrays of one value per example, kept in memory or on disk under a memory budget: decoded training images (the
input cache) and the teacher's outputs (`Distiller.cache_teacher_outputs`), both read back by example index.

Memory is bounded by a setting, never by the data set: `choose_place` puts an array in memory only when its bytes
fit the budget, else in a file read back with `os.pread` (no memory map, so pages read do not stay in the
process's resident memory), else (for data that need no decoding) nowhere. Each decision is logged with its bytes.

A file is written in one sequential pass to `<path>.partial` and renamed when complete, beside a small JSON header
(shape, dtype, count); a complete file of the same header is reused by the next run in the same directory (a resumed
run pays no second pass), an incomplete one is written again.
"""

import dataclasses
import json
import logging
import math
import os
import shutil

import numpy as np

from fitnets_tf.io_utils import atomic_write_json

logger = logging.getLogger(__name__)

CACHE_MODES = ("auto", "memory", "disk", "none")
MB = 2 ** 20


def megabytes(nbytes):
    return f"{nbytes / MB:,.1f} MB"


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where an array of `nbytes` goes: "memory", "disk" (the file `path`) or "none", and why."""

    place: str
    nbytes: int
    reason: str
    path: str = None

    def to_json(self):
        return {"place": self.place, "bytes": int(self.nbytes), "reason": self.reason, "path": self.path}


def choose_place(mode, nbytes, budget_bytes, path=None, decodes=True):
    """Chooses where an array of `nbytes` is kept.

    Args:
        mode: one of `CACHE_MODES`; "auto" takes memory when `nbytes` <= `budget_bytes`, else disk when the values
            are costly to recompute (`decodes`) and `path` is given and its file system has room for twice
            `nbytes`, else none.
        path: the file an on-disk array would use (None: no disk).
        decodes: whether recomputing a value costs a decode (files, TFDS records) rather than an array read.
    """
    if mode not in CACHE_MODES:
        raise ValueError(f"cache mode must be one of {', '.join(CACHE_MODES)}. Received: {mode!r}")
    size = megabytes(nbytes)
    if mode == "none":
        return Placement("none", nbytes, "asked for no cache")
    if mode == "memory":
        return Placement("memory", nbytes, f"asked for memory ({size})")
    room = _free_bytes(path) if path else 0
    if mode == "disk":
        if path is None:
            raise ValueError("an on-disk cache needs a directory to write to")
        return Placement("disk", nbytes, f"asked for disk ({size}; {megabytes(room)} free)", path)
    if nbytes <= budget_bytes:
        return Placement("memory", nbytes, f"{size} fit the memory budget of {megabytes(budget_bytes)}")
    over = f"{size} exceed the memory budget of {megabytes(budget_bytes)}"
    if not decodes:
        return Placement("none", nbytes, f"{over}, and reading the data again costs no decoding")
    if path is None:
        return Placement("none", nbytes, f"{over}, and no directory was given for a disk cache")
    if room < 2 * nbytes:
        return Placement("none", nbytes, f"{over}, and the disk at {os.path.dirname(path)} has only "
                                         f"{megabytes(room)} free")
    return Placement("disk", nbytes, f"{over}; {megabytes(room)} free on disk", path)


def _free_bytes(path):
    directory = os.path.dirname(os.path.abspath(path))
    while directory and not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    try:
        return shutil.disk_usage(directory or ".").free
    except OSError:
        return 0


class MemoryArray:
    """Values [N, ...] in one NumPy array; `take(indices)` reads rows."""

    def __init__(self, shape, dtype):
        self.array = np.zeros(shape, dtype)
        self.shape, self.dtype = self.array.shape, self.array.dtype
        self.complete = False

    def write(self, start, values):
        self.array[start:start + len(values)] = values

    def finish(self):
        self.complete = True

    def take(self, indices):
        return self.array[np.asarray(indices)]


class DiskArray:
    """Values [N, ...] in a raw file of rows; `take(indices)` reads each row with one `os.pread`.

    Reads do not map the file into memory, so the rows read stay in the OS's page cache, not in the process's
    resident memory."""

    def __init__(self, path, shape, dtype):
        self.path, self.shape, self.dtype = path, tuple(int(d) for d in shape), np.dtype(dtype)
        self.row_bytes = int(math.prod(self.shape[1:])) * self.dtype.itemsize
        self.header = {"shape": list(self.shape), "dtype": self.dtype.name}
        self.complete = os.path.exists(path) and _read_header(path) == self.header and (
            os.path.getsize(path) == self.shape[0] * self.row_bytes)
        self._file = None
        self._fd = None

    def write(self, start, values):
        if self._file is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._file = open(self.path + ".partial", "wb")
        values = np.ascontiguousarray(values, self.dtype)
        self._file.seek(start * self.row_bytes)
        self._file.write(values.tobytes())

    def finish(self):
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            os.replace(self.path + ".partial", self.path)
        atomic_write_json(self.path + ".json", self.header)
        self.complete = True

    def take(self, indices):
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        indices = np.asarray(indices).reshape(-1)
        out = np.empty((len(indices), *self.shape[1:]), self.dtype)
        flat = out.reshape(len(indices), -1).view(np.uint8)
        for row, index in enumerate(indices):
            data = os.pread(self._fd, self.row_bytes, int(index) * self.row_bytes)
            flat[row] = np.frombuffer(data, np.uint8)
        return out

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __del__(self):
        try:
            self.close()
        except (AttributeError, TypeError, OSError):  # at interpreter exit `os` may already be torn down
            pass


def _read_header(path):
    try:
        with open(path + ".json") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def new_array(placement, shape, dtype):
    """A `MemoryArray` or `DiskArray` for `placement` (not "none")."""
    if placement.place == "memory":
        return MemoryArray(shape, dtype)
    if placement.place == "disk":
        return DiskArray(placement.path, shape, dtype)
    raise ValueError(f"no array for placement {placement.place!r}")


def remove_files(path):
    """Removes an on-disk array's files (the data, its header and an unfinished `.partial`)."""
    for suffix in ("", ".json", ".partial"):
        try:
            os.remove(path + suffix)
        except FileNotFoundError:
            pass
