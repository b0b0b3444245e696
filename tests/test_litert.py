"""LiteRT export (`fitnets_tf.harness.litert`) and its runner (`LiteRTClassifier`) on small untrained digits nets.

What a trained run's files do (accuracy, agreement with Keras, a fresh process without TensorFlow) is tested on the
digits run of tests/test_run_script.py.
"""

import dataclasses
import shutil

import keras
import numpy as np
import pytest

from fitnets_tf.harness import litert, pipeline
from fitnets_tf.data import Preprocessor, load_splits
from fitnets_tf.harness.litert_classifier import LiteRTClassifier
from fitnets_tf.models import build_network
from fitnets_tf.models.zoo import get_spec

# Builtin operators a FitNets file may hold (float32 and int8, "scale" and "gcn_zca" preprocessing).
BUILTINS = {"ARG_MAX", "CAST", "CONV_2D", "FULLY_CONNECTED", "MAXIMUM", "MAX_POOL_2D", "MEAN", "MUL", "QUANTIZE",
            "REDUCE_MAX", "RESHAPE", "RSQRT", "SOFTMAX", "SQUARED_DIFFERENCE", "SUB", "SUM"}


def _model():
    # Glorot weights (not the paper's tiny uniform ones), so that a few epochs give confident outputs.
    return build_network(dataclasses.replace(get_spec("digits_fitnet"), initializer="glorot_uniform"), seed=3)


@pytest.fixture(scope="module")
def digits():
    splits = load_splits("digits")
    train = [(x, y) for x, y in splits.train.take(600).as_numpy_iterator()]
    return np.stack([x for x, _ in train]), np.array([y for _, y in train])


@pytest.fixture(scope="module")
def images(digits):
    return digits[0][:300]


@pytest.fixture(scope="module", params=["scale", "gcn_zca"])
def files(request, digits, images, tmp_path_factory):
    """A digits FitNet after a few epochs of cross-entropy on inputs preprocessed by `request.param`, converted
    to float32 and int8 with that preprocessing inside."""
    preprocessor = Preprocessor.fit(request.param, images)
    keras.utils.set_random_seed(0)
    model = _model()
    model.compile(keras.optimizers.Adam(0.003), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(np.asarray(preprocessor(digits[0])), digits[1], batch_size=64, epochs=6, verbose=0)
    directory = tmp_path_factory.mktemp(request.param)
    paths = {fmt: litert.write_tflite(model, preprocessor, str(directory / f"fitnet_{fmt}.tflite"), fmt, images)
             for fmt in litert.FORMATS}
    logits = np.asarray(model(np.asarray(preprocessor(images))))
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    return request.param, paths, probabilities


def test_float32_file_gives_the_keras_probabilities_on_raw_uint8_images(files, images):
    _, paths, expected = files
    out = LiteRTClassifier(paths["float32"]).predict(images)
    np.testing.assert_allclose(out["probabilities"], expected, atol=2e-5)
    np.testing.assert_array_equal(out["class_id"], expected.argmax(-1))


def test_int8_file_reads_raw_pixels_and_stays_close_to_keras(files, images):
    kind, paths, expected = files
    classifier = LiteRTClassifier(paths["int8"])
    details = classifier.interpreter.get_input_details()[0]
    assert details["dtype"] == np.uint8 and tuple(details["shape"]) == (1, 8, 8, 1)
    assert details["quantization"] == (1.0, 0)  # the uint8 value fed is the pixel itself
    out = classifier.predict(images)
    assert out["probabilities"].dtype == np.float32
    np.testing.assert_allclose(out["probabilities"].sum(-1), 1.0, atol=0.05)
    agreement = np.mean(out["class_id"] == expected.argmax(-1))
    if kind == "scale":
        assert np.abs(out["probabilities"] - expected).max() < 0.1
        assert agreement >= 0.97
    else:
        # GCN + ZCA in int8 is lossy: the whitened inputs have heavy tails that 8 bits resolve coarsely
        # (measured: 96% agreement, probabilities up to 0.41 apart). docs/serving.md says so.
        assert agreement >= 0.85


def test_files_hold_builtin_operators_only(files):
    _, paths, _ = files
    for fmt, path in paths.items():
        names = set(litert.operator_names(path))
        assert names <= BUILTINS, (fmt, names - BUILTINS)
        assert not any(name.startswith("Flex") for name in names)
        assert "SHAPE" not in names and "PACK" not in names  # every reshape target is a constant


def test_xnnpack_runs_the_whole_network(files):
    kind, paths, _ = files
    # Measured: with the maxout reshape's target computed at run time, XNNPACK took the convolutions only
    # (9 partitions); with a static batch of 1 it takes everything up to the softmax.
    network = {"CONV_2D", "RESHAPE", "REDUCE_MAX", "MAX_POOL_2D", "FULLY_CONNECTED"}
    for fmt, path in paths.items():
        taken = litert.xnnpack_partitions(path)
        assert not network & set(taken["outside"]), (fmt, taken)
        if kind == "scale":
            assert taken["partitions"] == 1, (fmt, taken)
    assert litert.xnnpack_partitions(paths["float32"])["outside"] == ["CAST", "ARG_MAX"]


@pytest.mark.parametrize("bad,error,received", [
    (np.zeros((4, 8, 8), np.uint8), ValueError, "Received shape [4, 8, 8]"),
    (np.zeros((8, 8, 1), np.uint8), ValueError, "Received shape [8, 8, 1] (one image? add the batch axis"),
    (np.zeros((4, 16, 4, 1), np.uint8), ValueError, "Received shape [4, 16, 4, 1]"),
    (np.zeros((4, 28, 28, 1), np.uint8), ValueError, "Received shape [4, 28, 28, 1]"),
    (np.zeros((4, 8, 8, 3), np.uint8), ValueError, "Received shape [4, 8, 8, 3]"),
    (np.uint8(3), ValueError, "Received shape []"),
    (np.zeros((4, 8, 8, 1), np.float32), TypeError, "Received dtype float32"),
    (np.zeros((4, 8, 8, 1), np.int64), TypeError, "Received dtype int64"),
    ([[[[0]] * 8] * 8], TypeError, "Received dtype int64"),
])
def test_the_runner_refuses_bad_input_naming_the_expected_one(files, bad, error, received):
    _, paths, _ = files
    for path in paths.values():
        classifier = LiteRTClassifier(path)
        with pytest.raises(error) as info:
            classifier.predict(bad)
        assert str(info.value).startswith("Expected images: uint8 [batch, 8, 8, 1] (raw pixels 0..255). ")
        assert received in str(info.value)
        assert classifier.predict(np.zeros((2, 8, 8, 1), np.uint8))["class_id"].shape == (2,)  # still usable


def test_constant_images_are_classified(files):
    # GCN divides by each image's norm, 0 for a constant image: a quantized DIV failed on it at run time.
    _, paths, _ = files
    constant = np.stack([np.full((8, 8, 1), value, np.uint8) for value in (0, 7, 255)])
    for path in paths.values():
        out = LiteRTClassifier(path).predict(constant)
        assert out["class_id"].shape == (3,) and np.isfinite(out["probabilities"]).all()


def test_the_runner_takes_an_empty_batch(files):
    _, paths, _ = files
    out = LiteRTClassifier(paths["int8"]).predict(np.zeros((0, 8, 8, 1), np.uint8))
    assert out["class_id"].shape == (0,) and out["probabilities"].shape == (0, 10)


def test_the_runner_names_each_class_from_the_class_names_txt_beside_the_file(files, images, tmp_path):
    _, paths, _ = files
    without = LiteRTClassifier(paths["float32"]).predict(images[:3])  # no class_names.txt: as before
    assert set(without) == {"class_id", "probabilities"}
    names = ["zéro", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    model_path = str(tmp_path / "fitnet_float32.tflite")
    shutil.copyfile(paths["float32"], model_path)
    for newline in ("\n", "\r\n"):  # the file as a run writes it, and after an editor on Windows
        (tmp_path / "class_names.txt").write_bytes("".join(n + newline for n in names).encode("utf-8"))
        classifier = LiteRTClassifier(model_path)
        assert classifier.class_names == tuple(names)
        out = classifier.predict(images)
        assert [str(name) for name in out["class_name"]] == [names[k] for k in out["class_id"]]
        assert len(set(out["class_id"].tolist())) > 1
        assert classifier.predict(np.zeros((0, 8, 8, 1), np.uint8))["class_name"].shape == (0,)
    (tmp_path / "class_names.txt").write_text("cat\ndog\n", encoding="utf-8")
    with pytest.raises(ValueError, match="names 2 classes but .* predicts 10"):
        LiteRTClassifier(model_path)


def test_calibration_set_holds_0_and_255_and_refuses_non_uint8():
    images = np.full((5, 8, 8, 1), 100, np.uint8)
    chosen = litert.calibration_set(images, count=3)
    assert chosen.dtype == np.float32 and chosen.shape == (3, 8, 8, 1)
    assert chosen.min() == 0 and chosen.max() == 255
    assert np.count_nonzero(chosen != 100) == 2  # two pixels of the first image, nothing else
    with pytest.raises(ValueError, match="raw uint8 training images"):
        litert.calibration_set(images.astype(np.float32))


def test_a_mixed_precision_model_is_converted_in_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    mixed = _model()
    keras.mixed_precision.set_global_policy("float32")
    copy = litert.float32_copy(mixed)
    assert {layer.dtype_policy.name for layer in copy.layers} == {"float32"}
    x = np.random.default_rng(1).random((4, 8, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(copy(x)), np.asarray(mixed(x), np.float32), atol=0.05)
    assert litert.float32_copy(copy) is copy


@pytest.mark.parametrize("tokens,message", [
    (("fitnet", "float16"), "unknown entry 'float16'"),
    (("fitnet",), "name at least one format and one model"),
    (("int8",), "name at least one format and one model"),
    (("baseline_kd", "int8"), "'baseline_kd' is not trained by this run"),
])
def test_litert_export_settings_are_checked(tmp_path, tokens, message):
    with pytest.raises(pipeline.ConfigError, match=f"`litert_export`: .*{message}"):
        pipeline.validate(pipeline.RunConfig(model_dir=str(tmp_path), litert_export=tokens, baselines=("ce",)))
    pipeline.validate(pipeline.RunConfig(model_dir=str(tmp_path), litert_export=()))


def test_ratios_compare_each_file_with_the_teacher_file_of_the_same_format():
    def row(model, fmt, ms, size, acc):
        return {"model": model, "format": fmt, "latency_ms_per_image": ms, "size_bytes": size, "test_accuracy": acc,
                "keras_test_accuracy": 0.9}

    rows = litert.add_ratios([row("teacher", "float32", 10.0, 1000, 0.9), row("teacher", "int8", 4.0, 250, 0.9),
                              row("fitnet", "float32", 1.0, 100, 0.8), row("fitnet", "int8", 0.5, 50, 0.795)],
                             {"teacher": 600, "fitnet": 30})
    fitnet_int8 = rows[3]
    assert fitnet_int8["speedup_vs_teacher"] == 8.0 and fitnet_int8["compression_vs_teacher"] == 5.0
    assert fitnet_int8["multiplication_ratio"] == 20.0
    assert fitnet_int8["speedup_fraction_of_multiplication_ratio"] == 0.4
    assert rows[2]["speedup_vs_teacher"] == 10.0 and rows[0]["speedup_vs_teacher"] == 1.0
    assert fitnet_int8["accuracy_change_vs_keras_points"] == pytest.approx(-10.5)


def outlier_model_and_data(n=300, seed=0):
    """8x8x1 images whose class (0..2) is a bright pixel in row 0, and a model that reads it exactly but also
    carries one activation 400x larger (from pixel 63): per-tensor int8 activations then lose the class signal,
    int16 activations keep it."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, (n, 8, 8, 1)).astype(np.uint8)
    labels = rng.integers(0, 3, n)
    images[np.arange(n), 0, labels, 0] = 120
    images[:, 7, 7, 0] = rng.integers(0, 256, n)
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Dense(4, use_bias=False, name="hidden")
    logits = keras.layers.Dense(3, use_bias=False, name="logits")
    model = keras.Model(inputs, logits(hidden(keras.layers.Flatten()(inputs))))
    kernel = np.zeros((64, 4), np.float32)
    kernel[0, 0] = kernel[1, 1] = kernel[2, 2] = 1.0
    kernel[63, 3] = 400.0
    out = np.zeros((4, 3), np.float32)
    out[0, 0] = out[1, 1] = out[2, 2] = 1.0
    out[3, :] = 0.001
    hidden.set_weights([kernel])
    logits.set_weights([out])
    return model, images, labels


def test_an_int8_file_that_loses_accuracy_falls_back_to_int16_activations(tmp_path):
    model, images, labels = outlier_model_and_data()
    pre = Preprocessor.fit("scale")
    full_integer = litert.accuracy_of(litert.convert(model, pre, "int8", images[:100]), images, labels)
    assert full_integer < 0.6  # the failure the guard exists for (1.0 in float32)
    path = str(tmp_path / "m_int8.tflite")
    record = litert.write_int8_within_tolerance(model, pre, path, images[:100], images[100:], labels[100:], 1.0,
                                                more_calibration_images=images)
    assert [t["activations"] for t in record["tried"]] == ["int8", "int8", "int16"]
    assert [t["calibration_images"] for t in record["tried"]] == [100, 300, 100]
    assert record["activations"] == "int16" and record["within_tolerance"] and record["validation_accuracy"] == 1.0
    runner = LiteRTClassifier(path)  # the file written is the int16 one, still taking raw uint8 pixels
    assert np.mean(runner.predict(images)["class_id"] == labels) == 1.0


def test_an_int8_file_no_fall_back_can_save_is_kept_best_and_said(tmp_path):
    from fitnets_tf.harness.report import int8_notes

    model, images, labels = outlier_model_and_data()
    record = litert.write_int8_within_tolerance(model, Preprocessor.fit("scale"), str(tmp_path / "m.tflite"),
                                                images[:100], images, labels, 1.0, tolerance=-0.5)  # unreachable
    assert not record["within_tolerance"] and len(record["tried"]) == 2
    assert record["validation_accuracy"] == max(t["validation_accuracy"] for t in record["tried"])
    (line, _) = int8_notes([{"model": "fitnet", "int8_check": {**record, "checked_on": "validation"}}])
    assert line.startswith(f"- **fitnet int8 is {record['loss_points']:.2f} points below its float32 file**")
