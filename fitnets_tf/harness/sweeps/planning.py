"""What a sweep runs: its cells, one pipeline run per (cell, seed), and who trains the shared teacher.

Nothing here trains or writes; `plan` checks the settings (naming each as its config field) and reads the sweep's
pin (sweep.json) so that a later command joins the sweep it continues.
"""

import dataclasses
import os
from typing import Optional, Tuple, Union

from fitnets_tf.data.folder import is_folder
from fitnets_tf.errors import check
from fitnets_tf.harness import pipeline
from fitnets_tf.harness.sweeps.pairing import LOCATIONS, conv_taps, default_pair, describe_tap, hint_location_pairs
from fitnets_tf.io_utils import read_json
from fitnets_tf.models import zoo

EXPERIMENTS = ("methods", "depth", "hint_location")
TEACHER_SHARING = ("auto", "sweep", "seed")
DEPTH_BUDGETS = ("30m", "107m", "5m")  # 5m: the 28x28 nets (zoo.DEPTH_STUDY_28)
DEPTHS = (5, 7, 9, 11)
MULTIPLE_HINTS = (("early", "middle"), ("middle", "late"), ("early", "late"))
# Datasets whose whole split (test included) is drawn with RunConfig.seed (see data.load_splits); folders too.
SEEDED_SPLITS = ("digits",)


def has_seeded_split(dataset):
    """True when `dataset`'s test split depends on the seed: `SEEDED_SPLITS` and every folder of images."""
    return dataset in SEEDED_SPLITS or is_folder(str(dataset))


@dataclasses.dataclass(frozen=True)
class Cell:
    """One point of a sweep, run once per seed.

    Attributes:
        name: directory name and table key ("digits_fitnet", "depth7", "early+late").
        student: the FitNet architecture (zoo name).
        hints: ((guided layer, hint layer), ...) as the paper's 1-based indices, in stage-1 order; the pipeline taps
            an index after the max-pool that directly follows it (`models.resolve_tap`).
        taps: the same pairs described for the table: (("4 (pool1 4x4)", "2 (pool1 4x4)"), ...).
        baselines: the pipeline baselines trained in this cell ("ce", "kd").
        x: the cell's value on the plot's x axis (depth, location label, or the student name).
        note: how the hint pairs were chosen when a rule had to move them.
    """

    name: str
    student: str
    hints: Tuple[Tuple[int, int], ...]
    taps: Tuple[Tuple[str, str], ...]
    baselines: Tuple[str, ...]
    x: Union[int, str]
    note: str = ""


@dataclasses.dataclass(frozen=True)
class Run:
    """One pipeline run: a cell at a seed. `trains_teacher`: this run trains the teacher others load."""

    cell: Cell
    seed: int
    config: pipeline.RunConfig
    trains_teacher: bool = False

    @property
    def key(self):
        return f"{self.cell.name}/seed{self.seed}"


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """Everything a sweep will run, in order (runs that train a shared teacher come first).

    Attributes:
        teacher_sharing: "sweep" (one teacher), "seed" (one per seed), or "given" (`base.teacher_path`).
        teacher_runs: keys ("cell/seedK") of the runs whose teacher row the table reports.
        runs: every run to execute or read, the requested seeds plus, in "sweep" sharing, the pinned teacher run.
    """

    experiment: str
    sweep_dir: str
    seeds: Tuple[int, ...]
    base: pipeline.RunConfig
    cells: Tuple[Cell, ...]
    runs: Tuple[Run, ...]
    teacher_sharing: str
    teacher_seed: Optional[int]
    teacher_runs: Tuple[str, ...]
    depth_budget: Optional[str] = None

    def pin(self):
        """The part of the plan sweep.json records (and a rerun must agree with)."""
        return {"experiment": self.experiment, "teacher_sharing": self.teacher_sharing,
                "teacher_seed": self.teacher_seed}


# ------------------------------------------------------------------------------------------------------ cells
def depth_student(depth, budget):
    return f"depth{depth}_{budget}"


def _cell(name, student, pairs, teacher_taps, student_taps, baselines, x, note=""):
    taps = tuple((describe_tap(student_taps, g - 1), describe_tap(teacher_taps, h - 1)) for g, h in pairs)
    return Cell(name, student, tuple(pairs), taps, baselines, x, note)


def _default_pair_cell(base, name, student, x, teacher_taps, student_taps):
    """A cell that trains the architectures' default pair (`pairing.default_pair`) with `base.baselines`."""
    pair, note = default_pair(teacher_taps, student_taps, zoo.default_hint_layer(student),
                              zoo.default_hint_layer(base.teacher), base.regressor, (base.teacher, student))
    return _cell(name, student, [pair], teacher_taps, student_taps, base.baselines, x, note)


def _hint_location_cells(base, teacher_taps, student_taps):
    """One cell per location, then one per pair of locations (two hints); the baselines train in "middle" only."""
    pairs = hint_location_pairs(teacher_taps, student_taps, zoo.default_hint_layer(base.student), base.regressor,
                                (base.teacher, base.student))
    cells = [_cell(loc, base.student, [pairs[loc][0]], teacher_taps, student_taps,
                   base.baselines if loc == "middle" else (), loc, pairs[loc][1]) for loc in LOCATIONS]
    for combo in MULTIPLE_HINTS:
        name = "+".join(combo)
        note = "; ".join(f"{loc}: {pairs[loc][1]}" for loc in combo if pairs[loc][1])
        cells.append(_cell(name, base.student, [pairs[loc][0] for loc in combo], teacher_taps, student_taps, (),
                           name, note))
    return tuple(cells)


def plan_cells(experiment, base, depth_budget="30m"):
    """The cells of `experiment` for the dataset, teacher, student and regressor of `base` (builds the nets once)."""
    from fitnets_tf import data as data_lib

    check_choice(experiment, EXPERIMENTS, "experiment")
    if experiment == "depth":
        check_choice(depth_budget, DEPTH_BUDGETS, "depth_budget")
    info = data_lib.dataset_info(base.dataset)

    def taps(name):
        return conv_taps(name, info.image_shape, info.num_classes)

    teacher_taps = taps(base.teacher)
    if experiment == "hint_location":
        return _hint_location_cells(base, teacher_taps, taps(base.student))
    if experiment == "methods":
        students = [(base.student, base.student, base.student)]
    else:
        students = [(f"depth{d}", depth_student(d, depth_budget), d) for d in DEPTHS]
    return tuple(_default_pair_cell(base, name, student, x, teacher_taps, taps(student))
                 for name, student, x in students)


# --------------------------------------------------------------------------------------------------- settings
def check_choice(value, choices, setting):
    check(value in choices, setting, f"choose one of {', '.join(choices)}. Received: {value!r}")


def _check_seeds(seeds):
    seeds = tuple(seeds)
    valid = bool(seeds) and len(set(seeds)) == len(seeds) and all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)
    check(valid, "seeds", f"give distinct integers >= 0, e.g. 0,1,2. Received: {seeds!r}")
    return seeds


def resolve_teacher_sharing(teacher_sharing, base):
    """"given" when `base.teacher_path` is set; "auto" -> "seed" for datasets in `SEEDED_SPLITS`, else "sweep".

    "sweep" is refused for those datasets: one seed's teacher would have trained on another seed's test images.
    """
    check_choice(teacher_sharing, TEACHER_SHARING, "teacher_sharing")
    if base.teacher_path:
        return "given"
    if teacher_sharing == "auto":
        return "seed" if has_seeded_split(base.dataset) else "sweep"
    check(teacher_sharing != "sweep" or not has_seeded_split(base.dataset), "teacher_sharing",
          f"'sweep' is refused for {base.dataset}: its split, test images included, depends on the seed, so a "
          "teacher trained with one seed has seen the other seeds' test images. Use 'seed' or 'auto'.")
    return teacher_sharing


def _read_pin(sweep_dir, experiment, sharing):
    """The sweep's sweep.json (None before its first run), refused if it pins another experiment or sharing."""
    pinned = read_json(os.path.join(sweep_dir, "sweep.json"))
    if pinned is None:
        return None
    check(pinned.get("experiment") == experiment, "sweep_dir",
          f"{sweep_dir!r} holds a {pinned.get('experiment')!r} sweep, not {experiment!r}. Choose another "
          "`sweep_dir`.")
    check(pinned.get("teacher_sharing") == sharing, "teacher_sharing",
          f"the sweep in {sweep_dir!r} shares its teacher by {pinned.get('teacher_sharing')!r}, this one by "
          f"{sharing!r}. Use the same setting (or `teacher_path`), or another `sweep_dir`.")
    return pinned


# ------------------------------------------------------------------------------------------------------- runs
def _plan_runs(experiment, base, seeds, sweep_dir, cells, sharing, teacher_seed):
    """(runs, teacher_runs): the teacher's runs first, then every (cell, seed); see `SweepPlan`."""
    first = cells[0]

    def model_dir(cell, seed):
        return os.path.join(sweep_dir, cell.name, f"seed{seed}")

    def make_run(cell, seed):
        trains = (sharing == "sweep" and cell == first and seed == teacher_seed) or \
                 (sharing == "seed" and cell == first)
        if sharing == "given":
            teacher_path = base.teacher_path
        elif trains:
            teacher_path = None
        else:
            source_seed = teacher_seed if sharing == "sweep" else seed
            teacher_path = os.path.join(model_dir(first, source_seed), "teacher.keras")
        config = dataclasses.replace(
            base, model_dir=model_dir(cell, seed), experiment=f"{experiment}:{cell.name}:seed{seed}", seed=seed,
            student=cell.student, hints=cell.hints, baselines=cell.baselines, teacher_path=teacher_path,
            # a teacher this sweep trained saw the same data and preprocessing: only a given one is checked
            check_teacher=base.check_teacher and sharing == "given",
        )
        return Run(cell, seed, config, trains)

    runs = []
    if sharing == "sweep":
        runs.append(make_run(first, teacher_seed))
        teacher_runs = (runs[0].key,)
    elif sharing == "seed":
        runs.extend(make_run(first, s) for s in seeds)
        teacher_runs = tuple(r.key for r in runs)
    else:
        seeded = has_seeded_split(base.dataset)
        teacher_runs = tuple(f"{first.name}/seed{s}" for s in (seeds if seeded else seeds[:1]))
    done = {r.key for r in runs}
    runs += [make_run(cell, seed) for cell in cells for seed in seeds if f"{cell.name}/seed{seed}" not in done]
    return tuple(runs), teacher_runs


def plan(experiment, base, seeds, sweep_dir, depth_budget="30m", teacher_sharing="auto", cells=None):
    """Plans a sweep: the cells, and one `RunConfig` per (cell, seed) derived from `base`.

    Args:
        experiment: one of `EXPERIMENTS`.
        base: the settings shared by every run (model_dir, seed, student for "depth", hints, baselines and
            experiment are set per run; `base.teacher_path`, if set, is used by every run).
        seeds: the seeds to run and aggregate.
        sweep_dir: the sweep's directory; each run goes to <sweep_dir>/<cell>/seed<k>.
        depth_budget: one of `DEPTH_BUDGETS`, the depth study's multiplication budget.
        teacher_sharing: "auto", "sweep" or "seed" (see `fitnets_tf.harness.sweeps`).
        cells: the cells, if already planned (`plan_cells`); planned here otherwise.
    Returns:
        A `SweepPlan`. Nothing is written.
    Raises:
        ConfigError naming the setting at fault (as `field`).
    """
    check_choice(experiment, EXPERIMENTS, "experiment")
    seeds = _check_seeds(seeds)
    check(bool(sweep_dir), "sweep_dir", "required (the directory that receives the sweep).")
    check(base.hint_epochs >= 1, "hint_epochs", "the experiments compare hint training, which needs hint_epochs "
          f">= 1. Received: {base.hint_epochs}")
    sweep_dir = os.path.abspath(sweep_dir)
    pipeline.validate(base)
    sharing = resolve_teacher_sharing(teacher_sharing, base)
    pinned = _read_pin(sweep_dir, experiment, sharing)
    teacher_seed = None
    if sharing == "sweep":
        teacher_seed = pinned["teacher_seed"] if pinned is not None else seeds[0]
    cells = tuple(cells) if cells is not None else plan_cells(experiment, base, depth_budget)
    runs, teacher_runs = _plan_runs(experiment, base, seeds, sweep_dir, cells, sharing, teacher_seed)
    return SweepPlan(experiment, sweep_dir, seeds, base, cells, runs, sharing, teacher_seed, teacher_runs,
                     depth_budget if experiment == "depth" else None)

