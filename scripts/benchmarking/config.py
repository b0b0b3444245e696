"""`BenchmarkConfig`: everything one benchmark run depends on, and the checks of its settings."""

import dataclasses
from typing import Optional

from fitnets_tf.harness.config import RunConfig
from fitnets_tf.optimizers import OPTIMIZERS
from fitnets_tf.precision import MIXED_PRECISION, TEACHER_PRECISIONS

XLA_CHOICES = ("both", "on", "off")
DATA_SOURCES = ("synthetic", "digits")


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
    optimizer: str = RunConfig.optimizer
    learning_rate: float = 1e-4
    temperature: float = RunConfig.temperature
    kd_lambda: float = RunConfig.kd_lambda
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
