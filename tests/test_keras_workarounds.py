"""The upstream behaviour each workaround of `fitnets_tf.keras_workarounds` exists for, reproduced on a plain
`keras.Model` under a 2-worker MultiWorkerMirroredStrategy (two processes on 127.0.0.1).

These tests FAIL when Keras no longer shows the behaviour: then remove the workaround named in the message (and this
test), and update `KERAS_VERSION`.
"""

import json
import os
import subprocess
import sys

import pytest

from fitnets_tf import keras_workarounds
from fitnets_tf.distiller import Distiller
from tests.test_multi_worker import free_ports

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """The JSON report of worker 0 of tests/keras_workaround_check.py (both workers must finish)."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(2)]}
    workers = [
        subprocess.Popen(
            [sys.executable, os.path.join(HERE, "keras_workaround_check.py")],
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                     TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for index in range(2)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    for worker, (out, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
    return json.loads(outputs[0][0].strip().splitlines()[-1])


@pytest.mark.slow
def test_keras_still_averages_a_distributed_batch_for_its_symbolic_build(two_workers):
    assert "PerReplica" in two_workers["symbolic_build"], (
        f"Keras {two_workers['keras']} builds symbolically under a 2-worker MultiWorkerMirroredStrategy now "
        f"({two_workers['symbolic_build']!r}): remove keras_workarounds.SkipSymbolicBuild.")


@pytest.mark.slow
def test_keras_still_reduces_multi_worker_logs_along_axis_0(two_workers):
    assert "Invalid reduction dimension 0" in two_workers["scalar_logs"], (
        f"Keras {two_workers['keras']} averages scalar logs over workers now ({two_workers['scalar_logs']!r}): "
        "remove keras_workarounds.rank_one_logs.")


@pytest.mark.slow
def test_with_both_workarounds_a_plain_model_trains_on_two_workers(two_workers):
    assert two_workers["both"] == "ok"


def test_the_distiller_applies_the_workarounds():
    assert issubclass(Distiller, keras_workarounds.SkipSymbolicBuild)
    assert Distiller._maybe_symbolic_build is keras_workarounds.SkipSymbolicBuild._maybe_symbolic_build
