"""The two FitNets stages against their invariants: what moves, what must not, and that the losses fall; each stage
an object with its own settings."""

import numpy as np
import keras
import pytest

from fitnets_tf import Distiller, HintPair, HintStage, KDLambdaSchedule, KDStage
from fitnets_tf.models import BlockSpec, NetSpec, PoolSpec, build_network

CLASSES = 5


def teacher_and_student(seed=0):
    teacher = build_network(NetSpec(
        "teacher", (8, 8, 1), CLASSES, (BlockSpec((12, 12)), BlockSpec((12,), pool=PoolSpec(None))),
        initializer="glorot_uniform"), seed=seed)
    student = build_network(NetSpec(
        "student", (8, 8, 1), CLASSES, (BlockSpec((4, 4, 4, 4)), BlockSpec((6, 6), pool=PoolSpec(None))),
        fc_units=(6,), initializer="glorot_uniform"), seed=seed + 1)
    return teacher, student


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, CLASSES, n)


def snapshot(model):
    return {v.path: v.numpy().copy() for v in model.weights}


def changed(before, model):
    return {v.path for v in model.weights if not np.array_equal(before[v.path], v.numpy())}


def layer_of(path):
    return path.split("/")[0]


def test_stage_hint_moves_only_the_student_up_to_the_guided_layer_and_the_regressor():
    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher)
    stage = HintStage([HintPair(guided=4, hint=2)], seed=0)  # its regressor from a fixed seed, not the global state
    distiller.compile(keras.optimizers.Adam(1e-2), stage=stage)
    t0, s0 = snapshot(teacher), snapshot(student)
    r0 = snapshot(stage.regressors[0])
    x, y = data()
    history = distiller.fit(x, y, batch_size=16, epochs=4, verbose=0, shuffle=False)

    assert changed(t0, teacher) == set()
    moved = {layer_of(p) for p in changed(s0, student)}
    assert moved == {"conv1_linear", "conv2_linear", "conv3_linear", "conv4_linear"}
    assert changed(r0, stage.regressors[0]) == set(r0)  # every regressor weight moved
    hint_losses = history.history["hint_loss"]
    assert hint_losses[-1] < 0.5 * hint_losses[0]
    assert history.history["loss"] == hint_losses


def test_stage_hint_sequential_pairs_train_one_pair_at_a_time():
    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher)
    first, second = HintStage([HintPair(2, 1)]), HintStage([HintPair(5, 3, regressor="dense")])
    x, y = data()
    distiller.compile(keras.optimizers.Adam(1e-2), stage=first)
    s0 = snapshot(student)
    distiller.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert {layer_of(p) for p in changed(s0, student)} == {"conv1_linear", "conv2_linear"}

    distiller.compile(keras.optimizers.Adam(1e-2), stage=second)
    assert first.regressors == []  # the stage before ended: its regressor is discarded
    s1, r2 = snapshot(student), snapshot(second.regressors[0])
    distiller.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert {layer_of(p) for p in changed(s1, student)} == {f"conv{i}_linear" for i in range(1, 6)}
    assert changed(r2, second.regressors[0]) == set(r2)


def test_stage_hint_joint_pairs_sum_the_hint_losses():
    teacher, student = teacher_and_student()
    pairs = [HintPair(2, 1), HintPair(4, 2)]
    joint = Distiller(student, teacher)
    both = HintStage(pairs, seed=0)
    joint.compile(keras.optimizers.SGD(0.0), stage=both)
    x, y = data(32)
    total = joint.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["hint_loss"]
    parts = []
    for pair, regressor in zip(pairs, list(both.regressors)):
        alone = HintStage([pair])
        joint.compile(keras.optimizers.SGD(0.0), stage=alone)
        alone.regressors[0].set_weights(regressor.get_weights())  # the joint stage's regressor for this pair
        parts.append(joint.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["hint_loss"])
    np.testing.assert_allclose(total, sum(parts), rtol=1e-5)


def test_stage_kd_moves_the_student_not_the_teacher_and_lambda_follows_the_schedule():
    teacher, student = teacher_and_student()
    schedule = KDLambdaSchedule(4.0, 1.0, 0, 3)
    distiller = Distiller(student, teacher)
    hints = HintStage([HintPair(4, 2)])
    distiller.compile(keras.optimizers.Adam(1e-2), stage=hints)
    distiller.compile(keras.optimizers.Adam(1e-2), stage=KDStage(temperature=3.0, kd_lambda=schedule))
    assert hints.regressors == []  # discarded when stage 2 starts (Algorithm 1)
    with pytest.raises(ValueError, match="cannot run again: its regressors were discarded"):
        distiller.compile(keras.optimizers.Adam(1e-2), stage=hints)
    t0, s0 = snapshot(teacher), snapshot(student)
    # A confident teacher (its softened outputs far from uniform, so the soft term has room to fall) and labels it
    # agrees with, so that both terms pull the same way.
    teacher.get_layer("logits").kernel.assign(teacher.get_layer("logits").kernel * 30.0)
    t0 = snapshot(teacher)
    x, _ = data()
    y = np.argmax(np.asarray(teacher(x)), axis=-1)
    history = distiller.fit(x, y, batch_size=16, epochs=5, verbose=0)
    assert changed(t0, teacher) == set()
    assert changed(s0, student) == set(s0)
    np.testing.assert_allclose(history.history["kd_lambda"], [4.0, 3.0, 2.0, 1.0, 1.0], rtol=1e-6)
    assert history.history["kd_loss"][-1] < history.history["kd_loss"][0]
    # loss = ce + lambda * soft, epoch by epoch, in the logged metrics.
    h = history.history
    expected = np.array(h["ce_loss"]) + np.array(h["kd_lambda"]) * np.array(h["kd_loss"])
    np.testing.assert_allclose(h["loss"], expected, rtol=1e-4)


def test_stage_kd_resumed_at_a_later_epoch_reads_lambda_at_that_epoch():
    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher)
    distiller.compile(keras.optimizers.Adam(1e-3), stage=KDStage(kd_lambda=KDLambdaSchedule(4.0, 1.0, 0, 3)))
    history = distiller.fit(*data(16), batch_size=16, epochs=4, initial_epoch=2, verbose=0)
    np.testing.assert_allclose(history.history["kd_lambda"], [2.0, 1.0], rtol=1e-6)


def test_stage_1_weights_carry_into_stage_2():
    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher)
    x, y = data()
    distiller.compile(keras.optimizers.Adam(1e-2), stage=HintStage([HintPair(4, 2)]))
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    after_stage_1 = student.get_layer("conv2_linear").kernel.numpy().copy()
    distiller.compile(keras.optimizers.SGD(0.0), stage="kd")
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    # lr 0: only the max-norm projection touches the weights (a relative change of ~1e-7).
    np.testing.assert_allclose(student.get_layer("conv2_linear").kernel.numpy(), after_stage_1, rtol=1e-5)


def test_stage_ce_trains_the_student_alone():
    teacher, student = teacher_and_student()
    distiller = Distiller(student)
    distiller.compile(keras.optimizers.Adam(1e-2), stage="ce")
    x, y = data()
    history = distiller.fit(x, y, batch_size=16, epochs=6, verbose=0)
    assert history.history["ce_loss"][-1] < history.history["ce_loss"][0]
    assert set(history.history) == {"loss", "ce_loss", "accuracy"}


def test_xla_step_matches_the_plain_step():
    results = []
    for jit in (False, True):
        teacher, student = teacher_and_student(seed=3)
        distiller = Distiller(student, teacher)
        distiller.compile(keras.optimizers.SGD(0.1), stage="kd", jit_compile=jit)
        distiller.fit(*data(32), batch_size=32, epochs=1, verbose=0, shuffle=False)
        results.append(student.get_layer("logits").kernel.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("stage", ["hint", "kd"])
def test_one_step_under_mixed_float16_gives_finite_float32_losses(stage):
    keras.mixed_precision.set_global_policy("mixed_float16")
    teacher, student = teacher_and_student()
    assert student.get_layer("conv1_linear").compute_dtype == "float16"
    distiller = Distiller(student, teacher)
    distiller.compile(keras.optimizers.Adam(1e-3), stage=HintStage([HintPair(4, 2)]) if stage == "hint" else stage)
    assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
    logs = distiller.train_on_batch(*data(4), return_dict=True)
    assert logs and all(np.isfinite(v) for v in logs.values())
    assert distiller.loss_tracker.result().dtype == "float32"
    assert student.get_layer("conv1_linear").kernel.dtype == "float32"


def test_bad_configurations():
    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher)
    with pytest.raises(ValueError, match="guided layer index 20 does not exist in model 'student'"):
        distiller.compile("sgd", stage=HintStage([HintPair(20, 2)]))
    with pytest.raises(ValueError, match="No 'conv' regressor can map"):
        distiller.compile("sgd", stage=HintStage([HintPair(6, 1)]))  # student conv6 is 4x4, teacher conv1 8x8
    assert distiller.current_stage is None  # a stage that failed to bind is not compiled
    with pytest.raises(ValueError, match="needs a teacher"):
        Distiller(student).compile("sgd", stage="kd")
    with pytest.raises(ValueError, match="stage must be a Stage or one of"):
        distiller.compile("sgd", stage="hints")
    with pytest.raises(ValueError, match="needs hint pairs"):
        distiller.compile("sgd", stage=HintStage([]))
    for temperature in (0, float("inf"), float("nan"), True):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            KDStage(temperature=temperature)
    hints = HintStage([HintPair(4, 2)])
    distiller.compile("sgd", stage=hints)
    with pytest.raises(ValueError, match="jit_compile"):  # refused before stage 1 ends: it is still compiled
        distiller.compile("sgd", stage=KDStage(), jit_compile="yes")
    assert distiller.stage == "hint" and len(hints.regressors) == 1
    stage = KDStage()
    distiller.compile("sgd", stage=stage)
    with pytest.raises(ValueError, match="already bound to the Distiller"):
        Distiller(student, teacher).compile("sgd", stage=stage)


def test_the_teacher_is_left_trainable_for_its_own_training_and_a_frozen_student_is_refused():
    teacher, student = teacher_and_student()
    Distiller(student, teacher).compile("sgd", stage=HintStage([HintPair(4, 2)]))
    assert teacher.trainable and teacher.trainable_variables
    teacher_trainer = Distiller(teacher)
    teacher_trainer.compile(keras.optimizers.Adam(1e-2), stage="ce")
    t0 = snapshot(teacher)
    teacher_trainer.fit(*data(16), batch_size=16, epochs=1, verbose=0)
    assert changed(t0, teacher) == set(t0)
    student.trainable = False
    with pytest.raises(ValueError, match="has no trainable variables: model 'student' is frozen"):
        Distiller(student).compile("sgd", stage="ce")


@pytest.mark.parametrize("stage", ["hint", "kd"])
def test_cached_teacher_outputs_give_the_same_losses_and_updates(stage):
    import tensorflow as tf

    x, y = data(32)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    indexed = tf.data.Dataset.from_tensor_slices((np.arange(32), x, y)).batch(16)
    results = []
    for cached in (False, True):
        teacher, student = teacher_and_student(seed=4)
        distiller = Distiller(student, teacher)
        distiller.compile(keras.optimizers.SGD(0.1), stage=HintStage([HintPair(4, 2)], seed=1) if stage == "hint"
                          else KDStage(kd_lambda=2.0))
        train = (distiller.cache_teacher_outputs(batches, 32, low_precision=False).attach(indexed) if cached
                 else batches)
        logs = distiller.evaluate(train, verbose=0, return_dict=True)
        distiller.fit(train, epochs=1, verbose=0)
        results.append((logs, [v.numpy() for v in student.weights]))
    (plain_logs, plain_weights), (cached_logs, cached_weights) = results
    for key, value in plain_logs.items():
        assert cached_logs[key] == pytest.approx(value, rel=1e-6), key
    for a, b in zip(plain_weights, cached_weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert any(not np.allclose(a, b) for a, b in zip(plain_weights, [v.numpy() for v in teacher_and_student(4)[1].weights]))


@pytest.mark.parametrize("stage", ["hint", "kd"])
def test_teacher_outputs_cached_on_disk_give_the_in_memory_losses_and_are_keyed_by_example(stage, tmp_path):
    import tensorflow as tf

    x, y = data(32)
    ordered = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    order = np.random.default_rng(0).permutation(32)  # a shuffled stream: each row must follow its example
    indexed = tf.data.Dataset.from_tensor_slices((order, x[order], y[order])).batch(16)
    teacher, student = teacher_and_student(seed=4)
    distiller = Distiller(student, teacher)
    distiller.compile(keras.optimizers.SGD(0.0), stage=HintStage([HintPair(4, 2)], seed=1) if stage == "hint"
                      else KDStage(kd_lambda=2.0))
    plain = distiller.evaluate(tf.data.Dataset.from_tensor_slices((x[order], y[order])).batch(16), verbose=0,
                               return_dict=True)
    memory = distiller.cache_teacher_outputs(ordered, 32, mode="memory")
    disk = distiller.cache_teacher_outputs(ordered, 32, mode="disk", directory=str(tmp_path))
    assert (memory.placement.place, disk.placement.place) == ("memory", "disk")
    assert [a.dtype for a in disk.arrays] == [np.float16 if stage == "hint" else np.float32]
    name = "hint_pool1" if stage == "hint" else "kd"  # a stage-1 cache is named by its hints (pair 4 <- 2: pool1)
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".0") == [f"{name}_teacher_outputs.bin.0"]
    logs = [distiller.evaluate(c.attach(indexed), verbose=0, return_dict=True) for c in (memory, disk)]
    assert logs[0] == logs[1]  # the same rows, from memory or from the file
    for key, value in plain.items():  # and the teacher's own outputs, float16 rounding of the hints aside
        assert logs[0][key] == pytest.approx(value, rel=2e-3 if stage == "hint" else 1e-6), key


def test_a_two_input_model_is_not_taken_for_cached_teacher_outputs():
    # Inputs (a, b) of a two-input model: before the batches with cached outputs were marked ({"images": ...,
    # "teacher_outputs": ...}), any 2-tuple was read as (images, cached outputs) and the model got `a` alone.
    a_in, b_in = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    model = keras.Model([a_in, b_in], keras.layers.Dense(CLASSES, name="logits")(
        keras.layers.Concatenate()([a_in, b_in])), name="two_inputs")
    rng = np.random.default_rng(0)
    a, b = rng.random((8, 3)).astype("float32"), rng.random((8, 2)).astype("float32")
    y = rng.integers(0, CLASSES, 8)
    distiller = Distiller(model)
    distiller.compile(keras.optimizers.SGD(0.0), stage="ce")
    logs = distiller.evaluate((a, b), y, batch_size=8, verbose=0, return_dict=True)
    kernel, bias = (w.numpy() for w in model.get_layer("logits").weights)
    logits = np.concatenate([a, b], axis=1) @ kernel + bias
    log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    assert logs["ce_loss"] == pytest.approx(-log_probs[np.arange(8), y].mean(), rel=1e-5)


def test_a_cached_batch_is_marked_by_name():
    import tensorflow as tf
    from fitnets_tf.distiller import cached_batch

    teacher, student = teacher_and_student()
    distiller = Distiller(student, teacher)
    distiller.compile(keras.optimizers.SGD(0.0), stage="kd")
    x, y = data(16)
    cache = distiller.cache_teacher_outputs(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), 16)
    batch = next(iter(cache.attach(tf.data.Dataset.from_tensor_slices((np.arange(16), x, y)).batch(16))))
    inputs, labels = batch
    assert set(inputs) == {"images", "teacher_outputs"}
    np.testing.assert_array_equal(inputs["images"], x)
    np.testing.assert_array_equal(labels, y)
    (logits,) = inputs["teacher_outputs"]
    np.testing.assert_allclose(logits, np.asarray(teacher(x)), rtol=1e-5, atol=1e-6)
    # The step reads the outputs the batch carries instead of calling the teacher: made-up ones give their loss.
    made_up = (10.0 * np.eye(CLASSES, dtype="float32")[(y + 1) % CLASSES],)
    student_log_probs = np.asarray(keras.ops.log_softmax(np.asarray(student(x)) / 3.0, axis=-1))
    for outputs, batch in ((logits, inputs), (made_up[0], cached_batch(x, made_up))):
        distiller.reset_metrics()
        kd_loss = float(distiller.test_step((batch, labels))["kd_loss"])
        probs = np.asarray(keras.ops.softmax(outputs / 3.0, axis=-1))
        assert kd_loss == pytest.approx(-(probs * student_log_probs).sum(axis=1).mean(), rel=1e-5)
