"""Experiment sweeps: the paper's comparisons as grids of pipeline runs, with seeds, a table and a plot.

Three experiments (`planning.EXPERIMENTS`), each a list of cells run once per seed; a run is one `pipeline.run` in
`<sweep_dir>/<cell>/seed<k>`, which already trains and evaluates the FitNet (hints, stage 1, then KD, stage 2) and
the baselines on the same student and initial weights:
  - "methods": the paper's MNIST table. One cell, the student; methods CE (plain backprop), KD, HT+KD (the FitNet).
  - "depth": the paper's depth study (Sec. 4.4): students of 5/7/9/11 layers at one multiplication budget
    (zoo `depth{5,7,9,11}_{30m,107m}`), each with CE, KD and HT+KD; accuracy against depth.
  - "hint_location": the 2023 re-study: the guided layer early / middle / late in the student, the teacher's hint
    layer mapped proportionally, and two hints at once (early+middle, middle+late, early+late; stage 1 once per pair
    in order, as the original code). CE and KD are trained once, in the "middle" cell, as references.

Hint pairs are the paper's 1-based layer indices, which the pipeline taps after the max-pool that directly follows a
layer (the paper's code); they are chosen by fixed rules (`pairing.default_pair`, `pairing.hint_location_pairs`)
among the pairs the regressor can map (`regressor.regressor_refusal`: for the paper's conv regressor, the hint map
no larger than the guided map, Sec. 2.2), and the table records each pair with its taps and maps.

The teacher is trained once and shared (`RunConfig.teacher_path`): across the whole sweep when the dataset's test
split does not depend on the seed (TFDS datasets), else once per seed (digits and folders of images: their
stratified split, test included, is drawn with the run's seed, so a teacher trained with another seed has seen this
seed's test images).

Outputs in `sweep_dir`: sweep.json (what the sweep is; pins the shared teacher), <experiment>.md and
<experiment>.json (one row per (cell, method): mean +- std test accuracy over seeds, n, parameters,
multiplications, hint pairs, and the raw per-seed values), <experiment>.png and <experiment>_curves.png (validation
accuracy against epoch per method and cell, seeds thin and their mean thick).

One module per job:
  statistics  mean and sample std over seeds, and their printed form;
  pairing     the conv taps of an architecture and which hint layer fits which guided layer;
  planning    `Cell`, `Run`, `SweepPlan` and `plan` (settings checked, teacher sharing, sweep.json pin);
  running     `run_sweep`: runs or reads every run (resumable), refuses recorded runs with other settings;
  curves      each model's learning curve from its run's histories, and the epoch it left chance;
  tables      the summary rows (<experiment>.json) and the markdown table;
  plots       the PNGs.
What a caller needs to plan a sweep, run it and read its outputs is exported here.
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
