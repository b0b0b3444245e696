"""A user's own teacher, student and images through the pipeline and the command line: a keras.applications teacher
nested in the user's model (softmax-ending), a functional student saved untrained, a folder of PNG files."""

import dataclasses
import json
import logging
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from fitnets_tf.harness import pipeline
from tests.helpers import record_stage_starts, write_images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAPE = (32, 32, 3)


def save_teacher(path, shape=SHAPE, classes=3):
    backbone = keras.applications.MobileNetV2(weights=None, input_shape=shape, alpha=0.35, classes=classes)
    inputs = keras.Input(shape)
    keras.Model(inputs, backbone(keras.layers.Rescaling(2.0, offset=-1.0)(inputs)), name="my_teacher").save(path)
    return str(path)


def save_student(path, shape=SHAPE, classes=3):
    keras.utils.set_random_seed(5)
    inputs = keras.Input(shape)
    h = inputs
    for i in range(1, 7):
        h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name=f"s{i}")(h)
        if i in (2, 4):
            h = keras.layers.MaxPooling2D(name=f"down{i}")(h)
    outputs = keras.layers.Dense(classes, name="classes")(keras.layers.GlobalAveragePooling2D()(h))
    keras.Model(inputs, outputs, name="my_student").save(path)
    return str(path)


TINY = dict(hint_epochs=1, kd_epochs=1, baseline_epochs=1, baselines=("ce",), batch_size=8, optimizer="adam",
            learning_rate=0.003, latency_runs=1, verbose=0, validation_size=0.2, jit_compile="false",
            check_teacher=False)  # an untrained teacher: the check would stop it at chance


def test_data_teacher_and_student_shapes_that_disagree_are_refused_in_one_line_before_anything(tmp_path):
    data = write_images(tmp_path / "images", per_class=2)
    teacher = save_teacher(tmp_path / "teacher.keras")
    student = save_student(tmp_path / "student.keras", shape=(24, 24, 3))
    config = pipeline.RunConfig(model_dir=str(tmp_path / "run"), dataset=data, teacher_path=teacher,
                                student_path=student, **TINY)
    with pytest.raises(pipeline.ConfigError) as error:
        pipeline.run(config)
    message = str(error.value)
    assert "\n" not in message and message.startswith("`student_path`:")
    for part in ("takes (32, 32, 3) images", f"has (32, 32, 3) images", "takes (24, 24, 3) images", "`image_size`"):
        assert part in message, message
    assert not (tmp_path / "run").exists()
    # The same student on images resized to its size: now the teacher disagrees.
    config = pipeline.RunConfig(model_dir=str(tmp_path / "run"), dataset=data, image_size=24, teacher_path=teacher,
                                student_path=student, **TINY)
    with pytest.raises(pipeline.ConfigError, match=r"^`teacher_path`: .*\(32, 32, 3\).*\(24, 24, 3\)"):
        pipeline.run(config)


def two_input_student(classes=3):
    image, extra = keras.Input(SHAPE, name="image"), keras.Input((4,), name="extra")
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="c1")(image))
    return keras.Model([image, extra], keras.layers.Dense(classes)(keras.layers.Concatenate()([h, extra])),
                       name="two_inputs")


def two_output_teacher(classes=3):
    image = keras.Input(SHAPE)
    h = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="t1")(image))
    return keras.Model(image, [keras.layers.Dense(classes, name="logits")(h), keras.layers.Dense(1, name="box")(h)],
                       name="two_outputs")


def test_several_inputs_or_outputs_are_refused_when_the_distiller_is_built():
    from fitnets_tf.distiller import Distiller

    with pytest.raises(ValueError) as error:
        Distiller(two_input_student(), two_output_teacher())
    assert "student 'two_inputs' has 2 inputs" in str(error.value) and "one image input and one output" in str(
        error.value)
    with pytest.raises(ValueError, match="teacher 'two_outputs' has 2 outputs"):
        Distiller(keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(), keras.layers.Dense(3)]),
                  two_output_teacher())


@pytest.mark.parametrize("which", ["student", "teacher"])
def test_several_inputs_or_outputs_in_model_files_are_refused_before_the_run_writes_anything(tmp_path, which):
    data = write_images(tmp_path / "images", per_class=2)
    teacher = save_teacher(tmp_path / "teacher.keras")
    student = save_student(tmp_path / "student.keras")
    if which == "student":
        two_input_student().save(tmp_path / "odd.keras")
        student = str(tmp_path / "odd.keras")
    else:
        two_output_teacher().save(tmp_path / "odd.keras")
        teacher = str(tmp_path / "odd.keras")
    config = pipeline.RunConfig(model_dir=str(tmp_path / "run"), dataset=data, teacher_path=teacher,
                                student_path=student, **TINY)
    with pytest.raises(pipeline.ConfigError) as error:
        pipeline.run(config)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"`{which}_path`: The {which}")
    assert "one image input and one output" in message and "classes" not in message.split(";")[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_run_with_a_nested_softmax_teacher_a_saved_student_and_a_folder(tmp_path, caplog, monkeypatch):
    data = write_images(tmp_path / "images")
    teacher_path = save_teacher(tmp_path / "teacher.keras")
    student_path = save_student(tmp_path / "student.keras")
    teacher_before = [w.copy() for w in keras.saving.load_model(teacher_path).get_weights()]
    student_saved = keras.saving.load_model(student_path).get_weights()
    model_dir = tmp_path / "run"
    caplog.set_level(logging.INFO, logger="absl")
    calls = record_stage_starts(monkeypatch)
    rows = pipeline.run(pipeline.RunConfig(model_dir=str(model_dir), dataset=data, teacher_path=teacher_path,
                                           student_path=student_path, **TINY))
    assert {r["model"] for r in rows} == {"teacher", "fitnet", "baseline_ce"}
    results = json.load(open(model_dir / "results.json"))
    assert results["train_examples"] + results["validation_examples"] + results["test_examples"] == 36
    assert results["experiment"] == "folder images"  # named after its data, not the digits default
    assert results["data_checks"] == {"checked_images": 36, "skipped_images": 0}
    assert (model_dir / "results.md").read_text().startswith("# FitNets run: folder images")
    (detail,) = results["hint_pair_details"]
    assert detail["hint"].startswith("mobilenetv2_0.35_32/") and detail["guided"].startswith("s")
    assert "middle" in detail["pairing"] and detail["regressor"] in ("conv", "resize")
    assert results["hint_pairs"] == [{"guided": detail["guided"], "hint": detail["hint"],
                                      "regressor": detail["regressor"]}]
    assert "[fitnets] hint pair (chosen automatically): guided" in caplog.text  # logged (absl) for the user
    # The baseline started from the saved student's weights, like the FitNet; the teacher file is untouched.
    handed = {call["name"]: call["weights"] for call in calls}
    for name in ("fitnet_stage1", "baseline_ce"):
        assert len(handed[name]) == len(student_saved), name
        assert all(np.array_equal(a, b) for a, b in zip(handed[name], student_saved)), name
    assert rows[0]["architecture"] == "my_teacher"
    for a, b in zip(teacher_before, keras.saving.load_model(teacher_path).get_weights()):
        np.testing.assert_array_equal(a, b)
    assert (model_dir / "fitnet.keras").exists() and (model_dir / "export" / "saved_model.pb").exists()
    # The default LiteRT files of a user's student beside a keras.applications teacher (converted to compare).
    written = {(r["model"], r["format"]) for r in results["litert"]["artifacts"] if r["path"] is not None}
    assert written == {("fitnet", "float32"), ("fitnet", "int8")}
    assert {r["model"] for r in results["litert"]["artifacts"]} == {"teacher", "fitnet"}


@pytest.mark.slow
def test_the_command_line_takes_the_users_models_and_folder(tmp_path):
    data = write_images(tmp_path / "images")
    teacher_path = save_teacher(tmp_path / "teacher.keras")
    student_path = save_student(tmp_path / "student.keras")
    model_dir = tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "run.py"), f"--model_dir={model_dir}", f"--dataset={data}",
         f"--teacher_path={teacher_path}", f"--student_path={student_path}", "--hints=s4:mobilenetv2_0.35_32/"
         "block_3_expand_relu", "--hint_epochs=1", "--kd_epochs=1", "--baselines=", "--batch_size=8",
         "--latency_runs=1", "--verbose=0", "--noexport", "--nocheck_teacher"],
        capture_output=True, text=True, timeout=600, cwd=str(tmp_path), env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "teacher 'my_teacher' ends in a softmax" in result.stderr
    results = json.load(open(model_dir / "results.json"))
    assert results["hint_pairs"] == [{"guided": "s4", "hint": "mobilenetv2_0.35_32/block_3_expand_relu",
                                      "regressor": "conv"}]
    assert "--student_path" in open(model_dir / "flags.cfg").read()


def test_dataset_flag_takes_tfds_names_and_folders_and_names_what_is_wrong(tmp_path):
    pipeline.validate(pipeline.RunConfig(model_dir=str(tmp_path), dataset="kmnist"))
    pipeline.validate(pipeline.RunConfig(model_dir=str(tmp_path), dataset="rock_paper_scissors", image_size=32))
    pipeline.validate(pipeline.RunConfig(model_dir=str(tmp_path), dataset=write_images(tmp_path / "i", per_class=1)))
    with pytest.raises(pipeline.ConfigError, match=r"^`dataset`: folder:/nowhere: no such directory"):
        pipeline.validate(pipeline.RunConfig(model_dir=str(tmp_path), dataset="folder:/nowhere"))
    with pytest.raises(pipeline.ConfigError, match=r"^`student_path`: no file at"):
        pipeline.validate(pipeline.RunConfig(model_dir=str(tmp_path), student_path=str(tmp_path / "absent.keras")))
    with pytest.raises(pipeline.ConfigError, match=r"^`image_size`: must be >= 1"):
        pipeline.validate(pipeline.RunConfig(model_dir=str(tmp_path), image_size=0))


def test_a_model_dir_written_before_student_path_and_image_size_existed_still_resumes(tmp_path):
    config = pipeline.RunConfig(model_dir=str(tmp_path / "old"))
    os.makedirs(config.model_dir)
    # What an earlier version wrote: no student_path, image_size, train_size, teacher_patience, and Keras's RMSprop.
    old = {k: v for k, v in config.to_json().items()
           if k not in ("student_path", "image_size", "train_size", "teacher_patience", "rmsprop_max_scaling")}
    with open(os.path.join(config.model_dir, "run_config.json"), "w") as f:
        json.dump(old, f)
    with pytest.raises(pipeline.ConfigError, match="differs in: rmsprop_max_scaling"):
        pipeline.prepare_model_dir(config)  # today's default optimizer is not what that run trained with
    pipeline.prepare_model_dir(dataclasses.replace(config, rmsprop_max_scaling=0.0))  # accepted: the same run
    with pytest.raises(pipeline.ConfigError, match="differs in: image_size"):
        pipeline.prepare_model_dir(pipeline.RunConfig(model_dir=str(tmp_path / "old"), image_size=16))
