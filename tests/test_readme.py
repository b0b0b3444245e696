"""The README and the docs pages: their Python examples run as written, copied into a file outside the repository
(epochs cut to 1); the README stays a two-minute page; every relative link points to a file that exists."""

import glob
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
PAGES = [README] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
README_MAX_LINES = 250

# [text](target): the target up to the first space or ")" (a title after a space is ignored).
LINK = re.compile(r"\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def python_block(page, heading):
    """The first ```python block of the section under `heading` (a whole heading line, e.g. "### From Python")."""
    blocks = [code for under, code in python_blocks(os.path.join(ROOT, page)) if under == heading]
    assert blocks, f"{page}: no ```python block under the heading {heading!r}"
    return blocks[0]


def python_blocks(path):
    """(heading, code) of every ```python block in `path`, the heading being the last one above the block (a line
    starting with "#" inside a code block is code, not a heading)."""
    heading = None
    lines = open(path).read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            language, end = lines[i][3:].strip(), i + 1
            while not lines[end].startswith("```"):
                end += 1
            if language == "python":
                yield heading, "\n".join(lines[i + 1:end]) + "\n"
            i = end
        elif re.match(r"#{1,6} ", lines[i]):
            heading = lines[i].rstrip()
        i += 1


def run_as_a_file(code, directory):
    """Runs `code` as a script in `directory`, with fitnets_tf importable as after `pip install -e .`."""
    script = directory / "example.py"
    script.write_text(re.sub(r"epochs=\d+", "epochs=1", code))
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, str(script)], cwd=str(directory), capture_output=True, text=True,
                          timeout=900, env=env)


def anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped (but "-" and "_"), spaces become "-"."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path):
    text = FENCE.sub("", open(path).read())
    return {anchor(m.group(1)) for m in re.finditer(r"^#{1,6} (.+?)\s*$", text, flags=re.M)}


def relative_links(path):
    """(target, line) of every link in `path` that is neither a URL nor inside code."""
    text = FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), open(path).read())
    text = INLINE_CODE.sub(lambda m: " " * len(m.group(0)), text)
    for match in LINK.finditer(text):
        target = match.group(1)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target, flags=re.I):  # http:, https:, mailto:
            yield target, text.count("\n", 0, match.start()) + 1


def test_the_readme_is_a_two_minute_page():
    with open(README) as f:
        lines = f.read().splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines; at most {README_MAX_LINES}: move the long parts to a page in docs/")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: os.path.relpath(p, ROOT))
def test_every_relative_link_points_to_an_existing_file(page):
    broken = []
    for target, line in relative_links(page):
        file_part, _, fragment = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(page), file_part)) if file_part else page
        if not os.path.exists(resolved):
            broken.append(f"line {line}: {target} (no file {os.path.relpath(resolved, ROOT)})")
        elif fragment and resolved.endswith(".md") and fragment not in anchors(resolved):
            broken.append(f"line {line}: {target} (no heading #{fragment} in {os.path.relpath(resolved, ROOT)})")
    assert not broken, f"{os.path.relpath(page, ROOT)}:\n" + "\n".join(broken)


def test_the_link_check_sees_links_and_anchors():
    """The checker itself, on text whose answer is known (so a regex that matches nothing cannot pass silently)."""
    assert anchor("Measured here: 224x224 JPEG folders, MobileNetV2 teacher") == (
        "measured-here-224x224-jpeg-folders-mobilenetv2-teacher")
    assert anchor("The embedded digits experiment (`make demo`)") == "the-embedded-digits-experiment-make-demo"
    assert {target for target, _ in relative_links(README)} >= {"docs/results.md", "fitnets_tf/losses.py"}


# Every ```python block of README.md and docs/*.md, by page and heading: run by a test below, or a fragment.
RUN = {
    ("README.md", "## The library in 20 lines"): "test_the_readme_library_example_runs",
    ("docs/own_models.md", "### From Python"): "test_the_distill_your_own_model_example_runs",
}
FRAGMENTS = {  # cannot run as written; compiled only
    ("docs/serving.md", "## Serving on devices (LiteRT)"): "needs a run's litert/ files and the caller's `images`",
}


def test_every_python_block_is_run_or_a_listed_fragment():
    found = {(os.path.relpath(page, ROOT), heading): code for page in PAGES for heading, code in python_blocks(page)}
    unlisted = set(found) - set(RUN) - set(FRAGMENTS)
    assert not unlisted, f"a ```python block no test runs: {sorted(unlisted)}; run it below or list it in FRAGMENTS"
    assert set(RUN) | set(FRAGMENTS) <= set(found), f"listed but gone: {sorted(set(RUN) | set(FRAGMENTS) - set(found))}"
    for key in FRAGMENTS:
        compile(found[key], f"{key[0]}, {key[1]}", "exec")
    for test in RUN.values():
        assert test in globals(), test


@pytest.mark.slow
def test_the_readme_library_example_runs(tmp_path):
    code = python_block("README.md", "## The library in 20 lines")
    assert len(code.strip().splitlines()) <= 20
    result = run_as_a_file(code, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "fitnet.keras").exists()


@pytest.mark.slow
def test_the_distill_your_own_model_example_runs(tmp_path):
    code = python_block("docs/own_models.md", "### From Python")
    result = run_as_a_file(code, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"test accuracy: teacher 0\.\d+, FitNet 0\.\d+", result.stdout), result.stdout[-2000:]
    assert "`shuffle=True` was passed" not in result.stderr  # no Keras warning the user did not cause
    for name in ("teacher.keras", "student.keras"):
        assert (tmp_path / name).exists()
    assert len(os.listdir(tmp_path / "digits_png")) == 10
