"""One FitNets run, from data to exported student: `run(RunConfig(...))` (a sweep of runs is `harness.sweeps`).

Steps, each resumable (a finished step is restored, an interrupted one resumes from its last epoch):
  1. data splits and preprocessing (fitted on train, saved as preprocessing.npz);
  2. the teacher: loaded from `teacher_path` (any .keras model: nested backbones, a final softmax is stripped for
     KD), or trained with cross-entropy; the student: a zoo architecture, or `student_path` (an untrained .keras);
  3. the FitNet: stage 1 (hints; one stage per hint pair, or all pairs jointly), then stage 2 (KD);
  4. baselines on the same student architecture and initial weights: "ce" (plain backprop), "kd" (KD alone);
  5. test accuracy, parameters, multiplications and measured latency of every model -> results.json, results.md;
  6. the FitNet exported as a SavedModel taking raw uint8 images (export/), and as float32 and int8 LiteRT files
     (litert/, `litert_export`), each measured through the LiteRT runtime (accuracy, agreement with the Keras
     model, size, batch-1 latency on one thread, against the teacher's files) into the same report.

This module orchestrates; each part has its own: the settings and their checks in `config`, who may write into
model_dir and when it resumes in `model_dir`, the networks in `networks` (files in `model_files`), the data in
`inputs`, one stage in `training`, the records in `report` and `tensorboard`.

Layout of `model_dir`:
  run.lock (flock-ed by the run using the directory), flags.cfg (written by scripts/run.py), run_config.json,
  preprocessing.npz, checkpoints/<stage>/,
  tensorboard/<stage>/{train,validation}, tensorboard/hparams, tensorboard/graphs/<model>,
  teacher.keras, fitnet.keras, baseline_<name>.keras, results.json, results.md, export/,
  litert/<model>_<float32|int8>.tflite and litert/litert_classifier.py (the input-checking runner, NumPy + LiteRT).
"""

import dataclasses
import math
import os
import shutil
import tempfile

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from fitnets_tf import data as data_lib
from fitnets_tf.data.caching import MB
from fitnets_tf.distiller import Distiller
from fitnets_tf.errors import ConfigError
from fitnets_tf.harness import litert, litert_classifier, networks as networks_lib, teacher_check
from fitnets_tf.harness.config import BASELINES, GLOROT_SUFFIX, RunConfig, validate
from fitnets_tf.harness.export import CLASS_NAMES_FILE, export_saved_model, resolve_class_names, write_class_names
from fitnets_tf.harness.inputs import CACHE_DIR, build_inputs, load_splits
from fitnets_tf.harness.model_dir import (free_lock, is_chief, prepare_model_dir, recorded_identity,
                                          worker_scratch)
from fitnets_tf.harness.report import (add_ratios, add_training_facts, measure_latency, model_row,
                                       plot_learning_curves, write_report)
from fitnets_tf.harness.tensorboard import write_run_records
from fitnets_tf.harness.training import accuracy, train_stage
from fitnets_tf.io_utils import atomic_save, move_aside_damaged, read_json, read_json_state, scratch_prefix
from fitnets_tf.models.counting import count_multiplications
from fitnets_tf.optimizers import OPTIMIZERS, build_optimizer
from fitnets_tf.precision import compute_policy
from fitnets_tf.stages import CEStage

# The names callers import from here (scripts/, the sweeps), whose homes are the modules above.
__all__ = ["BASELINES", "OPTIMIZERS", "ConfigError", "Run", "RunConfig", "compute_policy",
           "prepare_model_dir", "recorded_identity", "run", "validate"]

LATENCY_BATCH_128_ELEMENTS = 32 * 32 * 3  # larger images are timed at batch 16, not 128 (`latency_batch_sizes`)
LITERT_TEST_BYTES = 512 * MB  # the test images (uint8 and preprocessed) the LiteRT files are measured on
_JIT = {"auto": "auto", "true": True, "false": False}
_METHODS = {"teacher": "teacher (CE)", "baseline_ce": "student, plain backprop (CE)",
            "baseline_kd": "student, KD alone", "baseline_ce_glorot": "student from Glorot init, CE",
            "baseline_kd_glorot": "student from Glorot init, KD alone",
            "baseline_one_stage": "student, one-stage FitNet (CE + beta x hint loss, no stage 1)"}


class Run:
    """The stages, report and exports of one run in a model_dir it holds (see the module docstring).

    `networks` (`networks.build_networks`) and `splits` (`inputs.load_splits`) are built before the model_dir is
    accepted, since they check what can fail without writing anything; the constructor then fits or restores the
    preprocessing in model_dir and builds the input pipelines.
    """

    def __init__(self, config: RunConfig, info, networks, splits, strategy=None, command=""):
        self.config = config
        self.info = info
        self.networks = networks
        self.splits = splits
        self.strategy = strategy or tf.distribute.get_strategy()
        self.command = command
        self.dir = config.model_dir
        self.inputs = build_inputs(config, info, splits, self.path("preprocessing.npz"), self.strategy)
        self.baseline_models = {}  # {baseline name: its trained student}, filled by train_baselines
        self.timings = {}  # {stage: seconds of the call that finished it}
        self.xla_settings = {}  # {stage: {"student": bool, "teacher": bool or None}}: XLA per model, as resolved
        self.trained = False  # a stage trained in this process (else every stage had finished before)
        self._litert_test_images = None
        self.teacher_caches = {}  # {stage: where its teacher outputs were cached (caching.Placement.to_json)}
        self.teacher_check = None  # the given teacher's accuracy before distilling (`check_teacher`), when measured

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    @property
    def teacher(self):
        return self.networks.teacher

    @property
    def student(self):
        return self.networks.student

    @property
    def distiller(self):
        return self.networks.distiller

    @property
    def class_names(self):
        """The name of each label, in label order (the label numbers when the data set names none)."""
        return resolve_class_names(self.info.class_names, self.info.num_classes)

    def check_teacher(self):
        """Measures a teacher given by `teacher_path` on up to 512 validation images before any training, and
        raises ConfigError when it is at chance level (`teacher_check`). Not run (None) for a teacher this run
        trains, or with `check_teacher` false. Returns the record of results.json."""
        c = self.config
        if c.teacher_path and c.check_teacher:
            self.teacher_check = teacher_check.check_teacher(self.teacher, self.inputs, self.info, c)
        return self.teacher_check

    # ------------------------------------------------------------------------------------------- training
    def chosen_epochs(self, name, epochs):
        """With retrain_from: the epochs the tuning run chose for stage `name` (its best epoch under early
        stopping, else the epochs it ran) -- the paper's CIFAR protocol: tune on 40K/10K, retrain on 50K."""
        if self.config.retrain_from is None:
            return epochs
        done = read_json(os.path.join(self.config.retrain_from, "checkpoints", name, "done.json"))
        if done is None:
            raise ConfigError(f"`retrain_from`: stage {name!r} did not finish in {self.config.retrain_from!r}.")
        return int(done.get("best_epoch") or done["epochs"])

    def _train_data(self, name, distiller, needs_teacher):
        """A callable `(start_epoch) -> the stage's training stream`: with teacher-output caching on, each batch
        carries the teacher's outputs, computed once into a cache keyed by example (`Distiller.cache_teacher_outputs`,
        under `memory_budget_mb`, else on disk in <model_dir>/cache)."""
        inputs, c = self.inputs, self.config
        if not needs_teacher or not inputs.cache_teacher or inputs.num_train is None:
            return inputs.make_train

        def make(start_epoch=0):
            cache = distiller.cache_teacher_outputs(inputs.train_ordered, inputs.num_train,
                                                    c.memory_budget_mb * MB, directory=self.path(CACHE_DIR),
                                                    name=f"{name}_teacher_outputs")
            if cache is None:
                self.teacher_caches[name] = {"place": "none"}
                return inputs.make_train(start_epoch)
            self.teacher_caches[name] = cache.placement.to_json()
            return inputs.make_train(start_epoch, with_index=True, transform=cache.attach)

        return make

    def _stage(self, name, distiller, stage, epochs, patience=None):
        """Trains `stage` (a `Stage` object with its settings) with the run's optimizer settings as stage `name`."""
        c = self.config
        epochs = self.chosen_epochs(name, epochs)
        patience = c.patience if patience is None else patience
        with self.strategy.scope():
            optimizer = build_optimizer(c.optimizer, c.learning_rate, c.rmsprop_rho, c.rmsprop_max_scaling)
        result = train_stage(
            name, distiller, stage, optimizer, self._train_data(name, distiller, stage.needs_teacher), epochs,
            stage_dir=self.path("checkpoints", name), validation_data=self.inputs.validation,
            steps_per_epoch=self.inputs.steps_per_epoch, jit_compile=_JIT[c.jit_compile],
            teacher_jit_compile=_JIT[c.teacher_jit_compile],
            tensorboard_dir=self.path("tensorboard", name), patience=0 if c.retrain_from else patience,
            verbose=c.verbose,
        )
        self.trained = self.trained or not result.get("skipped")
        self.xla_settings[name] = dict(distiller.xla_settings)
        if result.get("seconds") is not None:  # a finished stage's own record: its time survives a rerun
            self.timings[name] = result["seconds"]
        return result

    def _save_model(self, model, name):
        atomic_save(self.path(f"{name}.keras"), model.save)

    def train_teacher(self):
        """Trains the teacher with cross-entropy (None when it was loaded from `teacher_path`)."""
        if self.config.teacher_path:
            return None
        with self.strategy.scope():
            trainer = Distiller(self.teacher)
        result = self._stage("teacher", trainer, CEStage(), self.config.teacher_epochs,
                             patience=self.config.teacher_patience)
        self._save_model(self.teacher, "teacher")
        return result

    def train_fitnet(self):
        """Algorithm 1: stage 1 (hints) then stage 2 (KD) on the same student variables."""
        c = self.config
        stages = self.networks.hint_stages  # one per pair ("sequential", the original code) or one for all
        results = {}
        if c.hint_epochs > 0:
            for i, stage in enumerate(stages):
                name = "fitnet_stage1" if len(stages) == 1 else f"fitnet_stage1_pair{i + 1}"
                results[name] = self._stage(name, self.distiller, stage, c.hint_epochs)
        results["fitnet_stage2"] = self._stage("fitnet_stage2", self.distiller, networks_lib.kd_stage(c),
                                               c.kd_epochs)
        self._save_model(self.student, "fitnet")
        return results

    def train_baselines(self):
        """Each baseline: the FitNet's student architecture AND initial weights (or Glorot's, for "*_glorot")
        trained by one method alone: only the method differs."""
        c = self.config
        epochs = c.baseline_epochs if c.baseline_epochs is not None else c.hint_epochs + c.kd_epochs
        results = {}
        for name in c.baselines:
            glorot = name.endswith(GLOROT_SUFFIX)
            method = name[:-len(GLOROT_SUFFIX)] if glorot else name
            stage = networks_lib.baseline_stage(c, method, self.networks.pairs)
            with self.strategy.scope():
                student = (networks_lib.glorot_student(c, self.networks.student_spec) if glorot
                           else networks_lib.new_student(c, self.networks.student_spec))
                distiller = networks_lib.distiller(c, student, self.teacher if stage.needs_teacher else None,
                                                   self.info)
            results[f"baseline_{name}"] = self._stage(f"baseline_{name}", distiller, stage, epochs)
            self._save_model(student, f"baseline_{name}")
            self.baseline_models[name] = student
        return results

    # ---------------------------------------------------------------------------------------- reporting
    def models(self):
        out = {"teacher": self.teacher, "fitnet": self.student}
        out.update({f"baseline_{k}": m for k, m in self.baseline_models.items()})
        return out

    def report(self, stage_results, litert_results=None):
        """results.json, results.md, results_curves.png (accuracy against epoch of every stage) and the
        TensorBoard records of the run."""
        c = self.config
        histories = {name: result["history"] for name, result in stage_results.items()}
        models = self.models()
        batch_sizes = latency_batch_sizes(self.info.image_shape)
        latency = measure_latency(models, self.info.image_shape, batch_sizes=batch_sizes, runs=c.latency_runs)
        methods = {**_METHODS, "fitnet": "FitNet: hints (stage 1) + KD (stage 2)" if c.hint_epochs
                   else "KD only (hint_epochs=0)"}
        rows = [model_row(name, m, accuracy(m, self.inputs.test), latency[name], methods.get(name, ""))
                for name, m in models.items()]
        add_ratios(rows)
        add_training_facts(rows, stage_results, {"teacher": "teacher", "fitnet": "fitnet_stage2",
                                                 **{m: m for m in models if m.startswith("baseline_")}},
                           self.info.num_classes)
        hint_epochs = sum(r["epochs"] for name, r in stage_results.items() if name.startswith("fitnet_stage1"))
        plot_learning_curves(histories, {"fitnet_stage2": hint_epochs}, self.path("results_curves.png"))
        # before results.json: a run with results.json has its records
        write_run_records(self.path("tensorboard"), c.identity(), os.path.basename(os.path.abspath(self.dir)), rows,
                          models, self.info.image_shape)
        run_info = self._run_info(histories)
        if litert_results is not None:
            run_info["litert"] = litert_results
        write_report(self.path("results.json"), self.path("results.md"), rows, run_info, batch_sizes=batch_sizes)
        return rows

    def _run_info(self, histories):
        """What results.json says about the run besides its rows."""
        c, counts = self.config, self.splits.num_examples
        return {
            "experiment": c.run_name(), "dataset": c.dataset, "command": self.command,
            "num_classes": self.info.num_classes, "test_examples": counts.get("test"),
            "train_examples": counts.get("train"), "validation_examples": counts.get("validation"),
            "hint_pairs": [dataclasses.asdict(p) for p in self.networks.pairs],
            # per pair: both references and shapes, the regressor and why, and how the pair was chosen
            "hint_pair_details": [dict(r) for r in self.networks.pair_report],
            "config": c.to_json(), "stage_seconds": self.timings, "histories": histories,
            "replicas": self.strategy.num_replicas_in_sync,
            "compute_policy": keras.mixed_precision.global_policy().name,
            "teacher_precision": self.distiller.teacher_precision,
            "xla": self.xla_settings,
            "input_cache": None if self.inputs.input_cache is None else self.inputs.input_cache.to_json(),
            "teacher_output_caches": self.teacher_caches,
            "augmentation": None if self.inputs.augmentation is None else self.inputs.augmentation.to_json(),
            "preprocessing": self.inputs.preprocessor.kind,
            "image_shape": list(self.info.image_shape),
            "class_names": list(self.class_names),
            "teacher_check": self.teacher_check,
            # a folder's check before training: images checked and skipped, classes absent from a split
            "data_checks": self.splits.checks,
        }

    def export(self):
        export_saved_model(self.student, self.inputs.preprocessor, self.path("export"), self.class_names)

    def export_litert(self):
        """Writes the `litert_export` files into litert/ and measures them through the LiteRT runtime.

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
        scratch = tempfile.mkdtemp(prefix=scratch_prefix("litert"))
        try:
            calibration = data_lib.images_to_numpy(self.splits.train, limit=litert.CALIBRATION_IMAGES)
            artifacts = [{"model": name, "format": fmt,
                          "path": os.path.join(out_dir if name in asked else scratch, f"{name}_{fmt}.tflite")}
                         for name in names for fmt in formats]
            rows = self._measure_litert(models, artifacts, calibration)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        litert.add_ratios(rows, {name: count_multiplications(models[name]) for name in names})
        for row in rows:  # paths relative to model_dir; None for the teacher's files made only to compare
            row["path"] = os.path.relpath(row["path"], self.dir) if row["path"].startswith(out_dir) else None
        shutil.copyfile(litert_classifier.__file__, os.path.join(out_dir, "litert_classifier.py"))
        write_class_names(os.path.join(out_dir, CLASS_NAMES_FILE), self.class_names)  # read by LiteRTClassifier
        from importlib import metadata

        return {"runtime": f"ai-edge-litert {metadata.version('ai-edge-litert')}", "batch_size": 1, "threads": 1,
                "latency": f"median of {max(c.latency_runs, 1)} interleaved samples of 10 calls on one test image",
                "calibration_images": len(calibration), "test_images": self._litert_test_images,
                "artifacts": rows}

    def _measure_litert(self, models, artifacts, calibration):
        """Converts each artifact's model (int8: calibrated on `calibration`, and never silently worse than its
        float32 file: `litert.write_int8_within_tolerance`) and measures it on the test split against its Keras
        model's predictions."""
        # Bounded memory: at most LITERT_TEST_BYTES of test images (uint8 + float32), all of a small data set.
        limit = max(1, LITERT_TEST_BYTES // (5 * int(np.prod(self.info.image_shape))))
        images, labels = _arrays(_spread(self.splits.test, self.splits.num_examples.get("test"), limit), limit)
        self._litert_test_images = len(labels)
        inputs = self.inputs.preprocessor(images).numpy()
        reference, checks, float32_accuracy = {}, {}, {}
        check_images = check_labels = more_calibration = None
        for artifact in artifacts:
            name = artifact["model"]
            if name not in reference:
                # the run's batch: a 224x224 teacher's activations at batch 256 took gigabytes
                reference[name] = np.argmax(models[name].predict(inputs, batch_size=self.config.batch_size,
                                                                 verbose=0), axis=-1)
            shipped = artifact["path"].startswith(self.path("litert"))  # not the teacher's, made only to compare
            if artifact["format"] != "int8" or not shipped:
                litert.write_tflite(models[name], self.inputs.preprocessor, artifact["path"], artifact["format"],
                                    calibration)
                continue
            if check_images is None:
                check_images, check_labels, checked_on = self._int8_check_images(limit)
                more_calibration = data_lib.images_to_numpy(
                    self.splits.train, limit=litert.MORE_CALIBRATION * litert.CALIBRATION_IMAGES)
            if name not in float32_accuracy:  # its float32 file (written just before, when asked), else made now
                written = [a["path"] for a in artifacts if a["model"] == name and a["format"] == "float32"]
                content = (open(written[0], "rb").read() if written and os.path.exists(written[0]) else
                           litert.convert(models[name], self.inputs.preprocessor, "float32"))
                float32_accuracy[name] = litert.accuracy_of(content, check_images, check_labels)
            record = litert.write_int8_within_tolerance(
                models[name], self.inputs.preprocessor, artifact["path"], calibration, check_images, check_labels,
                float32_accuracy[name], more_calibration)
            checks[artifact["path"]] = {**record, "checked_on": checked_on}
            self._log_int8(name, checks[artifact["path"]])
        rows = litert.measure(artifacts, images, labels, reference, rounds=max(self.config.latency_runs, 1))
        for row in rows:
            if row["path"] in checks:
                row["int8_check"] = checks[row["path"]]
        return rows

    def _int8_check_images(self, limit):
        """The images an int8 file is checked on: the validation split (at most `limit` images), else training
        images past the calibration ones."""
        if self.splits.validation is not None and self.splits.num_examples.get("validation"):
            count = min(limit, litert.INT8_CHECK_IMAGES)
            spread = _spread(self.splits.validation, self.splits.num_examples.get("validation"), count)
            return (*_arrays(spread, count), "validation")
        rest = self.splits.train.skip(litert.MORE_CALIBRATION * litert.CALIBRATION_IMAGES)
        images, labels = _arrays(rest, min(limit, litert.INT8_CHECK_IMAGES))
        if not len(labels):
            images, labels = _arrays(self.splits.train, min(limit, litert.INT8_CHECK_IMAGES))
        return images, labels, "train"

    @staticmethod
    def _log_int8(name, record):
        tried = ", ".join(f"{t['activations']} activations / {t['calibration_images']} calibration images: "
                          f"{100 * t['validation_accuracy']:.2f}%" for t in record["tried"])
        if not record["within_tolerance"]:
            logging.warning("[fitnets] LiteRT int8 file of %s: %.2f points below its float32 file on the %s "
                            "images (%.2f%% vs %.2f%%) after every fall-back (%s); written anyway, and said in "
                            "results.md", name, record["loss_points"], record["checked_on"],
                            100 * record["validation_accuracy"], 100 * record["float32_validation_accuracy"], tried)
        elif len(record["tried"]) > 1:
            logging.info("[fitnets] LiteRT int8 file of %s: the full-integer file lost more than %.0f point; "
                         "written with the fall-back %s", name, 100 * litert.INT8_TOLERANCE, tried)


def _spread(ds, count, limit):
    """Every k-th example of `ds` (of `count` examples), so that at most about `limit` are taken from all of it: a
    folder's splits are in class order, and their first examples would be a few classes only."""
    if not count or count <= limit:
        return ds
    return ds.shard(math.ceil(count / limit), 0)


def _arrays(ds, limit):
    """(uint8 images [N, H, W, C], labels [N]) of the first `limit` examples of an unbatched dataset."""
    batches = list(ds.take(limit).batch(1024).as_numpy_iterator())
    if not batches:
        return np.zeros((0,), np.uint8), np.zeros((0,), np.int64)
    return np.concatenate([x for x, _ in batches]), np.concatenate([y for _, y in batches])


def run(config: RunConfig, strategy=None, command="", on_ready=None):
    """Runs (or resumes) the run in `config.model_dir`; returns the rows of results.json.

    `on_ready()` is called once the model_dir has been accepted (e.g. to write flags.cfg there). Under a
    multi-worker strategy only the chief writes to `model_dir`; every other worker takes part in the same
    collective steps (checkpoint saves included) but writes into a temporary directory that is removed after.
    """
    validate(config)
    strategy = strategy or tf.distribute.get_strategy()
    if not is_chief(strategy):
        with worker_scratch(config.model_dir) as scratch:
            return _run(dataclasses.replace(config, model_dir=scratch), strategy, command, None, lock=None)
    # Only the chief writes into model_dir, so only the chief locks it (one run per directory). A busy model_dir
    # is refused at once, before models are built and data loaded.
    lock = free_lock(config, command)
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
        info = data_lib.dataset_info(config.dataset, config.image_size)
        networks = networks_lib.build_networks(config, info, strategy)  # hint pairs checked before any write
        splits = load_splits(config)  # absent data fails here, before anything is written
        prepare_model_dir(config, lock)
        if on_ready is not None:
            on_ready()
        current = Run(config, info, networks, splits, strategy, command)
        current.check_teacher()  # a teacher given at chance stops the run here, before any training
        stage_results = {}
        teacher_result = current.train_teacher()
        if teacher_result:
            stage_results["teacher"] = teacher_result
        stage_results.update({**current.train_fitnet(), **current.train_baselines()})
        rows = _report_and_export(current, stage_results)
        _remove_caches(current)
        return rows
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)


def latency_batch_sizes(image_shape):
    """The batch sizes of the report's latency columns: 1 and 128 (the paper's setting) for images up to 32x32x3,
    1 and 16 above it, where a 224x224 network's activations at batch 128 take gigabytes (memory stays bounded by
    settings, not by the data)."""
    return (1, 128) if int(np.prod(image_shape)) <= LATENCY_BATCH_128_ELEMENTS else (1, 16)


def _remove_caches(current):
    """Removes <model_dir>/cache (decoded images, teacher outputs) once the run has finished: a finished run never
    reads them again, and they can take gigabytes."""
    directory = current.path(CACHE_DIR)
    if os.path.isdir(directory):
        shutil.rmtree(directory, ignore_errors=True)
        logging.info("[fitnets] removed the run's caches in %s", directory)


def _report_and_export(current, stage_results):
    """Measures and exports what the stages trained. When every stage had finished and been reported before, keeps
    what that run measured (test accuracies, latencies, stage_seconds, TensorBoard records, LiteRT files) and its
    export instead of measuring and exporting again. Returns the rows of results.json."""
    config = current.config
    finished = read_json_state(current.path("results.json"), dict, None, "the report is measured again")
    if finished is not None and not isinstance(finished.get("models"), list):
        moved = move_aside_damaged(current.path("results.json"))
        logging.warning("[fitnets] results.json held no list of models; moved to %s, and the report is measured "
                        "again.", moved)
        finished = None
    kept = finished is not None and not current.trained
    if kept:
        rows = finished["models"]
        logging.info("[fitnets] every stage in %s had finished: kept its results.json, results.md and TensorBoard "
                     "records as first measured (delete results.json and rerun to measure again)", config.model_dir)
    else:
        litert_results = current.export_litert() if config.export else None
        rows = current.report(stage_results, litert_results)
    if config.export:
        if kept and os.path.exists(current.path("export")):
            logging.info("[fitnets] kept the export in %s (delete it and rerun to export again)",
                         current.path("export"))
        else:
            current.export()
    return rows
