"""Who may write into a model_dir, and when a model_dir may be resumed.

- One run per directory: the run holds `<model_dir>/run.lock` (`RunLock`) for its whole life; a busy directory is
  refused at once, before models are built or data loaded.
- A model_dir resumes only the run it holds: `run_config.json` records the run's identity (`RunConfig.identity`); a
  different one is refused, or with `overwrite` moved aside to `<model_dir>.replaced-<time>`.
- Under a multi-worker strategy only the chief writes into model_dir; every other worker writes into a scratch
  directory removed at the end (`worker_scratch`).

Errors are one-line `ConfigError`s naming `model_dir` and the fix.
"""

import contextlib
import datetime
import errno
import os
import shutil
import tempfile

from absl import logging

from fitnets_tf.errors import ConfigError
from fitnets_tf.harness.config import RunConfig, runtime_fields, unrecorded_settings
from fitnets_tf.harness.run_lock import ModelDirInUseError, RunLock
from fitnets_tf.io_utils import (atomic_write_json, json_state, remove_dead_scratch, remove_leftover_temporaries,
                                 scratch_prefix)

RUN_CONFIG = "run_config.json"


def recorded_identity(recorded):
    """The identity a run_config.json records. A setting the run did not record (a field added since) is filled
    in with what it meant then, so that runs written by earlier versions resume instead of being refused."""
    defaults = {**RunConfig(model_dir="").identity(), **unrecorded_settings()}
    kept = runtime_fields()
    return {**defaults, **{k: v for k, v in recorded.items() if k not in kept}}


def _unusable(config, error):
    reason = error.strerror or str(error)
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = "Give a `model_dir` on a writable file system."
    elif error.errno == errno.ENOSPC:
        fix = "Free some space or give another `model_dir`."
    else:
        fix = "Give another `model_dir`."
    return ConfigError(f"`model_dir`: cannot write into {config.model_dir!r} ({reason}: "
                       f"{getattr(error, 'filename', None) or config.model_dir}). {fix}")


def _in_use(error):
    return ConfigError(f"`model_dir`: {error}. Wait for it to end or stop it; rerunning the same command then "
                       "resumes. Or choose another `model_dir`.")


def free_lock(config, command=""):
    """The `RunLock` of model_dir, not yet taken; a ConfigError at once if another live run holds it."""
    lock = RunLock(config.model_dir, command)
    try:
        lock.check_free()
    except ModelDirInUseError as error:
        raise _in_use(error) from None
    return lock


def _lock(config, lock):
    """Creates model_dir and takes its run lock; one-line ConfigErrors for a busy or unwritable directory."""
    try:
        os.makedirs(config.model_dir, exist_ok=True)
        lock.acquire()
    except ModelDirInUseError as error:
        raise _in_use(error) from None
    except OSError as error:
        raise _unusable(config, error) from None


def _move_aside(config, lock):
    """Moves the run in model_dir to `<model_dir>.replaced-<time>` (its lock file with it) and locks anew."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    moved = f"{config.model_dir.rstrip(os.sep)}.replaced-{stamp}"
    if lock is not None:
        lock.release()  # its file moves with the old run
    os.replace(config.model_dir, moved)
    logging.info("[fitnets] moved the previous run in %s to %s", config.model_dir, moved)
    if lock is not None:
        _lock(config, lock)


def prepare_model_dir(config: RunConfig, lock=None):
    """Takes `lock` (a `RunLock` of model_dir: one run per directory) and refuses a model_dir that holds a
    different experiment (unless overwrite, which moves it aside). Nothing is written into a directory another
    live run holds; an unwritable or busy directory is a one-line ConfigError naming `model_dir`."""
    if lock is not None:
        _lock(config, lock)
    path = os.path.join(config.model_dir, RUN_CONFIG)
    previous, damage = json_state(path, dict)
    if damage is not None:
        if not config.overwrite:
            raise ConfigError(
                f"`model_dir`: {path} is damaged ({damage}). It records which run {config.model_dir!r} holds, so "
                "the run cannot be resumed safely without it: restore it (its settings are also in flags.cfg "
                "there), choose another `model_dir`, or set `overwrite` to move the old run aside and start anew.")
        _move_aside(config, lock)
        previous = None
    if previous is not None:
        old, new = recorded_identity(previous), config.identity()
        if old != new:
            if not config.overwrite:
                diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                raise ConfigError(
                    f"`model_dir`: {config.model_dir!r} holds a different run (differs in: {', '.join(diff)}). "
                    "Choose another `model_dir`, or set `overwrite` to move the old run aside and start anew."
                )
            _move_aside(config, lock)
    try:
        os.makedirs(config.model_dir, exist_ok=True)
        atomic_write_json(path, config.to_json())
    except OSError as error:
        raise _unusable(config, error) from None
    # What a killed export, conversion or atomic write left: half-written temporaries here (the lock keeps every
    # other run out), and the temporary directories of dead runs in the system's temp dir.
    left = remove_leftover_temporaries(config.model_dir) + remove_dead_scratch()
    if left:
        logging.info("[fitnets] removed %d leftover(s) of an interrupted write: %s", len(left), ", ".join(left[:3]))


def is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and not has_chief)


@contextlib.contextmanager
def worker_scratch(model_dir):
    """A temporary directory for a non-chief worker, removed on exit. To resume with the chief, the worker starts
    from the chief's checkpoints when it can read them (a shared file system), so that every worker restores the
    same stage and epoch."""
    scratch = tempfile.mkdtemp(prefix=scratch_prefix("worker"))
    try:
        if os.path.isdir(os.path.join(model_dir, "checkpoints")):
            shutil.copytree(os.path.join(model_dir, "checkpoints"), os.path.join(scratch, "checkpoints"))
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
