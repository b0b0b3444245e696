"""Runs one stage of a Distiller to completion, resumably: per-epoch checkpoints, TensorBoard, history, NaN guard.

A stage owns a directory:
    <stage_dir>/ckpt-N.*, checkpoint   the student (+ regressors in stage 1), the optimizer and the epoch count
    <stage_dir>/history.json           per-epoch metrics so far (rewritten atomically every epoch)
    <stage_dir>/early_stopping.json    with patience: the early-stopping state after each epoch (best value and
                                       epoch, epochs without improvement), so a resumed stage continues the count
    <stage_dir>/best/ckpt-N.*          with patience: the student (+ regressors) of the best epoch so far
    <stage_dir>/done.json              written last: the stage finished; a rerun restores it instead of training
    <stage_dir>/damaged/<time>/        checkpoints that could not be read, moved aside (never deleted) when a
                                       rerun resumed from an older one
"""

import contextlib
import datetime
import glob
import math
import os
import shutil
import signal
import threading
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf
from tensorflow.python.checkpoint import checkpoint_management

from fitnets_tf.io_utils import atomic_write_json, read_json_state


MAX_TO_KEEP = 2  # checkpoints kept per stage: the newest, and the one before it in case the newest is damaged


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf; the stage stopped and its last good checkpoint was kept."""


class DamagedCheckpointError(RuntimeError):
    """No checkpoint of a stage can be read; the message names the files (moved aside, not deleted) and the fix."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (what `docker stop`, Kubernetes and Slurm send) taken the way of Ctrl-C: the stage stops with its
    checkpoint, history and records of the same epoch. A KeyboardInterrupt, so every Ctrl-C path handles it too."""


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop_exception(signum):
    return Terminated if signum == signal.SIGTERM else KeyboardInterrupt


def _raise_terminated(signum, frame):
    raise Terminated


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While the block runs, SIGTERM raises `Terminated` (a KeyboardInterrupt) instead of killing the process, so a
    stopped run ends like an interrupted one. Only in the main thread (where signals arrive)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _catchable(signum, deferring=False):
    """Whether the current handler of `signum` can be replaced and put back: for SIGINT any handler set from
    Python (to hold a Ctrl-C back: even an ignored one; to remember it: one that raises), for SIGTERM only the one
    `sigterm_as_interrupt` set, or `interrupts_remembered`'s wrapper of it (elsewhere SIGTERM keeps its default:
    the process ends)."""
    handler = signal.getsignal(signum)
    if signum == signal.SIGINT:
        return handler is not None if deferring else callable(handler)
    return handler is _raise_terminated or getattr(handler, "takes_a_stop", False)


@contextlib.contextmanager
def interrupts_deferred():
    """Holds back Ctrl-C (SIGINT) and a SIGTERM taken as one (`sigterm_as_interrupt`) while the block runs, then
    raises KeyboardInterrupt (or `Terminated`): an interrupted run stops with its checkpoint, history and records of
    the same epoch. Only in the main thread (where signals arrive)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received = []
    previous = {}
    for signum in STOP_SIGNALS:
        if _catchable(signum, deferring=True):  # not a handler set outside Python (None): it could not be put back
            previous[signum] = signal.signal(signum, lambda number, frame: received.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        raise _stop_exception(received[0])


@contextlib.contextmanager
def interrupts_remembered():
    """Ctrl-C (or a SIGTERM taken as one) while the block runs raises KeyboardInterrupt at once, as usual, and is
    also remembered in the yielded list: one raised where Python drops exceptions (a finalizer run by the garbage
    collector, a worker thread) is raised again by the stage's callback at the next batch or epoch end, so a stop is
    never lost."""
    hits = []
    if threading.current_thread() is not threading.main_thread():
        yield hits
        return
    previous = {}
    for signum in STOP_SIGNALS:
        if _catchable(signum):
            handler = signal.getsignal(signum)

            def remember(number, frame, handler=handler):
                hits.append(number)
                handler(number, frame)

            remember.takes_a_stop = True  # a deferred block inside this one may hold it back too

            previous[signum] = signal.signal(signum, remember)
    try:
        yield hits
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def raise_remembered_stop(hits):
    """Raises the stop remembered first in `hits` (see `interrupts_remembered`), if any."""
    if hits:
        raise _stop_exception(hits[0])


def _move_aside(prefix, stage_dir):
    """Moves the files of checkpoint `prefix` into <stage_dir>/damaged/<time>/; returns that directory."""
    target = os.path.join(stage_dir, "damaged", datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f"))
    os.makedirs(target, exist_ok=True)
    for path in glob.glob(prefix + ".*"):
        shutil.move(path, os.path.join(target, os.path.basename(path)))
    return target


def _first_line(error):
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def restore_newest_readable(checkpoint, manager, stage_dir, name, strict=True):
    """Restores `checkpoint` from the newest checkpoint of `stage_dir` that reads completely.

    A checkpoint that cannot be read (a truncated or corrupt file, a missing shard) is moved aside into
    <stage_dir>/damaged/ -- never deleted -- and the next older one is tried; each skip is logged with its reason.
    `strict`: every object of `checkpoint` must be in the file (else only what the file holds is read).

    Returns:
        (manager, prefix): a manager over the remaining checkpoints (a new one if any was skipped), and the
        restored checkpoint's prefix, or None when the stage has no checkpoint.
    Raises:
        DamagedCheckpointError: checkpoints exist but none can be read (one line naming them and the fix).
    """
    state = tf.train.get_checkpoint_state(stage_dir)
    if state is None or not state.model_checkpoint_path:
        return manager, None
    # The state file, not manager.checkpoints: the manager leaves out checkpoints it would never delete.
    latest = state.model_checkpoint_path
    paths = [p for p in state.all_model_checkpoint_paths if p != latest] + [latest]
    skipped = []
    restored = None
    for prefix in reversed(paths):
        try:
            status = checkpoint.read(prefix)
            if strict:
                status.assert_existing_objects_matched()
            else:
                status.expect_partial()
            restored = prefix
            break
        except (AssertionError, ValueError) as error:  # readable, but another model's (unmatched objects or
            # shapes): not damage, so nothing is moved
            raise DamagedCheckpointError(
                f"Stage '{name}': checkpoint {prefix} does not match the model this run builds "
                f"({_first_line(error)}); nothing was moved. It was written by a different model or version: "
                f"rerun with the settings and version that wrote it, or delete {stage_dir} to train this stage "
                "again from its start."
            ) from None
        except Exception as error:  # TensorFlow raises IndexError, DataLossError, NotFoundError, ... for a bad file
            moved = _move_aside(prefix, stage_dir)
            skipped.append(f"{os.path.basename(prefix)} ({_first_line(error)})")
            logging.warning("[fitnets] %s: skipped checkpoint %s: unreadable (%s); its files were moved to %s", name,
                            prefix, _first_line(error), moved)
    if not skipped:
        return manager, restored
    if restored is None:
        raise DamagedCheckpointError(
            f"Stage '{name}': no readable checkpoint in {stage_dir}: {'; '.join(skipped)}; the files were moved "
            f"to {os.path.join(stage_dir, 'damaged')}. To train this stage again from its start, delete {stage_dir} "
            "and rerun the same command."
        )
    remaining = [p for p in paths if os.path.exists(p + ".index")]
    stamps = dict(zip(state.all_model_checkpoint_paths, state.all_model_checkpoint_timestamps))
    # The internal writer keeps each checkpoint's timestamp, so that the manager still rotates the older ones.
    checkpoint_management.update_checkpoint_state_internal(
        stage_dir, restored, remaining, save_relative_paths=True,
        all_model_checkpoint_timestamps=[stamps[p] for p in remaining] if all(p in stamps for p in remaining)
        else None, last_preserved_timestamp=state.last_preserved_timestamp)
    logging.info("[fitnets] %s: resuming from %s, the newest readable checkpoint", name, restored)
    return tf.train.CheckpointManager(checkpoint, stage_dir, max_to_keep=MAX_TO_KEEP), restored


class EarlyStopping:
    """The paper's early stopping, resumable: a stage ends after `patience` epochs without improvement of
    `monitor`, and the best epoch's weights are the stage's result.

    Unlike `keras.callbacks.EarlyStopping`, whose count and best weights live in memory, the state after every
    epoch goes to `<stage_dir>/early_stopping.json` and the best weights to `<stage_dir>/best/`, so a stage killed
    and resumed stops at the same epoch and keeps the same weights as an uninterrupted one.
    """

    def __init__(self, monitor, mode, patience, weights, stage_dir, resumed_epochs):
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.weights = weights  # a tf.train.Checkpoint of what the stage trains
        self.best_dir = os.path.join(stage_dir, "best")
        self.path = os.path.join(stage_dir, "early_stopping.json")
        # One state per finished epoch; those past the resumed epoch were never checkpointed.
        self.states = read_json_state(self.path, list, [], "early stopping counts anew")[:resumed_epochs]

    @property
    def state(self):
        return self.states[-1] if self.states else {"best": None, "best_epoch": 0, "wait": 0, "best_checkpoint": None}

    @property
    def exhausted(self):
        return self.state["wait"] >= self.patience

    def update(self, epoch, logs):
        """Records 0-based `epoch`'s result; returns True when the stage should stop."""
        if self.monitor not in logs:
            raise KeyError(f"Early stopping monitors '{self.monitor}', which the logs do not have: "
                           f"{sorted(logs)}. Give the stage validation data.")
        value, state = float(logs[self.monitor]), dict(self.state)
        better = state["best"] is None or (value < state["best"] if self.mode == "min" else value > state["best"])
        if better:
            self.weights.write(os.path.join(self.best_dir, f"ckpt-{epoch + 1}"))
            state.update(best=value, best_epoch=epoch + 1, wait=0, best_checkpoint=f"ckpt-{epoch + 1}")
        else:
            state["wait"] += 1
        self.states.append(state)
        atomic_write_json(self.path, self.states)
        # Keep the best checkpoints of this epoch and of the one before (a resume may go back one epoch).
        keep = {s["best_checkpoint"] for s in self.states[-2:]}
        for old in glob.glob(os.path.join(self.best_dir, "ckpt-*.index")):
            prefix = old[: -len(".index")]
            if os.path.basename(prefix) not in keep:
                for f in glob.glob(prefix + ".*"):
                    os.remove(f)
        return self.exhausted

    def restore_best(self):
        """Loads the best epoch's weights; returns that 1-based epoch (None if no epoch finished)."""
        if not self.state["best_epoch"]:
            return None
        self.weights.read(os.path.join(self.best_dir, self.state["best_checkpoint"])).expect_partial()
        return self.state["best_epoch"]


class _StageCallback(keras.callbacks.Callback):
    """Stops on a non-finite loss; at each good epoch end records early stopping, saves the history, then the
    checkpoint (in that order: a kill between them leaves records one epoch ahead, which a resume truncates)."""

    def __init__(self, name, manager, epoch_var, history, history_path, early_stopping=None):
        super().__init__()
        self.name, self.manager, self.epoch_var = name, manager, epoch_var
        self.history, self.history_path = history, history_path
        self.early_stopping = early_stopping

    def _check(self, logs, where):
        bad = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float)) and not math.isfinite(v)}
        if bad:
            last = self.manager.latest_checkpoint or "none (no epoch finished)"
            raise NonFiniteLossError(
                f"Stage '{self.name}' stopped: non-finite {bad} at {where}. The last good checkpoint is kept: "
                f"{last}. Lower the learning rate or check the data, then rerun the same command to resume."
            )

    interrupts = ()  # set by train_stage: the Ctrl-Cs received during fit (`interrupts_remembered`)

    def _raise_if_interrupted(self):
        raise_remembered_stop(self.interrupts)

    def on_train_batch_end(self, batch, logs=None):
        self._raise_if_interrupted()
        self._check(logs, f"batch {batch}")

    def on_epoch_end(self, epoch, logs=None):
        self._raise_if_interrupted()
        self._check(logs, f"the end of epoch {epoch}")
        with interrupts_deferred():  # Ctrl-C here stops after the epoch's checkpoint, not in its middle
            for key, value in (logs or {}).items():
                self.history.setdefault(key, []).append(float(value))
            if self.early_stopping is not None and self.early_stopping.update(epoch, logs or {}):
                self.model.stop_training = True
            atomic_write_json(self.history_path, self.history)
            self.epoch_var.assign(epoch + 1)
            self.manager.save(checkpoint_number=epoch + 1)


def stage_is_done(stage_dir):
    return os.path.exists(os.path.join(stage_dir, "done.json"))


def restore_student(student, stage_dir):
    """Loads the student's weights from a finished (or interrupted) stage's latest checkpoint."""
    latest = tf.train.latest_checkpoint(stage_dir)
    if latest is None:
        raise FileNotFoundError(f"No checkpoint in {stage_dir}: the stage never finished an epoch.")
    tf.train.Checkpoint(student=student).read(latest).expect_partial()


def train_stage(
    name,
    distiller,
    stage,
    optimizer,
    train_data,
    epochs,
    stage_dir,
    validation_data=None,
    steps_per_epoch=None,
    validation_steps=None,
    jit_compile="auto",
    teacher_jit_compile=None,
    tensorboard_dir=None,
    callbacks=(),
    patience=0,
    verbose=1,
):
    """Runs `distiller` in `stage` for `epochs` epochs, resuming from `stage_dir` if a previous run was cut off.

    `stage` is a `fitnets_tf.stages.Stage` (with its settings) or a registered stage's name. `patience` > 0 turns
    on the paper's early stopping (`EarlyStopping`): the stage ends after `patience` epochs without improvement of
    the metric the stage is monitored by (`Stage.monitor`: val_hint_loss in stage 1, val_accuracy otherwise) and
    keeps the best epoch's weights; a resumed stage continues the count where it was.

    `train_data` may be a callable `train_data(start_epoch)` returning the dataset from that epoch on; it is called
    after `compile` and only if the stage trains (so a cache of the stage's teacher outputs is built only when
    needed). `jit_compile` and
    `teacher_jit_compile` are XLA for the student's part of the step and the teacher's forward pass
    (`Distiller.compile`); what they resolved to is `distiller.xla_settings`.

    Returns:
        dict: {"history": per-epoch metrics, "epochs": epochs run in total, "resumed_from": first epoch of this
        run, "best_epoch": 1-based epoch whose weights were kept when early stopping was on, "seconds": wall time
        of the call that finished the stage}; a finished stage returns its record with "skipped": True.
    A checkpoint that cannot be read is moved aside into <stage_dir>/damaged/ and the stage resumes from the
    newest readable one (a finished stage whose last checkpoint is damaged trains its lost epochs again).

    Raises:
        NonFiniteLossError: a loss became NaN/Inf (the last good checkpoint stays in `stage_dir`).
        DamagedCheckpointError: the stage has checkpoints but none can be read.
    """
    start = time.perf_counter()
    distiller.compile(optimizer=optimizer, stage=stage, jit_compile=jit_compile,
                      teacher_jit_compile=teacher_jit_compile)
    stage = distiller.current_stage
    manager, epoch_var, done = _restore_stage(distiller, stage_dir, name)
    if done is not None:
        return done
    initial_epoch = int(epoch_var.numpy())
    history_path = os.path.join(stage_dir, "history.json")
    history = read_json_state(history_path, dict, {}, "the records of the epochs before the resume are lost (their "
                              "weights are in the checkpoint)") if initial_epoch else {}
    history = {k: v[:initial_epoch] for k, v in history.items()}
    stopper = None
    if patience and validation_data is not None:
        monitored, mode = stage.monitor
        stopper = EarlyStopping(
            monitored, mode, patience,
            tf.train.Checkpoint(student=distiller.student, **stage.checkpoint_objects()), stage_dir,
            resumed_epochs=initial_epoch,
        )
    stage_callback = _StageCallback(name, manager, epoch_var, history, history_path, stopper)
    all_callbacks = [stage_callback, *callbacks]
    if tensorboard_dir:
        all_callbacks.append(keras.callbacks.TensorBoard(tensorboard_dir, write_graph=False))
    if initial_epoch < epochs and not (stopper is not None and stopper.exhausted):
        train_data = _training_stream(train_data, initial_epoch, steps_per_epoch)
        if verbose:
            resumed = f" (resuming at epoch {initial_epoch})" if initial_epoch else ""
            logging.info("[fitnets] %s: stage '%s', %d epochs%s", name, stage.name, epochs, resumed)
        with interrupts_remembered() as stage_callback.interrupts:
            distiller.fit(
                train_data,
                validation_data=validation_data,
                epochs=epochs,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps,
                callbacks=all_callbacks,
                shuffle=False,  # the input pipeline shuffles (tf.data); Keras cannot shuffle a dataset
                verbose=verbose,
            )
    epochs_run = max(len(next(iter(history.values()), [])), initial_epoch)  # a damaged history lost its records
    best_epoch = stopper.restore_best() if stopper is not None else None
    result = {"history": history, "epochs": epochs_run, "resumed_from": initial_epoch, "best_epoch": best_epoch,
              "seconds": time.perf_counter() - start}
    with interrupts_deferred():
        if (epochs == 0 and not manager.latest_checkpoint) or best_epoch is not None:
            epoch_var.assign(epochs_run)
            manager.save(checkpoint_number=epochs_run + 1 if best_epoch is not None else 0)
        atomic_write_json(os.path.join(stage_dir, "done.json"), result)
    return result


def _restore_stage(distiller, stage_dir, name):
    """Restores what the stage trains (the student, the stage's own objects such as regressors, the optimizer) and
    its epoch count from the newest readable checkpoint in `stage_dir` (`restore_newest_readable`).

    Returns (manager, epoch_var, done): `done` is the record of a finished stage whose final checkpoint was
    restored, with "skipped": True (nothing left to train), else None. A finished stage whose final checkpoint was
    damaged is finished no longer: its done.json is removed and its lost epochs train again."""
    with distiller.distribute_strategy.scope():
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(
        student=distiller.student, **distiller.current_stage.checkpoint_objects(), optimizer=distiller.optimizer,
        epoch=epoch_var,
    )
    manager = tf.train.CheckpointManager(checkpoint, stage_dir, max_to_keep=MAX_TO_KEEP)
    done_path = os.path.join(stage_dir, "done.json")
    done = read_json_state(done_path, dict, None, "the stage's record is rebuilt from its checkpoint and history")
    finished = done is not None
    newest = manager.latest_checkpoint
    manager, restored = restore_newest_readable(checkpoint, manager, stage_dir, name, strict=not finished)
    if finished and restored == newest:
        return manager, epoch_var, {**done, "skipped": True}
    if finished:
        os.remove(done_path)
        logging.warning("[fitnets] %s: the stage had finished, but its final checkpoint was unreadable; training "
                        "its last epochs again", name)
    return manager, epoch_var, None


def _training_stream(train_data, initial_epoch, steps_per_epoch):
    """The dataset a (resumed) stage fits on: what `train_data(initial_epoch)` returns when it is a callable (built
    after compile, e.g. with the teacher outputs cached for this stage; it starts at `initial_epoch` without
    reading the epochs before it), else `train_data`, of which an endless stream skips the batches of the epochs
    already trained, so that the resumed stage continues the same stream."""
    if callable(train_data):
        return train_data(initial_epoch)
    if initial_epoch and steps_per_epoch and isinstance(train_data, tf.data.Dataset) and (
            train_data.cardinality() == tf.data.INFINITE_CARDINALITY):
        train_data = train_data.skip(initial_epoch * steps_per_epoch)
    return train_data


def predict_logits(model, dataset):
    """Logits and labels over a finite dataset of (images, labels) batches, as NumPy arrays."""
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    logits, labels = [], []
    for x, y in dataset:
        logits.append(forward(x).numpy())
        labels.append(y.numpy())
    return np.concatenate(logits), np.concatenate(labels)


def accuracy(model, dataset):
    logits, labels = predict_logits(model, dataset)
    return float(np.mean(np.argmax(logits, axis=-1) == labels.reshape(-1)))
