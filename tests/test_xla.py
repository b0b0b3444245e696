"""XLA per model: each part of a step resolved on its own, and a step split in two computes what the whole step does."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from fitnets_tf import Distiller, HintPair, HintStage, KDStage
from fitnets_tf import xla
from tests.test_distiller import changed, data, snapshot, teacher_and_student


def test_auto_follows_the_measured_table_and_is_off_under_distribution(monkeypatch):
    monkeypatch.setattr(xla, "device_type", lambda: "CPU")
    # What the benchmark measured on CPUs (docs/benchmark.md), written out: the student compiled, the teacher not.
    assert xla.resolve_jit_compile("auto", "teacher") is False
    assert xla.resolve_jit_compile("auto", "student") is True
    monkeypatch.setattr(xla, "device_type", lambda: "GPU")
    assert xla.resolve_jit_compile("auto", "teacher") is True
    assert xla.resolve_jit_compile("auto", "student", distributed=True) is False
    assert xla.resolve_jit_compile(True, "teacher", distributed=True) is True  # an explicit choice is kept


@pytest.mark.parametrize("setting,part", [("yes", "student"), (1, "student"), (True, "regressor")])
def test_bad_settings_are_refused_by_name(setting, part):
    with pytest.raises(ValueError, match="jit_compile|part"):
        xla.resolve_jit_compile(setting, part)


def _trained_once(stage, jit_compile, teacher_jit_compile, x, y):
    teacher, student = teacher_and_student(seed=3)
    distiller = Distiller(student, teacher)
    stage = (HintStage([HintPair(guided=4, hint=2)], seed=0) if stage == "hint"
             else KDStage(temperature=2.0, kd_lambda=2.0))
    distiller.compile(keras.optimizers.SGD(0.1), stage=stage, jit_compile=jit_compile,
                      teacher_jit_compile=teacher_jit_compile)
    before = snapshot(teacher)
    logs = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False).history
    assert changed(before, teacher) == set()  # the teacher never moves, split or not
    trained = student if stage.name == "kd" else stage.guided_model
    return distiller, [w.numpy() for w in trained.weights], logs


@pytest.mark.parametrize("stage", ["hint", "kd"])
def test_a_split_step_trains_like_the_whole_step(stage):
    x, y = data(n=32, seed=1)
    whole, whole_weights, whole_logs = _trained_once(stage, False, None, x, y)
    split, split_weights, split_logs = _trained_once(stage, True, False, x, y)
    assert whole.xla_settings == {"student": False, "teacher": False}
    assert whole._student_part == whole._gradients  # one traced step: the parts are plain methods
    assert split.xla_settings == {"student": True, "teacher": False}
    assert isinstance(split._student_part, tf.types.experimental.PolymorphicFunction)  # chosen once, at compile
    assert not split.jit_compile  # Keras's outer step is not compiled: each part decides for itself
    for a, b in zip(whole_weights, split_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(whole_logs["loss"], split_logs["loss"], rtol=1e-4)


def test_stage_without_teacher_records_no_teacher_setting():
    _, student = teacher_and_student()
    distiller = Distiller(student)
    distiller.compile(keras.optimizers.SGD(0.1), stage="ce", jit_compile=False, teacher_jit_compile=True)
    assert distiller.xla_settings == {"student": False, "teacher": None}
    assert distiller._student_part == distiller._gradients  # one traced step


def test_op_determinism_and_unsupported_layers_turn_xla_off(monkeypatch, caplog):
    monkeypatch.setattr(xla, "device_type", lambda: "GPU")
    assert xla.resolve_jit_compile(True, "student", supported=False) is False
    assert "a layer does not support XLA" in caplog.text
    monkeypatch.setattr(xla, "op_determinism_enabled", lambda: True)
    assert xla.resolve_jit_compile("auto", "teacher") is False
    assert xla.resolve_jit_compile(True, "student") is False
    assert "op determinism is enabled" in caplog.text


def test_a_deterministic_run_trains_without_xla():
    """XLA has no deterministic MaxPool gradient: with op determinism on, a step asked to compile trains anyway."""
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()
    assert xla.op_determinism_enabled()
    try:
        x, y = data(n=32, seed=2)
        distiller, _, logs = _trained_once("hint", True, False, x, y)
        assert distiller.xla_settings == {"student": False, "teacher": False}
        assert distiller._student_part == distiller._gradients
        assert np.isfinite(logs["loss"]).all()
    finally:
        from tensorflow.python.framework import config as tf_config  # no public way back
        tf_config.disable_op_determinism()


def test_auto_leaves_xla_off_on_a_cpu_for_depthwise_convolutions_and_says_why(monkeypatch):
    said = []  # absl's INFO lines, whatever verbosity an earlier test in this process left absl at
    monkeypatch.setattr(xla.logging, "info", lambda message, *args: said.append(message % args))
    monkeypatch.setattr(xla, "device_type", lambda: "CPU")
    assert xla.resolve_jit_compile("auto", "student", slow_layer="block_1_depthwise") is False
    assert len(said) == 1 and "layer 'block_1_depthwise'" in said[0] and "slower compiled on a CPU" in said[0]
    assert xla.resolve_jit_compile(True, "student", slow_layer="block_1_depthwise") is True  # asked for: kept
    assert xla.resolve_jit_compile("auto", "student") is True
    monkeypatch.setattr(xla, "device_type", lambda: "GPU")
    assert xla.resolve_jit_compile("auto", "student", slow_layer="block_1_depthwise") is True


def test_auto_leaves_the_students_xla_off_on_a_cpu_for_images_larger_than_64x64(monkeypatch):
    said = []
    monkeypatch.setattr(xla.logging, "info", lambda message, *args: said.append(message % args))
    monkeypatch.setattr(xla, "device_type", lambda: "CPU")
    assert xla.resolve_jit_compile("auto", "student", image_shape=(64, 64, 3)) is True  # 4,096 pixels: compiled
    assert said == []
    assert xla.resolve_jit_compile("auto", "student", image_shape=(65, 64, 3)) is False
    assert len(said) == 1 and "65x64 images are larger than the 4096 pixels" in said[0]
    assert xla.resolve_jit_compile(True, "student", image_shape=(224, 224, 3)) is True  # asked for: kept
    assert xla.resolve_jit_compile("auto", "student", image_shape=(None, None, 3)) is True  # unknown size
    monkeypatch.setattr(xla, "device_type", lambda: "GPU")
    assert xla.resolve_jit_compile("auto", "student", image_shape=(224, 224, 3)) is True
    assert xla.resolve_jit_compile("auto", "teacher", image_shape=(224, 224, 3)) is True

    # The Distiller passes its image shape: a 96x96 pair runs stage 2 as one uncompiled step, not split in two.
    monkeypatch.setattr(xla, "device_type", lambda: "CPU")

    def net(name):
        return keras.Sequential([keras.Input((96, 96, 3)), keras.layers.Conv2D(4, 3, strides=4, name="c1"),
                                 keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5)], name=name)

    distiller = Distiller(net("student"), net("teacher"))
    distiller.compile(keras.optimizers.SGD(0.1), stage="kd")
    assert distiller.xla_settings == {"student": False, "teacher": False} and distiller.jit_compile is False


def test_a_distiller_finds_depthwise_layers_in_nested_students_and_teachers(monkeypatch):
    monkeypatch.setattr(xla, "device_type", lambda: "CPU")
    backbone = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), alpha=0.35, classes=5,
                                              classifier_activation=None)
    inputs = keras.Input((32, 32, 3))
    mobile = keras.Model(inputs, backbone(inputs), name="mobile")  # the backbone nested in the user's model
    plain = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, name="c1"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5)], name="plain")
    trainer = Distiller(mobile)
    trainer.compile(keras.optimizers.SGD(0.1), stage="ce")
    assert trainer.xla_settings == {"student": False, "teacher": None}
    distiller = Distiller(plain, mobile)
    distiller.compile(keras.optimizers.SGD(0.1), stage="kd")  # teacher_jit_compile None: "auto" per model
    assert distiller.xla_settings == {"student": True, "teacher": False}
    assert xla.slow_on_cpu(plain._flatten_layers()) is None


def test_the_xla_student_script_builds_each_student_at_its_size_and_prints_a_paired_ratio(capsys):
    """scripts/xla_student.py, the evidence behind `SMALL_IMAGE_PIXELS`: each student at the size its name says, and
    one tiny timing (a round of one call per setting) printed as a row."""
    from benchmarking.real_size import load_script  # scripts/benchmarking/ (pytest puts scripts/ on the path)

    script = load_script("xla_student")
    for name in script.STUDENTS:
        model, shape = script.build_student(name)
        assert tuple(model.input_shape[1:]) == shape and shape[0] == int(name.rsplit("_", 1)[1])
    script.FLAGS(["xla_student.py", "--students=digits_fitnet_8", "--rounds=1", "--calls_per_sample=1", "--batch=8"])
    script.main([])
    header, row = capsys.readouterr().out.strip().splitlines()[-2:]
    assert header.startswith("student") and "off/on (paired)" in header
    fields = row.split()
    assert fields[:3] == ["digits_fitnet_8", "8", "8"] and float(fields[5]) > 0
