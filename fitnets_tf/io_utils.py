"""Files a crash must never leave half-written: everything is written to a temporary name, then renamed."""

import json
import os
import shutil
import tempfile


def atomic_write_text(path, text):
    """Writes `text` to `path` so that readers see either the old file or the complete new one."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


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
