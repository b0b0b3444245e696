"""Experiment sweeps: the paper's comparisons as grids of pipeline runs, with seeds, a table and a plot.

Three experiments (`EXPERIMENTS`), each a list of cells run once per seed; a run is one `pipeline.run` in
`<sweep_dir>/<cell>/seed<k>`, which already trains and evaluates the FitNet (hints, stage 1, then KD, stage 2) and
the baselines on the same student and initial weights:
  - "methods": the paper's MNIST table. One cell, the student; methods CE (plain backprop), KD, HT+KD (the FitNet).
  - "depth": the paper's depth study (Sec. 4.4): students of 5/7/9/11 layers at one multiplication budget
    (zoo `depth{5,7,9,11}_{30m,107m}`), each with CE, KD and HT+KD; accuracy against depth.
  - "hint_location": the 2023 re-study: the guided layer early / middle / late in the student, the teacher's hint
    layer mapped proportionally, and two hints at once (early+middle, middle+late, early+late; stage 1 once per pair
    in order, as the original code). CE and KD are trained once, in the "middle" cell, as references.

Hint pairs are the paper's 1-based layer indices, which the pipeline taps after the max-pool that directly follows a
layer (the paper's code); they are chosen by fixed rules (`default_pair`, `hint_location_pairs`) that respect the
convolutional regressor's constraint (the hint map no larger than the guided map, Sec. 2.2), and the table records
each pair with its taps and maps.

Resuming: a run whose results.json exists is read, not rerun; an unfinished one resumes through the pipeline.
Every run's recorded settings are compared with the planned ones before anything trains, so a finished cell of a
different sweep is never mixed into a table.

The teacher is trained once and shared (`RunConfig.teacher_path`): across the whole sweep when the dataset's test
split does not depend on the seed (TFDS datasets), else once per seed (digits: its stratified split, test included,
is drawn with the run's seed, so a teacher trained with another seed has seen this seed's test images).

Outputs in `sweep_dir`: sweep.json (what the sweep is; pins the shared teacher), <experiment>.md and
<experiment>.json (one row per (cell, method): mean +- std test accuracy over seeds, n, parameters,
multiplications, hint pairs, and the raw per-seed values), <experiment>.png.
"""

import dataclasses
import math
import os
from typing import Optional, Tuple, Union

from fitnets_tf.harness import pipeline
from fitnets_tf.io_utils import atomic_save, atomic_write_json, atomic_write_text, read_json
from fitnets_tf.models import zoo

EXPERIMENTS = ("methods", "depth", "hint_location")
TEACHER_SHARING = ("auto", "sweep", "seed")
DEPTH_BUDGETS = ("30m", "107m", "5m")  # 5m: the 28x28 nets (zoo.DEPTH_STUDY_28)
DEPTHS = (5, 7, 9, 11)
LOCATIONS = ("early", "middle", "late")
MULTIPLE_HINTS = (("early", "middle"), ("middle", "late"), ("early", "late"))
# Datasets whose whole split (test included) is drawn with RunConfig.seed (see data.load_splits).
SEEDED_SPLITS = ("digits",)
# results.json model name -> method label, in table order.
METHODS = {"baseline_ce": "CE", "baseline_kd": "KD", "baseline_ce_glorot": "CE (Glorot init)",
           "baseline_kd_glorot": "KD (Glorot init)", "fitnet": "HT+KD"}
TEACHER_METHOD = "teacher (CE)"


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


# ------------------------------------------------------------------------------------------------ aggregation
def mean_std(values):
    """Mean and sample standard deviation (ddof=1; None for fewer than 2 values) of per-seed values.

    Returns:
        {"mean": float or None, "std": float or None, "n": int}.
    """
    values = [float(v) for v in values if v is not None]
    n = len(values)
    if n == 0:
        return {"mean": None, "std": None, "n": 0}
    mean = math.fsum(values) / n
    std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    return {"mean": mean, "std": std, "n": n}


def format_mean_std(stats, scale=100.0, digits=2):
    """"91.23 ± 0.45" (in percent by default); "91.23" for one seed; "-" for none."""
    if stats["mean"] is None:
        return "-"
    text = f"{scale * stats['mean']:.{digits}f}"
    return text if stats["std"] is None else f"{text} ± {scale * stats['std']:.{digits}f}"


# ---------------------------------------------------------------------------------------------- hint pairs
def conv_taps(name, image_shape, num_classes):
    """The hint/guided taps of the conv layers of architecture `name`, in the paper's order.

    Entry i is the tap of paper index i + 1 as the pipeline resolves an index (`models.resolve_tap`: the conv's
    output, or the max-pool directly after it, as in the paper's code): (tap layer name, (H, W)).
    """
    import keras

    from fitnets_tf.models import build_network, resolve_tap, tap_names

    model = build_network(zoo.get_spec(name, input_shape=image_shape, num_classes=num_classes))
    taps = []
    for index, layer in enumerate(tap_names(model), start=1):
        if not layer.startswith("conv"):  # convs come first, then fc layers and the logits
            break
        tap = resolve_tap(model, index)[1]
        taps.append((tap, tuple(int(d) for d in model.get_layer(tap).output.shape[1:3])))
    del model
    keras.backend.clear_session()
    return taps


def fits(guided_map, hint_map, regressor="conv"):
    """Whether a `regressor` can map a guided map (H, W) onto a hint map (H, W) (see `regressor.build_regressor`)."""
    if regressor == "dense":
        return True
    if regressor == "conv1x1":
        return tuple(guided_map) == tuple(hint_map)
    return all(g >= h for g, h in zip(guided_map, hint_map))


def _position(taps, layer, arch):
    """0-based position in `taps` of a conv layer given by its 1-based paper index."""
    if isinstance(layer, str) and layer.isdigit():
        layer = int(layer)
    if isinstance(layer, int) and not isinstance(layer, bool) and 1 <= layer <= len(taps):
        return layer - 1
    raise pipeline.ConfigError(
        f"--hints: the default hint/guided layer {layer!r} of {arch!r} is not the paper index of one of its "
        f"{len(taps)} conv layers; the experiments pair conv layers by index."
    )


def describe_tap(taps, position):
    """'4 (pool1 4x4)': the paper index of `taps[position]`, its tap layer and map."""
    name, (h, w) = taps[position]
    return f"{position + 1} ({name} {h}x{w})"


def default_pair(teacher_taps, student_taps, guided, hint, regressor="conv", names=("teacher", "student")):
    """The architectures' default pair (the paper's "guided <- hint"), moved only if the regressor cannot map it.

    Rule: keep the teacher's hint layer (the depth study varies only the student); if its map is larger than the
    default guided layer's, take the deepest earlier student layer whose map fits; if none fits, keep the guided
    layer and take the first deeper teacher layer that fits.

    Args:
        teacher_taps, student_taps: from `conv_taps`.
        guided, hint: the default layers (1-based paper indices).
    Returns:
        ((guided index, hint index), note), note "" when the default pair was kept.
    Raises:
        pipeline.ConfigError when no pair fits.
    """
    g, h = _position(student_taps, guided, names[1]), _position(teacher_taps, hint, names[0])
    if fits(student_taps[g][1], teacher_taps[h][1], regressor):
        return (g + 1, h + 1), ""
    default = (f"the default pair {describe_tap(student_taps, g)} <- {describe_tap(teacher_taps, h)} does not fit a "
               f"'{regressor}' regressor (hint map larger than guided map)")
    for gi in range(g - 1, -1, -1):
        if fits(student_taps[gi][1], teacher_taps[h][1], regressor):
            return (gi + 1, h + 1), \
                f"{default}; guided layer moved to {describe_tap(student_taps, gi)}, the deepest that fits"
    for hi in range(h + 1, len(teacher_taps)):
        if fits(student_taps[g][1], teacher_taps[hi][1], regressor):
            return (g + 1, hi + 1), \
                f"{default}; hint layer moved to {describe_tap(teacher_taps, hi)}, the first deeper that fits"
    raise pipeline.ConfigError(
        f"--student: no conv layer of {names[1]!r} can be guided by a conv layer of {names[0]!r} with a "
        f"'{regressor}' regressor ({default}). Choose other architectures or --regressor=dense."
    )


def hint_location_pairs(teacher_taps, student_taps, default_guided, regressor="conv",
                        names=("teacher", "student")):
    """One (guided, hint) pair of paper indices per location in `LOCATIONS`, for N student and M teacher convs.

    Guided layer: early = ceil(d / 2), middle = d (the student's default guided layer, the paper's middle),
    late = N (the last conv). Hint layer, mapped proportionally: ceil(g * M / N); if its map is larger than the
    guided map, the first deeper teacher layer that fits.

    Returns:
        {location: ((guided index, hint index), note)}.
    Raises:
        pipeline.ConfigError if two locations coincide or a location has no fitting hint.
    """
    n, m = len(student_taps), len(teacher_taps)
    d = _position(student_taps, default_guided, names[1]) + 1
    guided = {"early": math.ceil(d / 2), "middle": d, "late": n}
    if len(set(guided.values())) != len(guided):
        raise pipeline.ConfigError(
            f"--student: {names[1]!r} has {n} conv layers and its default guided layer is {d}: the early / middle / "
            f"late guided layers {guided} are not distinct. Choose a deeper student."
        )
    pairs = {}
    for location, g in guided.items():
        proportional = max(1, math.ceil(g * m / n))
        for h in range(proportional, m + 1):
            if fits(student_taps[g - 1][1], teacher_taps[h - 1][1], regressor):
                note = "" if h == proportional else (
                    f"proportional hint {describe_tap(teacher_taps, proportional - 1)} is larger than the guided "
                    f"map; moved to {describe_tap(teacher_taps, h - 1)}")
                pairs[location] = ((g, h), note)
                break
        else:
            raise pipeline.ConfigError(
                f"--student: no conv layer of {names[0]!r} from {proportional} on fits the {location} guided layer "
                f"{describe_tap(student_taps, g - 1)} of {names[1]!r} with a '{regressor}' regressor. Choose other "
                "architectures or --regressor=dense."
            )
    return pairs


# -------------------------------------------------------------------------------------------------- planning
def depth_student(depth, budget):
    return f"depth{depth}_{budget}"


def _cell(name, student, pairs, teacher_taps, student_taps, baselines, x, note=""):
    taps = tuple((describe_tap(student_taps, g - 1), describe_tap(teacher_taps, h - 1)) for g, h in pairs)
    return Cell(name, student, tuple(pairs), taps, baselines, x, note)


def plan_cells(experiment, base, depth_budget="30m"):
    """The cells of `experiment` for the dataset, teacher, student and regressor of `base` (builds the nets once)."""
    from fitnets_tf import data as data_lib

    _check_choice(experiment, EXPERIMENTS, "experiment")
    info = data_lib.dataset_info(base.dataset)
    shape, classes = info.image_shape, info.num_classes
    teacher_taps = conv_taps(base.teacher, shape, classes)
    teacher_hint = zoo.default_hint_layer(base.teacher)
    if experiment == "methods":
        student_taps = conv_taps(base.student, shape, classes)
        pair, note = default_pair(teacher_taps, student_taps, zoo.default_hint_layer(base.student), teacher_hint,
                                  base.regressor, (base.teacher, base.student))
        return (_cell(base.student, base.student, [pair], teacher_taps, student_taps, base.baselines, base.student,
                      note),)
    if experiment == "depth":
        _check_choice(depth_budget, DEPTH_BUDGETS, "depth_budget")
        cells = []
        for depth in DEPTHS:
            student = depth_student(depth, depth_budget)
            student_taps = conv_taps(student, shape, classes)
            pair, note = default_pair(teacher_taps, student_taps, zoo.default_hint_layer(student), teacher_hint,
                                      base.regressor, (base.teacher, student))
            cells.append(_cell(f"depth{depth}", student, [pair], teacher_taps, student_taps, base.baselines, depth,
                               note))
        return tuple(cells)
    student_taps = conv_taps(base.student, shape, classes)
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


def _check_choice(value, choices, flag):
    if value not in choices:
        raise pipeline.ConfigError(f"--{flag}: choose one of {', '.join(choices)}. Received: {value!r}")


def _check_seeds(seeds):
    seeds = tuple(seeds)
    if not seeds or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in seeds) \
            or len(set(seeds)) != len(seeds):
        raise pipeline.ConfigError(f"--seeds: give distinct integers >= 0, e.g. 0,1,2. Received: {seeds!r}")
    return seeds


def resolve_teacher_sharing(teacher_sharing, base):
    """"given" when `base.teacher_path` is set; "auto" -> "seed" for datasets in `SEEDED_SPLITS`, else "sweep".

    "sweep" is refused for those datasets: one seed's teacher would have trained on another seed's test images.
    """
    _check_choice(teacher_sharing, TEACHER_SHARING, "teacher_sharing")
    if base.teacher_path:
        return "given"
    if teacher_sharing == "auto":
        return "seed" if base.dataset in SEEDED_SPLITS else "sweep"
    if teacher_sharing == "sweep" and base.dataset in SEEDED_SPLITS:
        raise pipeline.ConfigError(
            f"--teacher_sharing=sweep: the {base.dataset} split, test images included, depends on the seed, so a "
            "teacher trained with one seed has seen the other seeds' test images. Use 'seed' or 'auto'.")
    return teacher_sharing


def plan(experiment, base, seeds, sweep_dir, depth_budget="30m", teacher_sharing="auto", cells=None):
    """Plans a sweep: the cells, and one `RunConfig` per (cell, seed) derived from `base`.

    Args:
        experiment: one of `EXPERIMENTS`.
        base: the settings shared by every run (model_dir, seed, student for "depth", hints, baselines and
            experiment are set per run; `base.teacher_path`, if set, is used by every run).
        seeds: the seeds to run and aggregate.
        sweep_dir: the sweep's directory; each run goes to <sweep_dir>/<cell>/seed<k>.
        depth_budget: "30m" or "107m", the depth study's multiplication budget.
        teacher_sharing: "auto", "sweep" or "seed" (see the module docstring).
        cells: the cells, if already planned (`plan_cells`); planned here otherwise.
    Returns:
        A `SweepPlan`. Nothing is written.
    Raises:
        pipeline.ConfigError naming the flag at fault.
    """
    _check_choice(experiment, EXPERIMENTS, "experiment")
    seeds = _check_seeds(seeds)
    if not sweep_dir:
        raise pipeline.ConfigError("--sweep_dir: required (the directory that receives the sweep).")
    if base.hint_epochs < 1:
        raise pipeline.ConfigError(
            f"--hint_epochs: the experiments compare hint training, which needs hint_epochs >= 1. "
            f"Received: {base.hint_epochs}")
    sweep_dir = os.path.abspath(sweep_dir)
    pipeline.validate(base)
    sharing = resolve_teacher_sharing(teacher_sharing, base)
    pinned = read_json(os.path.join(sweep_dir, "sweep.json"))
    if pinned is not None and pinned.get("experiment") != experiment:
        raise pipeline.ConfigError(
            f"--sweep_dir: {sweep_dir!r} holds a {pinned.get('experiment')!r} sweep, not {experiment!r}. "
            "Choose another --sweep_dir.")
    if pinned is not None and pinned.get("teacher_sharing") != sharing:
        raise pipeline.ConfigError(
            f"--teacher_sharing: the sweep in {sweep_dir!r} shares its teacher by {pinned.get('teacher_sharing')!r}, "
            f"this command by {sharing!r}. Use the same setting (or --teacher_path), or another --sweep_dir.")
    teacher_seed = None
    if sharing == "sweep":
        teacher_seed = pinned["teacher_seed"] if pinned is not None else seeds[0]
    cells = tuple(cells) if cells is not None else plan_cells(experiment, base, depth_budget)
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
        seeded = base.dataset in SEEDED_SPLITS
        teacher_runs = tuple(f"{first.name}/seed{s}" for s in (seeds if seeded else seeds[:1]))
    done = {r.key for r in runs}
    for cell in cells:
        for seed in seeds:
            if f"{cell.name}/seed{seed}" not in done:
                runs.append(make_run(cell, seed))
    return SweepPlan(experiment, sweep_dir, seeds, base, cells, tuple(runs), sharing, teacher_seed, teacher_runs,
                     depth_budget if experiment == "depth" else None)


# --------------------------------------------------------------------------------------------------- running
def _sweep_relative(path, model_dir):
    """`path` relative to the sweep directory of the run in `model_dir` (<sweep_dir>/<cell>/seed<k>)."""
    if not path or not model_dir:
        return path
    return os.path.relpath(os.path.abspath(path), os.path.dirname(os.path.dirname(os.path.abspath(model_dir))))


def recorded_differences(run):
    """The settings in which the run already recorded in `run.config.model_dir` differs from the planned one.

    Returns None if nothing is recorded there, else a list of setting names (empty: the same run). The teacher path
    is compared relative to the sweep directory, so that a moved sweep directory still matches.
    """
    recorded = read_json(os.path.join(run.config.model_dir, "run_config.json"))
    if recorded is None:
        return None
    expected = run.config.identity()
    recorded_settings = pipeline.recorded_identity(recorded)
    diff = []
    for key, value in expected.items():
        old = recorded_settings.get(key)
        if key == "teacher_path":
            value = _sweep_relative(value, run.config.model_dir)
            old = _sweep_relative(old, recorded.get("model_dir"))
        if old != value:
            diff.append(key)
    return diff


def is_finished(run):
    return os.path.exists(os.path.join(run.config.model_dir, "results.json"))


def check_recorded_runs(sweep_plan):
    """Refuses, before anything trains, a sweep whose directories hold runs with other settings."""
    for run in sweep_plan.runs:
        diff = recorded_differences(run)
        if diff:
            raise pipeline.ConfigError(
                f"--sweep_dir: {run.config.model_dir!r} holds a run with other settings (differs in: "
                f"{', '.join(diff)}). Rerun with the sweep's original flags (see {sweep_plan.sweep_dir}/flags.cfg), "
                "or choose another --sweep_dir.")


def run_sweep(sweep_plan, command="", on_ready=None, log=print, strategy=None):
    """Runs (or reads) every run of `sweep_plan`, then writes the table, JSON and plot; returns the summary.

    Args:
        sweep_plan: from `plan`.
        command: the command line, recorded in every run and in the table.
        on_ready: called once the sweep directory is accepted, before the first run (e.g. to write flags.cfg).
        log: receives one line per run ("finished, read" or "running").
        strategy: a `tf.distribute` strategy for every run (default: the current one).
    Returns:
        The summary written to <experiment>.json (see `summarize`).
    """
    import keras

    check_recorded_runs(sweep_plan)
    pin_path = os.path.join(sweep_plan.sweep_dir, "sweep.json")
    pin = {**sweep_plan.pin(), "seeds_first_run": list(sweep_plan.seeds), "cells": [
        dataclasses.asdict(c) for c in sweep_plan.cells]}

    accepted = []

    def ready():  # idempotent: pins the sweep once the first run (or an existing pin) accepts the directory
        if accepted:
            return
        accepted.append(True)
        if read_json(pin_path) is None:
            atomic_write_json(pin_path, pin)
        if on_ready is not None:
            on_ready()

    if os.path.exists(pin_path):
        ready()
    results = {}
    total = len(sweep_plan.runs)
    for i, run in enumerate(sweep_plan.runs, start=1):
        results_path = os.path.join(run.config.model_dir, "results.json")
        if is_finished(run):
            log(f"[experiments] {i}/{total} {run.key}: finished, results read from {results_path}")
        else:
            teacher = "trains the teacher" if run.trains_teacher else f"teacher {run.config.teacher_path}"
            log(f"[experiments] {i}/{total} {run.key}: running ({teacher})")
            pipeline.run(run.config, strategy=strategy, command=f"{command}  # run {run.key}", on_ready=ready)
            keras.backend.clear_session()
        results[run.key] = read_json(results_path)
    ready()
    summary = summarize(sweep_plan, results, command)
    write_outputs(sweep_plan, summary)
    return summary


# ------------------------------------------------------------------------------------------------- reporting
def _hint_text(taps):
    return ", ".join(f"{g} <- {h}" for g, h in taps) if taps else "-"


def _row(cell_name, x, method, model, run_results, cell=None):
    """One table row: the model `model` of each run in `run_results` ({seed: results.json}), aggregated."""
    per_seed, first = [], None
    for seed, result in run_results.items():
        row = next((r for r in result["models"] if r["model"] == model), None)
        if row is None:
            continue
        first = first or row
        per_seed.append({"seed": seed, "test_accuracy": row["test_accuracy"], "run": f"{cell_name}/seed{seed}",
                         "at_chance": bool(row.get("at_chance")), "best_epoch": row.get("best_epoch")})
    if first is None:
        return None
    return {
        "cell": cell_name, "x": x, "method": method, "model": model, "architecture": first["architecture"],
        "hints": [list(p) for p in cell.hints] if cell is not None and model == "fitnet" else [],
        "hint_taps": [list(t) for t in cell.taps] if cell is not None and model == "fitnet" else [],
        "test_accuracy": mean_std([p["test_accuracy"] for p in per_seed]),
        "per_seed": per_seed, "parameters": first["parameters"], "multiplications": first["multiplications"],
    }


def summarize(sweep_plan, results, command=""):
    """The table of a finished sweep from its runs' results.json ({"cell/seedK": results}).

    Rows: one per (cell, method) over the requested seeds (methods CE, KD, HT+KD as present in the cell), then the
    teacher over `sweep_plan.teacher_runs`. Each row: mean and sample std of the test accuracy, n, the raw per-seed
    values, parameters, multiplications, and the FitNet's hint pairs (guided <- hint).
    """
    rows = []
    for cell in sweep_plan.cells:
        by_seed = {s: results[f"{cell.name}/seed{s}"] for s in sweep_plan.seeds}
        for model, method in METHODS.items():
            row = _row(cell.name, cell.x, method, model, by_seed, cell)
            if row is not None:
                rows.append(row)
    teacher_results = {}
    for key in sweep_plan.teacher_runs:
        if key in results:
            teacher_results[int(key.rsplit("seed", 1)[1])] = results[key]
    first = sweep_plan.cells[0].name
    teacher_row = _row(first, None, TEACHER_METHOD, "teacher", teacher_results)
    if teacher_row is not None:
        teacher_row["cell"] = "teacher"
        rows.append(teacher_row)
    base = sweep_plan.base
    return {
        "experiment": sweep_plan.experiment, "dataset": base.dataset, "teacher": base.teacher,
        "student": None if sweep_plan.experiment == "depth" else base.student,
        "depth_budget": sweep_plan.depth_budget, "seeds": list(sweep_plan.seeds),
        "teacher_sharing": sweep_plan.teacher_sharing, "teacher_runs": list(sweep_plan.teacher_runs),
        "cells": [dataclasses.asdict(c) for c in sweep_plan.cells], "rows": rows, "command": command,
        "epochs": {k: getattr(base, k) for k in ("teacher_epochs", "hint_epochs", "kd_epochs", "baseline_epochs")},
        "base_config": {k: v for k, v in base.to_json().items() if k not in ("model_dir", "seed", "experiment")},
        "std": "sample standard deviation over seeds (ddof=1); null for one seed",
    }


def _count(n):
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


_SHARING_TEXT = {
    "sweep": "one teacher for the whole sweep, trained by run {runs} and loaded by every other run",
    "seed": "one teacher per seed, trained by the first cell's run of that seed ({runs}) and loaded by the other "
            "cells of the seed (the digits split, test included, depends on the seed)",
    "given": "the given teacher (--teacher_path), loaded by every run",
}


def markdown(summary):
    """The table of `summary` as markdown, with what was run and how the numbers were made."""
    s = summary
    title = {"methods": f"methods on student {s['student']}", "depth": f"depth at the {s['depth_budget']} budget",
             "hint_location": f"hint location, student {s['student']}"}[s["experiment"]]
    header = ["cell", "method", "test acc (%) mean ± std", "n", "per seed (%)", "params", "mults",
              "hints: guided <- hint (paper index, tap, map)"]
    lines = [f"# Experiment: {title} ({s['dataset']}, teacher {s['teacher']})", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in s["rows"]:
        per_seed = ", ".join("-" if p["test_accuracy"] is None else
                             f"{100 * p['test_accuracy']:.2f}{'*' if p.get('at_chance') else ''}"
                             for p in r["per_seed"])
        lines.append("| " + " | ".join([
            str(r["cell"]), r["method"], format_mean_std(r["test_accuracy"]), str(r["test_accuracy"]["n"]),
            per_seed, _count(r["parameters"]), _count(r["multiplications"]), _hint_text(r["hint_taps"]),
        ]) + " |")
    epochs = ", ".join(f"{k} {v if v is not None else 'hint+kd'}" for k, v in s["epochs"].items())
    lines += ["", f"Seeds: {', '.join(map(str, s['seeds']))}; std is the sample standard deviation (ddof=1). "
              f"Test accuracy of each run's models on the dataset's test split. Epochs: {epochs}.",
              "HT+KD is the FitNet (stage 1 hints, then stage 2 KD); KD and CE are the same student trained from "
              "the same initial weights with KD alone and with cross-entropy alone. Multiplications counted from "
              "the conv/dense layers (see models.counting).",
              f"Teacher: {_SHARING_TEXT[s['teacher_sharing']].format(runs=', '.join(s['teacher_runs']))}."]
    stuck = [f"{r['cell']} {r['method']}" for r in s["rows"] if any(p.get("at_chance") for p in r["per_seed"])]
    if stuck:
        trainable = [f"{r['cell']} {r['method']}" for r in s["rows"] if r["model"] != "teacher" and r["per_seed"]
                     and not any(p.get("at_chance") for p in r["per_seed"])]
        lines += ["", f"\\* never left chance (test accuracy below 1.5 / classes): {', '.join(stuck)}. These runs "
                  "did not get the student off the plateau of its initialisation within their budget; they say "
                  "nothing about how well the method trains the student. Trainable in every seed: "
                  f"{', '.join(trainable) or 'none'}."]
    notes = [f"- {c['name']}: {c['note']}" for c in s["cells"] if c["note"]]
    if notes:
        lines += ["", "Hint pairs moved by the regressor's constraint (hint map no larger than guided map):", *notes]
    lines += ["", f"Command: `{s['command']}`", ""]
    return "\n".join(lines)


def plot(summary, path):
    """Writes the sweep's PNG: bars per method ("methods"), accuracy against depth per method ("depth"), or bars
    per hint location with CE / KD reference lines ("hint_location"). Error bars: std over seeds; dots: seeds."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    s = summary
    rows = [r for r in s["rows"] if r["test_accuracy"]["mean"] is not None]
    teacher = next((r for r in rows if r["model"] == "teacher"), None)
    fig = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)

    def pct(stats):
        return 100 * stats["mean"], 0.0 if stats["std"] is None else 100 * stats["std"]

    def dots(x, row):
        ax.plot([x] * len(row["per_seed"]), [100 * p["test_accuracy"] for p in row["per_seed"]], "k.", ms=4,
                zorder=3)

    if s["experiment"] == "depth":
        for k, method in enumerate(METHODS.values()):
            series = sorted((r for r in rows if r["method"] == method), key=lambda r: r["x"])
            if series:
                means, stds = zip(*(pct(r["test_accuracy"]) for r in series))
                shift = 0.08 * (k - 1)  # methods side by side, so that equal values stay visible
                ax.errorbar([r["x"] + shift for r in series], means, yerr=stds, marker="o", capsize=3, label=method)
                for r in series:
                    dots(r["x"] + shift, r)
        ax.set_xticks(list(DEPTHS))
        ax.set_xlabel(f"student depth (layers), {s['depth_budget']} multiplication budget")
    else:
        bars = [r for r in rows if r["model"] == "fitnet"] if s["experiment"] == "hint_location" else \
            [r for r in rows if r["model"] != "teacher"]
        labels = [r["cell"] if s["experiment"] == "hint_location" else r["method"] for r in bars]
        for i, r in enumerate(bars):
            mean, std = pct(r["test_accuracy"])
            ax.bar(i, mean, yerr=std, capsize=4, color=f"C{i % 10}", alpha=0.8)
            dots(i, r)
        ax.set_xticks(range(len(bars)), labels)
        if s["experiment"] == "hint_location":
            ax.set_xlabel("guided layer location (HT+KD); two locations = two hints")
            for j, r in enumerate(x for x in rows if x["model"] in ("baseline_ce", "baseline_kd")):
                ax.axhline(pct(r["test_accuracy"])[0], ls="--", color=f"C{(len(bars) + j) % 10}",
                           label=f"{r['method']} (cell {r['cell']})")
        values = [100 * p["test_accuracy"] for r in bars for p in r["per_seed"]]
        if values:
            low = min(values + ([100 * teacher["test_accuracy"]["mean"]] if teacher else []))
            ax.set_ylim(max(0.0, low - 5.0), 100.0)
    if teacher is not None:
        ax.axhline(pct(teacher["test_accuracy"])[0], ls=":", color="gray", label=f"teacher ({s['teacher']})")
    ax.set_ylabel("test accuracy (%)")
    student = "" if s["student"] is None else f", student {s['student']}"
    ax.set_title(f"{s['experiment']}: {s['dataset']}{student}, {len(s['seeds'])} seed(s), mean ± std")
    ax.grid(axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_save(path, lambda tmp: fig.savefig(tmp, format="png"))


def output_paths(sweep_dir, experiment):
    """{"md", "json", "png"}: the table, the summary and the plot of a sweep."""
    return {ext: os.path.join(sweep_dir, f"{experiment}.{ext}") for ext in ("md", "json", "png")}


def write_outputs(sweep_plan, summary):
    paths = output_paths(sweep_plan.sweep_dir, sweep_plan.experiment)
    atomic_write_json(paths["json"], summary)
    atomic_write_text(paths["md"], markdown(summary))
    plot(summary, paths["png"])
    return paths

