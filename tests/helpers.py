"""Helpers shared by the tests."""

import contextlib
import functools
import importlib.util
import inspect
import os
import subprocess
import sys
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")


def run_script_with_private_flags():
    """scripts/run.py loaded as a private module whose absl flags (its own and run_flags') live in a `FlagValues`
    of their own, so this process's global FLAGS are neither defined twice nor left parsed."""
    return script_with_private_flags("run.py")


def script_with_private_flags(file_name):
    """scripts/<file_name> (run.py, experiment.py) loaded as a private module with flags of its own, as
    `run_script_with_private_flags`; its `run_flags` is the private one too."""
    import absl
    from absl import flags

    private = flags.FlagValues()

    class PrivateFlags(types.ModuleType):
        def __getattr__(self, attr):
            value = getattr(flags, attr)
            try:
                takes_flag_values = "flag_values" in inspect.signature(value).parameters
            except (TypeError, ValueError):
                takes_flag_values = False
            return functools.partial(value, flag_values=private) if takes_flag_values else value

    shim = PrivateFlags("absl.flags")
    shim.FLAGS = private

    def load(module_name, script_file):
        spec = importlib.util.spec_from_file_location(module_name, os.path.join(SCRIPTS, script_file))
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
        return module

    name = f"_private_{os.path.splitext(file_name)[0]}"
    saved = sys.modules.get("run_flags")
    absl.flags = shim  # what `from absl import flags` in the scripts receives
    try:
        load("run_flags", "run_flags.py")  # run.py's `import run_flags` gets this private one
        script = load(name, file_name)
    finally:
        absl.flags = flags
        sys.modules.pop(name, None)
        if saved is None:
            sys.modules.pop("run_flags", None)
        else:
            sys.modules["run_flags"] = saved
    return script


@contextlib.contextmanager
def mounted_tmpfs(mount_point, options):
    """A tmpfs mounted at `mount_point` (created) with `options` (e.g. "size=3m", "ro,size=1m") for the block, then
    unmounted; skips the test where it cannot be mounted (not root, no tmpfs)."""
    import pytest

    os.makedirs(mount_point, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True)


def write_images(root, classes=3, per_class=12, size=32, seed=0):
    """A folder of PNGs, one subfolder per class; class c is a bright square in corner c over noise."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / f"class{c}").mkdir(parents=True)
        for i in range(per_class):
            image = rng.integers(0, 80, (size, size, 3)).astype("uint8")
            y, x = divmod(c, 2)
            image[y * 16:y * 16 + 16, x * 16:x * 16 + 16] = 220
            (root / f"class{c}" / f"{i}.png").write_bytes(tf.io.encode_png(image).numpy())
    return f"folder:{root}"


def record_stage_starts(monkeypatch):
    """Wraps `pipeline.train_stage` for this test: returns a list that gets, per stage handed over, a dict with its
    `name`, the `stage` object, the student's `weights` at that moment and whether the stage was `skipped`."""
    from fitnets_tf.harness import pipeline

    calls = []
    train_stage = pipeline.train_stage

    def recording(name, distiller, stage, *args, **kwargs):
        weights = [w.copy() for w in distiller.student.get_weights()]
        result = train_stage(name, distiller, stage, *args, **kwargs)
        calls.append({"name": name, "stage": stage, "weights": weights, "skipped": bool(result.get("skipped"))})
        return result

    monkeypatch.setattr(pipeline, "train_stage", recording)
    return calls
