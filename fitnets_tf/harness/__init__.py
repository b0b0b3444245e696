"""The harness around the FitNets method: runs, stages with checkpoints, sweeps, reports and exports.

The method itself (layers, models, taps, regressor, losses, schedules, the Distiller, data) lives in the package's
core, `fitnets_tf`; nothing there imports from here. This sub-package turns the method into runs:

- `pipeline`: one run from a `RunConfig` (teacher, stage 1, stage 2, baselines, export, report) in a model_dir.
  Its parts: `config` (`RunConfig`, which settings define a run, `validate`), `model_dir` (one run per
  directory, when a model_dir resumes), `networks` and `model_files` (teacher, student, distiller; .keras files),
  `inputs` (splits, preprocessing, input pipelines), `tensorboard` (the run's HParams and graphs).
- `training`: the stage runner (checkpoints, resume, early stopping, Ctrl-C, damaged checkpoints).
- `experiments`: sweeps of runs (hint location, depth, methods) and their tables and plots.
- `report`, `export`, `litert`, `litert_classifier`, `run_lock`: what a run writes and how it guards its model_dir.
"""
