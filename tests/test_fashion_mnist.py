"""Fashion-MNIST end to end from IDX files (a tiny fixture, not the real data), and the evidence flagfiles."""

import json
import os

import numpy as np
import pytest

from fitnets_tf.data import idx
from tests.test_run_script import ROOT, run_script

pytestmark = pytest.mark.slow

FLAGS = os.path.join(ROOT, "flags")


def _settings(path):
    """The --flag=value lines of a flagfile, as a dict."""
    with open(path) as f:
        lines = [line.strip() for line in f if line.startswith("--")]
    return dict(line[2:].split("=", 1) for line in lines)


def test_the_sweep_flagfile_has_the_single_run_recipe():
    single = _settings(os.path.join(FLAGS, "fashion_mnist.cfg"))
    sweep = _settings(os.path.join(FLAGS, "experiments", "methods_fashion_mnist.cfg"))
    own = {"experiment", "sweep_dir", "seeds", "verbose"}
    assert {k: v for k, v in sweep.items() if k not in own} == {k: v for k, v in single.items() if k != "experiment"}
    # The recipe follows the original code where the paper is silent or disagrees (see the flagfile's comments).
    assert single["learning_rate"] == "0.0005" and single["rmsprop_max_scaling"] == "100000"
    assert single["student"] == "mnist_fitnet" and "ce_glorot" in single["baselines"].split(",")


@pytest.fixture(scope="module")
def idx_dir(tmp_path_factory):
    """Four gzipped IDX files: 300 train and 100 test images whose class decides the brightness of one band."""
    directory = tmp_path_factory.mktemp("fashion_idx")
    rng = np.random.default_rng(0)
    for split, n in (("train", 300), ("test", 100)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 40, size=(n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label:2 * label + 3, :] = 250  # a learnable class signal
        images_stem, labels_stem = idx.IDX_FILES[split]
        idx.write_idx(str(directory / f"{images_stem}.gz"), images)
        idx.write_idx(str(directory / f"{labels_stem}.gz"), labels)
    return str(directory)


def test_fashion_mnist_flagfile_runs_end_to_end_from_idx_files(idx_dir, tmp_path):
    model_dir = tmp_path / "fmnist"
    result = run_script(
        f"--flagfile={os.path.join(FLAGS, 'fashion_mnist.cfg')}", f"--model_dir={model_dir}", f"--data_dir={idx_dir}",
        "--validation_size=50", "--train_size=192", "--batch_size=64", "--teacher_epochs=2", "--teacher_patience=1",
        "--hint_epochs=1", "--kd_epochs=1", "--baseline_epochs=2", "--jit_compile=false", "--latency_runs=1",
        "--noexport", "--verbose=0")
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.load(open(model_dir / "results.json"))
    assert results["dataset"] == "fashion_mnist"
    assert (results["train_examples"], results["validation_examples"], results["test_examples"]) == (192, 50, 100)
    rows = {r["model"]: r for r in results["models"]}
    assert set(rows) == {"teacher", "fitnet", "baseline_ce", "baseline_kd", "baseline_ce_glorot"}
    assert rows["fitnet"]["architecture"] == "mnist_fitnet"
    for row in rows.values():
        assert isinstance(row["at_chance"], bool) and row["epochs"] >= 1
    # --patience=1000 in the flagfile: every stage keeps its best validation epoch.
    assert rows["baseline_ce"]["best_epoch"] in (1, 2)
    assert results["config"]["rmsprop_max_scaling"] == 100000
    # The Glorot baseline is the same architecture from other initial weights.
    import keras

    paper = keras.saving.load_model(model_dir / "baseline_ce.keras", compile=False)
    glorot = keras.saving.load_model(model_dir / "baseline_ce_glorot.keras", compile=False)
    assert [w.shape for w in paper.weights] == [w.shape for w in glorot.weights]
    assert (model_dir / "results_curves.png").stat().st_size > 5000
    text = (model_dir / "results.md").read_text()
    assert "Epochs of each model's last stage" in text
    for name, row in rows.items():
        assert (f"{name} never left chance" in text) == row["at_chance"]
