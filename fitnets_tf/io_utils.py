"""Files a crash must never leave half-written: everything is written to a temporary name, then renamed."""

import json
import os
import shutil
import tempfile


def _umask():
    """The process umask, read without changing it where Linux allows (os.umask can only set it)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode():
    """The mode `open()` gives a new file (0o666 minus the umask); mkstemp's own 0o600 would hide the run's
    results from the other users of a shared model_dir."""
    return 0o666 & ~_umask()


def atomic_write_file(path, write, binary=False):
    """Calls `write(f)` on a temporary file beside `path`, then renames it to `path`: readers see either the old
    file or the complete new one. The file gets the umask's mode, like any file `open()` creates."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        os.fchmod(fd, new_file_mode())
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path, text):
    """Writes `text` to `path` atomically (see `atomic_write_file`)."""
    atomic_write_file(path, lambda f: f.write(text))


def atomic_write_json(path, obj):
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path, default=None):
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)


def atomic_save(path, save_fn):
    """Calls `save_fn(tmp_path)` then renames tmp_path to `path` (a file or a directory such as a SavedModel).

    An existing `path` is replaced only after the new one is complete; `save_fn` sees a path with the same
    suffix as `path` (Keras checks the ".keras" suffix).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    tmp_dir = tempfile.mkdtemp(dir=directory, prefix=f".{base}.")
    tmp = os.path.join(tmp_dir, base)
    try:
        save_fn(tmp)
        if os.path.isdir(path):
            old = tmp_dir + ".old"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
