"""What a run depends on: `RunConfig`, each of its settings declared once, and `validate`.

Every field is a `setting`: its default, its help (what it does, naming other settings as backquoted fields) and
what kind of setting it is, so a new field cannot be left undescribed or unclassified. The command line
(scripts/run_flags.py) is generated from these fields; nothing else repeats a default.
- `runtime=True`: the setting does not change what a run computes (where it writes, how much it prints, how often it
  times a model); a rerun may change it and still resume the same model_dir. Every other field is part of the run's
  `identity()`, and a model_dir holding another identity is refused.
- `choices`: the closed set of values the setting takes; `validate` refuses any other.
- `unrecorded=value`: runs recorded before the setting existed ran with `value` (where that differs from today's
  default), so their model_dirs resume instead of being refused.

A new setting is one field here, `name: type = setting(default, "What it does.", ...)`; the scripts offer it as a
flag of the same name with that default and help, and tests/test_config.py checks that every field has its flag.

Errors name the setting as a backquoted field (`hint_epochs`), see `fitnets_tf.errors`.
"""

import dataclasses
import json
import math
import os
from typing import Optional, Tuple

from fitnets_tf import data as data_lib
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
BASELINES = ("ce", "kd", "ce_glorot", "kd_glorot", "one_stage")
GLOROT_SUFFIX = "_glorot"  # a baseline "<method>_glorot" starts from Glorot-uniform weights
BASELINE_INITIALIZER = "glorot_uniform"
# With several hint pairs: one stage 1 per pair in order (the original code), or one joint stage for all.
HINT_MODES = ("sequential", "joint")
# A switch whose "auto" lets the run decide from what it finds (the data, the device).
AUTO_TRUE_FALSE = ("auto", "true", "false")


def setting(default=dataclasses.MISSING, help="", *, runtime=False, choices=None,
            unrecorded=dataclasses.MISSING):
    """A `RunConfig` field, declared once: its `default` (none: a required setting), its `help` (one or more
    sentences saying what it does; other settings are named as backquoted fields), whether it is `runtime`, its
    `choices` (a closed set; None is allowed too where the default is None) and, for a setting added after runs
    were recorded, the value those runs ran with (`unrecorded`). The field's metadata holds them under those names
    ("help", "runtime", "choices", "unrecorded"), which is what scripts/run_flags.py builds each flag from."""
    if not help:
        raise TypeError("a setting needs its help: what it does, in a sentence.")
    metadata = {"help": help, "runtime": runtime}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if unrecorded is not dataclasses.MISSING:
        metadata["unrecorded"] = unrecorded
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on. Defaults are the embedded digits experiment (see flags/digits.cfg)."""

    model_dir: str = setting(
        help="The directory that receives everything the run produces (checkpoints, TensorBoard logs, exports, "
             "results.json); a rerun with the same directory resumes.",
        runtime=True)
    experiment: Optional[str] = setting(
        None, "A name for the run, shown in the report. Default (None): the data set's name (a folder's directory "
              "name).",
        runtime=True)
    # data
    dataset: str = setting(
        "digits", f"The data set: one of {', '.join(data_lib.DATASETS)} ('digits' is embedded and needs no "
                  "network); any TFDS image-classification data set by name (an 'image' and a 'label' feature); or "
                  "folder:PATH, a local folder with one subfolder of images per class (test and validation splits "
                  "drawn with `seed`).")
    image_size: Optional[int] = setting(
        None, "Resize every image to image_size x image_size (bilinear); needed for data sets whose images have no "
              "fixed size. Default (None): the data set's own size.")
    data_dir: Optional[str] = setting(
        None, "TFDS data directory holding prepared data (see `tfds build`).", runtime=True)
    download: bool = setting(False, "Let TFDS download a missing data set (needs internet).", runtime=True)
    validation_size: float = setting(
        0.1, "Fraction of the train split held out for validation (a whole number >= 1 is a count of images; 0 for "
             "none).")
    train_size: Optional[int] = setting(
        None, "Train on the first N training images only (after the validation images are taken from the end of the "
              "train split). Default (None): all of them.")
    use_extra: bool = setting(False, "SVHN only: add the 531K-image 'extra' split to train, as the paper did.")
    channels: Optional[int] = setting(
        None, "Convert every image to 1 (grey) or 3 (RGB) channels, e.g. a grey folder for an RGB backbone. "
              "Default (None): the data's own.")
    bad_images: str = setting(
        "stop", "A folder's image files that cannot be decoded (every file is decoded once before training): stop "
                "(the run stops, naming them) or skip (they are left out and counted in results.json).",
        runtime=True, choices=data_lib.BAD_IMAGE_CHOICES)
    preprocessing: Optional[str] = setting(
        None, "Input preprocessing. Default (None): the data set's (GCN + ZCA for CIFAR, scale to [0, 1] "
              "otherwise). A pretrained keras.applications teacher needs its own: tf ([-1, 1]: MobileNet, "
              "MobileNetV2, ResNetV2, Xception, Inception), caffe (BGR minus the ImageNet means: ResNet50 v1, VGG), "
              "torch (ImageNet mean/std: DenseNet) or raw (0..255: EfficientNet, ConvNeXt, RegNet, MobileNetV3).",
        choices=data_lib.PREPROCESSING_KINDS)
    augment: bool = setting(
        True, "Augment training images (`augmentation` and, where allowed, flips); false turns every augmentation "
              "off.")
    augmentation: Optional[str] = setting(
        None, "Training augmentation: pad_crop (random windows of the image zero-padded by `crop_padding`, CIFAR "
              "style), random_resized_crop (a random box of 8-100% of the area and aspect 3/4-4/3, resized back: "
              "ImageNet style) or none. Default (None): the data set's (pad_crop for CIFAR, random_resized_crop with "
              "flips for a folder, none otherwise).",
        choices=data_lib.AUGMENTATIONS)
    crop_padding: Optional[int] = setting(None, "Padding of the pad_crop windows. Default (None): the data set's.")
    flip: Optional[bool] = setting(
        None, "Random horizontal flips. Default (None): the data set's (never for digits; on for a folder: turn it "
              "off for text, digits or anything a mirror changes).")
    shuffle_buffer_mb: int = setting(
        256, "Data read as a stream (a TFDS data set that `input_cache` does not cache) is shuffled within windows "
             "of this many MB of uint8 images; data read by index (folders, cached data, arrays) is shuffled whole "
             "each epoch.")
    input_cache: str = setting(
        "auto", "Where the decoded training images are kept between epochs: auto (memory when they fit "
                "`memory_budget_mb`, else on disk for data that must be decoded, else none), memory, disk "
                "(<model_dir>/cache, removed when the run ends) or none (decode every epoch).",
        runtime=True, choices=data_lib.CACHE_MODES)
    memory_budget_mb: int = setting(
        512, "The memory (MB) the input cache may take, and the teacher-output cache as much again; beyond it they "
             "go to disk.",
        runtime=True)
    # networks
    teacher: str = setting("digits_teacher", "Teacher architecture: a name in the model zoo (scripts/count.py "
                                             "lists them).")
    student: str = setting("digits_fitnet", "FitNet (student) architecture: a name in the model zoo.")
    teacher_path: Optional[str] = setting(
        None, "A trained teacher saved as .keras to use instead of training one: any Keras model (a "
              "keras.applications backbone nested in your model included; a final softmax is stripped for KD).")
    student_path: Optional[str] = setting(
        None, "An untrained student architecture saved as .keras (any Keras model: functional, nested or subclassed "
              "with the intermediate-outputs protocol of fitnets_tf.taps) to use instead of `student`; the "
              "baselines start from the same saved weights.")
    initializer: Optional[str] = setting(
        None, "Override both nets' initializer. Default (None): each architecture's own.", choices=INITIALIZERS)
    # hints (stage 1)
    hints: Optional[Tuple[Tuple[str, str], ...]] = setting(
        None, "Hint pairs (guided, hint): the student's guided layer and the teacher's hint layer, each a paper "
              "index (1-based), a layer name or a path into a nested model. Default (None): the zoo architectures' "
              "own pair, or for models from files the paper's automatic choice: the middle layers, with "
              "`regressor` auto.")
    regressor: str = setting("conv", "The regressor of stage 1.", choices=REGRESSOR_KINDS)
    hint_mode: str = setting(
        "sequential", "With several hint pairs: sequential, one stage 1 per pair in order (the original code), or "
                      "joint, one joint stage.",
        choices=HINT_MODES)
    hint_spatial_mean: bool = setting(False, "Hint loss reduction of the original code (mean over positions).")
    # KD (stage 2)
    temperature: float = setting(3.0, "KD temperature tau.")
    kd_lambda: float = setting(4.0, "Initial weight lambda of the soft targets.")
    kd_lambda_final: float = setting(1.0, "Final lambda of the linear decay.")
    kd_lambda_decay_start: int = setting(0, "Epoch at which lambda starts to decay.")
    kd_lambda_decay_end: Optional[int] = setting(
        None, "Epoch at which lambda reaches its final value. Default (None): the last epoch of stage 2.")
    tau_squared: bool = setting(False, "Multiply the soft term by tau^2 (Hinton et al.; not in the paper).")
    one_stage_beta: float = setting(
        100.0, "The one_stage baseline's weight beta of the hint term, on the mean squared error per hint element "
               "as RepDistiller and mdistiller weight it (their FitNet: 100; see fitnets_tf/stages/one_stage.py).")
    # training
    teacher_epochs: int = setting(30, "Epochs of teacher training.")
    hint_epochs: int = setting(30, "Epochs of stage 1 (per pair in sequential `hint_mode`).")
    kd_epochs: int = setting(60, "Epochs of stage 2.")
    baseline_epochs: Optional[int] = setting(
        None, "Epochs of each baseline. Default (None): `hint_epochs` + `kd_epochs`, the FitNet's whole budget.")
    baselines: Tuple[str, ...] = setting(
        ("ce", "kd"), "Baselines on the student architecture, each trained by one method alone: ce (plain "
                      "backprop), kd (KD alone), one_stage (RepDistiller's and mdistiller's one-stage FitNet: CE + "
                      "`one_stage_beta` x the hint loss of the FitNet's pairs, from the first step), from the "
                      "FitNet's initial weights; ce_glorot, kd_glorot from Glorot-uniform weights (a reference that "
                      "trains end to end).")
    patience: int = setting(
        0, "Early stopping: end a stage after this many epochs without validation improvement and keep its best "
           "epoch (the paper: 100). 0 trains every epoch.")
    teacher_patience: Optional[int] = setting(
        None, "Early stopping of the teacher's training, e.g. to train the teacher until its validation accuracy "
              "stops improving while the students train for fixed budgets. Default (None): `patience`.")
    retrain_from: Optional[str] = setting(
        None, "The model_dir of a run tuned with early stopping on the validation split: retrain every stage on "
              "train + validation (`validation_size` 0) for the epochs that run chose, as the paper did for CIFAR.")
    cache_teacher_outputs: str = setting(
        "auto", "Compute the teacher's logits/hints once and reuse them every epoch: auto (when the training images "
                "are not augmented), true or false.",
        choices=AUTO_TRUE_FALSE)
    deterministic: bool = setting(
        False, "TensorFlow op determinism (slower): a run that was killed and resumed ends with the same results "
               "as an uninterrupted one.",
        runtime=True)
    batch_size: int = setting(128, "Global batch size.")
    optimizer: str = setting("rmsprop", "Optimizer of every stage.", choices=OPTIMIZERS)
    learning_rate: float = setting(0.005, "Learning rate of every stage.")
    rmsprop_rho: float = setting(0.9, "RMSProp decay (the paper: 0.9).")
    rmsprop_max_scaling: float = setting(
        1e5, "RMSProp as in the original pylearn2 code (the default): the gradient over max(RMS, 1 / max_scaling), "
             "1e5 in the code. 0 uses Keras's RMSprop, whose epsilon 1e-7 inside the square root floors the RMS at "
             "3.2e-4.",
        unrecorded=0.0)
    seed: int = setting(0, "Seed of weights, data split and shuffling.")
    jit_compile: str = setting(
        "auto", "XLA for the student's part of each train step: auto (what was measured faster on this kind of "
                "device, fitnets_tf/xla.py: on a CPU compiled for images up to 64x64 without depthwise "
                "convolutions), true or false.",
        runtime=True, choices=AUTO_TRUE_FALSE)
    teacher_jit_compile: str = setting(
        "auto", "XLA for the frozen teacher's forward pass in stages 1 and 2: auto (what the benchmark measured "
                "faster on this kind of device: off on CPU, on on GPU), true or false. When it differs from "
                "`jit_compile` the two parts run as separately compiled functions; results.json records both (xla).",
        runtime=True, choices=AUTO_TRUE_FALSE)
    mixed_precision: str = setting(
        "auto", "Compute policy; auto is mixed_float16 when a GPU is visible and float32 otherwise (on a CPU "
                "mixed_float16 is ~100x slower; mixed_bfloat16 runs there).",
        choices=MIXED_PRECISION)
    teacher_precision: str = setting(
        "float32", "Precision of the frozen teacher's forward pass (hints and logits), cast to float32 before the "
                   "losses; the student keeps `mixed_precision`: float32, bfloat16, float16, or auto (bfloat16 on "
                   "CPUs with AVX512-BF16 or AMX and on GPUs of compute capability >= 8.0, float16 on 7.x GPUs, else "
                   "float32).",
        choices=TEACHER_PRECISIONS, unrecorded="float32")
    check_teacher: bool = setting(
        True, "Measure a given teacher (`teacher_path`) on up to 512 validation images before distilling, and stop "
              "when it is at chance level (wrong preprocessing, class order or channels); false distils anyway.",
        runtime=True)
    # outputs
    latency_runs: int = setting(30, "Timed inference runs per model for the report.", runtime=True)
    export: bool = setting(
        True, "Export the FitNet as a SavedModel into <model_dir>/export, and the `litert_export` files into "
              "<model_dir>/litert.",
        runtime=True)
    litert_export: Tuple[str, ...] = setting(
        ("fitnet", "float32", "int8"),
        "LiteRT (.tflite) files for devices, written with `export` and measured through the LiteRT runtime into the "
        "report: formats (float32, int8: full-integer, calibrated on training images) and models (fitnet, teacher, "
        "baselines, baseline_ce, baseline_kd, ...); every listed model in every listed format. Empty for none.",
        runtime=True)
    verbose: int = setting(2, "0 quiet, 1 progress bar, 2 one line per epoch.", runtime=True)
    overwrite: bool = setting(
        False, "If `model_dir` holds a different run, move it aside and start anew.", runtime=True)

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
    _validate_choices(config)
    _validate_data(config)
    _validate_networks(config)
    _validate_training(config)
    _validate_outputs(config)


def check_choice(name, value, config_type=RunConfig):
    """Raises ConfigError naming setting `name` unless `value` is one of its `choices` (or None, where None is its
    default); a setting without `choices` takes any value here."""
    field = next(f for f in dataclasses.fields(config_type) if f.name == name)
    choices = field.metadata.get("choices")
    if choices is not None and not (value is None and field.default is None):
        check(value in choices, name, f"choose one of {', '.join(map(str, choices))}. Received: {value!r}")


def _validate_choices(config):
    for field in dataclasses.fields(config):
        check_choice(field.name, getattr(config, field.name), type(config))


def _validate_data(config):
    check(config.image_size is None or config.image_size >= 1, "image_size",
          f"must be >= 1. Received: {config.image_size!r}")
    check(config.channels in (None, *data_lib.CHANNELS), "channels",
          f"must be 1 (grey) or 3 (RGB), or unset for the data's own. Received: {config.channels!r}")
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
        check(not (b.endswith(GLOROT_SUFFIX) and config.student_path), "baselines",
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
    for field in ("kd_lambda", "kd_lambda_final", "one_stage_beta"):
        value = getattr(config, field)
        check(_finite(value) and value >= 0, field, f"must be a finite number >= 0. Received: {value}")
    check(config.rmsprop_max_scaling >= 0, "rmsprop_max_scaling",
          f"must be >= 0 (0: Keras's RMSprop; the original code: 1e5). Received: {config.rmsprop_max_scaling}")
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
