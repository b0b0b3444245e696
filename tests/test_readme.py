"""The README's Python examples run as written, copied into a file outside the repository (epochs cut to 1)."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_block(section):
    readme = open(os.path.join(ROOT, "README.md")).read()
    return readme.split(section, 1)[1].split("```python", 1)[1].split("```", 1)[0]


def run_as_a_file(code, directory):
    """Runs `code` as a script in `directory`, with fitnets_tf importable as after `pip install -e .`."""
    script = directory / "example.py"
    script.write_text(re.sub(r"epochs=\d+", "epochs=1", code))
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(script)], cwd=str(directory), capture_output=True, text=True,
                          timeout=900, env=env)


@pytest.mark.slow
def test_the_readme_library_example_runs(tmp_path):
    code = python_block("## The library in 20 lines")
    assert len(code.strip().splitlines()) <= 20
    result = run_as_a_file(code, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "fitnet.keras").exists()


@pytest.mark.slow
def test_the_readme_distill_your_own_model_example_runs(tmp_path):
    code = python_block("### From Python")
    result = run_as_a_file(code, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"test accuracy: teacher 0\.\d+, FitNet 0\.\d+", result.stdout), result.stdout[-2000:]
    assert "`shuffle=True` was passed" not in result.stderr  # no Keras warning the user did not cause
    for name in ("teacher.keras", "student.keras"):
        assert (tmp_path / name).exists()
    assert len(os.listdir(tmp_path / "digits_png")) == 10
