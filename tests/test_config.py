"""RunConfig: every field classified (defines the run, or runtime), and `validate`'s one-line errors naming the
setting as a backquoted field."""

import dataclasses
import os

import pytest

from fitnets_tf.errors import ConfigError
from fitnets_tf.harness import config as config_lib
from fitnets_tf.harness.config import RunConfig

# The settings a rerun may change and still resume its model_dir: where a run writes and reads, how much it prints
# and times, what it exports, how it computes without changing what (XLA, op determinism, where caches live), and
# whether the given teacher is checked first, and what happens to unreadable images (a run that stopped on them never
# trained; one that skipped them trained on the readable ones, the only ones a rerun with "stop" could accept).
RUNTIME = {"model_dir", "data_dir", "download", "verbose", "latency_runs", "export", "litert_export", "overwrite",
           "jit_compile", "teacher_jit_compile", "experiment", "deterministic", "input_cache", "memory_budget_mb",
           "check_teacher", "bad_images"}


def test_the_identity_is_every_field_but_exactly_the_runtime_ones():
    names = {f.name for f in dataclasses.fields(RunConfig)}
    assert config_lib.runtime_fields() == RUNTIME
    assert set(RunConfig(model_dir="x").identity()) == names - RUNTIME
    # Two configs that differ in one field: the identities differ exactly when the field is not runtime.
    base = RunConfig(model_dir="a")
    for name, value in (("temperature", 5.0), ("hints", (("1", "2"),)), ("verbose", 0), ("data_dir", "/d")):
        changed = dataclasses.replace(base, **{name: value})
        assert (changed.identity() == base.identity()) == (name in RUNTIME), name


def test_a_new_field_without_marking_counts_as_identity():
    @dataclasses.dataclass(frozen=True)
    class Extended(RunConfig):
        new_setting: int = 7
        new_output: str = config_lib.runtime("here")

    identity = Extended(model_dir="x").identity()
    assert identity["new_setting"] == 7 and "new_output" not in identity
    assert config_lib.runtime_fields(Extended) == RUNTIME | {"new_output"}


def test_unrecorded_settings_are_the_fields_added_later_with_what_old_runs_ran_with():
    assert config_lib.unrecorded_settings() == {"rmsprop_max_scaling": 0.0, "teacher_precision": "float32"}
    assert RunConfig(model_dir="").rmsprop_max_scaling == 1e5  # today's default differs from the old runs'


def test_retrain_needs_a_finished_run_and_no_validation_split(tmp_path):
    with pytest.raises(ConfigError, match="`retrain_from`: .* holds no finished run"):
        config_lib.validate(RunConfig(model_dir=str(tmp_path), retrain_from=str(tmp_path), validation_size=0))
    os.makedirs(tmp_path / "checkpoints")
    with pytest.raises(ConfigError, match="`retrain_from`: .*set `validation_size` to 0"):
        config_lib.validate(RunConfig(model_dir=str(tmp_path), retrain_from=str(tmp_path)))


@pytest.mark.parametrize("overrides,message", [
    (dict(cache_teacher_outputs="maybe"), "`cache_teacher_outputs`: choose auto, true or false"),
    (dict(optimizer="lbfgs"), "`optimizer`: choose one of rmsprop, adam, sgd"),
    (dict(baselines=("ce", "fitnet")), "`baselines`: unknown baseline 'fitnet'"),
    (dict(batch_size=0), "`batch_size`: must be >= 1"),
    (dict(patience=-3), "`patience`: must be an integer >= 0"),
    (dict(mixed_precision="float8"), "`mixed_precision`: choose one of"),
    (dict(teacher_precision="int4"), "`teacher_precision`: choose one of auto, float32, bfloat16, float16"),
    (dict(rmsprop_max_scaling=-1.0), "`rmsprop_max_scaling`: must be >= 0"),
    (dict(train_size=0), "`train_size`: must be a whole number of images >= 1"),
    (dict(teacher_patience=-1), "`teacher_patience`: must be an integer >= 0"),
    (dict(baselines=("ce_glorot",), student_path="x.keras"), "`baselines`: 'ce_glorot' re-initialises a zoo"),
    (dict(temperature=float("inf")), "`temperature`: must be a finite number > 0"),
    (dict(learning_rate=float("nan")), "`learning_rate`: must be a finite number > 0"),
    (dict(kd_lambda=float("inf")), "`kd_lambda`: must be a finite number >= 0"),
    (dict(kd_lambda_final=-1.0), "`kd_lambda_final`: must be a finite number >= 0"),
    (dict(bad_images="ignore"), "`bad_images`: choose one of stop, skip"),
])
def test_config_errors_name_the_setting(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        config_lib.validate(RunConfig(model_dir=str(tmp_path), **overrides))
