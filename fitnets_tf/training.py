"""Runs one stage of a Distiller to completion, resumably: per-epoch checkpoints, TensorBoard, history, NaN guard.

A stage owns a directory:
    <stage_dir>/ckpt-N.*, checkpoint   the student (+ regressors in stage 1), the optimizer and the epoch count
    <stage_dir>/history.json           per-epoch metrics so far (rewritten atomically every epoch)
    <stage_dir>/done.json              written last: the stage finished; a rerun restores it instead of training
"""

import math
import os

import keras
import numpy as np
import tensorflow as tf

from fitnets_tf.io_utils import atomic_write_json, read_json


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or Inf; the stage stopped and its last good checkpoint was kept."""


class _StageCallback(keras.callbacks.Callback):
    """Stops on a non-finite loss; at each good epoch end saves the checkpoint and the history."""

    def __init__(self, name, manager, epoch_var, history, history_path):
        super().__init__()
        self.name, self.manager, self.epoch_var = name, manager, epoch_var
        self.history, self.history_path = history, history_path

    def _check(self, logs, where):
        bad = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float)) and not math.isfinite(v)}
        if bad:
            last = self.manager.latest_checkpoint or "none (no epoch finished)"
            raise NonFiniteLossError(
                f"Stage '{self.name}' stopped: non-finite {bad} at {where}. The last good checkpoint is kept: "
                f"{last}. Lower the learning rate or check the data, then rerun the same command to resume."
            )

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f"batch {batch}")

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, f"the end of epoch {epoch}")
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        # History first: a kill between the two leaves one entry too many, which a resume truncates.
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
    pairs=None,
    jit_compile="auto",
    tensorboard_dir=None,
    callbacks=(),
    patience=0,
    verbose=1,
):
    """Runs `distiller` in `stage` for `epochs` epochs, resuming from `stage_dir` if a previous run was cut off.

    `patience` > 0 turns on the paper's early stopping: the stage ends after `patience` epochs without improvement
    of the validation metric (val_hint_loss in stage "hint", val_accuracy otherwise) and keeps the best epoch's
    weights. (After a resume the patience count starts again from the resumed epoch.)

    `train_data` may be a callable returning the dataset; it is called after `compile` and only if the stage
    trains (so a cache of the stage's teacher outputs is built only when needed).

    Returns:
        dict: {"history": per-epoch metrics, "epochs": epochs run in total, "resumed_from": first epoch of this
        run, "best_epoch": 1-based epoch whose weights were kept when early stopping was on}.
    Raises:
        NonFiniteLossError: a loss became NaN/Inf (the last good checkpoint stays in `stage_dir`).
    """
    distiller.compile(optimizer=optimizer, stage=stage, pairs=pairs, jit_compile=jit_compile)
    with distiller.distribute_strategy.scope():
        epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    checkpoint = tf.train.Checkpoint(
        student=distiller.student, regressors=list(distiller.regressors), optimizer=distiller.optimizer,
        epoch=epoch_var,
    )
    manager = tf.train.CheckpointManager(checkpoint, stage_dir, max_to_keep=2)
    done_path = os.path.join(stage_dir, "done.json")
    history_path = os.path.join(stage_dir, "history.json")
    if os.path.exists(done_path):
        checkpoint.read(manager.latest_checkpoint).expect_partial()
        done = read_json(done_path)
        done["skipped"] = True
        return done
    initial_epoch = 0
    if manager.latest_checkpoint:
        checkpoint.read(manager.latest_checkpoint).assert_existing_objects_matched()
        initial_epoch = int(epoch_var.numpy())
    history = read_json(history_path, {}) if initial_epoch else {}
    history = {k: v[:initial_epoch] for k, v in history.items()}
    all_callbacks = [_StageCallback(name, manager, epoch_var, history, history_path), *callbacks]
    if tensorboard_dir:
        all_callbacks.append(keras.callbacks.TensorBoard(tensorboard_dir, write_graph=False))
    stopper = None
    if patience and validation_data is not None:
        monitor = "val_hint_loss" if stage == "hint" else "val_accuracy"
        stopper = keras.callbacks.EarlyStopping(
            monitor=monitor, mode="min" if stage == "hint" else "max", patience=patience,
            restore_best_weights=True,
        )
        all_callbacks.append(stopper)
    if initial_epoch < epochs:
        if callable(train_data):  # built after compile: e.g. teacher outputs cached for this stage
            train_data = train_data()
        if initial_epoch and steps_per_epoch and isinstance(train_data, tf.data.Dataset) and (
                train_data.cardinality() == tf.data.INFINITE_CARDINALITY):
            # The batches of the epochs already trained: the resumed stage continues the same stream.
            train_data = train_data.skip(initial_epoch * steps_per_epoch)
        if verbose:
            resumed = f" (resuming at epoch {initial_epoch})" if initial_epoch else ""
            print(f"[fitnets] {name}: stage '{stage}', {epochs} epochs{resumed}", flush=True)
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
    epochs_run = len(next(iter(history.values()), []))
    best_epoch = None
    if stopper is not None and stopper.best_weights is not None:
        # Keras restores the best weights only when it stopped early; make it so in every case.
        distiller.set_weights(stopper.best_weights)
        best_epoch = stopper.best_epoch + 1  # Keras counts absolute, 0-based epochs
    if (epochs == 0 and not manager.latest_checkpoint) or best_epoch is not None:
        epoch_var.assign(epochs_run)
        manager.save(checkpoint_number=epochs_run + 1 if best_epoch is not None else 0)
    result = {"history": history, "epochs": epochs_run, "resumed_from": initial_epoch, "best_epoch": best_epoch}
    atomic_write_json(done_path, result)
    return result


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
