"""train_stage: resume from the last epoch, early stopping keeps the best epoch, NaN stops with the checkpoint kept,
a damaged checkpoint is moved aside and the stage resumes from the newest readable one."""

import glob
import json
import logging
import os
import signal
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from fitnets_tf import Distiller
from fitnets_tf.models import BlockSpec, NetSpec, PoolSpec, build_network
from fitnets_tf.harness.training import DamagedCheckpointError, NonFiniteLossError, restore_student, train_stage


def student(seed=0):
    return build_network(NetSpec("student", (8, 8, 1), 3, (BlockSpec((4, 4)), BlockSpec((4,), pool=PoolSpec(None))),
                                 initializer="glorot_uniform"), seed=seed)


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, 3, n)


def batches(x, y):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(32)


class StopAfter(keras.callbacks.Callback):
    """Simulates a crash after `epochs` epochs (the stage's own callback has already saved the checkpoint)."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt


@pytest.mark.slow  # trains for several epochs in-process (over 20 s on 2 shared cores)
def test_an_interrupted_stage_resumes_at_its_last_epoch_with_the_optimizer_state(tmp_path):
    x, y = data()
    model = student()
    with pytest.raises(KeyboardInterrupt):
        train_stage("s", Distiller(model), "ce", keras.optimizers.Adam(1e-2), batches(x, y), 4, str(tmp_path),
                    callbacks=[StopAfter(2)], verbose=0)
    assert not os.path.exists(tmp_path / "done.json")
    saved = {v.path: v.numpy() for v in model.weights}

    fresh = student(seed=9)  # a new process: other initial weights, restored from the checkpoint
    assert any(not np.array_equal(saved[v.path], v.numpy()) for v in fresh.weights)
    starts = []

    class RecordStart(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            starts.append({v.path: v.numpy() for v in fresh.weights})

    distiller = Distiller(fresh)
    result = train_stage("s", distiller, "ce", keras.optimizers.Adam(1e-2), batches(x, y), 4, str(tmp_path),
                         callbacks=[RecordStart()], verbose=0)
    # The resumed epochs started from the interrupted stage's weights, not from the fresh ones.
    assert starts and all(np.array_equal(starts[0][path], value) for path, value in saved.items())
    assert result["resumed_from"] == 2 and result["epochs"] == 4
    assert len(result["history"]["loss"]) == 4
    # 4 epochs of 2 steps (batch 32 over 48 examples): the optimizer's step count came back with the checkpoint.
    assert int(distiller.optimizer.iterations.numpy()) == 4 * 2
    assert json.load(open(tmp_path / "done.json"))["resumed_from"] == 2
    # A third call restores the finished stage instead of training it.
    again = student(seed=5)
    assert train_stage("s", Distiller(again), "ce", keras.optimizers.Adam(1e-2), batches(x, y), 4, str(tmp_path),
                       verbose=0)["skipped"]
    for a, b in zip(again.weights, fresh.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert any(not np.array_equal(saved[v.path], v.numpy()) for v in fresh.weights)


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    x, y = data()
    model = student()
    distiller = Distiller(model)
    # lr so high that validation accuracy cannot keep improving: the stage stops and keeps the best epoch.
    result = train_stage("s", distiller, "ce", keras.optimizers.SGD(5.0), batches(x, y), 30, str(tmp_path),
                         validation_data=batches(x, y), patience=2, verbose=0)
    accuracies = result["history"]["val_accuracy"]
    assert result["epochs"] == len(accuracies) < 30
    assert accuracies[result["best_epoch"] - 1] == max(accuracies)
    restored = student(seed=4)
    restore_student(restored, str(tmp_path))
    predictions = np.argmax(np.asarray(restored(x)), -1)
    assert np.mean(predictions == y) == pytest.approx(max(accuracies), abs=1e-6)


@pytest.mark.slow  # trains for several epochs in-process (over 20 s on 2 shared cores)
def test_a_non_finite_loss_stops_the_stage_and_keeps_the_last_good_checkpoint(tmp_path):
    x, y = data()
    x_bad = x.copy()
    x_bad[5] = np.nan
    model = student()
    stage_dir = str(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):  # one good epoch, then cut off
        train_stage("b", Distiller(model), "ce", keras.optimizers.Adam(1e-2), batches(x, y), 3, stage_dir,
                    callbacks=[StopAfter(1)], verbose=0)
    good = {v.path: v.numpy() for v in model.weights}
    with pytest.raises(NonFiniteLossError, match=r"Stage 'b' stopped: non-finite .*ckpt-1"):
        train_stage("b", Distiller(model), "ce", keras.optimizers.Adam(1e-2), batches(x_bad, y), 3, stage_dir,
                    verbose=0)
    assert not os.path.exists(os.path.join(stage_dir, "done.json"))
    assert tf.train.latest_checkpoint(stage_dir).endswith("ckpt-1")
    restore_student(model, stage_dir)
    for v in model.weights:
        np.testing.assert_array_equal(v.numpy(), good[v.path])
    with pytest.raises(NonFiniteLossError, match="none \\(no epoch finished\\)"):
        train_stage("c", Distiller(student()), "ce", keras.optimizers.Adam(1e-2), batches(x_bad, y), 3,
                    str(tmp_path / "c"), verbose=0)


@pytest.mark.slow  # trains for several epochs in-process (over 20 s on 2 shared cores)
def test_early_stopping_resumed_after_a_kill_stops_where_an_uninterrupted_stage_stops(tmp_path):
    """The patience count and the best weights survive a kill: same stopping epoch, best epoch and weights."""
    x, y = data()

    def run(stage_dir, callbacks=()):
        model = student()
        result = train_stage("s", Distiller(model), "ce", keras.optimizers.SGD(5.0), batches(x, y), 30,
                             str(stage_dir), validation_data=batches(x, y), patience=3, callbacks=callbacks,
                             verbose=0)
        return result, model

    keras.utils.set_random_seed(0)
    reference, reference_model = run(tmp_path / "ref")
    accuracies = reference["history"]["val_accuracy"]
    best = reference["best_epoch"]
    assert len(accuracies) < 30 and len(accuracies) - best == 3  # stopped after 3 epochs without improvement
    kill_at = best + 1  # one epoch into the patience count
    keras.utils.set_random_seed(0)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "cut", callbacks=[StopAfter(kill_at)])
    state = json.load(open(tmp_path / "cut" / "early_stopping.json"))
    assert len(state) == kill_at and state[-1]["best_epoch"] == best and state[-1]["wait"] == 1
    resumed, resumed_model = run(tmp_path / "cut")
    assert resumed["resumed_from"] == kill_at
    assert resumed["best_epoch"] == best and resumed["epochs"] == len(accuracies)
    assert resumed["history"]["val_accuracy"] == accuracies
    for a, b in zip(reference_model.weights, resumed_model.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Only the best checkpoint (and at most the one before it) is kept on disk.
    assert len(list((tmp_path / "cut" / "best").glob("ckpt-*.index"))) <= 2


def _truncate_to_half(prefix):
    """The fault of the issue: the newest ckpt-N.data-* cut to half its size. Returns the new size."""
    (data_file,) = glob.glob(prefix + ".data-*")
    size = os.path.getsize(data_file) // 2
    with open(data_file, "r+b") as f:
        f.truncate(size)
    return data_file, size


def _checkpoint_weights(stage_dir, prefix):
    model = student(seed=7)
    tf.train.Checkpoint(student=model).read(os.path.join(stage_dir, prefix)).expect_partial()
    return [v.numpy() for v in model.weights]


@pytest.mark.slow  # trains for several epochs in-process (over 20 s on 2 shared cores)
@pytest.mark.parametrize("finished", [False, True])
def test_a_truncated_newest_checkpoint_is_moved_aside_and_the_stage_resumes_from_the_previous_one(
        tmp_path, caplog, finished):
    x, y = data()
    stage_dir = str(tmp_path / "s")
    if finished:  # the stage had finished: its final checkpoint is the damaged one
        train_stage("s", Distiller(student()), "ce", keras.optimizers.Adam(1e-2), batches(x, y), 3, stage_dir,
                    verbose=0)
    else:  # killed after epoch 3 of 4
        with pytest.raises(KeyboardInterrupt):
            train_stage("s", Distiller(student()), "ce", keras.optimizers.Adam(1e-2), batches(x, y), 4, stage_dir,
                        callbacks=[StopAfter(3)], verbose=0)
    epoch2 = _checkpoint_weights(stage_dir, "ckpt-2")
    data_file, size = _truncate_to_half(os.path.join(stage_dir, "ckpt-3"))
    caplog.set_level(logging.INFO, logger="absl")  # the stage logs what it skipped through absl logging
    caplog.clear()

    model = student(seed=9)
    epochs = 3 if finished else 4
    # Stop right after the first resumed epoch, to compare the weights it started from with ckpt-2's.
    starts = []

    class RecordStart(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            starts.append([v.numpy() for v in model.weights])

    result = train_stage("s", Distiller(model), "ce", keras.optimizers.Adam(1e-2), batches(x, y), epochs, stage_dir,
                         callbacks=[RecordStart()], verbose=0)
    out = caplog.text
    assert "skipped checkpoint" in out and "ckpt-3" in out and "Read less bytes" in out, out
    assert result["resumed_from"] == 2 and result["epochs"] == epochs and not result.get("skipped")
    for a, b in zip(starts[0], epoch2):
        np.testing.assert_array_equal(a, b)
    # The damaged file was moved, not deleted, and kept as it was; the stage saved a new ckpt-3.
    (moved,) = glob.glob(os.path.join(stage_dir, "damaged", "*", os.path.basename(data_file)))
    assert os.path.getsize(moved) == size and os.path.getsize(data_file) > size
    assert tf.train.latest_checkpoint(stage_dir).endswith(f"ckpt-{epochs}")
    # The manager still rotates: only the 2 newest checkpoints are kept in the stage directory.
    assert sorted(os.path.basename(p) for p in glob.glob(os.path.join(stage_dir, "ckpt-*.index"))) == [
        f"ckpt-{epochs - 1}.index", f"ckpt-{epochs}.index"]


def _stage_stopped_after_two_epochs(tmp_path):
    """A 4-epoch stage interrupted after its second epoch: (x, y, stage_dir) with checkpoints 1 and 2."""
    x, y = data()
    stage_dir = str(tmp_path / "s")
    with pytest.raises(KeyboardInterrupt):
        train_stage("s", Distiller(student()), "ce", keras.optimizers.Adam(1e-2), batches(x, y), 4, stage_dir,
                    callbacks=[StopAfter(2)], verbose=0)
    return x, y, stage_dir


def test_no_readable_checkpoint_stops_with_one_line_naming_the_files_and_the_fix(tmp_path):
    x, y, stage_dir = _stage_stopped_after_two_epochs(tmp_path)
    for n in (1, 2):
        _truncate_to_half(os.path.join(stage_dir, f"ckpt-{n}"))
    with pytest.raises(DamagedCheckpointError) as error:
        train_stage("s", Distiller(student()), "ce", keras.optimizers.Adam(1e-2), batches(x, y), 4, stage_dir,
                    verbose=0)
    message = str(error.value)
    assert "\n" not in message and "ckpt-2 (" in message and "ckpt-1 (" in message
    assert f"delete {stage_dir}" in message
    assert len(glob.glob(os.path.join(stage_dir, "damaged", "*", "ckpt-*.data-*"))) == 2


def test_a_checkpoint_of_another_model_is_refused_and_left_in_place(tmp_path):
    x, y, stage_dir = _stage_stopped_after_two_epochs(tmp_path)
    files = sorted(os.listdir(stage_dir))
    wider = build_network(NetSpec("student", (8, 8, 1), 3, (BlockSpec((4, 4)), BlockSpec((4, 4), pool=PoolSpec(None))),
                                  initializer="glorot_uniform"), seed=0)  # one conv more: not the checkpointed model
    with pytest.raises(DamagedCheckpointError) as error:
        train_stage("s", Distiller(wider), "ce", keras.optimizers.Adam(1e-2), batches(x, y), 4, stage_dir,
                    verbose=0)
    message = str(error.value)
    assert "\n" not in message and "does not match the model" in message and "nothing was moved" in message
    assert sorted(os.listdir(stage_dir)) == files and not os.path.exists(os.path.join(stage_dir, "damaged"))


def test_ctrl_c_during_the_checkpoint_is_raised_after_it():
    import signal

    from fitnets_tf.harness.training import interrupts_deferred

    done, before = [], signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            signal.raise_signal(signal.SIGINT)  # arrives in the middle of the block ...
            done.append("saved")  # ... which still runs to its end
    assert done == ["saved"]
    assert signal.getsignal(signal.SIGINT) is before


def test_sigterm_taken_as_an_interrupt_is_held_back_like_ctrl_c_and_the_handlers_are_put_back():
    import signal

    from fitnets_tf.harness.training import Terminated, interrupts_deferred, sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    done = []
    with sigterm_as_interrupt():
        with pytest.raises(Terminated):
            with interrupts_deferred():
                signal.raise_signal(signal.SIGTERM)
                done.append("saved")
        with pytest.raises(Terminated):  # outside a deferred block it stops at once
            signal.raise_signal(signal.SIGTERM)
            done.append("never")
    assert done == ["saved"]
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_stop_during_fit_is_still_held_back_by_the_checkpoints_deferred_block():
    """The epoch-end checkpoint runs in a deferred block inside fit's `interrupts_remembered`: a SIGTERM (or
    Ctrl-C) there waits until the checkpoint is complete (CI once saw ckpt-2 written and `checkpoint` not updated)."""
    import signal

    from fitnets_tf.harness.training import (Terminated, interrupts_deferred, interrupts_remembered,
                                             sigterm_as_interrupt)

    done = []
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        for signum, stop in ((signal.SIGTERM, Terminated), (signal.SIGINT, KeyboardInterrupt)):
            with sigterm_as_interrupt():
                with pytest.raises(stop):
                    with interrupts_remembered() as hits:
                        with interrupts_deferred():
                            signal.raise_signal(signum)
                            done.append(signum)
                assert hits == [] and done[-1] == signum  # held back, then raised once, by the deferred block
    finally:
        signal.signal(signal.SIGINT, outer)


class SwallowedCtrlC(keras.callbacks.Callback):
    """Ctrl-C arriving while code that drops exceptions runs (a finalizer run by the garbage collector, say)."""

    def on_train_batch_begin(self, batch, logs=None):
        if batch == 1:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)  # the handler runs here and its KeyboardInterrupt is dropped below
            except KeyboardInterrupt:
                pass


def test_a_ctrl_c_lost_where_python_drops_exceptions_still_stops_the_stage(tmp_path):
    x, y = data()
    stage_dir = str(tmp_path / "s")
    # Ctrl-C as in a terminal, even when the suite runs as a background job (which ignores SIGINT).
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            train_stage("s", Distiller(student()), "ce", keras.optimizers.Adam(1e-2), batches(x, y), 50, stage_dir,
                        callbacks=[SwallowedCtrlC()], verbose=0)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back
    finally:
        signal.signal(signal.SIGINT, outer)
    assert not os.path.exists(os.path.join(stage_dir, "done.json"))  # stopped in its first epoch, not after 50
