"""The absl flags shared by scripts/run.py (one run) and scripts/experiment.py (a sweep of runs), made from
`RunConfig`.

Each setting is declared once, as a field of `RunConfig` (fitnets_tf/harness/config.py): its default, its help and,
for a closed set, its choices. `define_run_flags` makes one flag per field, of the same name, from that declaration:
bool, integer, float or string after the field's type (Optional[X] as X), an enum where the field has choices, a
comma-separated list for a tuple. A flag whose value is written differently from the field's (`_FROM_FLAG`: hints
as guided:hint, a whole-number validation_size) is turned into the field's value by `run_config_from_flags`. The
fields a sweep sets per run (`ONE_RUN_FIELDS`) are flags of run.py only; each script adds its own flags that are no
setting of a run (run.py: scale-out; experiment.py: sweep_dir, seeds, the experiment).

The library names a setting by its config field (`data_dir`) and logs its progress through absl logging; this
module is where those meet the command line: `as_flags` writes each field a message or a help text names as its
flag (--data_dir), and `show_library_progress` shows the library's progress lines.
"""

import dataclasses
import errno
import gc
import logging as std_logging
import os
import shlex
import signal
import sys
import typing

from absl import app, flags, logging

import fitnets_tf
from fitnets_tf.errors import with_setting_names
from fitnets_tf.harness import config as config_lib
from fitnets_tf.harness import pipeline
from fitnets_tf.data import DataNotFoundError
from fitnets_tf.harness.training import (DamagedCheckpointError, NonFiniteLossError, Terminated,
                                         sigterm_as_interrupt)
from fitnets_tf.models.builders import layer_reference

FLAGS = flags.FLAGS

# The settings of one run that a sweep sets for each of its runs (directory, seed, hints) or does not offer (a
# name, overwriting, retraining): flags of scripts/run.py only (`define_run_flags(one_run=True)`).
ONE_RUN_FIELDS = ("model_dir", "experiment", "overwrite", "hints", "retrain_from", "seed")

# How the command line writes a value that is no plain bool, number, string or list of strings: added to the help.
_FLAG_FORMAT = {
    "hints": "Written guided:hint, comma-separated, e.g. '11:2' or 'conv4:conv2,6:3' or "
             "'c4:mobilenetv2_1.00_32/block_3_expand_relu' (a path into a nested model).",
}

# The fields whose flags `define_run_flags` defined; `run_config_from_flags` reads these back.
_DEFINED = []


def define_run_flags(student_help=None, teacher_path_help=None, export_default=None, one_run=False):
    """Defines a flag for every `RunConfig` field (those of `ONE_RUN_FIELDS` only with `one_run`), each with the
    field's name, default, help and choices.

    `student_help`, `teacher_path_help`, `export_default`: what a script's runs make of these settings where it
    differs from the field's (a sweep's students and shared teacher; a sweep exports nothing by default)."""
    fields = [f for f in dataclasses.fields(config_lib.RunConfig) if one_run or f.name not in ONE_RUN_FIELDS]
    named = {f.name for f in fields}
    own_help = {"student": student_help, "teacher_path": teacher_path_help}
    for field in fields:
        text = with_setting_names(own_help.get(field.name) or field.metadata["help"],
                                  lambda name: f"--{name}" if name in named else None)
        if field.name in _FLAG_FORMAT:
            text = f"{text} {_FLAG_FORMAT[field.name]}"
        default = None if field.default is dataclasses.MISSING else field.default
        if field.name == "export" and export_default is not None:
            default = export_default
        _define(field, default, text)
        _DEFINED.append(field.name)


def _define(field, default, text):
    value_type, choices = _value_type(field), field.metadata.get("choices")
    if choices is not None:
        if value_type is not str:
            raise TypeError(f"RunConfig.{field.name}: choices make an enum flag, of strings only.")
        flags.DEFINE(_Choice(field.name, choices), field.name, default, f"<{'|'.join(choices)}>: {text}",
                     serializer=flags.ArgumentSerializer())
    elif value_type is tuple:
        flags.DEFINE_list(field.name, None if default is None else list(default), text)
    else:
        define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
                  str: flags.DEFINE_string}[value_type]
        define(field.name, default, text)


def _value_type(field):
    """The type of a field's values, Optional[X] as X: bool, int, float, str, or tuple for any Tuple[...]."""
    annotation = typing.get_type_hints(config_lib.RunConfig)[field.name]
    if typing.get_origin(annotation) is typing.Union:
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is tuple:
        return tuple
    if annotation in (bool, int, float, str):
        return annotation
    raise TypeError(f"RunConfig.{field.name}: no flag for values of type {annotation}. Give it a bool, int, float, "
                    "str or tuple type, or a parser here.")


class _Choice(flags.EnumParser):
    """An enum flag whose refusal is the library's: a ConfigError naming the setting and its choices, which
    `parse_flags` lets through to one `error:` line, as for any other invalid setting."""

    def __init__(self, field, choices):
        super().__init__(list(choices))
        self.field = field

    def parse(self, argument):
        config_lib.check_choice(self.field, argument)
        return argument


def parse_flags(argv):
    """Parses `argv` into FLAGS as absl does (`app.parse_flags_with_usage`, the parser of `app.run`), except that a
    value outside a setting's choices raises the ConfigError naming it."""
    try:
        return FLAGS(argv)
    except flags.Error as error:
        if isinstance(error.__context__, pipeline.ConfigError):
            raise error.__context__ from None
    return app.parse_flags_with_usage(argv)  # absl's own report of any other bad flag (and exit 1)


def _count_or_fraction(value):
    return int(value) if value >= 1 and float(value).is_integer() else value


def _hint_pairs(values):
    if not values:
        return None
    pairs = []
    for item in values:
        parts = item.split(":")
        if len(parts) != 2 or not all(parts):
            raise pipeline.ConfigError(f"--hints: {item!r} is not guided:hint (e.g. 11:2 or conv11:conv2).")
        pairs.append(tuple(layer_reference(p) for p in parts))
    return tuple(pairs)


# A flag value that is not the field's value as it is: how to make it one (a list flag's value becomes a tuple).
_FROM_FLAG = {"validation_size": _count_or_fraction, "hints": _hint_pairs}


def run_config_from_flags(**fields):
    """A `RunConfig` from the flags `define_run_flags` defined; `fields` sets the rest (a sweep's model_dir)."""
    values = {}
    for name in _DEFINED:
        value = FLAGS[name].value
        if name in _FROM_FLAG:
            value = _FROM_FLAG[name](value)
        elif isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return pipeline.RunConfig(**values, **fields)


def flags_file_text(script, directory):
    """The flags of `script` (a module) and the shared ones, as a replayable flagfile for `directory`."""
    flagfile = shlex.quote(f"--flagfile={os.path.join(directory, 'flags.cfg')}")
    lines = [f"# Replay: python scripts/{os.path.basename(sys.argv[0])} {flagfile}"]
    own = FLAGS.get_flags_for_module(script) or FLAGS.get_flags_for_module(sys.argv[0])
    for flag in [*own, *FLAGS.get_flags_for_module(__name__)]:
        if flag.value is not None:
            lines.append(flag.serialize())
    return "\n".join(lines) + "\n"


def empty_flagfile(argv):
    """The first `--flagfile` in `argv` that exists but holds no flag (empty, or only comments), else None.

    absl reads such a file without complaint and the run silently takes every default; the scripts refuse it."""
    for i, arg in enumerate(argv[1:], start=1):
        if arg.startswith("--flagfile="):
            path = arg[len("--flagfile="):]
        elif arg == "--flagfile" and i + 1 < len(argv):
            path = argv[i + 1]
        else:
            continue
        if not os.path.isfile(path):
            continue  # absl names a missing file itself
        with open(path) as f:
            lines = [line.strip() for line in f]
        if not any(line and not line.startswith(("#", "//")) for line in lines):
            return path
    return None


def refuse_empty_flagfile(argv, error_type):
    """Raises `error_type` (one line naming --flagfile) if a flagfile in `argv` holds no flag."""
    path = empty_flagfile(argv)
    if path is not None:
        raise error_type(f"--flagfile: {path!r} holds no flags (it is empty or only comments), so the run would "
                         "silently take every default. Put the flags in it (see flags/digits.cfg), or drop "
                         "--flagfile to run the defaults.")


INTERRUPTED = ("interrupted (Ctrl-C): the checkpoints of every finished epoch are kept{where}; rerun the same "
               "command to resume.")
DISK_FULL = ("error: the disk is full ({error}). The checkpoints of every finished epoch are kept{where} (a write "
             "cut off is never the newest one read back); free some space and rerun the same command to resume.")
TERMINATED = ("stopped (SIGTERM): the checkpoints of every finished epoch are kept{where}; rerun the same command "
              "to resume.")


def as_flags(message):
    """A library message with each setting it names (`field`) written as the flag that sets it (--field)."""
    return with_setting_names(message, lambda field: f"--{field}" if field in FLAGS else None)


def show_library_progress():
    """Shows on stderr what the library logs at INFO (a stage starting or resuming, the hint pairs, a kept
    results.json), while other libraries' INFO (TFDS, ...) stays hidden; warnings and errors show as usual.

    Call it in a script's `main` (absl sets the logging up in `app.run`)."""
    package = os.path.dirname(os.path.abspath(fitnets_tf.__file__)) + os.sep
    logging.set_verbosity(logging.INFO)
    std_logging.getLogger("fitnets_tf").setLevel(std_logging.INFO)  # the library's own loggers (automatic choices)
    logging.get_absl_handler().addFilter(
        lambda record: record.levelno >= std_logging.WARNING or os.path.abspath(record.pathname).startswith(package))


def run_entry(main, directory_flag):
    """Runs a script's `main` under absl: what the user can fix ends in one `error:` line and exit 2 (a setting,
    absent data) or 1 (a damaged checkpoint, a non-finite loss); Ctrl-C (130) and SIGTERM (143, what `docker stop`,
    Kubernetes and Slurm send) in one line saying how to resume.

    `directory_flag`: the flag naming the directory that keeps the work ("model_dir", "sweep_dir").
    """
    try:
        with sigterm_as_interrupt():
            refuse_empty_flagfile(sys.argv, pipeline.ConfigError)
            app.run(main, flags_parser=parse_flags)
    except (pipeline.ConfigError, DataNotFoundError) as error:
        code, line = 2, f"error: {as_flags(error)}"
    except (DamagedCheckpointError, NonFiniteLossError) as error:
        code, line = 1, f"error: {as_flags(error)}"
    except KeyboardInterrupt as stop:
        where = _where(directory_flag)
        code, line = (143, TERMINATED.format(where=where)) if isinstance(stop, Terminated) else (
            130, INTERRUPTED.format(where=where))
    except Exception as error:  # noqa: BLE001 (only a full disk is ours to explain; the rest is raised)
        full = disk_full(error)
        if full is None:
            raise
        code, line = 1, DISK_FULL.format(error=full, where=_where(directory_flag))
    exit_at_once(code, line)


def _where(directory_flag):
    directory = FLAGS[directory_flag].value if FLAGS.is_parsed() else None
    return f" in {directory}" if directory else ""


def disk_full(error):
    """The words of a full disk (or quota) in `error` or in the errors it was raised from, else None. Python
    reports it as OSError ENOSPC/EDQUOT; TensorFlow's file writes as an error whose message says so."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"{os.strerror(error.errno)}{': ' + error.filename if error.filename else ''}"
        text = str(error)
        for words in ("No space left on device", "Disk quota exceeded"):
            if words in text:
                return words
        error = error.__cause__ or error.__context__
    return None


def exit_at_once(code, line):
    """Prints `line` and ends the process with `code` without the interpreter's teardown.

    A run stopped mid-epoch leaves tf.data threads that call into Python (`tf.numpy_function` readers); were the
    interpreter torn down under them, the process could die of a segmentation fault instead of exiting with `code`.
    So: further stop signals are ignored, the dead run's objects are collected (their iterators stop, their
    TensorBoard writers flush), the streams are flushed, and the process exits at once."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    gc.collect()
    print(line, file=sys.stderr)
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
