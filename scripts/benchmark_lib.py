"""Performance benchmark: training-step throughput of each FitNets stage, the input pipeline, and serving latency.

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
  input_pipeline             `build_input` (training mode: cache, shuffle, augment, batch, prefetch), iterated alone,
                             in its own phase before the steps (see `measure_pipeline`).

How a step is timed. Every step candidate is `tf.function(body, jit_compile=xla)` called on the same tensors, and a
call ends when its outputs are on the host. For a Keras model `body` is `model.train_step((x, y))` — exactly what
`compile(jit_compile=...)` makes Keras wrap in `tf.function(jit_compile=...)` inside `make_train_function`
(`one_step_on_data`), without `train_on_batch`'s per-call Python (a generator, `reset_metrics`, converting the logs).
So both XLA settings run on the same model objects, and our steps, Keras's Distiller and the reference steps pay
the same (minimal) overhead. `ce_train_on_batch` measures the CE step through `train_on_batch` once more, to show
what that overhead is. Before tracing, each model makes one eager `train_step`, which creates its optimizer slots
and metric variables (the traced functions then create none).

How candidates are compared. After each candidate's first call (tracing, and the XLA compilation when on) and
`warmup` further calls, the candidates are timed round-robin, `rounds` times, the starting candidate rotating each
round, so that load from other processes hits all of them alike; each sample is `calls_per_sample` calls, and the
reported time is the median sample (the minimum is kept too: other processes only ever add time). Only ratios
inside one run mean anything on a shared machine.

Targets (each per XLA setting, with a pass/fail boolean). A ratio is the median over rounds of the ratio of the
samples of the same round: the candidates of one target run one after the other in each round, so load from other
processes that drifts over seconds cancels out (`paired_ratio`; the ratios of medians and of minima are reported
too):
  stage2_overhead:  t(kd) <= 1.10 * (t(ce) + t(teacher_forward));
  stage1_overhead:  t(hint) <= 1.10 * (t(truncated_student_step) + t(truncated_teacher_forward));
  vs_keras_distillation: images/s of kd >= images/s of keras_kd;
  auto_vs_keras_distillation: images/s of kd_auto >= 1.5 x images/s of keras_kd at its faster XLA setting (the
                    auto stage 2 against Keras's best; with augmentation the teacher cannot be cached, so neither
                    side uses caching);
  input_pipeline:   input pipeline images/s >= 3 * the fastest training step's images/s (any stage, either XLA
                    setting): the pipeline is never what limits training.
XLA: for each step, which setting is faster, and by how much (paired per round in the same way).

Serving latency (the paper's speed-up column): the teacher and each FitNet are exported with `export_saved_model`
(preprocessing "scale" inside the graph), reloaded with `tf.saved_model.load`, and their `serving_default`
signature is called with uint8 images at each batch size, interleaved; seconds per image, and the speed-up over
the teacher beside the ratio of multiplications (`count_multiplications`). Then the same networks as LiteRT files
(`fitnets_tf.harness.litert`: float32, and full int8 calibrated on random uint8 images, which is enough for timing random
weights), timed through the LiteRT runtime (ai-edge-litert) at batch 1 on ONE thread, interleaved, each speed-up
against the teacher's file of the same format and paired per round, beside the multiplication ratio.

LiteRT targets (issue 12; pass/fail printed, never asserted by a test): FitNet 1's int8 file <= 0.6 ms per image;
FitNet 1 vs the teacher on the same runtime, float32: speed-up >= 0.75 x the multiplication ratio.

The real-size section (224x224 JPEG folder, MobileNetV2 teacher) is `benchmark_real_size.py`; it reuses the
pipeline measurement, the stage-2 candidates, Keras's distiller and the ratio targets of this module.
"""

import dataclasses
import os
import platform
import tempfile
import time
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from fitnets_tf import losses
from fitnets_tf.harness import litert
from fitnets_tf.data import Preprocessor, build_input, dataset_info, load_splits
from fitnets_tf.distiller import Distiller, HintPair, cached_batch, global_batch_size
from fitnets_tf.harness.export import export_saved_model
from fitnets_tf.harness.litert_classifier import LiteRTClassifier
from fitnets_tf.models import build_network
from fitnets_tf.models.counting import count_multiplications, count_parameters
from fitnets_tf.models.zoo import get_spec
from fitnets_tf.harness.timing import Candidate, time_interleaved
from fitnets_tf.optimizers import OPTIMIZERS, build_optimizer
from fitnets_tf.precision import MIXED_PRECISION, TEACHER_PRECISIONS, compute_policy, resolve_teacher_precision

TRAIN_STEPS = ("ce", "hint", "kd", "keras_kd", "truncated_student_step", "hint_cached", "kd_cached", "kd_lowp",
               "kd_auto")
FORWARDS = ("teacher_forward", "truncated_teacher_forward", "teacher_forward_lowp")
STEP_NAMES = TRAIN_STEPS + FORWARDS
FITNETS_TRAIN_STEPS = ("ce", "hint", "kd")
XLA_CHOICES = ("both", "on", "off")
DATA_SOURCES = ("synthetic", "digits")
OVERHEAD_LIMIT = 1.10
AUTO_VS_KERAS_LIMIT = 1.5  # images/s of kd_auto over keras.distillation's at its faster XLA setting
PIPELINE_FACTOR = 3.0
LITERT_INT8_MS_LIMIT = 0.6  # FitNet 1, int8, batch 1, one thread
LITERT_SPEEDUP_FRACTION = 0.75  # FitNet 1 vs teacher, float32: speed-up / multiplication ratio
LITERT_CALIBRATION_IMAGES = 100


def check_settings(config, positive, choices=None):
    """Raises ValueError naming the first bad setting of a benchmark config: each of `positive` ({name: value}) an
    int >= 1, `warmup` >= 0, each of `choices` ({field: allowed}) and the optimizer and precisions among their
    choices, learning_rate and temperature > 0, kd_lambda >= 0."""
    for name, value in positive.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1. Received: {name}={value!r}")
    if not isinstance(config.warmup, int) or config.warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0. Received: warmup={config.warmup!r}")
    allowed_values = {**(choices or {}), "optimizer": OPTIMIZERS, "mixed_precision": MIXED_PRECISION,
                      "teacher_precision": TEACHER_PRECISIONS}
    for name, allowed in allowed_values.items():
        value = getattr(config, name)
        if value not in allowed:
            raise ValueError(f"{name} must be one of {allowed}. Received: {name}={value!r}")
    if config.learning_rate <= 0 or config.temperature <= 0 or config.kd_lambda < 0:
        raise ValueError(
            "learning_rate and temperature must be > 0 and kd_lambda >= 0. Received: "
            f"learning_rate={config.learning_rate}, temperature={config.temperature}, kd_lambda={config.kd_lambda}"
        )


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """Everything one benchmark run depends on.

    Attributes:
        teacher, student: architecture names of `fitnets_tf.models.zoo`; the student takes the teacher's inputs.
        guided_layer, hint_layer: the stage-1 pair (paper index or layer name); None: each architecture's default.
        batch_size: examples per training step.
        rounds: interleaved timing rounds (the median of the samples is reported).
        warmup: untimed calls of each candidate after its first (tracing / XLA-compiling) call.
        calls_per_sample: step calls per timed sample (raise it for steps of a few milliseconds).
        xla: "both", "on" or "off": the `jit_compile` settings of the step candidates.
        mixed_precision: Keras policy or "auto" (fitnets_tf.precision.compute_policy); "mixed_float16" is ~100x
            slower on CPU (no fast float16 kernels) — it is
            for GPUs; on CPU use "mixed_bfloat16".
        teacher_precision: the teacher's precision of `kd_lowp` and `teacher_forward_lowp` ("auto": the
            hardware's native low precision, `fitnets_tf.precision`); float32 leaves those two out.
        optimizer, learning_rate: the optimizer of every training step (timing does not depend on the rate;
            small, so that untrained nets stay finite).
        temperature, kd_lambda: stage 2's tau and lambda (and tau of `LogitsDistillation`).
        data: "synthetic" (random uint8 images of the student's input shape) or "digits" (the embedded 8x8 digits).
        pipeline_examples: size of the synthetic dataset (one epoch is cached, then reshuffled and augmented).
        pipeline_batches: batches per timed sample of the input pipeline.
        preprocessing: the pipeline's `Preprocessor` kind ("scale"; "gcn_zca" is fitted on the data first).
        crop_padding, flip: augmentation of the pipeline; None: the defaults of the dataset of that image shape
            (CIFAR for 32x32x3: crops padded by 8 and flips; digits: none).
        inference_students: FitNets whose serving latency is compared with the teacher's.
        inference_batch_sizes: batch sizes of the latency measurement.
        latency_runs: interleaved timed calls per model and batch size.
        litert: also time the networks as float32 and int8 LiteRT files (batch 1, one thread).
        litert_rounds, litert_calls_per_sample: interleaved rounds, and invocations per timed sample, of LiteRT.
        seed: weights, synthetic data and shuffling.
        workdir: where the SavedModels are written (None: a temporary directory, removed afterwards).
    """

    teacher: str = "cifar_teacher"
    student: str = "fitnet1"
    guided_layer: Optional[str] = None
    hint_layer: Optional[str] = None
    batch_size: int = 128
    rounds: int = 5
    warmup: int = 1
    calls_per_sample: int = 1
    xla: str = "both"
    mixed_precision: str = "float32"
    teacher_precision: str = "auto"
    optimizer: str = "rmsprop"
    learning_rate: float = 1e-4
    temperature: float = 3.0
    kd_lambda: float = 4.0
    data: str = "synthetic"
    pipeline_examples: int = 10000
    pipeline_batches: int = 20
    preprocessing: str = "scale"
    crop_padding: Optional[int] = None
    flip: Optional[bool] = None
    inference_students: tuple = ("fitnet1", "fitnet2", "fitnet4")
    inference_batch_sizes: tuple = (1, 128)
    latency_runs: int = 5
    litert: bool = True
    litert_rounds: int = 30
    litert_calls_per_sample: int = 10
    seed: int = 0
    workdir: Optional[str] = None

    def validate(self):
        """Raises ValueError naming the first bad setting."""
        positive = {"batch_size": self.batch_size, "rounds": self.rounds, "calls_per_sample": self.calls_per_sample,
                    "pipeline_examples": self.pipeline_examples, "pipeline_batches": self.pipeline_batches,
                    "latency_runs": self.latency_runs, "litert_rounds": self.litert_rounds,
                    "litert_calls_per_sample": self.litert_calls_per_sample}
        check_settings(self, positive, {"xla": XLA_CHOICES, "data": DATA_SOURCES})
        if not self.inference_batch_sizes or any(b < 1 for b in self.inference_batch_sizes):
            raise ValueError(
                f"inference_batch_sizes must be sizes >= 1. Received: {self.inference_batch_sizes!r}"
            )
        if self.data == "digits" and self.pipeline_examples != BenchmarkConfig.pipeline_examples:
            raise ValueError("pipeline_examples sets the size of synthetic data; the digits have a fixed size.")

    def xla_settings(self):
        """The jit_compile values to measure, in order."""
        return {"both": (False, True), "on": (True,), "off": (False,)}[self.xla]


def _fetch(outputs):
    for tensor in tf.nest.flatten(outputs):
        if isinstance(tensor, tf.Tensor):
            tensor.numpy()


def traced_call(body, args, jit_compile):
    """`run()` calling `tf.function(body, jit_compile=jit_compile)(*args)` and fetching its outputs to the host."""
    function = tf.function(body, jit_compile=jit_compile)

    def run():
        _fetch(function(*args))

    return run


# ------------------------------------------------------------------------------------------------ the models
def _single(outputs):
    """The one tensor of a one-output sub-model (Keras returns a list when the outputs were given as a list)."""
    return outputs[0] if isinstance(outputs, (list, tuple)) else outputs


class TruncatedStudentStep:
    """Stage 1 without the teacher: the reference the stage-1 step is compared with.

    The guided sub-model and the regressor of a stage-1 `Distiller` (the same variables) are trained towards a
    FIXED hint tensor, with the step of `Distiller.train_step` in stage "hint": the same `losses.hint_loss`,
    `tf.nn.compute_average_loss`, loss scaling, `optimizer.apply` and a running-mean metric. So
    t(stage 1) - t(this) - t(truncated teacher forward) is what combining them costs.
    """

    def __init__(self, distiller, hint_target, optimizer):
        if distiller.stage != "hint":
            raise ValueError(f"TruncatedStudentStep needs a Distiller compiled for stage 'hint'. "
                             f"Received stage={distiller.stage!r}")
        self.guided_model = distiller.guided_model
        self.regressor = distiller.regressors[distiller.active_pairs[0]]
        self.hint_spatial_mean = distiller.hint_spatial_mean
        self.hint_target = hint_target
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)  # What Keras' compile() does.
        self.optimizer = optimizer
        self.variables = list(self.guided_model.trainable_variables) + list(self.regressor.trainable_variables)
        self.optimizer.build(self.variables)
        self.loss_tracker = keras.metrics.Mean(name="hint_loss")

    def train_step(self, x):
        with tf.GradientTape() as tape:
            regressed = self.regressor(_single(self.guided_model(x, training=True)), training=True)
            per_example = losses.hint_loss(self.hint_target, regressed, self.hint_spatial_mean)
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size(per_example))
            scaled_loss = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled_loss, self.variables)
        self.optimizer.apply(gradients, self.variables)
        self.loss_tracker.update_state(per_example)
        return {"hint_loss": self.loss_tracker.result()}


def keras_distiller(teacher, student, temperature, optimizer):
    """Keras's own `keras.distillation.Distiller` with `LogitsDistillation(temperature)` on the pair, compiled with
    XLA off: student loss sparse CE on logits, weight 0.5, and an accuracy metric.

    It freezes the teacher (`teacher.trainable = False`); ours never trains it either. `teacher` must return
    logits (KD on probabilities would be another loss).
    """
    keras_kd = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=keras.distillation.LogitsDistillation(temperature=temperature),
        student_loss_weight=0.5,
        name="keras_distiller",
    )
    keras_kd.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=False,
    )
    return keras_kd


@dataclasses.dataclass
class BenchmarkModels:
    """The networks and trainers of one benchmark (they share the student's and the teacher's variables)."""

    teacher: keras.Model
    student: keras.Model
    ce: Distiller
    hint: Distiller
    kd: Distiller
    keras_kd: keras.Model
    truncated_student: TruncatedStudentStep
    hint_pair: HintPair
    kd_lowp: Optional[Distiller]  # None when the teacher precision is float32
    kd_auto: Distiller


def build_models(config: BenchmarkConfig, x, y):
    """Builds the teacher, the student and every trainer, each with its own optimizer, and builds their variables.

    Each trainer makes one eager step on (x, y), which creates its optimizer slots and metric variables.
    """
    teacher = build_network(get_spec(config.teacher), seed=config.seed)
    student_spec = get_spec(config.student, input_shape=teacher.input_shape[1:],
                            num_classes=teacher.output_shape[-1])
    student = build_network(student_spec, seed=config.seed + 1)
    pair = HintPair(
        guided=config.guided_layer or get_spec(config.student).hint_layer,
        hint=config.hint_layer or get_spec(config.teacher).hint_layer,
    )

    def optimizer():
        # Keras's RMSprop (rmsprop_max_scaling=0), as the README's benchmark figures were measured.
        return build_optimizer(config.optimizer, config.learning_rate)

    ce = Distiller(student, name="ce_distiller")
    ce.compile(optimizer(), stage="ce", jit_compile=False)
    hint = Distiller(student, teacher, hint_pairs=[pair], seed=config.seed, name="hint_distiller")
    hint.compile(optimizer(), stage="hint", jit_compile=False)
    kd = Distiller(student, teacher, temperature=config.temperature, kd_lambda=config.kd_lambda,
                   name="kd_distiller")
    kd.compile(optimizer(), stage="kd", jit_compile=False)
    keras_kd = keras_distiller(teacher, student, config.temperature, optimizer())
    hint_target = tf.constant(_single(hint.hint_model(x, training=False)))
    truncated = TruncatedStudentStep(hint, hint_target, optimizer())
    kd_lowp = None
    if resolve_teacher_precision(config.teacher_precision) != "float32":
        kd_lowp = Distiller(student, teacher, temperature=config.temperature, kd_lambda=config.kd_lambda,
                            teacher_precision=config.teacher_precision, name="kd_lowp_distiller")
        kd_lowp.compile(optimizer(), stage="kd", jit_compile=False)
    # Stage 2 as a run with teacher_precision "auto" builds it (RunConfig: teacher_precision, jit_compile and
    # teacher_jit_compile all "auto").
    kd_auto = Distiller(student, teacher, temperature=config.temperature, kd_lambda=config.kd_lambda,
                        teacher_precision="auto", name="kd_auto_distiller")
    kd_auto.compile(optimizer(), stage="kd", jit_compile="auto", teacher_jit_compile="auto")
    for trainer in (ce, hint, kd, keras_kd, kd_lowp, kd_auto):
        if trainer is not None:
            trainer.train_step((x, y))
    truncated.train_step(x)
    return BenchmarkModels(teacher, student, ce, hint, kd, keras_kd, truncated, hint.hint_pairs[0], kd_lowp,
                           kd_auto)


def stage2_bodies(ce, teacher_forward, kd, keras_kd, x, y):
    """{step: (body, args)} of stage 2 and its parts on the batch (x, y): "ce" and "kd" (`Distiller.train_step`),
    "teacher_forward" (`teacher_forward(x, training=False)`) and "keras_kd" (Keras's distiller's `train_step`)."""
    return {
        "ce": (lambda a, b: ce.train_step((a, b)), (x, y)),
        "teacher_forward": (lambda a: teacher_forward(a, training=False), (x,)),
        "kd": (lambda a, b: kd.train_step((a, b)), (x, y)),
        "keras_kd": (lambda a, b: keras_kd.train_step((a, b)), (x, y)),
    }


def step_candidate(step, body, args, jit, batch):
    """The `Candidate` "<step>/xla_on|off": `body(*args)` traced with `jit_compile=jit`, `batch` images a call."""
    kind = "train_step" if step in TRAIN_STEPS else "forward"
    return Candidate(f"{step}/{_xla_key(jit)}", traced_call(body, args, jit), batch,
                     info={"step": step, "kind": kind, "xla": jit})


def step_candidates(models: BenchmarkModels, x, y, xla_settings):
    """The step candidates for each XLA setting, named "<step>/xla_on|off", plus "ce_train_on_batch/xla_off"."""
    bodies = {
        **stage2_bodies(models.ce, models.teacher, models.kd, models.keras_kd, x, y),
        "hint": (lambda a, b: models.hint.train_step((a, b)), (x, y)),
        "truncated_student_step": (models.truncated_student.train_step, (x,)),
        "truncated_teacher_forward": (lambda a: models.hint.hint_model(a, training=False), (x,)),
        # Teacher-output caching: the same steps fed the teacher's outputs computed once, as the pipeline does
        # when the training images are not augmented (Distiller.cache_teacher_outputs).
        "hint_cached": (lambda a, h, b: models.hint.train_step((cached_batch(a, (h,)), b)),
                        (x, tf.constant(_single(models.hint.hint_model(x, training=False))), y)),
        "kd_cached": (lambda a, t, b: models.kd.train_step((cached_batch(a, (t,)), b)),
                      (x, tf.constant(models.teacher(x, training=False)), y)),
    }
    stage2 = ("ce", "teacher_forward", "kd", "keras_kd", "kd_cached")
    if models.kd_lowp is not None:
        bodies["kd_lowp"] = (lambda a, b: models.kd_lowp.train_step((a, b)), (x, y))
        bodies["teacher_forward_lowp"] = (lambda a: models.kd_lowp.teacher_logits(a, training=False), (x,))
        stage2 += ("kd_lowp", "teacher_forward_lowp")
    batch = int(x.shape[0])
    candidates = []
    # The steps of one target are consecutive in the round (stage 2 and Keras; then stage 1), per XLA setting.
    for group in (stage2, ("hint", "truncated_student_step", "truncated_teacher_forward", "hint_cached")):
        for jit in xla_settings:
            for step in group:
                candidates.append(step_candidate(step, *bodies[step], jit, batch))

    # kd_auto under Keras's own outer step setting (off when the parts are split), next to Keras's.
    auto_jit = bool(models.kd_auto.jit_compile)
    candidates.insert(len(stage2) * len(xla_settings), Candidate(
        f"kd_auto/{_xla_key(auto_jit)}",
        traced_call(lambda a, b: models.kd_auto.train_step((a, b)), (x, y), auto_jit), batch,
        info={"step": "kd_auto", "kind": "train_step", "xla": auto_jit, "xla_settings": models.kd_auto.xla_settings,
              "teacher_precision": models.kd_auto.teacher_precision}))

    def ce_train_on_batch():
        models.ce.train_on_batch(x, y)  # Returns the logs as Python floats: the step is complete.

    candidates.append(Candidate("ce_train_on_batch/xla_off", ce_train_on_batch, batch,
                                info={"step": "ce_train_on_batch", "kind": "train_step", "xla": False}))
    return candidates


def _xla_key(jit):
    return "xla_on" if jit else "xla_off"


# -------------------------------------------------------------------------------------------- the input data
def source_dataset(config: BenchmarkConfig, image_shape, num_classes):
    """Unbatched (uint8 image, int64 label) data: synthetic random images, or the digits' train split.

    Returns (dataset, number of examples, default crop padding, default flip).
    """
    if config.data == "digits":
        info = dataset_info("digits")
        if tuple(image_shape) != tuple(info.image_shape):
            raise ValueError(
                f"data='digits' gives {info.image_shape} images, but the networks take {tuple(image_shape)}. "
                "Use data='synthetic' or digits-sized networks (digits_teacher, digits_fitnet)."
            )
        splits = load_splits("digits", validation_size=0, seed=config.seed)
        return splits.train, splits.num_examples["train"], info.crop_padding, info.allow_flip
    rng = np.random.default_rng(config.seed)
    images = rng.integers(0, 256, (config.pipeline_examples, *image_shape), dtype=np.uint8)
    labels = rng.integers(0, num_classes, (config.pipeline_examples,), dtype=np.int64)
    cifar = dataset_info("cifar10")
    augment = tuple(image_shape) == tuple(cifar.image_shape)
    crop, flip = (cifar.crop_padding, cifar.allow_flip) if augment else (0, False)
    return tf.data.Dataset.from_tensor_slices((images, labels)), config.pipeline_examples, crop, flip


def build_pipeline(config: BenchmarkConfig, image_shape, num_classes):
    """The training input pipeline (`build_input`, repeated) and how it was made."""
    ds, num_examples, crop, flip = source_dataset(config, image_shape, num_classes)
    crop = crop if config.crop_padding is None else config.crop_padding
    flip = flip if config.flip is None else config.flip
    if config.preprocessing == "scale":
        preprocessor = Preprocessor("scale")
    else:
        images = np.concatenate([b for b, _ in ds.batch(4096).as_numpy_iterator()])
        preprocessor = Preprocessor.fit(config.preprocessing, images)
    dataset = build_input(ds, config.batch_size, True, preprocessor, crop_padding=crop, flip=flip,
                          seed=config.seed, repeat=True)
    info = {"data": config.data, "examples": num_examples, "preprocessing": config.preprocessing,
            "crop_padding": crop, "flip": flip, "batch_size": config.batch_size}
    return dataset, info


def measure_pipeline(dataset, num_examples, batch_size, batches_per_sample, rounds, warmup):
    """Images/s of iterating `dataset` alone; returns (result dict, the first batch after the measurement).

    The first epoch (preprocessing + cache fill + shuffle-buffer fill) is timed once, as `first_epoch_s` /
    `first_epoch_images_per_second`. After it the cache holds the preprocessed examples and every epoch only
    shuffles, augments and batches: that steady state is `images_per_second`, the median of `rounds` back-to-back
    samples of `batches_per_sample` batches, after `warmup` samples.

    Not interleaved with the steps, on purpose: a prefetching pipeline keeps producing while other candidates run,
    so a sample taken after them reads its full buffers (interleaved, this measured 840,000 images/s here instead
    of the producer's rate). Back to back, the consumer is far faster than the producer and the buffers stay empty.
    """
    iterator = iter(dataset)
    epoch_batches = max(1, num_examples // batch_size)
    start = time.perf_counter()
    for _ in range(epoch_batches):
        next(iterator)
    first_epoch_s = time.perf_counter() - start

    def run():
        for _ in range(batches_per_sample):
            next(iterator)

    candidate = Candidate("input_pipeline", run, batch_size * batches_per_sample,
                          info={"step": "input_pipeline", "kind": "input_pipeline", "xla": None,
                                "batches_per_sample": batches_per_sample})
    result = time_interleaved([candidate], rounds, warmup)["input_pipeline"]
    result.update(first_epoch_s=first_epoch_s,
                  first_epoch_images_per_second=epoch_batches * batch_size / first_epoch_s)
    return result, next(iterator)


# ----------------------------------------------------------------------------------------- ratios and targets
def _seconds(results, step, jit, stat="seconds_per_call"):
    result = results.get(f"{step}/{_xla_key(jit)}")
    return None if result is None or result["error"] else result[stat]


# Each target: (numerator steps, denominator steps); the ratio is sum(numerator times) / sum(denominator times).
_RATIO_TERMS = {
    "stage2_overhead": (("kd",), ("ce", "teacher_forward")),
    "stage1_overhead": (("hint",), ("truncated_student_step", "truncated_teacher_forward")),
    "vs_keras_distillation": (("keras_kd",), ("kd",)),  # t(keras) / t(kd) = images/s of kd / images/s of keras
}
_LIMITS = {"stage2_overhead": (OVERHEAD_LIMIT, False), "stage1_overhead": (OVERHEAD_LIMIT, False),
           "vs_keras_distillation": (1.0, True)}


def paired_ratio(results, numerator, denominator):
    """The ratio sum(t(numerator)) / sum(t(denominator)) for one XLA setting, three ways.

    `numerator` and `denominator` are candidate names. Returns None if one is missing or failed, else a dict:
    `ratio`: the median over rounds of the ratio of the samples of the SAME round (the candidates of one target are
    timed one after the other, so load that drifts over seconds cancels out; this decides the target);
    `ratio_per_round`; `ratio_of_medians`; `ratio_of_minima` (other processes only ever add time); `ratio_cpu`: the
    paired ratio of process CPU times (work rather than elapsed time: little affected by other processes).
    """
    rows = [results.get(name) for name in (*numerator, *denominator)]
    if any(r is None or r["error"] for r in rows):
        return None
    top, bottom = rows[: len(numerator)], rows[len(numerator):]

    def per_round(key):
        return [sum(r[key][i] for r in top) / sum(r[key][i] for r in bottom)
                for i in range(min(len(r[key]) for r in rows))]

    wall = per_round("samples_s")
    return {
        "ratio": float(np.median(wall)),
        "ratio_per_round": wall,
        "ratio_of_medians": sum(r["seconds_per_call"] for r in top) / sum(r["seconds_per_call"] for r in bottom),
        "ratio_of_minima": sum(r["min_s"] for r in top) / sum(r["min_s"] for r in bottom),
        "ratio_cpu": float(np.median(per_round("cpu_samples_s"))),
    }


def ratio_target(results, name, jit):
    """One XLA setting of a ratio target of `_RATIO_TERMS` ("stage2_overhead", "stage1_overhead",
    "vs_keras_distillation"): the `paired_ratio` of its candidates "<step>/xla_on|off" (None values when one is
    missing or failed), its `limit` and `passed` (None when nothing could be measured)."""
    numerator, denominator = _RATIO_TERMS[name]
    limit, higher_is_better = _LIMITS[name]
    key = _xla_key(jit)
    ratio = paired_ratio(results, [f"{s}/{key}" for s in numerator], [f"{s}/{key}" for s in denominator])
    entry = ratio or {"ratio": None, "ratio_per_round": [], "ratio_of_medians": None, "ratio_of_minima": None,
                      "ratio_cpu": None}
    passed = None
    if entry["ratio"] is not None:
        passed = bool(entry["ratio"] >= limit if higher_is_better else entry["ratio"] <= limit)
    return {**entry, "limit": limit, "passed": passed}


def compute_targets(results, xla_settings):
    """Ratios and pass/fail of the four targets (see the module docstring), per XLA setting where it applies.

    Returns {target: {"description", "xla_off"/"xla_on": {"ratio", "ratio_per_round", "ratio_of_medians",
    "ratio_of_minima", "ratio_cpu", "limit", "passed"}, "passed"}}. A setting passes when its `ratio` (see
    `paired_ratio`) is within the limit; a target passes when every measured setting does (None: nothing could be
    measured).
    """
    targets = {
        "stage2_overhead": {"description": "t(kd) / (t(ce) + t(teacher_forward)) <= 1.10"},
        "stage1_overhead": {
            "description": "t(hint) / (t(truncated_student_step) + t(truncated_teacher_forward)) <= 1.10"
        },
        "vs_keras_distillation": {"description": "images/s of kd / images/s of keras.distillation >= 1"},
    }
    targets["auto_vs_keras_distillation"] = auto_vs_keras(results, xla_settings)
    for name in _RATIO_TERMS:
        verdicts = []
        for jit in xla_settings:
            targets[name][_xla_key(jit)] = entry = ratio_target(results, name, jit)
            if entry["passed"] is not None:
                verdicts.append(entry["passed"])
        targets[name]["passed"] = all(verdicts) if verdicts else None

    pipeline = results.get("input_pipeline", {}).get("images_per_second")
    fastest_name, fastest = None, None
    per_stage = {}
    for step in FITNETS_TRAIN_STEPS:
        best = None
        for jit in xla_settings:
            seconds = _seconds(results, step, jit)
            rate = None if seconds is None else results[f"{step}/{_xla_key(jit)}"]["images_per_second"]
            if rate and (best is None or rate > best):
                best = rate
            if rate and (fastest is None or rate > fastest):
                fastest_name, fastest = f"{step}/{_xla_key(jit)}", rate
        per_stage[step] = pipeline / best if pipeline and best else None
    ratio = pipeline / fastest if pipeline and fastest else None
    targets["input_pipeline"] = {
        "description": "input pipeline images/s / fastest training step images/s >= 3",
        "fastest_training_step": fastest_name,
        "fastest_training_images_per_second": fastest,
        "pipeline_images_per_second": pipeline,
        "ratio_per_stage": per_stage,
        "ratio": ratio,
        "limit": PIPELINE_FACTOR,
        "passed": None if ratio is None else bool(ratio >= PIPELINE_FACTOR),
    }
    return targets


def auto_vs_keras(results, xla_settings):
    """Stage 2 with teacher_precision="auto" (`kd_auto`) against keras.distillation at its faster XLA setting (by paired ratio):
    t(keras_kd) / t(kd_auto), paired per round (`paired_ratio`), limit `AUTO_VS_KERAS_LIMIT`."""
    auto = next((name for name in results if name.startswith("kd_auto/")), None)
    best = None
    for jit in xla_settings:
        ratio = None if auto is None else paired_ratio(results, [f"keras_kd/{_xla_key(jit)}"], [auto])
        if ratio is not None and (best is None or ratio["ratio"] < best[1]["ratio"]):
            best = (_xla_key(jit), ratio)
    entry = {"description": f"images/s of kd_auto / images/s of keras.distillation at its faster XLA setting "
                            f">= {AUTO_VS_KERAS_LIMIT:g}",
             "ours": auto, "keras": None if best is None else f"keras_kd/{best[0]}",
             "xla_settings": None if auto is None else results[auto].get("xla_settings"),
             "teacher_precision": None if auto is None else results[auto].get("teacher_precision"),
             "limit": AUTO_VS_KERAS_LIMIT, "ratio": None, "passed": None}
    if best is not None:
        entry.update({k: best[1][k] for k in ("ratio", "ratio_per_round", "ratio_of_medians", "ratio_of_minima",
                                              "ratio_cpu")})
        entry["passed"] = bool(best[1]["ratio"] >= AUTO_VS_KERAS_LIMIT)
    return entry


def caching_speedups(results, xla_settings):
    """Speed-up of teacher-output caching per stage and XLA setting: t(step) / t(step with cached outputs),
    paired per round (see `paired_ratio`); None where a candidate is missing or failed."""
    speedups = {}
    for step in ("hint", "kd"):
        for jit in xla_settings:
            key = _xla_key(jit)
            ratio = paired_ratio(results, [f"{step}/{key}"], [f"{step}_cached/{key}"])
            speedups[f"{step}/{key}"] = None if ratio is None else ratio["ratio"]
    return speedups


def compare_xla(results):
    """Per step: median seconds with XLA off and on; `xla_speedup` = t(off) / t(on), paired per round (median of
    the rounds' ratios, as in `paired_ratio`; `xla_speedup_cpu` the same in CPU time); `faster` = "on" when
    `xla_speedup` > 1. Steps with one setting only get None for what needs both."""
    comparison = {}
    for step in STEP_NAMES:
        off, on = _seconds(results, step, False), _seconds(results, step, True)
        if off is None and on is None:
            continue
        entry = {"xla_off_s": off, "xla_on_s": on, "faster": None, "xla_speedup": None,
                 "xla_speedup_per_round": [], "xla_speedup_of_medians": None, "xla_speedup_cpu": None}
        ratio = paired_ratio(results, [f"{step}/xla_off"], [f"{step}/xla_on"])
        if ratio is not None:
            entry.update(faster="on" if ratio["ratio"] > 1 else "off", xla_speedup=ratio["ratio"],
                         xla_speedup_per_round=ratio["ratio_per_round"],
                         xla_speedup_of_medians=ratio["ratio_of_medians"], xla_speedup_cpu=ratio["ratio_cpu"])
        comparison[step] = entry
    return comparison


# ------------------------------------------------------------------------------------------- serving latency
def saved_model_latency(models, preprocessor, batch_sizes, runs, warmup, workdir, seed=0):
    """Seconds per image of each model's exported `serving_default` signature, per batch size, interleaved.

    Args:
        models: {name: keras.Model}, all taking the same input shape.
        preprocessor: the `Preprocessor` put inside each SavedModel.
        batch_sizes: e.g. (1, 128).
        runs: timed calls per model and batch size (round-robin over the models).
        warmup: untimed calls after the first.
        workdir: the SavedModels are written to workdir/<name>.
    Returns:
        {name: {batch size: result of `time_interleaved` (seconds_per_call is per BATCH), plus
        "seconds_per_image"}}, and {name: export path}.
    """
    input_shape = next(iter(models.values())).input_shape[1:]
    servers, paths = {}, {}
    for name, model in models.items():
        paths[name] = export_saved_model(model, preprocessor, os.path.join(workdir, name))
        servers[name] = tf.saved_model.load(paths[name])
    rng = np.random.default_rng(seed)
    timings = {name: {} for name in models}
    for batch in batch_sizes:
        images = tf.constant(rng.integers(0, 256, (batch, *input_shape), dtype=np.uint8))
        candidates = []
        for name, server in servers.items():
            signature = server.signatures["serving_default"]

            def run(signature=signature):
                signature(images=images)["class_id"].numpy()

            candidates.append(Candidate(name, run, batch, info={"batch_size": batch}))
        for name, result in time_interleaved(candidates, runs, warmup).items():
            seconds = result["seconds_per_call"]
            timings[name][batch] = {**result, "seconds_per_image": None if seconds is None else seconds / batch}
    return timings, paths


def litert_latency(models, rounds, calls_per_sample, workdir, seed=0):
    """Seconds per image of each model's float32 and int8 LiteRT file (batch 1, one thread), interleaved.

    Returns:
        {(name, format): result of `time_interleaved` plus "size_bytes" and "path"}.
    """
    input_shape = next(iter(models.values())).input_shape[1:]
    rng = np.random.default_rng(seed)
    calibration = rng.integers(0, 256, (LITERT_CALIBRATION_IMAGES, *input_shape), dtype=np.uint8)
    image = rng.integers(0, 256, (1, *input_shape), dtype=np.uint8)
    candidates, paths = [], {}
    for name, model in models.items():
        for fmt in litert.FORMATS:
            path = litert.write_tflite(model, Preprocessor("scale"), os.path.join(workdir, f"{name}_{fmt}.tflite"),
                                       fmt, calibration)
            classifier = LiteRTClassifier(path, num_threads=1)
            paths[(name, fmt)] = path
            candidates.append(Candidate(f"{name}/{fmt}", lambda c=classifier: c.invoke_one(image), 1,
                                        calls_per_sample=calls_per_sample, info={"model": name, "format": fmt}))
    results = time_interleaved(candidates, rounds, 1)
    return {key: {**results[f"{key[0]}/{key[1]}"], "size_bytes": os.path.getsize(path), "path": path}
            for key, path in paths.items()}


def litert_columns(timings, name, multiplication_ratio, keep_paths):
    """The "litert" entry of an inference row: per format, latency, size, and the speed-up over the teacher's file
    of the same format, paired per round (`paired_ratio`), beside the multiplication ratio."""
    out = {}
    for fmt in litert.FORMATS:
        mine, ref = timings[(name, fmt)], timings[("teacher", fmt)]
        paired = paired_ratio({"teacher": ref, name: mine}, ["teacher"], [name])
        speedup = None if paired is None else paired["ratio"]
        seconds = mine["seconds_per_call"]
        out[fmt] = {
            "latency_ms_per_image": None if seconds is None else seconds * 1e3,
            "min_latency_ms_per_image": None if mine["min_s"] is None else mine["min_s"] * 1e3,
            "samples_s": mine["samples_s"],
            "error": mine["error"],
            "size_bytes": mine["size_bytes"],
            "speedup_vs_teacher": speedup,
            "speedup_vs_teacher_of_medians": None if paired is None else paired["ratio_of_medians"],
            "compression_vs_teacher": ref["size_bytes"] / mine["size_bytes"],
            "speedup_fraction_of_multiplication_ratio": None if speedup is None else speedup / multiplication_ratio,
            "path": mine["path"] if keep_paths else None,
        }
    return out


def litert_targets(rows):
    """The issue-12 LiteRT targets, for FitNet 1 when it was measured (else None)."""
    row = next((r for r in rows if r["model"] == "fitnet1" and r.get("litert")), None)
    if row is None:
        return None
    int8_ms = row["litert"]["int8"]["latency_ms_per_image"]
    fraction = row["litert"]["float32"]["speedup_fraction_of_multiplication_ratio"]
    return {
        "fitnet1_int8_ms_per_image": {"value": int8_ms, "limit": LITERT_INT8_MS_LIMIT,
                                      "passed": None if int8_ms is None else int8_ms <= LITERT_INT8_MS_LIMIT},
        "fitnet1_float32_speedup_over_mult_ratio": {
            "value": fraction, "limit": LITERT_SPEEDUP_FRACTION,
            "passed": None if fraction is None else fraction >= LITERT_SPEEDUP_FRACTION},
    }


def inference_rows(config: BenchmarkConfig, workdir):
    """Serving latency of the teacher and of each FitNet in `config.inference_students`, with their ratios.

    `speedup_vs_teacher` is paired per round (see `paired_ratio`); `multiplication_ratio` = teacher mults / model
    mults, the speed-up the paper's counts predict.
    """
    teacher = build_network(get_spec(config.teacher), seed=config.seed)
    shape, classes = tuple(teacher.input_shape[1:]), teacher.output_shape[-1]
    models = {"teacher": teacher}
    for name in config.inference_students:
        if name in models:
            raise ValueError(f"inference_students lists {name!r} twice (or names it 'teacher').")
        models[name] = build_network(get_spec(name, input_shape=shape, num_classes=classes), seed=config.seed)
    timings, paths = saved_model_latency(models, Preprocessor("scale"), config.inference_batch_sizes,
                                         config.latency_runs, 1, workdir, config.seed)
    lite = litert_latency(models, config.litert_rounds, config.litert_calls_per_sample, workdir,
                          config.seed) if config.litert else None
    rows = []
    ref = timings["teacher"]
    teacher_mults = count_multiplications(teacher)
    teacher_params = count_parameters(teacher)
    for name, model in models.items():
        mults, params = count_multiplications(model), count_parameters(model)
        per_image = {str(b): timings[name][b]["seconds_per_image"] for b in config.inference_batch_sizes}
        speedup, speedup_of_medians = {}, {}
        for b in config.inference_batch_sizes:
            # Paired per round, as the training targets: t(teacher) / t(model) of the same round, median.
            paired = paired_ratio({"teacher": ref[b], name: timings[name][b]}, ["teacher"], [name])
            speedup[str(b)] = None if paired is None else paired["ratio"]
            speedup_of_medians[str(b)] = None if paired is None else paired["ratio_of_medians"]
        rows.append({
            "model": name,
            "architecture": model.name,
            "parameters": params,
            "multiplications": mults,
            "latency_ms_per_image": {b: None if s is None else s * 1e3 for b, s in per_image.items()},
            "images_per_second": {str(b): timings[name][b]["images_per_second"] for b in config.inference_batch_sizes},
            "samples_s_per_batch": {str(b): timings[name][b]["samples_s"] for b in config.inference_batch_sizes},
            "errors": {str(b): timings[name][b]["error"] for b in config.inference_batch_sizes
                       if timings[name][b]["error"]},
            "speedup_vs_teacher": speedup,
            "speedup_vs_teacher_of_medians": speedup_of_medians,
            "multiplication_ratio": teacher_mults / mults,
            "compression_vs_teacher": teacher_params / params,
            "saved_model": paths[name] if config.workdir else None,
            "litert": None if lite is None else litert_columns(lite, name, teacher_mults / mults,
                                                               bool(config.workdir)),
        })
    return rows


# --------------------------------------------------------------------------------------------------- the run
def environment():
    """Versions and machine facts that the timings depend on."""
    return {
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "devices": [d.device_type for d in tf.config.list_physical_devices()],
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def run_benchmark(config: BenchmarkConfig, log=print):
    """Runs every measurement of the module docstring; returns the results as a JSON-ready dict.

    The Keras policy is set to `config.mixed_precision` for the run and restored afterwards.
    """
    config.validate()
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(compute_policy(config.mixed_precision))
    start = time.perf_counter()
    env = environment()
    try:
        keras.utils.set_random_seed(config.seed)
        teacher_spec = get_spec(config.teacher)
        dataset, pipeline_info = build_pipeline(config, teacher_spec.input_shape, teacher_spec.num_classes)
        log(f"[benchmark] input pipeline alone ({pipeline_info['data']} data, {pipeline_info['examples']} "
            f"examples): first epoch, then {config.rounds} samples of {config.pipeline_batches} batches")
        pipeline_result, (x, y) = measure_pipeline(dataset, pipeline_info["examples"], config.batch_size,
                                                   config.pipeline_batches, config.rounds, max(1, config.warmup))
        pipeline_result.update(pipeline_info)
        log(f"[benchmark] building {config.teacher} (teacher) and {config.student} (student), "
            f"batch {config.batch_size}, policy {config.mixed_precision}")
        models = build_models(config, x, y)
        candidates = step_candidates(models, x, y, config.xla_settings())
        log(f"[benchmark] timing {len(candidates)} step candidates: first calls (tracing, XLA compiles), "
            f"{config.warmup} warm-up call(s), then {config.rounds} interleaved rounds")
        results = time_interleaved(candidates, config.rounds, config.warmup)
        results["input_pipeline"] = pipeline_result
        steps_s = time.perf_counter() - start
        names = ", ".join(("teacher",) + tuple(config.inference_students))
        log(f"[benchmark] serving latency of the SavedModels ({names})")
        if config.workdir:
            rows = inference_rows(config, config.workdir)
        else:
            with tempfile.TemporaryDirectory(prefix="fitnets_benchmark_") as workdir:
                rows = inference_rows(config, workdir)
        env["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        return {
            "config": {**dataclasses.asdict(config), "inference_students": list(config.inference_students),
                       "inference_batch_sizes": list(config.inference_batch_sizes)},
            "environment": env,
            "models": {
                "teacher": {"architecture": config.teacher, "parameters": count_parameters(models.teacher),
                            "multiplications": count_multiplications(models.teacher)},
                "student": {"architecture": config.student, "parameters": count_parameters(models.student),
                            "multiplications": count_multiplications(models.student)},
                "hint_pair": {"guided": models.hint_pair.guided, "hint": models.hint_pair.hint,
                              "regressor": models.hint_pair.regressor},
            },
            "measurements": results,
            "targets": compute_targets(results, config.xla_settings()),
            "xla": compare_xla(results),
            "teacher_caching_speedup": caching_speedups(results, config.xla_settings()),
            "inference": {"batch_sizes": list(config.inference_batch_sizes), "through": "SavedModel serving_default",
                          "litert": None if not config.litert else {
                              "through": "ai-edge-litert Interpreter, batch 1, 1 thread, XNNPACK (default)",
                              "rounds": config.litert_rounds, "calls_per_sample": config.litert_calls_per_sample},
                          "models": rows},
            "litert_targets": litert_targets(rows) if config.litert else None,
            "timing_s": {"steps_and_pipeline": steps_s, "total": time.perf_counter() - start},
        }
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


# ------------------------------------------------------------------------------------------------ the tables
def _fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def _table(header, rows):
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip() for line in (header, *rows)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _verdict(passed):
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def format_report(report):
    """The printed tables: steps, targets, XLA, teacher caching, serving latency (SavedModel, LiteRT); and the
    real-size section when the report has one (`scripts/benchmark.py --real_size`)."""
    lines = []
    if "measurements" in report:
        lines += [*_steps_lines(report), *_target_lines(report), *_xla_lines(report), *_serving_lines(report)]
    if report.get("real_size"):
        from benchmark_real_size import real_size_lines  # scripts/benchmark_real_size.py (it imports this module)

        lines += [*load_warning(report["environment"]), *real_size_lines(report["real_size"])]
    return "\n".join(lines)


def load_warning(env):
    """A warning, as printed lines, when the load average exceeded the core count during the run; else []."""
    load = max((env.get("load_average_at_start") or [0])[0], (env.get("load_average_at_end") or [0])[0])
    if env.get("cpu_count") and load > env["cpu_count"]:
        return [f"WARNING: load average {load:.1f} on {env['cpu_count']} cores during the run: other processes "
                "shared the CPU, wall-clock ratios are noisy (compare the CPU-time ratios).", ""]
    return []


def _steps_lines(report):
    """The step timings, the load warning and the input pipeline."""
    measurements = report["measurements"]
    rows = []
    for name, r in measurements.items():
        if name == "input_pipeline":
            continue
        spread = (f"{1e3 * r['min_s']:.1f}-{1e3 * r['max_s']:.1f}" if r.get("min_s") is not None else "-")
        rows.append([name, _fmt(r["seconds_per_call"] and 1e3 * r["seconds_per_call"], ".1f"), spread,
                     _fmt(r["images_per_second"], ",.0f"), _fmt(r["first_call_s"], ".2f"),
                     r["error"] or ""])
    cfg = report["config"]
    out = load_warning(report["environment"]) + [f"Steps: {cfg['student']} (student) / {cfg['teacher']} (teacher), batch {cfg['batch_size']}, "
           f"{cfg['mixed_precision']}; median of {cfg['rounds']} interleaved rounds",
           _table(["candidate", "ms/call", "min-max ms", "images/s", "first call s", "error"], rows), ""]
    pipe = measurements.get("input_pipeline", {})
    if pipe.get("images_per_second"):
        out += [f"Input pipeline alone ({pipe['data']}, {pipe['examples']} examples, crop padding "
                f"{pipe['crop_padding']}, flip {pipe['flip']}): {pipe['images_per_second']:,.0f} images/s steady "
                f"state (median of {len(pipe['samples_s'])} x {pipe['batches_per_sample']} batches; "
                f"min-max {pipe['batch_size'] * pipe['batches_per_sample'] / pipe['max_s']:,.0f}-"
                f"{pipe['batch_size'] * pipe['batches_per_sample'] / pipe['min_s']:,.0f}); first epoch "
                f"(preprocess + cache) {pipe['first_epoch_images_per_second']:,.0f} images/s", ""]
    return out


def _target_lines(report):
    """The targets, and what kd_auto ran."""
    out = []
    trows = []
    for name, target in report["targets"].items():
        if name == "input_pipeline":
            trows.append([name, f"vs {target['fastest_training_step']}", _fmt(target["ratio"], ".2f"), "-", "-", "-",
                          f">= {target['limit']:g}", _verdict(target["passed"])])
            continue
        if name == "auto_vs_keras_distillation":
            trows.append([name, f"{target['ours']} vs {target['keras']}", _fmt(target["ratio"], ".3f"),
                          _fmt(target.get("ratio_of_medians"), ".3f"), _fmt(target.get("ratio_of_minima"), ".3f"),
                          _fmt(target.get("ratio_cpu"), ".3f"), f">= {target['limit']:g}",
                          _verdict(target["passed"])])
            continue
        sign = ">=" if name == "vs_keras_distillation" else "<="
        for key in ("xla_off", "xla_on"):
            if key in target:
                t = target[key]
                trows.append([name, key, _fmt(t["ratio"], ".3f"), _fmt(t["ratio_of_medians"], ".3f"),
                              _fmt(t["ratio_of_minima"], ".3f"), _fmt(t["ratio_cpu"], ".3f"),
                              f"{sign} {t['limit']:g}", _verdict(t["passed"])])
    out += ["Targets (decided by the paired wall-time ratio: median over rounds of the same round's ratio)",
            _table(["target", "setting", "paired ratio", "of medians", "of minima", "CPU-time", "limit", "result"],
                   trows)]
    auto = report["targets"].get("auto_vs_keras_distillation") or {}
    if auto.get("xla_settings"):
        settings = auto["xla_settings"]
        out += [f"kd_auto (stage 2 with teacher_precision=auto, XLA auto): teacher in {auto['teacher_precision']}, XLA for the "
                f"student's part {'on' if settings['student'] else 'off'}, for the teacher's forward "
                f"{'on' if settings['teacher'] else 'off'}"]
    out += [""]
    return out


def _xla_lines(report):
    """XLA on/off per step, and teacher-output caching."""
    out = []
    xrows = [[step, _fmt(e["xla_off_s"] and 1e3 * e["xla_off_s"], ".1f"),
              _fmt(e["xla_on_s"] and 1e3 * e["xla_on_s"], ".1f"), e["faster"] or "-", _fmt(e["xla_speedup"], ".2f"),
              _fmt(e["xla_speedup_cpu"], ".2f")]
             for step, e in report["xla"].items()]
    out += ["XLA (jit_compile) per step",
            _table(["step", "off ms", "on ms", "faster", "off/on (paired)", "CPU-time off/on"], xrows), ""]
    crows = [[name, _fmt(value, ".2f") + "x" if value is not None else "-"]
             for name, value in report["teacher_caching_speedup"].items()]
    out += ["Teacher-output caching: t(step) / t(step fed cached teacher outputs), paired per round",
            _table(["step", "speed-up"], crows), ""]
    return out


def _serving_lines(report):
    """Serving latency through the SavedModel and through LiteRT, and the LiteRT targets."""
    out = []
    batch_sizes = report["inference"]["batch_sizes"]
    irows = []
    for r in report["inference"]["models"]:
        irows.append([r["model"], f"{r['parameters']:,}", f"{r['multiplications'] / 1e6:.1f}M",
                      *[_fmt(r["latency_ms_per_image"][str(b)], ".3f") for b in batch_sizes],
                      *[_fmt(r["speedup_vs_teacher"][str(b)], ".2f") + "x" for b in batch_sizes],
                      f"{r['multiplication_ratio']:.2f}x"])
    out += ["Serving latency (exported SavedModel, uint8 in; ms per image)",
            _table(["model", "params", "mults", *[f"ms/img bs{b}" for b in batch_sizes],
                    *[f"speed-up bs{b}" for b in batch_sizes], "mult ratio"], irows)]
    lrows = []
    for r in report["inference"]["models"]:
        saved = r["speedup_vs_teacher"].get("1")
        for fmt, e in (r.get("litert") or {}).items():
            lrows.append([r["model"], fmt, f"{e['size_bytes'] / 1024:,.0f}", _fmt(e["latency_ms_per_image"], ".3f"),
                          _fmt(e["min_latency_ms_per_image"], ".3f"),
                          _fmt(e["speedup_vs_teacher"], ".2f") + "x", f"{r['multiplication_ratio']:.2f}x",
                          _fmt(e["speedup_fraction_of_multiplication_ratio"], ".2f"),
                          _fmt(saved, ".2f") + "x", e["error"] or ""])
    if lrows:
        out += ["", "Serving latency on LiteRT (.tflite, uint8 in, batch 1, 1 thread; speed-up vs the teacher's file "
                "of the same format, paired per round)",
                _table(["model", "format", "KB", "ms/img", "fastest ms/img", "speed-up", "mult ratio",
                        "speed-up/mult ratio",
                        "SavedModel speed-up bs1", "error"], lrows)]
    targets = report.get("litert_targets")
    if targets:
        t1, t2 = targets["fitnet1_int8_ms_per_image"], targets["fitnet1_float32_speedup_over_mult_ratio"]
        out += ["", "LiteRT targets",
                _table(["target", "value", "limit", "result"],
                       [["FitNet 1 int8 ms/image (bs1, 1 thread)", _fmt(t1["value"], ".3f"), f"<= {t1['limit']:g}",
                         _verdict(t1["passed"])],
                        ["FitNet 1 vs teacher, float32: speed-up / mult ratio", _fmt(t2["value"], ".2f"),
                         f">= {t2['limit']:g}", _verdict(t2["passed"])]])]
    return out
