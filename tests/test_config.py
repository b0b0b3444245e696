"""RunConfig: every setting declared once (default, help, defines the run or runtime, choices) and the command
line made from it (every field a flag of scripts/run.py with the field's default and help, every flag a field);
`validate`'s one-line errors naming the setting as a backquoted field."""

import dataclasses
import os
import re
import typing

import pytest

from fitnets_tf.errors import ConfigError, settings_named
from fitnets_tf.harness import config as config_lib
from fitnets_tf.harness.config import RunConfig
from tests.helpers import run_script_with_private_flags, script_with_private_flags

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
        new_output: str = config_lib.setting("here", "Where it goes.", runtime=True)

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
    (dict(cache_teacher_outputs="maybe"), "`cache_teacher_outputs`: choose one of auto, true, false. Received: "
                                          "'maybe'"),
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


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}

# The exceptions to "every RunConfig field is a flag of the same name, and every run_flags flag a field":
# - scripts/run.py's scale-out flags say where the run computes (devices), not what: `pipeline.run` takes the
#   tf.distribute strategy they make, no RunConfig field holds them.
RUN_FLAGS_THAT_ARE_NO_FIELD = {"strategy", "num_cpu_devices", "tpu"}
# - a sweep sets these for each of its runs (directory, seed, hints) or does not offer them (a run's name,
#   overwriting, retraining), so scripts/experiment.py has no flag for them;
SWEEP_FIELDS_WITHOUT_FLAG = {"model_dir", "seed", "hints", "experiment", "overwrite", "retrain_from"}
# - and its own flags describe the sweep; its --experiment names the sweep (methods, depth, ...), not a run.
SWEEP_FLAGS_THAT_ARE_NO_FIELD = {"experiment", "sweep_dir", "seeds", "teacher_sharing", "depth_budget"}
# - a sweep exports nothing by default (a run does): the one default a script sets differently from its field.
SWEEP_DEFAULTS = {"export": False}


def test_every_setting_says_what_it_does_in_the_librarys_words():
    for name, field in FIELDS.items():
        text = field.metadata["help"]
        assert text.endswith(".") and len(text.split()) >= 3, name
        assert "--" not in text, f"{name}: the library names settings as `field`, never as a flag"
        assert set(settings_named(text)) <= set(FIELDS), (name, settings_named(text))
        assert isinstance(field.metadata["runtime"], bool), name
    with pytest.raises(TypeError, match="needs its help"):
        config_lib.setting(3)


def test_a_value_outside_a_settings_choices_is_refused_naming_the_setting(tmp_path):
    closed = {name: f.metadata["choices"] for name, f in FIELDS.items() if "choices" in f.metadata}
    assert {"bad_images", "optimizer", "jit_compile", "augmentation", "initializer", "teacher_precision"} <= set(closed)
    for name, choices in closed.items():
        with pytest.raises(ConfigError, match=f"^`{name}`: choose one of {', '.join(choices)}. Received: 'nonsense'$"):
            config_lib.validate(RunConfig(model_dir=str(tmp_path), **{name: "nonsense"}))
    for name in ("augmentation", "initializer", "preprocessing"):  # None (the default) is no choice, but allowed
        assert FIELDS[name].default is None
        config_lib.check_choice(name, None)
    with pytest.raises(ConfigError, match="^`optimizer`: choose one of"):
        config_lib.check_choice("optimizer", None)


def _own_flags(script):
    return {flag.name: flag for flag in script.FLAGS.get_flags_for_module(script)}


def _shared_flags(script):
    return {flag.name: flag for flag in script.FLAGS.get_flags_for_module("run_flags")}


def test_every_setting_is_a_flag_of_run_py_and_every_flag_a_setting():
    run = run_script_with_private_flags()
    flags = {**_own_flags(run), **_shared_flags(run)}
    assert set(FIELDS) - set(flags) == set(), "a RunConfig field without a flag"
    assert set(flags) - set(FIELDS) == RUN_FLAGS_THAT_ARE_NO_FIELD, "a flag that sets no RunConfig field"
    assert set(_shared_flags(run)) == set(FIELDS)


def test_a_sweep_has_a_flag_for_every_setting_it_does_not_set_per_run():
    sweep = script_with_private_flags("experiment.py")
    assert set(_shared_flags(sweep)) == set(FIELDS) - SWEEP_FIELDS_WITHOUT_FLAG
    assert set(_own_flags(sweep)) == SWEEP_FLAGS_THAT_ARE_NO_FIELD
    # Its own words for the student and the teacher it is given.
    assert "the 'depth' experiment sets its own students" in sweep.FLAGS["student"].help
    assert sweep.FLAGS["teacher_path"].help.startswith("A trained teacher (.keras) that every run loads instead")


def _flag_type(annotation, choices):
    """The flag a field's type calls for, written out here: absl's flag_type() of each kind."""
    if typing.get_origin(annotation) is typing.Union:
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    if choices:
        return "string enum"
    if typing.get_origin(annotation) is tuple:
        return "comma separated list of strings"
    return {bool: "bool", int: "int", float: "float", str: "string"}[annotation]


@pytest.mark.parametrize("script_file,defaults", [("run.py", {}), ("experiment.py", SWEEP_DEFAULTS)])
def test_each_flag_has_its_fields_default_type_and_help(script_file, defaults):
    script = script_with_private_flags(script_file)
    types = typing.get_type_hints(RunConfig)
    for name, flag in _shared_flags(script).items():
        field = FIELDS[name]
        expected = None if field.default is dataclasses.MISSING else defaults.get(name, field.default)
        default = tuple(flag.default) if isinstance(flag.default, list) else flag.default
        assert default == expected and type(default) is type(expected), (name, flag.default, expected)
        assert flag.flag_type() == _flag_type(types[name], field.metadata.get("choices")), name
        if "choices" in field.metadata:
            assert flag.parser.enum_values == list(field.metadata["choices"]), name
        if name not in ("student", "teacher_path") or script_file == "run.py":
            # The field's help, with each setting it names written as its flag (where the script has that flag).
            assert field.metadata["help"] in re.sub(r"--([a-z_]+)", r"`\1`", flag.help), name
            assert not set(settings_named(flag.help)) & set(_shared_flags(script)), (name, flag.help)


def test_the_help_shows_every_flag_with_its_help():
    """What `python scripts/run.py --help` prints: run.py's flags and, adopted, every flag of run_flags."""
    run = run_script_with_private_flags()
    shown = run.FLAGS.module_help(run)
    squeezed = "".join(shown.split())
    for name in FIELDS:
        flag = run.FLAGS[name]
        assert f"--{name}:" in shown or f"--[no]{name}:" in shown, name
        assert "".join(flag.help.split()) in squeezed, name


def test_no_flag_given_is_the_default_run_config():
    run = run_script_with_private_flags()
    run.FLAGS(["run.py", "--model_dir=somewhere"])
    assert run.config_from_flags() == RunConfig(model_dir="somewhere")
    sweep = script_with_private_flags("experiment.py")
    sweep.FLAGS(["experiment.py"])
    assert sweep.base_config_from_flags() == RunConfig(model_dir="", export=False)


def test_flags_written_differently_become_the_fields_values():
    run = run_script_with_private_flags()
    run.FLAGS(["run.py", "--model_dir=m", "--validation_size=5000", "--hints=11:2,conv4:block_3/relu", "--baselines=",
               "--litert_export=teacher,int8", "--noaugment", "--flip", "--seed=3", "--bad_images=skip"])
    config = run.config_from_flags()
    assert config.validation_size == 5000 and isinstance(config.validation_size, int)
    assert config.hints == ((11, 2), ("conv4", "block_3/relu"))
    assert config.baselines == () and config.litert_export == ("teacher", "int8")
    assert (config.augment, config.flip, config.seed, config.bad_images) == (False, True, 3, "skip")
    run.FLAGS(["run.py", "--model_dir=m", "--validation_size=0.25"])
    assert run.config_from_flags().validation_size == 0.25


def test_a_flag_outside_its_choices_is_one_error_naming_the_flag():
    run = run_script_with_private_flags()
    with pytest.raises(ConfigError) as error:
        run.run_flags.parse_flags(["run.py", "--model_dir=m", "--bad_images=ignore"])
    assert run.run_flags.as_flags(error.value) == "--bad_images: choose one of stop, skip. Received: 'ignore'"
