"""The README's library example runs as written (with tiny data and one epoch per stage)."""

import os
import re

import numpy as np
import pytest
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_the_readme_library_example_runs(tmp_path, monkeypatch):
    readme = open(os.path.join(ROOT, "README.md")).read()
    block = readme.split("## The library in 15 lines", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert len(block.strip().splitlines()) <= 16
    code = re.sub(r"epochs=\d+", "epochs=1", block)
    rng = np.random.default_rng(0)
    images = rng.random((8, 32, 32, 3)).astype("float32")
    labels = rng.integers(0, 10, 8)
    batches = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    monkeypatch.chdir(tmp_path)
    namespace = {"train_ds": batches, "val_ds": batches}
    exec(compile(code, "README.md", "exec"), namespace)
    assert os.path.exists(tmp_path / "fitnet4.keras")
    assert namespace["distiller"].stage == "kd" and namespace["distiller"].regressors == []
