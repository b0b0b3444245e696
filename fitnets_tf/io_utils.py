"""Files a crash must never leave half-written: everything is written to a temporary name, then renamed."""

import datetime
import json
import logging
import os
import shutil
import tempfile

logger = logging.getLogger(__name__)

# The temporaries of the atomic writes below, beside their targets: what a killed write leaves is recognised by it.
TMP_PREFIX = ".fitnets-tmp-"


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
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f"{TMP_PREFIX}{os.path.basename(path)}.", suffix=".tmp")
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


def json_state(path, expected=dict):
    """(value, None) when `path` holds JSON of type `expected`; (None, None) when it is absent; (None, reason)
    when it is damaged (unreadable, empty, not JSON, or JSON of another type)."""
    if not os.path.exists(path):
        return None, None
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        return None, f"{type(error).__name__}: {str(error)[:120]}"
    if not isinstance(value, expected):
        return None, f"holds a {type(value).__name__}, not a {expected.__name__}"
    return value, None


def move_aside_damaged(path):
    """Moves the damaged file `path` into <its directory>/damaged/<time>/ (never deleted); returns the new path."""
    target = os.path.join(os.path.dirname(os.path.abspath(path)), "damaged",
                          datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f"))
    os.makedirs(target, exist_ok=True)
    moved = os.path.join(target, os.path.basename(path))
    shutil.move(path, moved)
    return moved


def read_json_state(path, expected=dict, default=None, then="it is recomputed"):
    """`path`'s JSON when it is a readable `expected` value, else `default`: when absent, or when damaged, in which
    case the file is moved aside (`move_aside_damaged`) and a warning says where and what happens `then`."""
    value, damage = json_state(path, expected)
    if damage is None:
        return default if value is None else value
    moved = move_aside_damaged(path)
    logger.warning("[fitnets] %s was damaged (%s); moved to %s; %s.", path, damage, moved, then)
    return default


def atomic_save(path, save_fn):
    """Calls `save_fn(tmp_path)` then renames tmp_path to `path` (a file or a directory such as a SavedModel).

    An existing `path` is replaced only after the new one is complete; `save_fn` sees a path with the same
    suffix as `path` (Keras checks the ".keras" suffix).
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base = os.path.basename(path)
    tmp_dir = tempfile.mkdtemp(dir=directory, prefix=f"{TMP_PREFIX}{base}.")
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


def remove_leftover_temporaries(directory):
    """Removes what killed atomic writes left under `directory` (files and directories named `TMP_PREFIX`...).
    Call it only while no other process writes there (a model_dir under its run lock). Returns what it removed."""
    removed = []
    for root, dirs, files in os.walk(directory):
        for name in [d for d in dirs if d.startswith(TMP_PREFIX)]:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
            dirs.remove(name)
            removed.append(os.path.join(root, name))
        for name in files:
            if name.startswith(TMP_PREFIX):
                os.remove(os.path.join(root, name))
                removed.append(os.path.join(root, name))
    return removed


def scratch_prefix(kind):
    """The prefix of this process's temporary directories of `kind` in the system's temp dir ("fitnets-export-
    <pid>-"): the pid lets a later run remove what a killed one left (`remove_dead_scratch`)."""
    return f"fitnets-{kind}-{os.getpid()}-"


def remove_dead_scratch(temp_dir=None):
    """Removes the `scratch_prefix` directories of processes that are no longer alive; returns what it removed."""
    temp_dir = temp_dir or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(temp_dir)
    except OSError:
        return removed
    for name in names:
        parts = name.split("-")
        if len(parts) < 4 or parts[0] != "fitnets" or not parts[2].isdigit():
            continue
        pid = int(parts[2])
        if pid == os.getpid() or _alive(pid):
            continue
        shutil.rmtree(os.path.join(temp_dir, name), ignore_errors=True)
        removed.append(os.path.join(temp_dir, name))
    return removed


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
