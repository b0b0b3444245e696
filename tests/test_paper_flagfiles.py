"""The paper's flagfiles (flags/svhn.cfg, flags/cifar10.cfg) end to end, offline, on `tfds.testing.mock_data`.

Each test parses the real flagfile through scripts/run.py's flags (so a change to the file is tested), overrides
only the sizes, and runs `pipeline.run` in this process (the mock does not cross into a subprocess): the paper's
networks from the zoo, their preprocessing, the teacher, stage 1 and stage 2, the SavedModel and a LiteRT file.
"""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from fitnets_tf.harness import pipeline
from tests.helpers import run_script_with_private_flags

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOCK_EXAMPLES = 64  # per split under the mock (which ignores split slicing)
# Sizes only: one epoch per stage, no baselines, the FitNet's LiteRT files only (int8 calibrates on the mock's
# train images: cheap here), no XLA.
TINY = ["--teacher_epochs=1", "--hint_epochs=1", "--kd_epochs=1", "--baseline_epochs=1", "--baselines=",
        "--batch_size=32", "--latency_runs=1", "--litert_export=fitnet,float32,int8", "--jit_compile=false",
        "--teacher_jit_compile=false", "--verbose=0"]


def _config(flagfile, *overrides):
    """The `RunConfig` scripts/run.py makes of `--flagfile=flags/<flagfile> <overrides>`."""
    run = run_script_with_private_flags()
    run.FLAGS(["run.py", f"--flagfile={os.path.join(ROOT, 'flags', flagfile)}", *TINY, *overrides])
    return run.config_from_flags()


def _run(config):
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        pipeline.run(config, command="tests/test_paper_flagfiles.py")
    with open(os.path.join(config.model_dir, "results.json")) as f:
        return json.load(f)


def _check_stages_and_exports(results, config):
    """Teacher, stage 1 and stage 2 ran and are recorded; the SavedModel serves uint8 images; the LiteRT files."""
    model_dir = config.model_dir
    for stage in ("teacher", "fitnet_stage1", "fitnet_stage2"):
        assert results["stage_seconds"][stage] > 0, stage
        assert results["histories"][stage]["loss"], stage
        assert os.path.exists(os.path.join(model_dir, "checkpoints", stage, "done.json")), stage
    assert set(results["stage_seconds"]) == {"teacher", "fitnet_stage1", "fitnet_stage2"}  # no baselines asked
    assert "hint_loss" in results["histories"]["fitnet_stage1"] and "kd_loss" in results["histories"]["fitnet_stage2"]
    assert {row["model"] for row in results["models"]} == {"teacher", "fitnet"}

    export = os.path.join(model_dir, "export")
    assert os.path.exists(os.path.join(export, "saved_model.pb"))
    serve = tf.saved_model.load(export).signatures["serving_default"]
    ((name, spec),) = serve.structured_input_signature[1].items()
    assert spec.dtype == tf.uint8  # any shape reaches the graph, whose first op checks it (export.check_images)
    rng = np.random.default_rng(0)
    out = serve(**{name: tf.constant(rng.integers(0, 256, size=(3, 32, 32, 3), dtype=np.uint8))})
    assert out["probabilities"].shape == (3, 10)
    np.testing.assert_allclose(out["probabilities"].numpy().sum(axis=-1), 1.0, rtol=1e-4)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"Expected images: uint8 \[batch, 32, 32, 3\]"):
        serve(**{name: tf.zeros((3, 28, 28, 3), tf.uint8)})

    formats = [t for t in config.litert_export if t in ("float32", "int8")]
    for fmt in formats:
        assert os.path.getsize(os.path.join(model_dir, "litert", f"fitnet_{fmt}.tflite")) > 0, fmt
    written = [(r["model"], r["format"], r["path"]) for r in results["litert"]["artifacts"] if r["path"] is not None]
    assert written == [("fitnet", fmt, os.path.join("litert", f"fitnet_{fmt}.tflite")) for fmt in formats]


def test_svhn_flagfile_runs_end_to_end_with_the_extra_split(tmp_path):
    data_dir = str(tmp_path / "tfds")
    # No input cache: the TFDS split is read as a stream, shuffled in windows, as the real 604,388 images would be
    # (the default caches them on disk: 1.9 GB of uint8 images exceed the 512 MB budget).
    # The float32 LiteRT file only: the int8 one (calibration, tolerance check) is the CIFAR-10 test's.
    config = _config("svhn.cfg", f"--model_dir={tmp_path / 'svhn'}", f"--data_dir={data_dir}", "--input_cache=none",
                     "--litert_export=fitnet,float32")
    assert config.dataset == "svhn_cropped" and config.use_extra and config.hints == (("conv8", 2),)
    results = _run(config)
    assert results["input_cache"]["place"] == "none"
    assert results["teacher_output_caches"]["fitnet_stage1"]["place"] == "memory"  # not augmented: hints cached

    # The train split is train minus the validation images (from train's end) plus all of extra, as
    # data/sources.py builds it; counted here by reading TFDS under the same mock (which ignores the slicing).
    count = int(config.validation_size)
    with tfds.testing.mock_data(num_examples=MOCK_EXAMPLES):
        def size(split):
            return sum(1 for _ in tfds.load("svhn_cropped", split=split, data_dir=data_dir, download=False))

        train, extra, validation = size(f"train[:-{count}]"), size("extra"), size(f"train[-{count}:]")
    assert extra > 0
    assert (results["train_examples"], results["validation_examples"]) == (train + extra, validation)

    assert results["dataset"] == "svhn_cropped" and results["preprocessing"] == "scale"
    assert results["config"]["use_extra"] is True
    (pair,) = results["hint_pair_details"]
    # conv8 before its pool (16x16) <- the teacher's layer 2 after its pool (9x9): a conv regressor of kernel 8.
    assert pair["guided"] == "conv8" and pair["regressor"] == "conv"
    assert pair["guided_shape"][:2] == [16, 16] and pair["hint_shape"][:2] == [9, 9]
    rows = {row["model"]: row for row in results["models"]}
    assert rows["teacher"]["architecture"] == "svhn_teacher" and rows["fitnet"]["architecture"] == "svhn_fitnet"
    _check_stages_and_exports(results, config)


def test_cifar10_flagfile_runs_end_to_end_with_gcn_zca(tmp_path):
    config = _config("cifar10.cfg", f"--model_dir={tmp_path / 'cifar10'}", f"--data_dir={tmp_path / 'tfds'}")
    assert config.dataset == "cifar10" and not config.use_extra and config.hints is None  # the zoo's pair
    results = _run(config)

    assert results["dataset"] == "cifar10" and results["preprocessing"] == "gcn_zca"
    assert results["train_examples"] == MOCK_EXAMPLES  # the mock's train: slicing off the 10000 is ignored
    # Random crops of the 8-pixel padded image, and flips (the flagfile's comment).
    assert results["augmentation"] == {"kind": "pad_crop", "flip": True, "crop_padding": 8}
    (pair,) = results["hint_pair_details"]
    # The paper's 11 <- 2: FitNet 4's layer 11 (the last conv of its second block, 6 x 80 channels) after its pool
    # (32 -> 16 -> 8) <- the teacher's layer 2 after its pool.
    assert (pair["guided"], pair["hint"], pair["regressor"]) == ("pool2", "pool2", "conv")
    assert pair["guided_shape"] == [8, 8, 80]
    rows = {row["model"]: row for row in results["models"]}
    assert rows["teacher"]["architecture"] == "cifar_teacher" and rows["fitnet"]["architecture"] == "fitnet4"
    with np.load(os.path.join(config.model_dir, "preprocessing.npz")) as saved:
        assert any(v.shape == (32 * 32 * 3, 32 * 32 * 3) for v in saved.values())  # the ZCA matrix
    _check_stages_and_exports(results, config)
