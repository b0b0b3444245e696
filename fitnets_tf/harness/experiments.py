"""The experiment sweeps' public entry points (see `fitnets_tf.harness.sweeps` for what a sweep is).

The code lives in `fitnets_tf.harness.sweeps`, one module per job (statistics, pairing, planning, running, tables,
plots); this module gathers what a caller needs to plan a sweep, run it and read its outputs.
"""

from fitnets_tf.harness.sweeps.planning import (
    DEPTH_BUDGETS, DEPTHS, EXPERIMENTS, MULTIPLE_HINTS, TEACHER_SHARING, Cell, Run, SweepPlan, plan, plan_cells,
)
from fitnets_tf.harness.sweeps.pairing import LOCATIONS
from fitnets_tf.harness.sweeps.running import output_paths, run_sweep
from fitnets_tf.harness.sweeps.statistics import format_mean_std, mean_std
from fitnets_tf.harness.sweeps.tables import markdown, summarize

__all__ = [
    "DEPTH_BUDGETS", "DEPTHS", "EXPERIMENTS", "LOCATIONS", "MULTIPLE_HINTS", "TEACHER_SHARING", "Cell", "Run",
    "SweepPlan", "format_mean_std", "markdown", "mean_std", "output_paths", "plan", "plan_cells", "run_sweep",
    "summarize",
]
