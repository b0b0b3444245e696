"""Runs a FitNets experiment end to end: python scripts/run.py --flagfile=flags/digits.cfg [--flag=value ...]

Trains (or loads) the teacher, runs stage 1 (hints) and stage 2 (KD) on the FitNet, the chosen baselines, then
writes results.json / results.md, TensorBoard logs and the exported SavedModel into --model_dir. Rerunning the same
command resumes: finished steps are restored, an interrupted stage continues from its last epoch.
"""

import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

import run_flags  # noqa: E402  (scripts/run_flags.py)
from fitnets_tf.harness import pipeline  # noqa: E402

FLAGS = flags.FLAGS

# Every setting of the run, each a flag made from its RunConfig field (scripts/run_flags.py).
run_flags.define_run_flags(one_run=True)
flags.adopt_module_key_flags(run_flags)  # --help and --helpshort list them too
# scale-out: where the run computes, not what (no RunConfig setting; pipeline.run takes the strategy)
flags.DEFINE_string("strategy", "default", "tf.distribute strategy: default (one device), mirrored (all local "
                    "GPUs, or --num_cpu_devices logical CPUs), multi_worker (MultiWorkerMirroredStrategy from "
                    "TF_CONFIG) or tpu (TPUStrategy; --tpu names the TPU).")
flags.DEFINE_integer("num_cpu_devices", 0, "Split the CPU into this many logical devices first (testing "
                     "--strategy=mirrored without GPUs); 0 leaves the CPU as it is.")
flags.DEFINE_string("tpu", "", "TPU name or address for --strategy=tpu ('' for a local TPU VM).")


def make_strategy(name, num_cpu_devices=0, tpu=""):
    """The tf.distribute strategy named by --strategy (created before any other TensorFlow op runs)."""
    import tensorflow as tf

    if num_cpu_devices < 0:
        raise pipeline.ConfigError(f"--num_cpu_devices: must be >= 0 (0 leaves the CPU as it is). Received: "
                                   f"{num_cpu_devices}")
    if num_cpu_devices:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise pipeline.ConfigError(f"--strategy: unknown strategy {name!r}. Choose default, mirrored, multi_worker "
                               "or tpu.")


def config_from_flags():
    if not FLAGS.model_dir:
        raise pipeline.ConfigError("--model_dir: required (the directory that receives the run).")
    return run_flags.run_config_from_flags()


def main(argv):
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    run_flags.show_library_progress()
    if len(argv) > 1:
        raise pipeline.ConfigError(f"unexpected arguments {argv[1:]}: every setting is a --flag.")
    from fitnets_tf.io_utils import atomic_write_text

    config = config_from_flags()
    strategy = make_strategy(FLAGS.strategy, FLAGS.num_cpu_devices, FLAGS.tpu)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    pipeline.validate(config)
    # flags.cfg is written only once the model_dir is accepted (run() refuses a different experiment first).
    rows = pipeline.run(config, strategy=strategy, command=command, on_ready=lambda: atomic_write_text(
        os.path.join(config.model_dir, "flags.cfg"), run_flags.flags_file_text(sys.modules[__name__],
                                                                                config.model_dir)))
    for row in rows:
        acc = "-" if row["test_accuracy"] is None else f"{100 * row['test_accuracy']:.2f}%"
        best = f"  best epoch {row['best_epoch']}/{row['epochs']}" if row.get("best_epoch") else ""
        chance = "  (NEVER LEFT CHANCE: see results.md)" if row.get("at_chance") else ""
        print(f"[fitnets] {row['model']:<18} test accuracy {acc}  params {row['parameters']:,}  "
              f"mults {row['multiplications']:,}{best}{chance}")
    print(f"[fitnets] results: {os.path.join(config.model_dir, 'results.md')}")


def entry():
    run_flags.run_entry(main, "model_dir")


if __name__ == "__main__":
    entry()
