"""The real-size promise: a run's peak resident memory does not grow with the number of training images.

Two command-line runs on folders of N and 3N generated JPEGs, each in a fresh process under `/usr/bin/time -v`
(Maximum resident set size): both stages, teacher-output caching on (no augmentation) and a memory budget far
below the data, so that the decoded images and the teacher's outputs go to disk. Before streaming, every image was
held about five times in float32 (~1.2 MB per 160x160 image here), which made the 3N run ~70% larger.
"""

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 160


def write_folder(path, count, seed=0):
    """`count` SIZE x SIZE RGB JPEGs in 4 classes; class k is brighter in quadrant k (learnable, not trivial)."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for i in range(count):
        label = i % 4
        image = rng.normal(100, 30, (SIZE, SIZE, 3))
        half = SIZE // 2
        image[(label // 2) * half:(label // 2 + 1) * half, (label % 2) * half:(label % 2 + 1) * half] += 80
        folder = os.path.join(path, f"class{label}")
        os.makedirs(folder, exist_ok=True)
        data = tf.io.encode_jpeg(np.clip(image, 0, 255).astype(np.uint8), quality=90)
        tf.io.write_file(os.path.join(folder, f"{i:05d}.jpg"), data)


def models(path):
    import keras

    def net(widths, name):
        x = inputs = keras.Input((SIZE, SIZE, 3))
        for i, width in enumerate(widths):
            x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu", name=f"c{i + 1}")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        return keras.Model(inputs, keras.layers.Dense(4, name="logits")(x), name=name)

    teacher, student = net((16, 32, 32), "teacher"), net((8, 8, 16, 16), "student")
    teacher.save(os.path.join(path, "teacher.keras"))
    student.save(os.path.join(path, "student.keras"))


def peak_rss_mb(folder, model_dir, files):
    command = ["/usr/bin/time", "-v", sys.executable, os.path.join(ROOT, "scripts", "run.py"),
               f"--dataset=folder:{folder}", f"--model_dir={model_dir}", f"--teacher_path={files}/teacher.keras",
               f"--student_path={files}/student.keras", "--hints=c2:c2", "--hint_epochs=1", "--kd_epochs=1",
               "--baselines=", "--batch_size=32", "--litert_export=", "--nocheck_teacher", "--latency_runs=1",
               "--augmentation=none", "--noflip", "--memory_budget_mb=4", "--verbose=0", "--jit_compile=false",
               "--teacher_jit_compile=false"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "input cache: disk" in result.stderr and "cached in disk" in result.stderr, result.stderr[-3000:]
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr).group(1)) / 1024


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/usr/bin/time"), reason="needs GNU time for the peak resident memory")
def test_peak_memory_does_not_grow_with_the_number_of_images(tmp_path):
    models(str(tmp_path))
    small, large = tmp_path / "n", tmp_path / "3n"
    write_folder(str(small), 300)
    write_folder(str(large), 900, seed=1)
    peaks = [peak_rss_mb(str(folder), str(tmp_path / f"run_{folder.name}"), str(tmp_path)) for folder in (small, large)]
    # The caches were removed when the runs ended; the 3N run's would have been about 3x the N run's on disk.
    assert not os.path.exists(tmp_path / "run_3n" / "cache")
    assert peaks[1] < 1.25 * peaks[0], f"peak RSS {peaks[0]:.0f} MB with 300 images, {peaks[1]:.0f} MB with 900"
    shutil.rmtree(large)
