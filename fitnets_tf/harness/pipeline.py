"""A whole FitNets experiment, from data to exported student: `run(RunConfig(...))`.

Steps, each resumable (a finished step is restored, an interrupted one resumes from its last epoch):
  1. data splits and preprocessing (fitted on train, saved as preprocessing.npz);
  2. the teacher: loaded from `teacher_path` (any .keras model: nested backbones, a final softmax is stripped for
     KD), or trained with cross-entropy; the student: a zoo architecture, or `student_path` (an untrained .keras);
  3. the FitNet: stage 1 (hints; one stage per hint pair, or all pairs jointly), then stage 2 (KD);
  4. baselines on the same student architecture and initial weights: "ce" (plain backprop), "kd" (KD alone);
  5. test accuracy, parameters, multiplications and measured latency of every model -> results.json, results.md;
  6. the FitNet exported as a SavedModel taking raw uint8 images (export/), and as float32 and int8 LiteRT files
     (litert/, `--litert_export`), each measured through the LiteRT runtime (accuracy, agreement with the Keras
     model, size, batch-1 latency on one thread, against the teacher's files) into the same report.

Layout of `model_dir`:
  run.lock (flock-ed by the run using the directory), flags.cfg (written by scripts/run.py), run_config.json,
  preprocessing.npz, checkpoints/<stage>/,
  tensorboard/<stage>/{train,validation}, tensorboard/hparams, tensorboard/graphs/<model>,
  teacher.keras, fitnet.keras, baseline_<name>.keras, results.json, results.md, export/,
  litert/<model>_<float32|int8>.tflite and litert/litert_classifier.py (the input-checking runner, NumPy + LiteRT).
"""

import dataclasses
import datetime
import errno
import json
import os
import shutil
import tempfile
from typing import Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from fitnets_tf import data as data_lib
from fitnets_tf.harness import litert, litert_classifier
from fitnets_tf.errors import ConfigError
from fitnets_tf.distiller import HINT_MODES, Distiller, HintPair
from fitnets_tf.harness.export import export_saved_model
from fitnets_tf.io_utils import atomic_save, atomic_write_json, read_json
from fitnets_tf.models import FitNetsNetwork, build_network
from fitnets_tf.models import zoo
from fitnets_tf.models.counting import count_multiplications
from fitnets_tf.models.spec import INITIALIZERS
from fitnets_tf.optimizers import OPTIMIZERS, build_optimizer
from fitnets_tf.precision import MIXED_PRECISION, TEACHER_PRECISIONS, compute_policy
from fitnets_tf.regressor import REGRESSOR_KINDS
from fitnets_tf.harness.report import (add_ratios, add_training_facts, measure_latency, model_row, plot_learning_curves,
                               write_report)
from fitnets_tf.harness.run_lock import ModelDirInUseError, RunLock
from fitnets_tf.schedules import KDLambdaSchedule
from fitnets_tf.harness.training import accuracy, train_stage

# A baseline is the FitNet's student trained by one method alone: "ce" (plain backprop) or "kd" (KD alone), from
# the FitNet's own initial weights; "<method>_glorot" starts the same architecture from Glorot-uniform weights, a
# reference that trains end to end where the paper's U(-0.005, 0.005) start leaves a deep thin net on a plateau.
BASELINES = ("ce", "kd", "ce_glorot", "kd_glorot")
BASELINE_INITIALIZER = "glorot_uniform"
# Keys that do not change what a run computes: a rerun may change them and still resume.
_RUNTIME_KEYS = ("model_dir", "data_dir", "download", "verbose", "latency_runs", "export", "litert_export",
                 "overwrite", "jit_compile", "experiment", "deterministic")

# What a run recorded before a setting existed actually ran with, where that differs from today's default.
_UNRECORDED_SETTINGS = {"rmsprop_max_scaling": 0.0, "teacher_precision": "float32"}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on. Defaults are the embedded digits experiment (see flags/digits.cfg)."""

    model_dir: str
    experiment: str = "digits"
    # data
    dataset: str = "digits"  # a built-in name, any TFDS image-classification data set, or "folder:PATH"
    image_size: Optional[int] = None  # resize images to image_size x image_size
    data_dir: Optional[str] = None
    download: bool = False
    validation_size: float = 0.1
    train_size: Optional[int] = None  # train on the first N training images only (None: all of them)
    use_extra: bool = False
    preprocessing: Optional[str] = None  # None: the dataset's default (scale; gcn_zca for CIFAR)
    augment: bool = True
    crop_padding: Optional[int] = None  # None: the dataset's default
    flip: Optional[bool] = None  # None: the dataset's default (never for digits)
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
    deterministic: bool = False  # TF op determinism: a resumed run ends with the weights of an uninterrupted one
    batch_size: int = 128
    optimizer: str = "rmsprop"
    learning_rate: float = 0.005
    rmsprop_rho: float = 0.9
    rmsprop_max_scaling: float = 1e5  # the original code's RMSProp floor 1 / max_scaling on the RMS; 0: Keras's
    seed: int = 0
    jit_compile: str = "auto"
    mixed_precision: str = "auto"  # mixed_float16 when a GPU is visible, else float32
    teacher_precision: str = "float32"  # the teacher's forward pass: float32, bfloat16, float16 or auto
    # outputs
    latency_runs: int = 30
    export: bool = True
    # LiteRT files (with --export): formats (float32, int8) x models (fitnet, teacher, baselines, baseline_<name>).
    litert_export: Tuple[str, ...] = ("fitnet", "float32", "int8")
    verbose: int = 2
    overwrite: bool = False

    def to_json(self):
        return dataclasses.asdict(self)

    def identity(self):
        """The settings that define the experiment (a model_dir holding another identity is refused)."""
        return {k: v for k, v in json.loads(json.dumps(self.to_json())).items() if k not in _RUNTIME_KEYS}


def _check(condition, flag, message):
    if not condition:
        raise ConfigError(f"--{flag}: {message}")


def validate(config: RunConfig):
    """Checks every setting that can be checked without data; raises ConfigError naming the flag."""
    _check(not os.path.exists(config.model_dir) or os.path.isdir(config.model_dir), "model_dir",
           f"{config.model_dir!r} is an existing file, not a directory. Give a directory (it is created if absent).")
    _check(config.image_size is None or config.image_size >= 1, "image_size",
           f"must be >= 1. Received: {config.image_size!r}")
    try:
        data_lib.dataset_info(config.dataset, config.image_size)
    except ValueError as error:
        message = str(error)
        raise ConfigError(f"--dataset: {message[:1].lower()}{message[1:]}") from None
    names = zoo.list_architectures()
    for flag in ("teacher", "student"):
        value = getattr(config, flag)
        if getattr(config, f"{flag}_path") is None:
            _check(value in names, flag, f"unknown architecture {value!r}. Choose one of: {', '.join(names)}, or "
                   f"give --{flag}_path.")
    for flag in ("teacher_epochs", "hint_epochs", "kd_epochs", "baseline_epochs", "kd_lambda_decay_start",
                 "patience", "teacher_patience"):
        value = getattr(config, flag)
        _check(value is None or (isinstance(value, int) and value >= 0), flag,
               f"must be an integer >= 0. Received: {value!r}")
    if config.use_extra:
        _check(data_lib.dataset_info(config.dataset, config.image_size).has_extra, "use_extra",
               f"dataset {config.dataset!r} has no 'extra' split (only svhn_cropped has one).")
    _check(config.batch_size >= 1, "batch_size", f"must be >= 1. Received: {config.batch_size}")
    _check(config.train_size is None or (isinstance(config.train_size, int) and config.train_size >= 1),
           "train_size", f"must be a whole number of images >= 1 (or unset for all). Received: {config.train_size!r}")
    _check(config.validation_size >= 0 and (config.validation_size < 1 or float(config.validation_size).is_integer()),
           "validation_size", "a fraction in [0, 1) or a whole number of images. "
           f"Received: {config.validation_size!r}")
    if config.initializer is not None:
        _check(config.initializer in INITIALIZERS, "initializer",
               f"choose one of {', '.join(INITIALIZERS)}. Received: {config.initializer!r}")
    _check(config.learning_rate > 0, "learning_rate", f"must be > 0. Received: {config.learning_rate}")
    _check(config.temperature > 0, "temperature", f"must be > 0. Received: {config.temperature}")
    _check(config.kd_lambda >= 0 and config.kd_lambda_final >= 0, "kd_lambda", "lambda must be >= 0.")
    _check(config.optimizer in OPTIMIZERS, "optimizer", f"choose one of {', '.join(OPTIMIZERS)}.")
    _check(config.rmsprop_max_scaling >= 0, "rmsprop_max_scaling",
           f"must be >= 0 (0: Keras's RMSprop; the original code: 1e5). Received: {config.rmsprop_max_scaling}")
    _check(config.regressor in REGRESSOR_KINDS, "regressor", f"choose one of {', '.join(REGRESSOR_KINDS)}.")
    _check(config.hint_mode in HINT_MODES, "hint_mode", f"choose one of {', '.join(HINT_MODES)}.")
    _check(config.teacher_precision in TEACHER_PRECISIONS, "teacher_precision",
           f"choose one of {', '.join(TEACHER_PRECISIONS)}. Received: {config.teacher_precision!r}")
    _check(config.mixed_precision in MIXED_PRECISION, "mixed_precision",
           f"choose one of {', '.join(MIXED_PRECISION)}.")
    for b in config.baselines:
        _check(b in BASELINES, "baselines", f"unknown baseline {b!r}. Choose from: {', '.join(BASELINES)}.")
        _check(not (b.endswith("_glorot") and config.student_path), "baselines",
               f"{b!r} re-initialises a zoo architecture; a --student_path student starts from its saved weights. "
               "Use ce or kd with --student_path.")
    if config.preprocessing is not None:
        _check(config.preprocessing in data_lib.PREPROCESSING_KINDS, "preprocessing",
               f"choose one of {', '.join(data_lib.PREPROCESSING_KINDS)}.")
    if config.teacher_path is not None:
        _check(os.path.isfile(config.teacher_path), "teacher_path",
               f"no file at {config.teacher_path!r}. Give a teacher saved as .keras (e.g. a previous run's "
               "<model_dir>/teacher.keras), or leave the flag empty to train the teacher.")
    if config.student_path is not None:
        _check(os.path.isfile(config.student_path), "student_path",
               f"no file at {config.student_path!r}. Give an (untrained) student saved as .keras "
               "(`model.save('student.keras')`), or leave the flag empty to use --student.")
    if config.cache_teacher_outputs == "true" and config.augment:
        info = data_lib.dataset_info(config.dataset, config.image_size)
        crop = info.crop_padding if config.crop_padding is None else config.crop_padding
        flip = info.allow_flip if config.flip is None else config.flip
        _check(not (crop or flip), "cache_teacher_outputs",
               "the training images are augmented (crops/flips), so the teacher's outputs change every epoch. "
               "Pass --noaugment, or --cache_teacher_outputs=auto.")
    if config.retrain_from is not None:
        _check(os.path.isdir(os.path.join(config.retrain_from, "checkpoints")), "retrain_from",
               f"{config.retrain_from!r} holds no finished run (no checkpoints/). Give the model_dir of the run "
               "tuned on the validation split.")
        _check(config.validation_size == 0, "retrain_from",
               "the retrain uses train + validation: pass --validation_size=0 with it.")
    _check(config.jit_compile in ("auto", "true", "false"), "jit_compile", "choose auto, true or false.")
    litert_models = ("fitnet", "teacher", "baselines", *(f"baseline_{b}" for b in BASELINES))
    for token in config.litert_export:
        _check(token in litert.FORMATS or token in litert_models, "litert_export",
               f"unknown entry {token!r}. List formats ({', '.join(litert.FORMATS)}) and models "
               f"({', '.join(litert_models)}), e.g. fitnet,float32,int8; empty for none.")
        _check(not token.startswith("baseline_") or token[len("baseline_"):] in config.baselines, "litert_export",
               f"{token!r} is not trained by this run (--baselines={','.join(config.baselines)}).")
    if config.litert_export:
        _check(any(t in litert.FORMATS for t in config.litert_export)
               and any(t not in litert.FORMATS for t in config.litert_export), "litert_export",
               f"name at least one format and one model. Received: {','.join(config.litert_export)}")
    _check(config.cache_teacher_outputs in ("auto", "true", "false"), "cache_teacher_outputs",
           "choose auto, true or false.")


def _spec(config, name, info):
    spec = zoo.get_spec(name, input_shape=info.image_shape, num_classes=info.num_classes)
    if config.initializer:
        spec = dataclasses.replace(spec, initializer=config.initializer)
    return spec


def _hint_pairs(config, teacher_spec, student_spec):
    if config.hints:
        return [HintPair(g, h, config.regressor) for g, h in config.hints]
    return [HintPair(student_spec.hint_layer, teacher_spec.hint_layer, config.regressor)]


def _optimizer(config):
    return build_optimizer(config.optimizer, config.learning_rate, config.rmsprop_rho, config.rmsprop_max_scaling)


def _jit(config):
    return {"auto": "auto", "true": True, "false": False}[config.jit_compile]


def load_model_file(path, flag="teacher_path"):
    """Loads a .keras model (any architecture; custom classes must be registered for serialization)."""
    import zipfile

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises several types for a bad file.
        # For a file that is not a zip archive Keras says "File not found", which misleads: the file exists.
        reason = ("not a zip archive" if not zipfile.is_zipfile(path) else
                  f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
        raise ConfigError(
            f"--{flag}: cannot load {path!r}: the file exists but is not a readable .keras model ({reason}). "
            "Give a model saved with model.save('x.keras') (a subclassed model's class must be registered with "
            "keras.saving.register_keras_serializable and imported)."
        ) from None


def _io_shapes(model):
    """(input (H, W, C), number of classes) of a model, or (None, None) when it does not say."""
    from fitnets_tf.taps import model_input_shape

    shape = model_input_shape(model)
    try:
        classes = model.output_shape[-1]
    except (AttributeError, ValueError, RuntimeError):
        classes = None
    return (None if shape is None else tuple(shape)), classes


def check_shapes(info, teacher, student, teacher_where="", student_where=""):
    """Refuses, in one line naming all three, data / teacher / student whose image shapes or classes disagree."""
    data = (tuple(info.image_shape), info.num_classes)
    (t_shape, t_classes), (s_shape, s_classes) = _io_shapes(teacher), _io_shapes(student)
    bad = [not (t_shape in (None, data[0]) and t_classes in (None, data[1])),
           not (s_shape in (None, data[0]) and s_classes in (None, data[1]))]
    if any(bad):
        flags = "/".join(f for f, b in zip(("--teacher_path", "--student_path"), bad) if b)
        raise ConfigError(
            f"{flags}: the teacher {teacher_where}takes {t_shape} images and predicts {t_classes} classes, but "
            f"dataset {info.name!r} has {data[0]} images and {data[1]} classes, and the student {student_where}"
            f"takes {s_shape} images and predicts {s_classes} classes. Give models built for the data, or resize "
            "the images with --image_size."
        )


def load_teacher(path, info):
    """Loads a teacher .keras file and checks it fits the data; errors name the file and the mismatch."""
    teacher = load_model_file(path, "teacher_path")
    shape, classes = _io_shapes(teacher)
    if shape != tuple(info.image_shape) or classes != info.num_classes:
        raise ConfigError(
            f"--teacher_path: the teacher in {path!r} takes {shape} images and predicts {classes} classes, but "
            f"dataset {info.name!r} has {tuple(info.image_shape)} images and {info.num_classes} classes."
        )
    return teacher


def recorded_identity(recorded):
    """The identity a run_config.json records. A setting the run did not record (a field added since) is filled
    in with what it meant then, so that runs written by earlier versions resume instead of being refused."""
    defaults = {**RunConfig(model_dir="").identity(), **_UNRECORDED_SETTINGS}
    return {**defaults, **{k: v for k, v in recorded.items() if k not in _RUNTIME_KEYS}}


def _unusable_model_dir(config, error):
    reason = error.strerror or str(error)
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        fix = "Give a --model_dir on a writable file system."
    elif error.errno == errno.ENOSPC:
        fix = "Free some space or give another --model_dir."
    else:
        fix = "Give another --model_dir."
    return ConfigError(f"--model_dir: cannot write into {config.model_dir!r} ({reason}: "
                       f"{getattr(error, 'filename', None) or config.model_dir}). {fix}")


def _in_use(error):
    return ConfigError(f"--model_dir: {error}. Wait for it to end or stop it; rerunning the same command then "
                       "resumes. Or choose another --model_dir.")


def _lock_model_dir(config, lock):
    """Creates model_dir and takes its run lock; one-line ConfigErrors for a busy or unwritable directory."""
    try:
        os.makedirs(config.model_dir, exist_ok=True)
        lock.acquire()
    except ModelDirInUseError as error:
        raise _in_use(error) from None
    except OSError as error:
        raise _unusable_model_dir(config, error) from None


def prepare_model_dir(config: RunConfig, lock=None):
    """Takes `lock` (a `RunLock` of model_dir: one run per directory) and refuses a model_dir that holds a
    different experiment (unless overwrite, which moves it aside). Nothing is written into a directory another
    live run holds; an unwritable or busy directory is a one-line ConfigError naming --model_dir."""
    if lock is not None:
        _lock_model_dir(config, lock)
    path = os.path.join(config.model_dir, "run_config.json")
    previous = read_json(path)
    if previous is not None:
        old = recorded_identity(previous)
        if old != config.identity():
            if not config.overwrite:
                diff = sorted(k for k in set(old) | set(config.identity()) if old.get(k) != config.identity().get(k))
                raise ConfigError(
                    f"--model_dir: {config.model_dir!r} holds a different run (differs in: {', '.join(diff)}). "
                    "Choose another --model_dir, or pass --overwrite to move the old run aside and start anew."
                )
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            moved = f"{config.model_dir.rstrip(os.sep)}.replaced-{stamp}"
            if lock is not None:
                lock.release()  # its file moves with the old run
            os.replace(config.model_dir, moved)
            print(f"[fitnets] moved the previous run in {config.model_dir} to {moved}", flush=True)
            if lock is not None:
                _lock_model_dir(config, lock)
    try:
        os.makedirs(config.model_dir, exist_ok=True)
        atomic_write_json(path, config.to_json())
    except OSError as error:
        raise _unusable_model_dir(config, error) from None


class Experiment:
    """Builds and runs the steps of one `RunConfig` (see the module docstring)."""

    def __init__(self, config: RunConfig, strategy=None, command=""):
        validate(config)
        self.config = config
        self.strategy = strategy or tf.distribute.get_strategy()
        self.command = command
        self.info = data_lib.dataset_info(config.dataset, config.image_size)
        self.teacher_spec = None if config.teacher_path else _spec(config, config.teacher, self.info)
        self.student_spec = None if config.student_path else _spec(config, config.student, self.info)
        self.dir = config.model_dir
        self.timings = {}
        self.trained = False  # a stage trained in this process (else every stage had finished before)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    # ---------------------------------------------------------------------------------------------- models
    def build_models(self):
        """Builds (or loads) the teacher and the student, and checks the hint pairs before any training."""
        c = self.config
        with self.strategy.scope():
            if c.teacher_path:
                self.teacher = load_model_file(c.teacher_path, "teacher_path")
            else:
                self.teacher = build_network(self.teacher_spec, seed=c.seed)
            self.student = self.new_student()
            check_shapes(self.info, self.teacher, self.student,
                         f"in {c.teacher_path!r} " if c.teacher_path else f"'{self.teacher.name}' ",
                         f"in {c.student_path!r} " if c.student_path else f"'{self.student.name}' ")
            self.pairs = self._pairs()
            try:
                self.distiller = self._distiller(self.student, self.pairs)
            except ValueError as error:
                raise ConfigError(f"--hints: {error}") from None
            self.pairs = list(self.distiller.hint_pairs)  # resolved ("auto" becomes the chosen pair)
        for report in self.distiller.pair_report:
            print(f"[fitnets] hint pair: guided {report['guided']!r} {tuple(report['guided_shape'])} <- hint "
                  f"{report['hint']!r} {tuple(report['hint_shape'])}, regressor {report['regressor']!r} "
                  f"({report['regressor_reason']})" + (f"; pairing: {report['pairing']}" if report["pairing"] else ""))

    def new_student(self):
        """A fresh student: the zoo architecture (seed + 1), or the .keras file of `student_path` (its saved initial
        weights), so that the FitNet and the baselines start from the same weights."""
        c = self.config
        if c.student_path:
            return load_model_file(c.student_path, "student_path")
        return build_network(self.student_spec, seed=c.seed + 1)

    def _pairs(self):
        """--hints; else the zoo architectures' own pair; else (a model from a file that is not a zoo network)
        the paper's automatic choice, the middle layers (`taps.auto_pair`)."""
        c = self.config
        if c.hints:
            return [HintPair(g, h, c.regressor) for g, h in c.hints]
        zoo_teacher = self.teacher_spec is not None or isinstance(self.teacher, FitNetsNetwork) or (
            self.teacher.name == c.teacher and "conv1" in [layer.name for layer in self.teacher.layers])
        if self.student_spec is not None and zoo_teacher:
            teacher_spec = self.teacher_spec or (self.teacher.spec if isinstance(self.teacher, FitNetsNetwork)
                                                 else _spec(c, c.teacher, self.info))
            return _hint_pairs(c, teacher_spec, self.student_spec)
        return "auto"

    def _distiller(self, student, pairs=()):
        c = self.config
        end = c.kd_lambda_decay_end if c.kd_lambda_decay_end is not None else max(c.kd_epochs - 1, 0)
        schedule = KDLambdaSchedule(c.kd_lambda, c.kd_lambda_final, min(c.kd_lambda_decay_start, end), end)
        return Distiller(
            student, self.teacher, hint_pairs=pairs, temperature=c.temperature, kd_lambda=schedule,
            tau_squared=c.tau_squared, hint_spatial_mean=c.hint_spatial_mean, seed=c.seed,
            input_shape=self.info.image_shape, teacher_precision=c.teacher_precision,
        )

    # ------------------------------------------------------------------------------------------------ data
    def load_splits(self):
        c = self.config
        try:
            self.splits = data_lib.load_splits(
                c.dataset, data_dir=c.data_dir, download=c.download, validation_size=c.validation_size,
                use_extra=c.use_extra, seed=c.seed, image_size=c.image_size,
            )
        except ValueError as error:  # a validation split the data cannot give
            raise ConfigError(f"--validation_size: {error}") from None
        available = self.splits.num_examples.get("train")
        if c.train_size is not None and (available is None or c.train_size < available):
            self.splits = dataclasses.replace(
                self.splits, train=self.splits.train.take(c.train_size),
                num_examples={**self.splits.num_examples, "train": c.train_size if available else None})

    def build_data(self):
        c = self.config
        splits = self.splits
        pre_path = self.path("preprocessing.npz")
        if os.path.exists(pre_path):
            self.preprocessor = data_lib.Preprocessor.load(pre_path)
        else:
            kind = c.preprocessing or self.info.preprocessing
            images = data_lib.images_to_numpy(splits.train) if kind != "scale" else None
            self.preprocessor = data_lib.Preprocessor.fit(kind, images)
            self.preprocessor.save(pre_path)
        crop = self.info.crop_padding if c.crop_padding is None else c.crop_padding
        flip = self.info.allow_flip if c.flip is None else c.flip
        if not c.augment:
            crop, flip = 0, False
        augmented = bool(crop or flip)
        self.cache_teacher = c.cache_teacher_outputs == "true" or (c.cache_teacher_outputs == "auto" and not augmented)
        # Preprocessed, ordered train batches: the input of the teacher-output cache.
        self.train_ordered_ds = data_lib.build_input(splits.train, c.batch_size, False, self.preprocessor)
        num_train = splits.num_examples.get("train")
        if num_train is not None and num_train < c.batch_size:
            raise ConfigError(f"--batch_size: {c.batch_size} is larger than the {num_train} training examples.")
        # An endless stream cut into epochs of `steps_per_epoch` batches: a resumed stage skips exactly the
        # batches it already trained on, and Keras does not stall at epoch ends (TF-NOTES). A new dataset per
        # stage, so that every stage sees the same seeded stream in a fresh process and in a long one alike.
        self.steps_per_epoch = None if num_train is None else num_train // c.batch_size
        self.make_train_ds = lambda: data_lib.build_input(
            splits.train, c.batch_size, True, self.preprocessor, crop_padding=crop, flip=flip, seed=c.seed,
            repeat=self.steps_per_epoch is not None,
        )
        self.val_ds = None if splits.validation is None else data_lib.build_input(
            splits.validation, c.batch_size, False, self.preprocessor
        )
        self.test_ds = data_lib.build_input(splits.test, c.batch_size, False, self.preprocessor)

    # ------------------------------------------------------------------------------------------- training
    def chosen_epochs(self, name, epochs):
        """With retrain_from: the epochs the tuning run chose for stage `name` (its best epoch under early
        stopping, else the epochs it ran) -- the paper's CIFAR protocol: tune on 40K/10K, retrain on 50K."""
        if self.config.retrain_from is None:
            return epochs
        done = read_json(os.path.join(self.config.retrain_from, "checkpoints", name, "done.json"))
        if done is None:
            raise ConfigError(f"--retrain_from: stage {name!r} did not finish in {self.config.retrain_from!r}.")
        return int(done.get("best_epoch") or done["epochs"])

    def _stage(self, name, distiller, stage, epochs, pairs=None, patience=None):
        epochs = self.chosen_epochs(name, epochs)
        patience = self.config.patience if patience is None else patience
        with self.strategy.scope():
            optimizer = _optimizer(self.config)
        train_data = self.make_train_ds
        if stage in ("hint", "kd") and self.cache_teacher:
            def train_data():
                return distiller.cache_teacher_outputs(self.train_ordered_ds, self.config.batch_size,
                                                       shuffle_seed=self.config.seed,
                                                       repeat=self.steps_per_epoch is not None)
        result = train_stage(
            name, distiller, stage, optimizer, train_data, epochs,
            stage_dir=self.path("checkpoints", name), validation_data=self.val_ds, pairs=pairs,
            steps_per_epoch=self.steps_per_epoch,
            jit_compile=_jit(self.config), tensorboard_dir=self.path("tensorboard", name),
            patience=0 if self.config.retrain_from else patience, verbose=self.config.verbose,
        )
        self.trained = self.trained or not result.get("skipped")
        if result.get("seconds") is not None:  # a finished stage's own record: its time survives a rerun
            self.timings[name] = result["seconds"]
        return result

    def _save_model(self, model, name):
        atomic_save(self.path(f"{name}.keras"), model.save)

    def train_teacher(self):
        if self.config.teacher_path:
            return None
        result = self._stage("teacher", self._teacher_trainer(), "ce", self.config.teacher_epochs,
                             patience=self.config.teacher_patience)
        self._save_model(self.teacher, "teacher")
        return result

    def _teacher_trainer(self):
        with self.strategy.scope():
            return Distiller(self.teacher)

    def train_fitnet(self):
        """Algorithm 1: stage 1 (hints) then stage 2 (KD) on the same student variables."""
        c = self.config
        results = {}
        if c.hint_epochs > 0:
            if c.hint_mode == "sequential":
                for i in range(len(self.pairs)):
                    name = "fitnet_stage1" if len(self.pairs) == 1 else f"fitnet_stage1_pair{i + 1}"
                    results[name] = self._stage(name, self.distiller, "hint", c.hint_epochs, pairs=[i])
            else:
                results["fitnet_stage1"] = self._stage("fitnet_stage1", self.distiller, "hint", c.hint_epochs)
        results["fitnet_stage2"] = self._stage("fitnet_stage2", self.distiller, "kd", c.kd_epochs)
        self._save_model(self.student, "fitnet")
        return results

    def train_baselines(self):
        c = self.config
        epochs = c.baseline_epochs if c.baseline_epochs is not None else c.hint_epochs + c.kd_epochs
        self.baseline_models = {}
        results = {}
        for name in c.baselines:
            method, _, start = name.partition("_")
            with self.strategy.scope():
                # Same architecture AND the same initial weights as the FitNet (or Glorot's, for "*_glorot"):
                # only the method differs.
                student = build_network(dataclasses.replace(self.student_spec, initializer=BASELINE_INITIALIZER),
                                        seed=c.seed + 1) if start else self.new_student()
                distiller = Distiller(student) if method == "ce" else self._distiller(student)
            results[f"baseline_{name}"] = self._stage(f"baseline_{name}", distiller, method, epochs)
            self._save_model(student, f"baseline_{name}")
            self.baseline_models[name] = student
        return results

    # ---------------------------------------------------------------------------------------- reporting
    def write_tensorboard_records(self, rows):
        """HParams of the run with the test metrics, and each model's forward graph: one record of each per run
        (the records of an earlier report, e.g. one cut off by a kill, are replaced)."""
        from tensorboard.plugins.hparams import api as hparams_api

        for old in (self.path("tensorboard", "hparams"), self.path("tensorboard", "graphs")):
            shutil.rmtree(old, ignore_errors=True)

        flat = {k: (v if isinstance(v, (bool, int, float, str)) else json.dumps(v))
                for k, v in self.config.identity().items()}
        writer = tf.summary.create_file_writer(self.path("tensorboard", "hparams"))
        with writer.as_default():
            hparams_api.hparams(flat, trial_id=os.path.basename(os.path.abspath(self.dir)))
            for row in rows:
                if row["test_accuracy"] is not None:
                    tf.summary.scalar(f"test_accuracy/{row['model']}", row["test_accuracy"], step=0)
        writer.close()
        for name, model in self.models().items():
            graph_writer = tf.summary.create_file_writer(self.path("tensorboard", "graphs", name))
            forward = tf.function(lambda x, m=model: m(x, training=False))
            tf.summary.trace_on(graph=True)
            forward(tf.zeros((1, *self.info.image_shape)))
            with graph_writer.as_default():
                tf.summary.trace_export(name=f"{name}_forward", step=0)
            graph_writer.close()

    def models(self):
        out = {"teacher": self.teacher, "fitnet": self.student}
        out.update({f"baseline_{k}": m for k, m in getattr(self, "baseline_models", {}).items()})
        return out

    def report(self, stage_results, litert_results=None):
        """results.json, results.md and results_curves.png (accuracy against epoch of every stage)."""
        c = self.config
        histories = {name: result["history"] for name, result in stage_results.items()}
        models = self.models()
        latency = measure_latency(models, self.info.image_shape, batch_sizes=(1, 128), runs=c.latency_runs)
        methods = {"teacher": "teacher (CE)", "fitnet": "FitNet: hints (stage 1) + KD (stage 2)"
                   if c.hint_epochs else "KD only (hint_epochs=0)",
                   "baseline_ce": "student, plain backprop (CE)", "baseline_kd": "student, KD alone",
                   "baseline_ce_glorot": "student from Glorot init, CE",
                   "baseline_kd_glorot": "student from Glorot init, KD alone"}
        rows = [model_row(name, m, accuracy(m, self.test_ds), latency[name], methods.get(name, ""))
                for name, m in models.items()]
        add_ratios(rows)
        add_training_facts(rows, stage_results, {"teacher": "teacher", "fitnet": "fitnet_stage2",
                                                 **{m: m for m in models if m.startswith("baseline_")}},
                           self.info.num_classes)
        hint_epochs = sum(r["epochs"] for name, r in stage_results.items() if name.startswith("fitnet_stage1"))
        plot_learning_curves(histories, {"fitnet_stage2": hint_epochs}, self.path("results_curves.png"))
        self.write_tensorboard_records(rows)  # before results.json: a run with results.json has its records
        run_info = {
            "experiment": c.experiment, "dataset": c.dataset, "command": self.command,
            "num_classes": self.info.num_classes, "test_examples": self.splits.num_examples.get("test"),
            "train_examples": self.splits.num_examples.get("train"),
            "validation_examples": self.splits.num_examples.get("validation"),
            "hint_pairs": [dataclasses.asdict(p) for p in self.distiller.hint_pairs],
            # per pair: both references and shapes, the regressor and why, and how the pair was chosen
            "hint_pair_details": [dict(r) for r in self.distiller.pair_report],
            "config": c.to_json(), "stage_seconds": self.timings, "histories": histories,
            "replicas": self.strategy.num_replicas_in_sync,
            "compute_policy": keras.mixed_precision.global_policy().name,
            "teacher_precision": self.distiller.teacher_precision,
        }
        if litert_results is not None:
            run_info["litert"] = litert_results
        write_report(self.path("results.json"), self.path("results.md"), rows, run_info, batch_sizes=(1, 128))
        return rows

    def export(self):
        export_saved_model(self.student, self.preprocessor, self.path("export"))

    def export_litert(self):
        """Writes the `--litert_export` files into litert/ and measures them through the LiteRT runtime.

        The teacher is converted to every asked format even when its files are not asked for (then into a
        temporary directory): the speed-up and compression columns compare each file with the teacher's on the
        same runtime. Returns the "litert" section of results.json, or None when nothing is asked.
        """
        c = self.config
        formats = [t for t in c.litert_export if t in litert.FORMATS]
        asked = {t for t in c.litert_export if t not in litert.FORMATS}
        if "baselines" in asked:
            asked |= {f"baseline_{b}" for b in c.baselines}
        if not formats or not asked:
            return None
        models = self.models()
        names = [n for n in models if n in asked or n == "teacher"]
        out_dir = self.path("litert")
        os.makedirs(out_dir, exist_ok=True)
        scratch = tempfile.mkdtemp(prefix="fitnets-litert-")
        try:
            calibration = data_lib.images_to_numpy(self.splits.train, limit=litert.CALIBRATION_IMAGES)
            batches = list(self.splits.test.batch(1024).as_numpy_iterator())
            images = np.concatenate([x for x, _ in batches])
            labels = np.concatenate([y for _, y in batches])
            inputs = self.preprocessor(images).numpy()
            artifacts, reference = [], {}
            for name in names:
                reference[name] = np.argmax(models[name].predict(inputs, batch_size=256, verbose=0), axis=-1)
                for fmt in formats:
                    path = os.path.join(out_dir if name in asked else scratch, f"{name}_{fmt}.tflite")
                    litert.write_tflite(models[name], self.preprocessor, path, fmt, calibration)
                    artifacts.append({"model": name, "format": fmt, "path": path})
            rows = litert.measure(artifacts, images, labels, reference, rounds=max(c.latency_runs, 1))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        litert.add_ratios(rows, {name: count_multiplications(models[name]) for name in names})
        for row in rows:  # paths relative to model_dir; None for the teacher's files made only to compare
            row["path"] = os.path.relpath(row["path"], self.dir) if row["path"].startswith(out_dir) else None
        shutil.copyfile(litert_classifier.__file__, os.path.join(out_dir, "litert_classifier.py"))
        from importlib import metadata

        return {"runtime": f"ai-edge-litert {metadata.version('ai-edge-litert')}", "batch_size": 1, "threads": 1,
                "latency": f"median of {max(c.latency_runs, 1)} interleaved samples of 10 calls on one test image",
                "calibration_images": len(calibration), "artifacts": rows}


def is_chief(strategy):
    """True unless this process is a non-chief worker of a multi-worker strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and not has_chief)


def run(config: RunConfig, strategy=None, command="", on_ready=None):
    """Runs (or resumes) the experiment in `config.model_dir`; returns the rows of results.json.

    `on_ready()` is called once the model_dir has been accepted (e.g. to write flags.cfg there). Under a
    multi-worker strategy only the chief writes to `model_dir`; every other worker takes part in the same
    collective steps (checkpoint saves included) but writes into a temporary directory that is removed after.
    """
    validate(config)
    strategy = strategy or tf.distribute.get_strategy()
    if not is_chief(strategy):

        scratch = tempfile.mkdtemp(prefix="fitnets-worker-")
        # To resume with the chief, a worker starts from the chief's checkpoints when it can read them (a shared
        # file system), so that every worker restores the same stage and epoch.
        if os.path.isdir(os.path.join(config.model_dir, "checkpoints")):
            shutil.copytree(os.path.join(config.model_dir, "checkpoints"), os.path.join(scratch, "checkpoints"))
        try:
            return _run(dataclasses.replace(config, model_dir=scratch), strategy, command, None, lock=None)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    # Only the chief writes into model_dir, so only the chief locks it (one run per directory).
    lock = RunLock(config.model_dir, command)
    try:
        lock.check_free()  # refuse a busy model_dir at once, before building models and loading data
    except ModelDirInUseError as error:
        raise _in_use(error) from None
    try:
        return _run(config, strategy, command, on_ready, lock=lock)
    finally:
        lock.release()


def _run(config, strategy, command, on_ready, lock):
    previous_policy = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(compute_policy(config.mixed_precision))
    try:
        keras.utils.set_random_seed(config.seed)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        experiment = Experiment(config, strategy, command)
        experiment.build_models()  # hint layers and regressors are checked before anything is written
        experiment.load_splits()  # absent data fails here, before anything is written
        prepare_model_dir(config, lock)
        if on_ready is not None:
            on_ready()
        experiment.build_data()
        stage_results = {}
        teacher_result = experiment.train_teacher()
        if teacher_result:
            stage_results["teacher"] = teacher_result
        stage_results.update({**experiment.train_fitnet(), **experiment.train_baselines()})
        finished = read_json(experiment.path("results.json"))
        if finished is not None and not experiment.trained:
            # Every stage had finished and been reported: keep what that run measured (test accuracies,
            # latencies, stage_seconds, TensorBoard records, LiteRT files) instead of measuring again.
            rows = finished["models"]
            print(f"[fitnets] every stage in {config.model_dir} had finished: kept its results.json, results.md and "
                  "TensorBoard records as first measured (delete results.json and rerun to measure again)",
                  flush=True)
        else:
            litert_results = experiment.export_litert() if config.export else None
            rows = experiment.report(stage_results, litert_results)
        if config.export:
            if finished is not None and not experiment.trained and os.path.exists(experiment.path("export")):
                print(f"[fitnets] kept the export in {experiment.path('export')} (delete it and rerun to export "
                      "again)", flush=True)
            else:
                experiment.export()
        return rows
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)
