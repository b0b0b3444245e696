"""The real-size section of the benchmark (`scripts/benchmark.py --real_size`): does the streamed input pipeline
feed the 224x224 stage-2 step without stalling it, and what does stage 2 cost on a keras.applications teacher?

The pair is `scripts/make_backbone_pair.py`'s: a MobileNetV2 (alpha 1.0, random weights, ends in softmax) teacher
and the thin 7-conv student, 224x224x3. The data is a folder of JPEGs (one subfolder per class) read as
`scripts/run.py --dataset=folder:PATH --image_size=224` reads it: the train split of `load_splits` (an
`ExampleReader` decoding the files on the fly) through `build_input` in training mode, repeated: shuffle, read +
decode + resize, the folder's default augmentation (random resized crop + flip), batch, "tf" preprocessing
(MobileNetV2's [-1, 1]), in parallel and prefetched. Without a folder, `images` Fashion-MNIST images are written
as JPEGs first by `scripts/make_image_folder.py` (about 40 KB each at 224x224, the decode cost of a photo folder).

Measured (the machinery of the CIFAR benchmark's modules):
  input_pipeline   the training stream iterated alone, after its first epoch: `measure_pipeline`, back to back and
                   not interleaved with the steps (interleaved, the prefetch buffers fill while the steps run and a
                   sample reads them instead of the producer's rate);
  ce               the student alone on cross-entropy (`Distiller(student)`, stage "ce");
  teacher_forward  the teacher's forward pass as stage 2 calls it (`Distiller.teacher_logits`, training=False);
  kd               stage 2 (`Distiller` stage "kd") at the run's defaults (`RunConfig`: temperature, kd_lambda,
                   teacher precision, optimizer with its RMSProp floor);
  keras_kd         Keras's `keras.distillation.Distiller` with `LogitsDistillation` on the same pair (given the
                   teacher's logits: KD on its softmax output would be another loss), the same optimizer.
The four steps run on one fixed batch (the pipeline's first batch after its measurement), round-robin with
`time_interleaved`, each at the run's settings ("<step>/run"): ours compiled as `scripts/run.py` compiles them
(`jit_compile` and `teacher_jit_compile`, "auto" by default: XLA per model, `fitnets_tf.xla`), Keras's distiller
at its own default (`jit_compile="auto"`: off on a CPU); beside them the XLA levers (below).

Targets, with pass/fail:
  pipeline_vs_stage2:    images/s of the pipeline / images/s of the stage-2 step >= 1: the pipeline never starves
                         the step. Measured apart, each with every core: run together on 2 cores the pipeline's
                         CPU work comes out of the step's, so `pipeline_share_of_cpu` (the pipeline's CPU seconds per
                         image over the pipeline's plus the step's) is reported beside it;
  vs_keras_distillation: t(keras_kd) / t(kd), paired per round (`paired_ratio`) >= 1;
  stage2_overhead:       t(kd) / (t(ce) + t(teacher_forward)), paired per round, <= 1.10.
And the levers (no limit; what each setting buys): the student's CE step at its other XLA setting and stage 2 with XLA
off everywhere ("kd/xla_off") and with the student's part alone compiled ("kd/xla_student"), each that is not the
run's own, timed in the same rounds; `levers` holds t(lever) / t(<step>/run), paired per round. And the roofline of
every timed step (`roofline`: MACs, GMAC/s, share of this CPU's peak measured by a matmul right after them, stage
2's floor, the issue's informational targets).
"""

import contextlib
import dataclasses
import functools
import importlib.util
import os
import tempfile
import time
import types
from typing import Optional

import keras

from benchmarking import roofline
from benchmarking.config import BenchmarkConfig, check_settings
from benchmarking.models import keras_distiller
from benchmarking.pipeline import measure_pipeline
from benchmarking.run import environment
from benchmarking.targets import ratio_target
from benchmarking.timing import paired_ratio, stage2_bodies, traced_call, xla_key
from fitnets_tf import taps
from fitnets_tf.data import Augmentation, Preprocessor, build_input, load_splits
from fitnets_tf.distiller import Distiller
from fitnets_tf.stages import KDStage
from fitnets_tf.harness.config import RunConfig
from fitnets_tf.harness.timing import Candidate, time_interleaved
from fitnets_tf.models.counting import count_multiplications, count_parameters
from fitnets_tf.optimizers import build_optimizer
from fitnets_tf.precision import compute_policy

SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # scripts/
STEPS = ("ce", "teacher_forward", "kd", "keras_kd")  # stage 2's candidates, consecutive in each round
RUN = "run"  # the candidates' label at the run's settings: "<step>/run"
# Stage 2's XLA levers timed beside the run's settings: {label: (student's part compiled, teacher's forward compiled)}.
# The teacher's forward compiled is left out: MobileNetV2's depthwise convolutions compile for minutes and run slower.
STAGE2_LEVERS = {"xla_off": (False, False), "xla_student": (True, False)}
PREPROCESSING = "tf"  # MobileNetV2's convention (keras.applications.mobilenet_v2.preprocess_input)
PIPELINE_VS_STAGE2_LIMIT = 1.0
XLA_SETTINGS = {"auto": "auto", "true": True, "false": False}  # the command line's words -> compile()'s values
DESCRIPTIONS = {
    "pipeline_vs_stage2": "input pipeline images/s (alone) / stage-2 step images/s >= 1: the pipeline never starves "
                          "the step",
    "vs_keras_distillation": "images/s of kd / images/s of keras.distillation >= 1",
    "stage2_overhead": "t(kd) / (t(ce) + t(teacher_forward)) <= 1.10",
}


@dataclasses.dataclass(frozen=True)
class RealSizeConfig:
    """Everything the real-size section depends on.

    Attributes:
        folder: a folder of images, one subfolder per class; None: write `images` Fashion-MNIST JPEGs first (into
            `workdir`/real_size_folder, kept and reused, or a temporary directory).
        images: how many images to write when `folder` is None.
        image_size: the models' (and the resized images') height and width; the default pair is 224x224 only.
        batch_size: images per step and per pipeline batch.
        pipeline_batches: batches per timed sample of the pipeline.
        rounds, warmup, calls_per_sample: as `BenchmarkConfig`'s.
        mixed_precision, teacher_precision, optimizer, temperature, kd_lambda, jit_compile, teacher_jit_compile:
            the run's defaults (`RunConfig`); the XLA settings as on the command line ("auto", "true", "false").
        rmsprop_max_scaling: the run's RMSProp floor (`build_optimizer`), for every trainer alike.
        learning_rate: the benchmark's (small: untrained nets stay finite; timing does not depend on it).
        seed: the weights, the folder's split, the shuffles and the augmentation.
        workdir: where the generated folder is kept (None: a temporary directory, removed).
    """

    folder: Optional[str] = None
    images: int = 512
    image_size: int = 224
    batch_size: int = 32
    pipeline_batches: int = 8
    rounds: int = BenchmarkConfig.rounds
    warmup: int = BenchmarkConfig.warmup
    calls_per_sample: int = BenchmarkConfig.calls_per_sample
    mixed_precision: str = RunConfig.mixed_precision
    teacher_precision: str = RunConfig.teacher_precision
    optimizer: str = RunConfig.optimizer
    rmsprop_max_scaling: float = RunConfig.rmsprop_max_scaling
    learning_rate: float = BenchmarkConfig.learning_rate
    temperature: float = RunConfig.temperature
    kd_lambda: float = RunConfig.kd_lambda
    jit_compile: str = RunConfig.jit_compile
    teacher_jit_compile: str = RunConfig.teacher_jit_compile
    seed: int = RunConfig.seed
    workdir: Optional[str] = None

    def validate(self):
        """Raises ValueError naming the first bad setting."""
        positive = {"images": self.images, "image_size": self.image_size, "batch_size": self.batch_size,
                    "pipeline_batches": self.pipeline_batches, "rounds": self.rounds,
                    "calls_per_sample": self.calls_per_sample}
        check_settings(self, positive, {"jit_compile": XLA_SETTINGS, "teacher_jit_compile": XLA_SETTINGS})
        if self.folder is not None and not os.path.isdir(self.folder):
            raise ValueError(f"folder must be a directory of class subfolders. Received: folder={self.folder!r}")


# ------------------------------------------------------------------------------------------- the scripts used
def load_script(name):
    """scripts/<name>.py as a private module (not put in `sys.modules`), its absl flags defined in a `FlagValues`
    of its own (the module's `FLAGS`): the scripts define --seed, --out and --batch_size, as benchmark.py does, and
    absl refuses a flag defined twice in its global FLAGS (DuplicateFlagError)."""
    import absl
    from absl import flags

    private = flags.FlagValues()

    class PrivateFlags(types.ModuleType):
        def __getattr__(self, attr):
            value = getattr(flags, attr)
            if attr.startswith(("DEFINE", "mark_flag")):
                return functools.partial(value, flag_values=private)
            return value

    shim = PrivateFlags("absl.flags")
    shim.FLAGS = private
    spec = importlib.util.spec_from_file_location(f"_benchmark_{name}", os.path.join(SCRIPTS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    absl.flags = shim  # what `from absl import flags` in the script receives
    try:
        spec.loader.exec_module(module)
    finally:
        absl.flags = flags
    return module


def backbone_pair(seed):
    """`build(num_classes) -> (teacher, student)`: scripts/make_backbone_pair.py's `teacher_model` and
    `student_model` (seeded `seed + 1`, as that script does)."""
    script = load_script("make_backbone_pair")

    def build(num_classes):
        return script.teacher_model(num_classes), script.student_model(num_classes, seed=seed + 1)

    return build


def write_image_folder(path, images, image_size, seed=0):
    """Writes `images` Fashion-MNIST images as `image_size` x `image_size` RGB JPEGs into `path` (one subfolder
    per class) with scripts/make_image_folder.py, in this process; files already there are kept. Needs Debian's
    dataset-fashion-mnist. Returns `path`."""
    script = load_script("make_image_folder")
    script.FLAGS([script.__file__, f"--out={path}", f"--images={images}", f"--size={image_size}", f"--seed={seed}"])
    script.main([])
    return path


# ------------------------------------------------------------------------------------------------- the section
def training_stream(folder, image_size, batch_size, seed):
    """The run's training stream of `folder` (see the module docstring) and what it reads: (dataset, info)."""
    splits = load_splits(f"folder:{folder}", image_size=image_size, channels=3, seed=seed)
    augmentation = Augmentation.resolve(splits.info)  # a folder's default: random_resized_crop + flip
    train = splits.num_examples["train"]
    if batch_size > train:
        raise ValueError(f"batch_size={batch_size} is larger than the {train} training images of {folder}: give "
                         "more images or a smaller batch.")
    dataset = build_input(splits.source("train"), batch_size, True, Preprocessor(PREPROCESSING),
                          augmentation=augmentation, seed=seed, repeat=True)
    info = {"folder": folder, "train_examples": train, "num_classes": splits.info.num_classes,
            "image_shape": list(splits.info.image_shape), "preprocessing": PREPROCESSING,
            "augmentation": augmentation.to_json(), "batch_size": batch_size}
    return dataset, info


def build_trainers(config: RealSizeConfig, teacher, student, x, y):
    """{name: trainer} at `config`'s settings, each with its own optimizer and after one eager step on (x, y) (its
    optimizer slots and metric variables): "ce" and "kd" (stage 2) compiled as a run compiles them, Keras's
    distiller ("keras_kd") at its own default XLA setting; and the levers, each under its candidate's name: the
    student's CE step at its other XLA setting ("ce/xla_on|off") and stage 2 at each of `STAGE2_LEVERS` that is
    not the run's."""

    def optimizer():
        return build_optimizer(config.optimizer, config.learning_rate,
                               rmsprop_max_scaling=config.rmsprop_max_scaling)

    xla = {"jit_compile": XLA_SETTINGS[config.jit_compile],
           "teacher_jit_compile": XLA_SETTINGS[config.teacher_jit_compile]}
    ce = Distiller(student, name="ce_distiller")
    ce.compile(optimizer(), stage="ce", jit_compile=xla["jit_compile"])

    def stage2(name, **settings):
        kd = Distiller(student, teacher, teacher_precision=config.teacher_precision, name=name)
        kd.compile(optimizer(), stage=KDStage(temperature=config.temperature, kd_lambda=config.kd_lambda), **settings)
        return kd

    trainers = {"ce": ce, "kd": stage2("kd_distiller", **xla)}
    kd = trainers["kd"]
    keras_teacher = (kd.teacher_logits if kd.teacher_forward is teacher
                     else taps.logits_model(teacher, "teacher", tuple(teacher.input_shape[1:])))
    trainers["keras_kd"] = keras_distiller(keras_teacher, student, config.temperature, optimizer(),
                                           jit_compile="auto")
    # The levers: the student's step at its other XLA setting, stage 2 with XLA off everywhere and with the
    # student's part alone compiled; a lever that resolves to the run's own settings (op determinism, a layer without
    # XLA) would time the run again, and is left out.
    other = not ce.xla_settings["student"]
    lever = Distiller(student, name=f"ce_{xla_key(other)}_distiller")
    lever.compile(optimizer(), stage="ce", jit_compile=other)
    if lever.xla_settings != ce.xla_settings:
        trainers[f"ce/{xla_key(other)}"] = lever
    for name, (on_student, on_teacher) in STAGE2_LEVERS.items():
        if kd.xla_settings != {"student": on_student, "teacher": on_teacher}:
            lever = stage2(f"kd_{name}_distiller", jit_compile=on_student, teacher_jit_compile=on_teacher)
            if lever.xla_settings != kd.xla_settings:
                trainers[f"kd/{name}"] = lever
    for trainer in trainers.values():
        trainer.train_step((x, y))
    return trainers


def step_candidates(trainers, x, y, batch_size):
    """The timed candidates: each of `STEPS` at the run's settings ("<step>/run", its XLA settings in `info`),
    then each lever of `trainers` ("ce/xla_on|off", "kd/xla_off", "kd/xla_student"). The teacher's forward runs as
    stage 2 runs it."""
    kd = trainers["kd"]
    bodies = stage2_bodies(trainers["ce"], kd.teacher_logits, kd, trainers["keras_kd"], x, y)
    settings = {  # the XLA of each candidate's traced function, and what it stands for
        "ce": (bool(trainers["ce"].jit_compile), {"student": trainers["ce"].xla_settings["student"]}),
        "teacher_forward": (bool(kd.xla_settings["teacher"]), {"teacher": kd.xla_settings["teacher"]}),
        "kd": (bool(kd.jit_compile), dict(kd.xla_settings)),  # split: the outer step off, each part its own
        "keras_kd": (bool(trainers["keras_kd"].jit_compile), {"step": bool(trainers["keras_kd"].jit_compile)}),
    }
    candidates = []
    for step in STEPS:
        jit, xla = settings[step]
        body, args = bodies[step]
        candidates.append(Candidate(f"{step}/{RUN}", traced_call(body, args, jit), batch_size,
                                    info={"step": step, "kind": "forward" if step == "teacher_forward"
                                          else "train_step", "xla": xla}))
    for name, trainer in trainers.items():
        if "/" in name:  # a lever
            step = name.split("/")[0]
            candidates.append(Candidate(name, traced_call(lambda a, b, t=trainer: t.train_step((a, b)), (x, y),
                                                          bool(trainer.jit_compile)),
                                        batch_size, info={"step": step, "kind": "train_step",
                                                          "xla": dict(trainer.xla_settings) if step == "kd"
                                                          else {"student": trainer.xla_settings["student"]}}))
    return candidates


def _per_image(result, key):
    value = result.get(key)
    return None if value is None else value / result["images_per_call"]


def summarize(pipeline, results):
    """Images/s, CPU seconds per image and the targets, from the pipeline's and the steps' measurements."""
    rates = {"input_pipeline": pipeline["images_per_second"],
             **{name: r["images_per_second"] for name, r in results.items() if "step" in r and not r["error"]}}
    cpu = {"input_pipeline": _per_image(pipeline, "cpu_seconds_per_call"),
           **{name: _per_image(r, "cpu_seconds_per_call") for name, r in results.items()
              if "step" in r and not r["error"]}}
    stage2 = f"kd/{RUN}"
    feed, step = rates["input_pipeline"], rates.get(stage2)
    ratio = feed / step if feed and step else None
    feed_cpu, step_cpu = cpu["input_pipeline"], cpu.get(stage2)
    targets = {"pipeline_vs_stage2": {
        "description": DESCRIPTIONS["pipeline_vs_stage2"],
        "pipeline_images_per_second": feed,
        "stage2_images_per_second": step,
        "ratio": ratio,
        "ratio_cpu": step_cpu / feed_cpu if feed_cpu and step_cpu else None,  # images per CPU-second, the same way
        "limit": PIPELINE_VS_STAGE2_LIMIT,
        "passed": None if ratio is None else bool(ratio >= PIPELINE_VS_STAGE2_LIMIT),
    }}
    for name in ("vs_keras_distillation", "stage2_overhead"):
        targets[name] = {"description": DESCRIPTIONS[name],
                         **ratio_target(results, name, candidate=lambda step: f"{step}/{RUN}")}
    levers = {}
    for name in results:
        step = name.split("/")[0]
        if name.endswith(f"/{RUN}") or step not in ("ce", "kd") or results[name]["error"]:
            continue
        ratio = paired_ratio(results, [name], [f"{step}/{RUN}"])
        if ratio is not None:
            levers[name] = {"description": f"t({name}) / t({step}/{RUN}), paired per round: > 1 means the run's "
                                           "settings are faster", "xla": results[name]["xla"], **ratio}
    share = feed_cpu / (feed_cpu + step_cpu) if feed_cpu and step_cpu else None
    return {"images_per_second": rates, "cpu_seconds_per_image": cpu, "pipeline_share_of_cpu": share,
            "targets": targets, "levers": levers}


def measure(config: RealSizeConfig, folder, build_pair, log=print):
    """The section on `folder` (see the module docstring): a JSON-ready dict."""
    start = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    dataset, data = training_stream(folder, config.image_size, config.batch_size, config.seed)
    log(f"[benchmark] real size: input pipeline alone ({data['train_examples']} training images of {folder}, "
        f"{config.image_size}x{config.image_size}): first epoch, then {config.rounds} samples of "
        f"{config.pipeline_batches} batches of {config.batch_size}")
    pipeline, (x, y) = measure_pipeline(dataset, data["train_examples"], config.batch_size,
                                                  config.pipeline_batches, config.rounds, max(1, config.warmup))
    teacher, student = build_pair(data["num_classes"])
    shape = tuple(data["image_shape"])
    for role, model in (("teacher", teacher), ("student", student)):
        if tuple(model.input_shape[1:]) != shape:
            raise ValueError(f"the {role} takes {tuple(model.input_shape[1:])} images, the pipeline gives {shape}: "
                             "set image_size to the models' size.")
    models = {role: {"architecture": model.name, "parameters": count_parameters(model),
                     "multiplications": count_multiplications(model),
                     "nested_models": [layer.name for layer in model.layers if isinstance(layer, keras.Model)]}
              for role, model in (("teacher", teacher), ("student", student))}
    log(f"[benchmark] real size: {teacher.name} (teacher, {models['teacher']['multiplications'] / 1e6:.0f}M mults) "
        f"and {student.name} (student, {models['student']['multiplications'] / 1e6:.0f}M mults), batch "
        f"{config.batch_size}, policy {keras.mixed_precision.global_policy().name}, jit_compile={config.jit_compile}, "
        f"teacher_jit_compile={config.teacher_jit_compile}")
    trainers = build_trainers(config, teacher, student, x, y)
    kd = trainers["kd"]
    candidates = step_candidates(trainers, x, y, config.batch_size)
    log(f"[benchmark] real size: timing {', '.join(c.name for c in candidates)} and this CPU's peak "
        f"({roofline.MATMUL_SIZE}^2 matmuls): "
        f"first calls (tracing), {config.warmup} warm-up call(s), then {config.rounds} interleaved rounds")
    results = time_interleaved(candidates + roofline.peak_candidates(), config.rounds, config.warmup)
    peaks = roofline.peaks_from(results)
    work = roofline.stage2_work(models["student"]["multiplications"], models["teacher"]["multiplications"],
                                keras.mixed_precision.global_policy().compute_dtype, kd.teacher_precision)
    section_roofline = roofline.roofline(results, work, peaks, roofline.cpu_facts(), f"kd/{RUN}")
    return {
        "config": dataclasses.asdict(config),
        "data": data,
        "models": models,
        "policy": keras.mixed_precision.global_policy().name,
        "teacher_precision": kd.teacher_precision,
        "xla": {"jit_compile": config.jit_compile, "teacher_jit_compile": config.teacher_jit_compile,
                "stage2": dict(kd.xla_settings), "keras_kd": bool(trainers["keras_kd"].jit_compile)},
        "input_pipeline": pipeline,
        "measurements": results,
        **summarize(pipeline, results),
        "roofline": section_roofline,
        "timing_s": time.perf_counter() - start,
    }


def run_real_size(config: RealSizeConfig, build_pair=None, log=print):
    """The real-size benchmark: {"environment", "real_size": the section}.

    Args:
        config: a `RealSizeConfig`.
        build_pair: `build(num_classes) -> (teacher, student)` taking `config.image_size` images; None: the
            MobileNetV2 / 7-conv pair of scripts/make_backbone_pair.py (224x224).
        log: progress messages.
    The Keras policy is set to `config.mixed_precision` for the run and restored afterwards.
    """
    config.validate()
    build_pair = build_pair or backbone_pair(config.seed)
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(compute_policy(config.mixed_precision))
    env = environment()
    try:
        with contextlib.ExitStack() as stack:
            folder = config.folder
            if folder is None:
                root = config.workdir or stack.enter_context(tempfile.TemporaryDirectory(prefix="fitnets_real_size_"))
                folder = os.path.join(root, "real_size_folder")
                log(f"[benchmark] real size: writing {config.images} {config.image_size}x{config.image_size} JPEGs "
                    f"into {folder}")
                write_image_folder(folder, config.images, config.image_size, config.seed)
            section = measure(config, folder, build_pair, log)
        section["data"]["generated"] = config.folder is None
        if config.folder is None and config.workdir is None:
            section["data"]["folder"] = None  # removed with the temporary directory
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
    env["load_average_at_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {"environment": env, "real_size": section}


