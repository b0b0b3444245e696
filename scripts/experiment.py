"""Runs one of the paper's experiment sweeps over seeds: python scripts/experiment.py --experiment=methods
--sweep_dir=runs/methods_digits --seeds=0,1,2 [--flagfile=flags/experiments/<name>.cfg] [--flag=value ...]

Experiments (see fitnets_tf/harness/sweeps/): "methods" (CE vs KD vs hints+KD on one student, the paper's MNIST
table), "depth" (accuracy against student depth at a fixed multiplication budget, per method), "hint_location"
(guided layer early / middle / late, and two hints at once). Every (cell, seed) is a pipeline run in
<sweep_dir>/<cell>/seed<k>; the table (<experiment>.md, <experiment>.json) and the plot (<experiment>.png) go to
--sweep_dir. Rerunning the same command skips finished runs and resumes an interrupted one.
"""

import os
import shlex
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

import run_flags  # noqa: E402  (scripts/run_flags.py)
from fitnets_tf.errors import ConfigError  # noqa: E402
from fitnets_tf.harness import sweeps  # noqa: E402

FLAGS = flags.FLAGS

flags.DEFINE_enum("experiment", None, sweeps.EXPERIMENTS, "The sweep to run: 'methods' compares CE, KD and "
                  "hints+KD on one student; 'depth' trains 5/7/9/11-layer students at one multiplication budget with "
                  "each method; 'hint_location' moves the guided layer (early, middle, late) and tries two hints.")
flags.DEFINE_string("sweep_dir", None, "Directory that receives the sweep: one sub-directory per run, the table and "
                    "the plot. Rerun the same command to resume.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds to run; the table reports mean +- std over them.")
flags.DEFINE_enum("teacher_sharing", "auto", sweeps.TEACHER_SHARING, "How runs share the teacher: 'sweep' "
                  "trains one for the whole sweep, 'seed' one per seed, used by every cell of that seed; 'auto' is "
                  "'seed' for digits (its test split depends on the seed, so 'sweep' is refused there) and 'sweep' "
                  "otherwise. Ignored when --teacher_path is given.")
flags.DEFINE_enum("depth_budget", "30m", sweeps.DEPTH_BUDGETS, "The depth study's multiplication budget: the "
                  "students are the zoo's depth{5,7,9,11}_<budget> nets.")
run_flags.define_run_flags(
    student_help="The student (FitNet) of the 'methods' and 'hint_location' experiments; the 'depth' experiment "
                 "sets its own students.",
    teacher_path_help="A trained teacher (.keras) that every run loads instead of training one.",
    export_default=False)  # a sweep rarely needs each run's SavedModel
flags.adopt_module_key_flags(run_flags)  # --helpshort lists the shared flags too


def _seeds(values):
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise ConfigError(f"--seeds: give integers, e.g. 0,1,2. Received: {','.join(values)}") from None


def base_config_from_flags():
    """The settings every run of the sweep shares (model_dir, seed, student, hints, baselines are set per run)."""
    return run_flags.run_config_from_flags(model_dir="")


def main(argv):
    import tensorflow as tf

    from fitnets_tf.io_utils import atomic_write_text

    run_flags.show_library_progress()  # the runs' progress lines ([fitnets] ...) on stderr
    tf.get_logger().setLevel("ERROR")
    if len(argv) > 1:
        raise ConfigError(f"unexpected arguments {argv[1:]}: every setting is a --flag.")
    if not FLAGS.experiment:
        raise ConfigError(f"--experiment: required, one of {', '.join(sweeps.EXPERIMENTS)}.")
    if not FLAGS.sweep_dir:
        raise ConfigError("--sweep_dir: required (the directory that receives the sweep).")
    if FLAGS.experiment == "depth" and FLAGS["student"].present:
        raise ConfigError("--student: the depth experiment sets its students from --depth_budget; drop "
                          "--student.")
    base = base_config_from_flags()
    sweep_plan = sweeps.plan(FLAGS.experiment, base, _seeds(FLAGS.seeds), FLAGS.sweep_dir,
                                  depth_budget=FLAGS.depth_budget, teacher_sharing=FLAGS.teacher_sharing)
    print(f"[experiments] {FLAGS.experiment}: {len(sweep_plan.cells)} cell(s) x {len(sweep_plan.seeds)} seed(s), "
          f"teacher shared by {sweep_plan.teacher_sharing!r}", flush=True)
    for cell in sweep_plan.cells:
        hints = ", ".join(f"{g} <- {h}" for g, h in cell.taps)
        print(f"[experiments]   {cell.name}: student {cell.student}, hints {hints}, baselines "
              f"{','.join(cell.baselines) or '-'}{'; ' + cell.note if cell.note else ''}", flush=True)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    summary = sweeps.run_sweep(
        sweep_plan, command=command, log=lambda line: print(line, flush=True),
        on_ready=lambda: atomic_write_text(os.path.join(sweep_plan.sweep_dir, "flags.cfg"),
                                           run_flags.flags_file_text(sys.modules[__name__], sweep_plan.sweep_dir)))
    for row in summary["rows"]:
        print(f"[experiments] {row['cell']:<14} {row['method']:<13} test accuracy "
              f"{sweeps.format_mean_std(row['test_accuracy'])}% (n={row['test_accuracy']['n']})", flush=True)
    paths = sweeps.output_paths(sweep_plan.sweep_dir, FLAGS.experiment)
    print(f"[experiments] table: {paths['md']}  plot: {paths['png']}  learning curves: {paths['curves']}", flush=True)


def entry():
    run_flags.run_entry(main, "sweep_dir")


if __name__ == "__main__":
    entry()
