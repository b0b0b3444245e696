"""The benchmark behind `scripts/benchmark.py`: training-step throughput of each FitNets stage, the input pipeline,
serving latency, and the roofline of the steps against this CPU's measured peak.

What is measured, in ONE process, on one fixed batch (the first batch of the input pipeline):
  ce                         the student alone on cross-entropy (`Distiller(student)`, stage "ce");
  teacher_forward            the teacher's inference, `teacher(x, training=False)`;
  hint                       stage 1 (`Distiller` stage "hint"): truncated student + regressor vs the truncated teacher;
  kd                         stage 2 (`Distiller` stage "kd"): student step + teacher forward + KD loss;
  keras_kd                   Keras's own `keras.distillation.Distiller` with `LogitsDistillation` on the same pair;
  teacher_forward_lowp       the teacher's forward pass in `teacher_precision` (bfloat16 on CPUs with AVX512-BF16),
                             the copy stage 2 calls with that setting (`fitnets_tf.precision`);
  kd_lowp                    stage 2 with the teacher in `teacher_precision`;
  kd_auto                    stage 2 as a run with `teacher_precision=auto` makes it (the hardware's native low
                             precision for the teacher) with XLA per model "auto" for each part (`fitnets_tf.xla`,
                             the run's default), under Keras's own outer step;
  truncated_student_step     stage 1 without the teacher: the guided sub-model + regressor trained towards a FIXED
                             hint tensor with the same loss, averaging, optimizer and metric update as stage 1;
  truncated_teacher_forward  the teacher up to its hint layer, `training=False`;
  hint_cached, kd_cached     stages 1 and 2 fed the teacher's outputs computed once (teacher-output caching);
  input_pipeline             `build_input` (training mode: cache, shuffle, augment, batch, prefetch), iterated alone,
                             in its own phase before the steps (see `pipeline.measure_pipeline`).

One module per concern:
  config     `BenchmarkConfig` and the checks of its settings;
  models     the teacher, the student and every trainer built on them (`build_models`);
  timing     how a step is timed (traced calls, the step candidates) and how candidates are compared
             (`paired_ratio`);
  targets    the ratio targets, the XLA comparison and teacher-output caching;
  pipeline   the input pipeline, measured alone;
  serving    latency of the exported SavedModels and LiteRT files, and the LiteRT targets;
  roofline   multiplications per step, achieved GMAC/s and the share of the CPU's peak, measured by a matmul;
  run        `run_benchmark`: every measurement above, as one JSON-ready dict;
  real_size  the real-size section (224x224 JPEG folder, MobileNetV2 teacher), `--real_size`;
  report     the printed tables of both.
"""
