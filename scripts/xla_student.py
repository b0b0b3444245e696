"""Times the student's cross-entropy step with XLA off and on, interleaved and paired per round, for students of
several kinds and image sizes on this machine: the evidence behind `fitnets_tf.xla.XLA_AUTO`'s student rule on a
CPU (compiled only for small images, `fitnets_tf.xla.SMALL_IMAGE_PIXELS`).

    .venv/bin/python scripts/xla_student.py [--rounds=5] [--students=fitnet1_32,plain7_224,...]

Students: the paper's FitNet 1 (maxout, 32x32x3), the digits and MNIST FitNets, docs/own_models.md's 8-conv student
at 32x32, and scripts/make_backbone_pair.py's 7-conv real-size student at 56, 112 and 224 pixels. Each step is
`Distiller(student).train_step` under `tf.function(jit_compile=...)`, random weights and images, batch `--batch`
(32 for 112 pixels and more). Prints t(off) / t(on) per student: above 1, XLA is faster.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from absl import app, flags  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

from benchmarking.real_size import load_script  # noqa: E402  (scripts/benchmarking/)
from benchmarking.timing import paired_ratio, traced_call  # noqa: E402
from fitnets_tf import Distiller  # noqa: E402
from fitnets_tf.harness.timing import Candidate, time_interleaved  # noqa: E402
from fitnets_tf.models import build_network  # noqa: E402
from fitnets_tf.models.zoo import get_spec  # noqa: E402

STUDENTS = ("digits_fitnet_8", "mnist_fitnet_28", "fitnet1_32", "plain8_32", "plain7_56", "plain7_112", "plain7_224")
flags.DEFINE_list("students", list(STUDENTS), f"Which students: {', '.join(STUDENTS)}.")
flags.DEFINE_integer("rounds", 5, "Interleaved rounds (a sample of each setting per round).")
flags.DEFINE_integer("calls_per_sample", 3, "Step calls per sample.")
flags.DEFINE_integer("batch", 64, "Images per step below 112 pixels (32 from 112 pixels on).")
FLAGS = flags.FLAGS


def build_student(name):
    """(model, image_shape) of one of `STUDENTS`."""
    kind, size = name.rsplit("_", 1)
    size = int(size)
    if kind in ("digits_fitnet", "mnist_fitnet", "fitnet1"):
        spec = get_spec(kind)
        return build_network(spec), tuple(spec.input_shape)
    pair = load_script("make_backbone_pair")
    shape = (size, size, 3)
    if kind == "plain8":
        return pair.plain8_student(10, shape), shape
    return pair.student_model(10, image_shape=shape), shape


def main(argv):
    del argv
    unknown = sorted(set(FLAGS.students) - set(STUDENTS))
    if unknown:
        raise app.UsageError(f"--students: unknown {', '.join(unknown)}; choose among {', '.join(STUDENTS)}")
    rng = np.random.default_rng(0)
    print("student          pixels  batch  off ms  on ms   off/on (paired)  CPU-time off/on  first call off/on s")
    for name in FLAGS.students:
        keras.utils.set_random_seed(0)
        student, shape = build_student(name)
        batch = 32 if shape[0] >= 112 else FLAGS.batch
        x = rng.random((batch, *shape)).astype("float32")
        y = rng.integers(0, 10, batch)
        candidates = []
        for jit in (False, True):
            trainer = Distiller(student, name=f"ce_{jit}")
            trainer.compile(keras.optimizers.SGD(1e-3), stage="ce", jit_compile=jit)
            trainer.train_step((x, y))  # the optimizer's slots and the metrics' variables
            candidates.append(Candidate(f"{name}/{jit}", traced_call(
                lambda a, b, t=trainer: t.train_step((a, b)), (x, y), jit), batch, FLAGS.calls_per_sample))
        results = time_interleaved(candidates, FLAGS.rounds, warmup=1)
        off, on = results[f"{name}/False"], results[f"{name}/True"]
        ratio = paired_ratio(results, [f"{name}/False"], [f"{name}/True"])
        print(f"{name:<16} {shape[0]:>6}  {batch:>5}  {1e3 * off['seconds_per_call']:>6.1f}  "
              f"{1e3 * on['seconds_per_call']:>6.1f}  {ratio['ratio']:>15.2f}  {ratio['ratio_cpu']:>15.2f}  "
              f"{off['first_call_s']:.1f} / {on['first_call_s']:.1f}", flush=True)


if __name__ == "__main__":
    app.run(main)
