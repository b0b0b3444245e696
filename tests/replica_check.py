"""Run one epoch of a stage on 1 device and on 2 replicas (MirroredStrategy over 2 logical CPUs); print the
largest weight difference as JSON. A subprocess, because logical devices must be split before any op runs.

    python tests/replica_check.py [--examples=N --batch_size=B] STAGE...

Defaults: 16 examples in one batch of 16 (one step, 8 examples per replica). An odd batch (15: 8 + 7 per replica)
or a last partial batch (N not a multiple of B) checks that the loss is averaged over the global batch."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from fitnets_tf import Distiller, HintPair, HintStage, KDStage  # noqa: E402
from fitnets_tf.models import BlockSpec, NetSpec, PoolSpec, build_network  # noqa: E402


def one_step(strategy, stage, examples=16, batch_size=16):
    with strategy.scope():
        teacher = build_network(NetSpec("teacher", (8, 8, 1), 5, (BlockSpec((8, 8)), BlockSpec((8,), pool=PoolSpec(None))),
                                        initializer="glorot_uniform"), seed=0)
        student = build_network(NetSpec("student", (8, 8, 1), 5, (BlockSpec((4, 4, 4)), BlockSpec((6,), pool=PoolSpec(None))),
                                        initializer="glorot_uniform"), seed=1)
        distiller = Distiller(student, teacher)
        stage = HintStage([HintPair(3, 2)], seed=3) if stage == "hint" else KDStage(kd_lambda=2.0)
        distiller.compile(keras.optimizers.SGD(0.5), stage=stage)
    regressors = getattr(stage, "regressors", [])
    one_step.initial = [v.numpy() for v in student.weights] + [v.numpy() for r in regressors for v in r.weights]
    rng = np.random.default_rng(0)
    x, y = rng.random((examples, 8, 8, 1)).astype("float32"), rng.integers(0, 5, examples)
    logs = distiller.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0).history
    weights = [v.numpy() for v in student.weights] + [v.numpy() for r in regressors for v in r.weights]
    return weights, {k: float(v[0]) for k, v in logs.items()}


if __name__ == "__main__":
    report = {}
    options = dict(a[2:].split("=") for a in sys.argv[1:] if a.startswith("--"))
    sizes = {"examples": int(options.get("examples", 16)), "batch_size": int(options.get("batch_size", 16))}
    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    for stage in [a for a in sys.argv[1:] if not a.startswith("--")]:
        single, single_logs = one_step(tf.distribute.get_strategy(), stage, **sizes)
        mirrored, mirrored_logs = one_step(mirrored_strategy, stage, **sizes)
        report[stage] = {
            "max_weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(single, mirrored)),
            "max_weight_change": max(float(np.abs(a - b).max()) for a, b in zip(single, one_step.initial)),
            "single_logs": single_logs,
            "mirrored_logs": mirrored_logs,
        }
    print(json.dumps(report))
