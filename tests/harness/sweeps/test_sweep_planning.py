"""Sweep planning: the planned pairs the Distiller accepts, teacher sharing, the sweep.json pin, and the settings
a plan refuses (named as config fields)."""

import json
import os

import pytest

from fitnets_tf import Distiller, HintPair, HintStage
from fitnets_tf.errors import ConfigError
from fitnets_tf.harness import pipeline
from fitnets_tf.harness.sweeps import pairing, planning
from fitnets_tf.models import build_network, zoo
from tests.helpers import write_images


@pytest.mark.parametrize("experiment,dataset,teacher,student", [
    ("methods", "digits", "digits_teacher", "digits_fitnet"),
    ("depth", "digits", "digits_teacher", "digits_fitnet"),
    ("hint_location", "digits", "digits_teacher", "digits_fitnet"),
    ("depth", "cifar10", "cifar_teacher", "fitnet1"),
    ("depth", "fashion_mnist", "mnist_teacher", "mnist_fitnet"),
])
def test_planned_pairs_are_accepted_by_the_distiller(experiment, dataset, teacher, student):
    base = pipeline.RunConfig(model_dir="", dataset=dataset, teacher=teacher, student=student,
                              baselines=("ce", "kd", "ce_glorot"))
    budget = "5m" if dataset == "fashion_mnist" else "30m"
    cells = planning.plan_cells(experiment, base, depth_budget=budget)
    expected = {"methods": 1, "depth": len(planning.DEPTHS),
                "hint_location": len(pairing.LOCATIONS) + len(planning.MULTIPLE_HINTS)}[experiment]
    assert len(cells) == expected
    shape = {"cifar10": (32, 32, 3), "fashion_mnist": (28, 28, 1)}.get(dataset, (8, 8, 1))
    teacher_net = build_network(zoo.get_spec(teacher, input_shape=shape), seed=0)
    for cell in cells:
        student_net = build_network(zoo.get_spec(cell.student, input_shape=shape), seed=0)
        # The pipeline's own check: binding stage 1 builds a regressor per pair or raises.
        HintStage([HintPair(g, h) for g, h in cell.hints]).bind(Distiller(student_net, teacher_net))
    if experiment == "depth" and dataset == "cifar10":
        # The paper's pairs 2 <- 2, 4 <- 2, 5 <- 2, 7 <- 2 all fit.
        assert [c.hints for c in cells] == [((2, 2),), ((4, 2),), ((5, 2),), ((7, 2),)]
        assert [c.student for c in cells] == ["depth5_30m", "depth7_30m", "depth9_30m", "depth11_30m"]
        assert all(c.note == "" for c in cells)
    if dataset == "fashion_mnist":
        # The 28x28 nets keep the paper's guided layers; each guided 7x7 map is mapped to the teacher's 3x3 hint.
        assert [c.hints for c in cells] == [((2, 2),), ((4, 2),), ((5, 2),), ((7, 2),)]
        assert [c.student for c in cells] == ["depth5_5m", "depth7_5m", "depth9_5m", "depth11_5m"]
        assert all(c.baselines == ("ce", "kd", "ce_glorot") for c in cells)
    if experiment == "hint_location":
        assert [c.baselines for c in cells] == [(), ("ce", "kd", "ce_glorot"), (), (), (), ()]
        assert [c.hints for c in cells] == [((2, 1),), ((4, 2),), ((8, 3),), ((2, 1), (4, 2)), ((4, 2), (8, 3)),
                                            ((2, 1), (8, 3))]


CELLS = (planning.Cell("a", "digits_fitnet", ((4, 2),), (("4 (pool1 4x4)", "2 (pool1 4x4)"),), ("ce", "kd"), "a"),
         planning.Cell("b", "digits_fitnet", ((8, 3),), (("8 (conv8 4x4)", "3 (conv3 4x4)"),), (), "b"))


def test_digits_shares_one_teacher_per_seed(tmp_path):
    base = pipeline.RunConfig(model_dir="", dataset="digits")
    sweep = planning.plan("hint_location", base, (0, 1), str(tmp_path), cells=CELLS)
    assert sweep.teacher_sharing == "seed"
    runs = {r.key: r for r in sweep.runs}
    assert [r.key for r in sweep.runs] == ["a/seed0", "a/seed1", "b/seed0", "b/seed1"]
    assert runs["a/seed0"].trains_teacher and runs["a/seed0"].config.teacher_path is None
    assert runs["b/seed1"].config.teacher_path == os.path.join(str(tmp_path), "a", "seed1", "teacher.keras")
    assert runs["b/seed1"].config.model_dir == os.path.join(str(tmp_path), "b", "seed1")
    assert runs["b/seed1"].config.seed == 1 and runs["b/seed1"].config.baselines == ()
    assert runs["b/seed1"].config.hints == ((8, 3),)
    assert sweep.teacher_runs == ("a/seed0", "a/seed1")


def test_one_teacher_for_a_digits_sweep_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="test images"):
        planning.plan("methods", pipeline.RunConfig(model_dir=""), (0, 1), str(tmp_path), teacher_sharing="sweep",
                         cells=CELLS)


def test_a_folder_sweep_shares_one_teacher_per_seed_like_digits(tmp_path):
    """A folder's test split is drawn with the seed: one teacher for every seed would have seen other seeds' test
    images, so "auto" trains one per seed and "sweep" is refused."""
    base = pipeline.RunConfig(model_dir="", dataset=write_images(tmp_path / "photos", per_class=2))
    assert planning.plan("methods", base, (0, 1), str(tmp_path / "a"), cells=CELLS).teacher_sharing == "seed"
    with pytest.raises(ConfigError, match="'sweep' is refused for folder:.*photos: .* test images"):
        planning.plan("methods", base, (0, 1), str(tmp_path / "b"), teacher_sharing="sweep", cells=CELLS)


def test_tfds_datasets_share_one_teacher_pinned_by_sweep_json(tmp_path):
    base = pipeline.RunConfig(model_dir="", dataset="cifar10", teacher="cifar_teacher", student="fitnet1")
    sweep = planning.plan("hint_location", base, (3, 4), str(tmp_path), cells=CELLS)
    assert sweep.teacher_sharing == "sweep" and sweep.teacher_seed == 3
    assert [r.trains_teacher for r in sweep.runs] == [True, False, False, False]
    assert {r.config.teacher_path for r in sweep.runs[1:]} == {os.path.join(str(tmp_path), "a", "seed3",
                                                                            "teacher.keras")}
    # A later command with other seeds keeps the pinned teacher run (and runs it if it is missing).
    (tmp_path / "sweep.json").write_text(json.dumps(sweep.pin()))
    later = planning.plan("hint_location", base, (5,), str(tmp_path), cells=CELLS)
    assert [r.key for r in later.runs] == ["a/seed3", "a/seed5", "b/seed5"]
    assert later.runs[0].trains_teacher and later.teacher_runs == ("a/seed3",)
    with pytest.raises(ConfigError, match="holds a 'hint_location' sweep"):
        planning.plan("depth", base, (5,), str(tmp_path), cells=CELLS)


def test_a_given_teacher_is_loaded_by_every_run(tmp_path):
    teacher = tmp_path / "teacher.keras"
    teacher.write_bytes(b"")
    base = pipeline.RunConfig(model_dir="", teacher_path=str(teacher))
    sweep = planning.plan("hint_location", base, (0, 1), str(tmp_path / "sweep"), cells=CELLS)
    assert sweep.teacher_sharing == "given"
    assert not any(r.trains_teacher for r in sweep.runs)
    assert {r.config.teacher_path for r in sweep.runs} == {str(teacher)}


def test_plan_refuses_bad_settings(tmp_path):
    base = pipeline.RunConfig(model_dir="")
    for seeds in ((), (0, 0), (-1,)):
        with pytest.raises(ConfigError, match="^`seeds`"):
            planning.plan("methods", base, seeds, str(tmp_path), cells=CELLS)
    with pytest.raises(ConfigError, match="^`experiment`"):
        planning.plan("width", base, (0,), str(tmp_path), cells=CELLS)
    with pytest.raises(ConfigError, match="^`hint_epochs`"):
        planning.plan("methods", pipeline.RunConfig(model_dir="", hint_epochs=0), (0,), str(tmp_path), cells=CELLS)
    # Each message names the setting as its config field; scripts/ write it as the flag.
    with pytest.raises(ConfigError, match="^`sweep_dir`: required"):
        planning.plan("methods", base, (0,), "", cells=CELLS)
    with pytest.raises(ConfigError, match="^`teacher_sharing`: choose one of auto, sweep, seed. Received: 'all'"):
        planning.plan("methods", base, (0,), str(tmp_path), teacher_sharing="all", cells=CELLS)
    with pytest.raises(ConfigError, match="^`depth_budget`: choose one of 30m, 107m, 5m"):
        planning.plan_cells("depth", base, depth_budget="1m")
