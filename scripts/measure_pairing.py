"""The table of scripts/measure_pairing.sh: per arm, the hint pair, its regressor and the test accuracy of each
seed, mean +- std, and the paired differences against the explicit pair.

    .venv/bin/python scripts/measure_pairing.py runs/pairing
"""

import glob
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fitnets_tf.harness.tables import markdown_table  # noqa: E402

ARMS = ("explicit", "auto", "former")


def accuracies(directory):
    """{(arm, seed): {model: test accuracy in %}, ...} and {(arm, seed): the hint pair's details}."""
    found, pairs = {}, {}
    for arm in ARMS:
        for path in sorted(glob.glob(os.path.join(directory, arm, "seed*", "results.json"))):
            seed = int(os.path.basename(os.path.dirname(path))[4:])
            results = json.load(open(path))
            found[arm, seed] = {m["model"]: 100 * m["test_accuracy"] for m in results["models"]}
            pairs[arm, seed] = results["hint_pair_details"][0]
    return found, pairs


def mean_std(values):
    values = np.asarray(values, float)
    std = values.std(ddof=1) if len(values) > 1 else float("nan")
    return f"{values.mean():.2f} +- {std:.2f}" if len(values) > 1 else f"{values.mean():.2f}"


def main(directory):
    found, pairs = accuracies(directory)
    seeds = sorted({seed for arm, seed in found if arm == "explicit"})
    rows = []
    for arm in ARMS:
        done = [s for s in seeds if (arm, s) in found]
        if not done:
            continue
        p = pairs[arm, done[0]]
        kind = p["regressor"]
        if kind == "conv":  # the paper's rule: a "valid" kernel k = N_g - N_h + 1
            kind += f" {p['guided_shape'][0] - p['hint_shape'][0] + 1}x{p['guided_shape'][1] - p['hint_shape'][1] + 1}"
        pair = (f"{p['guided']} {tuple(p['guided_shape'])} <- {p['hint'].split('/')[-1]} {tuple(p['hint_shape'])}, "
                f"{kind}")
        values = [found[arm, s]["fitnet"] for s in done]
        diffs = [found[arm, s]["fitnet"] - found["explicit", s]["fitnet"] for s in done if ("explicit", s) in found]
        rows.append([f"FitNet, {arm} pair", pair, ", ".join(f"{v:.2f}" for v in values), mean_std(values),
                     mean_std(diffs) if arm != "explicit" else "-"])
    for model, label in (("baseline_kd", "KD alone (same student and weights)"), ("teacher", "teacher")):
        values = [found["explicit", s][model] for s in seeds if model in found["explicit", s]]
        if values:
            rows.append([label, "-", ", ".join(f"{v:.2f}" for v in values), mean_std(values), "-"])
    print(f"seeds: {', '.join(map(str, seeds))}")
    print(markdown_table(["model", "hint pair, regressor", "test accuracy per seed (%)", "mean +- std",
                          "minus explicit (paired)"], rows))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/pairing")
