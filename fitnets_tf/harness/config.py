"""What a run depends on: `RunConfig`, which of its fields define the experiment, and `validate`.

Every field says in its metadata what kind of setting it is, so a new field cannot be left unclassified:
- `runtime=True`: the setting does not change what a run computes (where it writes, how much it prints, how often it
  times a model); a rerun may change it and still resume the same model_dir. Every other field is part of the run's
  `identity()`, and a model_dir holding another identity is refused.
- `unrecorded=value`: runs recorded before the setting existed ran with `value` (where that differs from today's
  default), so their model_dirs resume instead of being refused.

Errors name the setting as a backquoted field (`hint_epochs`), see `fitnets_tf.errors`.
"""

import dataclasses
import json
import math
import os
from typing import Optional, Tuple

from fitnets_tf import data as data_lib
from fitnets_tf.distiller import HINT_MODES
from fitnets_tf.errors import ConfigError, check
from fitnets_tf.harness import litert
from fitnets_tf.models import zoo
from fitnets_tf.models.spec import INITIALIZERS
from fitnets_tf.optimizers import OPTIMIZERS
from fitnets_tf.precision import MIXED_PRECISION, TEACHER_PRECISIONS
from fitnets_tf.regressor import REGRESSOR_KINDS

# A baseline is the FitNet's student trained by one method alone: "ce" (plain backprop) or "kd" (KD alone), from
# the FitNet's own initial weights; "<method>_glorot" starts the same architecture from Glorot-uniform weights, a
# reference that trains end to end where the paper's U(-0.005, 0.005) start leaves a deep thin net on a plateau.
BASELINES = ("ce", "kd", "ce_glorot", "kd_glorot")
BASELINE_INITIALIZER = "glorot_uniform"


def runtime(default=dataclasses.MISSING):
    """A field that does not change what a run computes: a rerun may change it and still resume."""
    return dataclasses.field(default=default, metadata={"runtime": True})


def added_later(default, recorded):
    """A field that defines the run, added after runs were recorded without it: those ran with `recorded`."""
    return dataclasses.field(default=default, metadata={"unrecorded": recorded})


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on. Defaults are the embedded digits experiment (see flags/digits.cfg)."""

    model_dir: str = runtime()
    experiment: Optional[str] = runtime(None)  # the run's name in its report; None: the data set's (`run_name`)
    # data
    dataset: str = "digits"  # a built-in name, any TFDS image-classification data set, or "folder:PATH"
    image_size: Optional[int] = None  # resize images to image_size x image_size
    data_dir: Optional[str] = runtime(None)
    download: bool = runtime(False)
    validation_size: float = 0.1
    train_size: Optional[int] = None  # train on the first N training images only (None: all of them)
    use_extra: bool = False
    channels: Optional[int] = None  # 1 (grey) or 3 (RGB): convert the images; None: the data's own
    # a folder's files that cannot be decoded: stop (name them) or skip (leave them out; counted in results.json)
    bad_images: str = runtime("stop")
    preprocessing: Optional[str] = None  # None: the dataset's default (scale; gcn_zca for CIFAR)
    augment: bool = True
    # pad_crop, random_resized_crop or none; None: the dataset's default (pad_crop for CIFAR, random_resized_crop
    # for a folder, none otherwise)
    augmentation: Optional[str] = None
    crop_padding: Optional[int] = None  # None: the dataset's default
    flip: Optional[bool] = None  # None: the dataset's default (never for digits)
    # a data set read as a stream (TFDS, uncached) is shuffled in a buffer of this many MB of uint8 images
    shuffle_buffer_mb: int = 256
    # where decoded training images are kept between epochs: auto (memory if within memory_budget_mb, else disk
    # for data that must be decoded, else none), memory, disk (<model_dir>/cache), none
    input_cache: str = runtime("auto")
    # the memory that the input cache and the teacher-output cache may take, each (MB)
    memory_budget_mb: int = runtime(512)
    # networks
    teacher: str = "digits_teacher"
    student: str = "digits_fitnet"
    teacher_path: Optional[str] = None
    student_path: Optional[str] = None  # an untrained student saved as .keras, instead of `student`
    initializer: Optional[str] = None  # None: each architecture's own
    # hints (stage 1)
    hints: Optional[Tuple[Tuple[str, str], ...]] = None  # ((guided, hint), ...); None: the architectures' defaults
    regressor: str = "conv"
    hint_mode: str = "sequential"
    hint_spatial_mean: bool = False
    # KD (stage 2)
    temperature: float = 3.0
    kd_lambda: float = 4.0
    kd_lambda_final: float = 1.0
    kd_lambda_decay_start: int = 0
    kd_lambda_decay_end: Optional[int] = None  # None: the last epoch of stage 2
    tau_squared: bool = False
    # training
    teacher_epochs: int = 30
    hint_epochs: int = 30
    kd_epochs: int = 60
    baseline_epochs: Optional[int] = None  # None: hint_epochs + kd_epochs, the FitNet's whole budget
    baselines: Tuple[str, ...] = ("ce", "kd")
    patience: int = 0  # > 0: early stopping on validation (paper: 100 epochs), keeping the best epoch
    teacher_patience: Optional[int] = None  # the teacher's early stopping; None: `patience`
    retrain_from: Optional[str] = None  # a tuning run's model_dir: retrain on train+val for its chosen epochs
    cache_teacher_outputs: str = "auto"  # "auto": on when training images are not augmented; "true"; "false"
    # TF op determinism: a resumed run ends with the weights of an uninterrupted one
    deterministic: bool = runtime(False)
    batch_size: int = 128
    optimizer: str = "rmsprop"
    learning_rate: float = 0.005
    rmsprop_rho: float = 0.9
    # the original code's RMSProp floor 1 / max_scaling on the RMS; 0: Keras's
    rmsprop_max_scaling: float = added_later(1e5, recorded=0.0)
    seed: int = 0
    jit_compile: str = runtime("auto")  # XLA for the student's part of each step: auto, true, false
    teacher_jit_compile: str = runtime("auto")  # XLA for the teacher's forward pass (fitnets_tf.xla)
    mixed_precision: str = "auto"  # mixed_float16 when a GPU is visible, else float32
    # the teacher's forward pass: float32, bfloat16, float16 or auto
    teacher_precision: str = added_later("float32", recorded="float32")
    # measure a given teacher on validation images before distilling and stop when it is at chance level
    check_teacher: bool = runtime(True)
    # outputs
    latency_runs: int = runtime(30)
    export: bool = runtime(True)
    # LiteRT files (with `export`): formats (float32, int8) x models (fitnet, teacher, baselines, baseline_<name>).
    litert_export: Tuple[str, ...] = runtime(("fitnet", "float32", "int8"))
    verbose: int = runtime(2)
    overwrite: bool = runtime(False)

    def to_json(self):
        return dataclasses.asdict(self)

    def run_name(self):
        """The run's name in results.md and results.json: `experiment`, else the data set's name (a folder's
        directory name)."""
        if self.experiment:
            return self.experiment
        if data_lib.folder.is_folder(self.dataset):
            return f"folder {os.path.basename(os.path.normpath(self.dataset[len(data_lib.folder.PREFIX):]))}"
        return self.dataset

    def identity(self):
        """The settings that define the experiment (a model_dir holding another identity is refused): every field
        not marked `runtime`, as JSON values."""
        kept = runtime_fields(type(self))
        return {k: v for k, v in json.loads(json.dumps(self.to_json())).items() if k not in kept}


def runtime_fields(config_type=RunConfig):
    """The names of the fields marked `runtime` (a rerun may change them and still resume)."""
    return frozenset(f.name for f in dataclasses.fields(config_type) if f.metadata.get("runtime"))


def unrecorded_settings(config_type=RunConfig):
    """{field: value} for the fields added after runs were recorded without them: what those runs ran with."""
    return {f.name: f.metadata["unrecorded"] for f in dataclasses.fields(config_type) if "unrecorded" in f.metadata}


def validate(config: RunConfig):
    """Checks every setting that can be checked without data; raises ConfigError naming the setting."""
    check(not os.path.exists(config.model_dir) or os.path.isdir(config.model_dir), "model_dir",
          f"{config.model_dir!r} is an existing file, not a directory. Give a directory (it is created if absent).")
    _validate_data(config)
    _validate_networks(config)
    _validate_training(config)
    _validate_outputs(config)


def _validate_data(config):
    check(config.image_size is None or config.image_size >= 1, "image_size",
          f"must be >= 1. Received: {config.image_size!r}")
    check(config.channels in (None, *data_lib.CHANNELS), "channels",
          f"must be 1 (grey) or 3 (RGB), or unset for the data's own. Received: {config.channels!r}")
    check(config.bad_images in data_lib.BAD_IMAGE_CHOICES, "bad_images",
          f"choose one of {', '.join(data_lib.BAD_IMAGE_CHOICES)}. Received: {config.bad_images!r}")
    check(config.augmentation is None or config.augmentation in data_lib.AUGMENTATIONS, "augmentation",
          f"choose one of {', '.join(data_lib.AUGMENTATIONS)}. Received: {config.augmentation!r}")
    check(config.input_cache in data_lib.CACHE_MODES, "input_cache",
          f"choose one of {', '.join(data_lib.CACHE_MODES)}. Received: {config.input_cache!r}")
    check(isinstance(config.memory_budget_mb, int) and config.memory_budget_mb >= 0, "memory_budget_mb",
          f"must be a whole number of MB >= 0. Received: {config.memory_budget_mb!r}")
    check(isinstance(config.shuffle_buffer_mb, int) and config.shuffle_buffer_mb >= 1, "shuffle_buffer_mb",
          f"must be a whole number of MB >= 1. Received: {config.shuffle_buffer_mb!r}")
    try:
        info = data_lib.dataset_info(config.dataset, config.image_size, config.channels)
    except ValueError as error:
        message = str(error)
        raise ConfigError(f"`dataset`: {message[:1].lower()}{message[1:]}") from None
    if config.use_extra:
        check(info.has_extra, "use_extra", f"dataset {config.dataset!r} has no 'extra' split (only svhn_cropped "
              "has one).")
    check(config.train_size is None or (isinstance(config.train_size, int) and config.train_size >= 1),
          "train_size", f"must be a whole number of images >= 1 (or unset for all). Received: {config.train_size!r}")
    check(config.validation_size >= 0 and (config.validation_size < 1 or float(config.validation_size).is_integer()),
          "validation_size", f"a fraction in [0, 1) or a whole number of images. Received: {config.validation_size!r}")
    if config.preprocessing is not None:
        check(config.preprocessing in data_lib.PREPROCESSING_KINDS, "preprocessing",
              f"choose one of {', '.join(data_lib.PREPROCESSING_KINDS)}.")
    check(config.cache_teacher_outputs in ("auto", "true", "false"), "cache_teacher_outputs",
          "choose auto, true or false.")
    if config.cache_teacher_outputs == "true":
        check(not training_augmentation(config, info).active, "cache_teacher_outputs",
              "the training images are augmented (crops/flips), so the teacher's outputs change every epoch. "
              "Turn off `augment` (or set `augmentation` to none and `flip` off), or set `cache_teacher_outputs` "
              "to auto.")


def training_augmentation(config, info):
    """The `data.Augmentation` of the run's training images: the settings, else the data set's defaults."""
    if not config.augment:
        return data_lib.Augmentation("none")
    return data_lib.Augmentation.resolve(info, config.augmentation, config.crop_padding, config.flip)


def _validate_networks(config):
    names = zoo.list_architectures()
    for role in ("teacher", "student"):
        if getattr(config, f"{role}_path") is None:
            check(getattr(config, role) in names, role, f"unknown architecture {getattr(config, role)!r}. Choose "
                  f"one of: {', '.join(names)}, or give `{role}_path`.")
    for b in config.baselines:
        check(b in BASELINES, "baselines", f"unknown baseline {b!r}. Choose from: {', '.join(BASELINES)}.")
        check(not (b.endswith("_glorot") and config.student_path), "baselines",
              f"{b!r} re-initialises a zoo architecture; a `student_path` student starts from its saved weights. "
              "Use ce or kd with `student_path`.")
    if config.teacher_path is not None:
        check(os.path.isfile(config.teacher_path), "teacher_path",
              f"no file at {config.teacher_path!r}. Give a teacher saved as .keras (e.g. a previous run's "
              "<model_dir>/teacher.keras), or leave `teacher_path` empty to train the teacher.")
    if config.student_path is not None:
        check(os.path.isfile(config.student_path), "student_path",
              f"no file at {config.student_path!r}. Give an (untrained) student saved as .keras "
              "(model.save('student.keras')), or leave `student_path` empty to use `student`.")
    if config.initializer is not None:
        check(config.initializer in INITIALIZERS, "initializer",
              f"choose one of {', '.join(INITIALIZERS)}. Received: {config.initializer!r}")
    check(config.regressor in REGRESSOR_KINDS, "regressor", f"choose one of {', '.join(REGRESSOR_KINDS)}.")
    check(config.hint_mode in HINT_MODES, "hint_mode", f"choose one of {', '.join(HINT_MODES)}.")
    check(config.teacher_precision in TEACHER_PRECISIONS, "teacher_precision",
          f"choose one of {', '.join(TEACHER_PRECISIONS)}. Received: {config.teacher_precision!r}")
    check(config.mixed_precision in MIXED_PRECISION, "mixed_precision", f"choose one of {', '.join(MIXED_PRECISION)}.")


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate_training(config):
    for field in ("teacher_epochs", "hint_epochs", "kd_epochs", "baseline_epochs", "kd_lambda_decay_start",
                  "patience", "teacher_patience"):
        value = getattr(config, field)
        check(value is None or (isinstance(value, int) and value >= 0), field,
              f"must be an integer >= 0. Received: {value!r}")
    check(config.batch_size >= 1, "batch_size", f"must be >= 1. Received: {config.batch_size}")
    check(_finite(config.learning_rate) and config.learning_rate > 0, "learning_rate",
          f"must be a finite number > 0. Received: {config.learning_rate}")
    check(_finite(config.temperature) and config.temperature > 0, "temperature",
          f"must be a finite number > 0. Received: {config.temperature}")
    for field in ("kd_lambda", "kd_lambda_final"):
        value = getattr(config, field)
        check(_finite(value) and value >= 0, field, f"must be a finite number >= 0. Received: {value}")
    check(config.optimizer in OPTIMIZERS, "optimizer", f"choose one of {', '.join(OPTIMIZERS)}.")
    check(config.rmsprop_max_scaling >= 0, "rmsprop_max_scaling",
          f"must be >= 0 (0: Keras's RMSprop; the original code: 1e5). Received: {config.rmsprop_max_scaling}")
    check(config.jit_compile in ("auto", "true", "false"), "jit_compile", "choose auto, true or false.")
    check(config.teacher_jit_compile in ("auto", "true", "false"), "teacher_jit_compile",
          "choose auto, true or false.")
    if config.retrain_from is not None:
        check(os.path.isdir(os.path.join(config.retrain_from, "checkpoints")), "retrain_from",
              f"{config.retrain_from!r} holds no finished run (no checkpoints/). Give the model_dir of the run "
              "tuned on the validation split.")
        check(config.validation_size == 0, "retrain_from",
              "the retrain uses train + validation: set `validation_size` to 0 with it.")


def _validate_outputs(config):
    litert_models = ("fitnet", "teacher", "baselines", *(f"baseline_{b}" for b in BASELINES))
    for token in config.litert_export:
        check(token in litert.FORMATS or token in litert_models, "litert_export",
              f"unknown entry {token!r}. List formats ({', '.join(litert.FORMATS)}) and models "
              f"({', '.join(litert_models)}), e.g. fitnet,float32,int8; empty for none.")
        check(not token.startswith("baseline_") or token[len("baseline_"):] in config.baselines, "litert_export",
              f"{token!r} is not trained by this run (`baselines` is {','.join(config.baselines)}).")
    if config.litert_export:
        check(any(t in litert.FORMATS for t in config.litert_export)
              and any(t not in litert.FORMATS for t in config.litert_export), "litert_export",
              f"name at least one format and one model. Received: {','.join(config.litert_export)}")
