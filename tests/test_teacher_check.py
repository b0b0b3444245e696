"""A teacher given by `teacher_path` is measured on up to 512 validation images before any training, and a teacher
at chance level (here: a good digits teacher whose output units were rotated, so that its class order is wrong)
stops the run with one line naming `check_teacher`."""

import dataclasses
import json
import logging
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from fitnets_tf.data import Preprocessor, dataset_info, load_splits
from fitnets_tf.errors import ConfigError
from fitnets_tf.harness import pipeline
from fitnets_tf.harness.teacher_check import check_teacher
from fitnets_tf.models import build_network
from fitnets_tf.models.zoo import get_spec

pytestmark = pytest.mark.slow  # each test trains (a teacher, or a few epochs of a run)

DIGITS_NAMES = [str(i) for i in range(10)]
TINY = dict(hint_epochs=0, kd_epochs=1, baselines=(), batch_size=128, optimizer="adam", learning_rate=0.003,
            latency_runs=1, verbose=0, export=False, jit_compile="false", teacher_jit_compile="false")


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """{"good": a digits teacher trained to > 80% (5 epochs of Adam), "shuffled": the same with its `logits`
    units rotated by one class}, saved as .keras."""
    splits = load_splits("digits")
    pairs = list(splits.train.as_numpy_iterator())
    images = np.asarray(Preprocessor("scale")(np.stack([x for x, _ in pairs])))
    labels = np.array([y for _, y in pairs])
    keras.utils.set_random_seed(0)
    model = build_network(dataclasses.replace(get_spec("digits_teacher"), initializer="glorot_uniform"), seed=0)
    model.compile(keras.optimizers.Adam(0.003), keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(images, labels, batch_size=64, epochs=5, verbose=0)
    assert history.history["accuracy"][-1] > 0.8
    directory = tmp_path_factory.mktemp("teachers")
    good = str(directory / "good.keras")
    model.save(good)
    dense = model.get_layer("logits")
    kernel, bias = dense.get_weights()
    rotated = (np.arange(10) + 1) % 10  # unit j now scores class j + 1: every prediction is one class off
    dense.set_weights([kernel[:, rotated], bias[rotated]])
    shuffled = str(directory / "shuffled.keras")
    model.save(shuffled)
    return {"good": good, "shuffled": shuffled}


def test_a_teacher_with_the_wrong_class_order_is_refused_before_any_training(tmp_path, teachers):
    model_dir = tmp_path / "run"
    config = pipeline.RunConfig(model_dir=str(model_dir), teacher_path=teachers["shuffled"], **TINY)
    with pytest.raises(ConfigError) as error:
        pipeline.run(config)
    message = str(error.value)
    assert "\n" not in message and message.startswith("`check_teacher`: ")
    for part in ("is at chance level", "validation images (chance 10.0%", "`preprocessing`", "class order",
                 "'0', '1', '2', '3', ...", "`channels`", "set `check_teacher` to false"):
        assert part in message, message
    accuracy = float(message.split("run's data: ")[1].split("%")[0])
    assert accuracy <= 15.0
    assert not (model_dir / "checkpoints").exists() and not (model_dir / "results.json").exists()


def test_check_teacher_false_distils_the_same_teacher_anyway(tmp_path, teachers):
    model_dir = tmp_path / "run"
    pipeline.run(pipeline.RunConfig(model_dir=str(model_dir), teacher_path=teachers["shuffled"], check_teacher=False,
                                    **TINY))
    results = json.load(open(model_dir / "results.json"))
    assert results["teacher_check"] is None
    assert (model_dir / "checkpoints" / "fitnet_stage2" / "done.json").exists()


def test_a_good_teacher_passes_and_the_figure_is_recorded(tmp_path, teachers, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    model_dir = tmp_path / "run"
    config = pipeline.RunConfig(model_dir=str(model_dir), teacher_path=teachers["good"],
                                **{**TINY, "export": True, "litert_export": ("fitnet", "float32")})
    pipeline.run(config)
    results = json.load(open(model_dir / "results.json"))
    record = results["teacher_check"]
    assert record["accuracy"] > 0.8 and record["split"] == "validation" and record["chance"] == pytest.approx(0.1)
    assert record["images"] == min(512, results["validation_examples"])
    # The names of the labels beside every export, one per line, as results.json records them.
    assert results["class_names"] == DIGITS_NAMES
    for names_file in (model_dir / "export" / "assets" / "class_names.txt", model_dir / "litert" / "class_names.txt"):
        assert names_file.read_text(encoding="utf-8").split("\n") == DIGITS_NAMES + [""]
    assert f"[fitnets] teacher check: {100 * record['accuracy']:.1f}% on {record['images']} validation images " \
           "(chance 10.0%)" in caplog.text
    # A rerun resumes (every stage done) and measures again.
    caplog.clear()
    caplog.set_level(logging.INFO, logger="absl")  # tf.saved_model.save set it back to WARNING
    pipeline.run(config)
    assert caplog.text.count("[fitnets] teacher check:") == 1


def pixel_reader(classes=10):
    """8x8x1 images -> logits [batch, classes] whose argmax is the brightest of pixels 0..classes-1."""
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(classes, use_bias=False)
    outputs = dense(keras.layers.Flatten()(inputs))
    dense.set_weights([np.eye(64, classes, dtype=np.float32)])
    return keras.Model(inputs, outputs)


def batches(predicted, labels, batch_size=100):
    """A batched dataset of (float32 images whose pixel `predicted[i]` is lit, int64 labels)."""
    images = np.zeros((len(labels), 64), np.float32)
    images[np.arange(len(labels)), predicted] = 1.0
    return tf.data.Dataset.from_tensor_slices((images.reshape(-1, 8, 8, 1), np.asarray(labels, np.int64))).batch(
        batch_size)


def inputs_without_validation(train_ordered):
    return types.SimpleNamespace(validation=None, train_ordered=train_ordered,
                                 preprocessor=types.SimpleNamespace(kind="scale"))


def test_without_a_validation_split_the_first_512_training_images_are_measured(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="absl")
    config = pipeline.RunConfig(model_dir=str(tmp_path), teacher_path="teacher.keras")
    predicted = np.arange(700) % 10
    labels = np.where(np.arange(700) < 512, predicted, (predicted + 1) % 10)  # right on the first 512 only
    inputs = inputs_without_validation(batches(predicted, labels))
    record = check_teacher(pixel_reader(), inputs, dataset_info("digits"), config)
    assert record == {"accuracy": 1.0, "images": 512, "split": "train", "chance": 0.1}
    assert "on the first 512 training images (the run has no validation split)" in caplog.text
    # Fewer images than 512: all of them; 15 right of 100 is at chance for 10 classes (<= 1.5 / 10), 16 is not.
    predicted = np.arange(100) % 10
    for right, refused in ((15, True), (16, False)):
        labels = np.where(np.arange(100) < right, predicted, (predicted + 1) % 10)
        inputs = inputs_without_validation(batches(predicted, labels, batch_size=32))
        if refused:
            with pytest.raises(ConfigError, match=r"^`check_teacher`: .* 15\.0% on the first 100 training images"):
                check_teacher(pixel_reader(), inputs, dataset_info("digits"), config)
        else:
            assert check_teacher(pixel_reader(), inputs, dataset_info("digits"), config)["accuracy"] == 0.16
