"""The exported SavedModel refuses every wrong input with an error naming the expected one, and never aborts.

Before the fix, [N, 8, 8] or one unbatched [8, 8, 1] image aborted the process (exit 134, a Check failure in the CPU
convolution) and [N, 16, 4, 1] returned predictions; the signature is called in a subprocess so that an abort fails
one test instead of killing the suite.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from fitnets_tf.data import Preprocessor
from fitnets_tf.harness.export import export_saved_model
from fitnets_tf.models import build_network
from fitnets_tf.models.zoo import get_spec

# Each case: a numpy expression of the input, run in the subprocess.
BAD_INPUTS = {
    "no channel axis [4, 8, 8]": "np.zeros((4, 8, 8), np.uint8)",
    "one unbatched image [8, 8, 1]": "np.zeros((8, 8, 1), np.uint8)",
    "[4, 16, 4, 1] (same size, other layout)": "np.zeros((4, 16, 4, 1), np.uint8)",
    "[4, 4, 16, 1]": "np.zeros((4, 4, 16, 1), np.uint8)",
    "[4, 28, 28, 1]": "np.zeros((4, 28, 28, 1), np.uint8)",
    "3 channels": "np.zeros((4, 8, 8, 3), np.uint8)",
    "rank 5": "np.zeros((4, 8, 8, 1, 1), np.uint8)",
    "a scalar": "np.uint8(7)",
    "float32 pixels": "np.zeros((4, 8, 8, 1), np.float32)",
    "int32 pixels": "np.zeros((4, 8, 8, 1), np.int32)",
}

PROBE = """
import json, sys
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
cases = json.loads(sys.argv[2])
for name, expression in cases.items():
    print(json.dumps({"start": name}), flush=True)
    try:
        out = serve(images=tf.constant(eval(expression)))
        result = {"name": name, "ok": True, "shapes": {k: v.shape.as_list() for k, v in out.items()}}
    except Exception as error:
        result = {"name": name, "ok": False, "type": type(error).__name__, "message": str(error)}
    print(json.dumps(result), flush=True)
"""


GOOD_INPUTS = {
    "four": "np.zeros((4, 8, 8, 1), np.uint8)",
    "empty": "np.zeros((0, 8, 8, 1), np.uint8)",
    "one": "np.full((1, 8, 8, 1), 255, np.uint8)",
}


@pytest.fixture(scope="module", params=["scale", "gcn_zca"])
def served(request, tmp_path_factory):
    """The results of every case of BAD_INPUTS and GOOD_INPUTS, in one fresh process per preprocessing kind."""
    model = build_network(get_spec("digits_fitnet"), seed=0)
    rng = np.random.default_rng(0)
    preprocessor = Preprocessor.fit(request.param, rng.integers(0, 256, (64, 8, 8, 1), dtype=np.uint8))
    path = export_saved_model(model, preprocessor, str(tmp_path_factory.mktemp("export") / "export"))
    return probe(path, {**BAD_INPUTS, **GOOD_INPUTS})


def probe(path, cases):
    out = subprocess.run([sys.executable, "-c", PROBE, path, json.dumps(cases)], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    results = {r["name"]: r for r in lines if "name" in r}
    started = [r["start"] for r in lines if "start" in r]
    assert out.returncode == 0, f"the process died (exit {out.returncode}) during {started[-1]!r}: {out.stderr[-1500:]}"
    return results


@pytest.mark.slow  # the probe is a fresh process (an abort must fail the test, not kill the suite)
def test_every_wrong_shape_or_dtype_names_the_expected_input_and_never_aborts(served):
    assert set(served) == set(BAD_INPUTS) | set(GOOD_INPUTS)
    for name in BAD_INPUTS:
        result = served[name]
        assert not result["ok"], f"{name}: served predictions {result.get('shapes')} instead of refusing"
        assert result["type"] == "InvalidArgumentError", (name, result)
        if "pixels" in name:  # refused by TensorFlow before the graph; the function's name spells the input
            assert "expected to be a uint8 tensor" in result["message"], result["message"]
            assert "expects_images_uint8_batch_8_8_1" in result["message"], result["message"]
        else:
            assert "Expected images: uint8 [batch, 8, 8, 1] (raw pixels 0..255). Received shape:" in \
                result["message"], (name, result["message"])


def test_the_signature_declares_the_input_contract_as_saved_model_cli_shows_it(tmp_path):
    from tensorflow.core.protobuf import saved_model_pb2

    model = build_network(get_spec("digits_fitnet"), seed=0)
    path = export_saved_model(model, Preprocessor.fit("scale"), str(tmp_path / "export"))
    proto = saved_model_pb2.SavedModel()  # what saved_model_cli, TF Serving and converters read
    proto.ParseFromString(open(os.path.join(path, "saved_model.pb"), "rb").read())
    (images,) = proto.meta_graphs[0].signature_def["serving_default"].inputs.values()
    assert images.dtype == tf.uint8.as_datatype_enum
    assert [d.size for d in images.tensor_shape.dim] == [-1, 8, 8, 1] and not images.tensor_shape.unknown_rank
    spec = tf.saved_model.load(path).signatures["serving_default"].structured_input_signature[1]["images"]
    assert spec == tf.TensorSpec([None, 8, 8, 1], tf.uint8, name="images")


@pytest.mark.slow  # the same fresh process
def test_good_batches_of_any_size_are_served(served):
    results = served
    assert results["four"]["shapes"] == {"probabilities": [4, 10], "class_id": [4], "class_name": [4]}
    assert results["empty"]["shapes"] == {"probabilities": [0, 10], "class_id": [0], "class_name": [0]}
    assert results["one"]["shapes"] == {"probabilities": [1, 10], "class_id": [1], "class_name": [1]}


def brightest_pixel_model(classes=3):
    """8x8x1 images -> logits whose argmax is the brightest of pixels 0..classes-1 (row 0, left to right)."""
    inputs = keras.Input((8, 8, 1))
    dense = keras.layers.Dense(classes, use_bias=False)
    outputs = dense(keras.layers.Flatten()(inputs))
    kernel = np.zeros((64, classes), np.float32)
    kernel[np.arange(classes), np.arange(classes)] = 1.0
    dense.set_weights([kernel])
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("names,expected", [
    (("cat", "dog", "Größe / É"), ("cat", "dog", "Größe / É")),
    ((), ("0", "1", "2")),  # a data set that names no class: the label numbers
])
def test_the_export_serves_class_names_and_ships_them_as_an_asset(tmp_path, names, expected):
    path = export_saved_model(brightest_pixel_model(), Preprocessor("scale"), str(tmp_path / "export"), names)
    labels = [2, 0, 1, 2, 1]
    images = np.zeros((len(labels), 8, 8, 1), np.uint8)
    images[np.arange(len(labels)), 0, labels, 0] = 200
    out = tf.saved_model.load(path).signatures["serving_default"](images=tf.constant(images))
    assert out["class_name"].dtype == tf.string
    np.testing.assert_array_equal(out["class_id"].numpy(), labels)
    assert [name.decode("utf-8") for name in out["class_name"].numpy()] == [expected[k] for k in labels]
    asset = tmp_path / "export" / "assets" / "class_names.txt"
    assert asset.read_bytes().decode("utf-8") == "".join(f"{name}\n" for name in expected)


def test_class_names_that_do_not_fit_the_model_are_refused_before_writing(tmp_path):
    with pytest.raises(ValueError, match="must name each of the 3 classes.*Received 2 names"):
        export_saved_model(brightest_pixel_model(), Preprocessor("scale"), str(tmp_path / "export"), ("a", "b"))
    with pytest.raises(ValueError, match="cannot hold a line break"):
        export_saved_model(brightest_pixel_model(), Preprocessor("scale"), str(tmp_path / "export"),
                           ("a", "b\nc", "d"))
    assert not (tmp_path / "export").exists()
