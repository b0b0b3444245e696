"""Prints depth, parameters, multiplications and the default hint/guided layer of the zoo's architectures.

Reproduces the parameter and mult-add recounts of the FitNets paper's CIFAR-10 table (see
`fitnets_tf.models.counting` for the convention). From the repository root:

    python scripts/count.py --architectures=fitnet1,fitnet2,fitnet3,fitnet4

Expected: FitNets 1 / 2 / 3 / 4 with 348,694 / 1,057,622 / 1,699,638 / 2,742,102 parameters and 30.2M / 108.0M /
324.1M / 381.9M multiplications; about 15 s for every architecture on two CPU cores (`--layers` adds the per-layer
table, `--format=markdown|json` changes the output).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402
import keras  # noqa: E402

from fitnets_tf.harness.tables import markdown_table, text_table  # noqa: E402
from fitnets_tf.models import build_network, resolve_layer, resolve_tap  # noqa: E402
from fitnets_tf.models.counting import count_multiplications, count_parameters, layer_table  # noqa: E402
from fitnets_tf.models.zoo import get_spec, list_architectures  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "architectures", None,
    "Comma-separated architecture names to count, e.g. fitnet1,fitnet4. Counts every registered architecture when "
    "not given.",
)
flags.DEFINE_enum(
    "format", "text", ["text", "markdown", "json"],
    "Output format: an aligned text table, a Markdown table, or one JSON object keyed by architecture name.",
)
flags.DEFINE_bool("layers", False, "Also print the parameters and multiplications of every conv and dense layer.")


def _summary(name, with_layers):
    spec = get_spec(name)
    model = build_network(spec)
    row = {
        "architecture": name,
        "depth": spec.depth,
        "params": count_parameters(model),
        "mults": count_multiplications(model),
        "hint_layer": spec.hint_layer,
        "hint_layer_name": resolve_layer(model, spec.hint_layer, "hint layer"),
        # The tensor a hint/guided layer given by index refers to (after the max-pool that follows it, if any).
        "hint_tap": resolve_tap(model, spec.hint_layer, "hint layer")[1],
        "hint_tap_shape": list(model.get_layer(resolve_tap(model, spec.hint_layer)[1]).output.shape[1:]),
    }
    if with_layers:
        row["layers"] = [dict(r, output_shape=list(r["output_shape"])) for r in layer_table(model)]
    keras.utils.clear_session()
    return row


def _millions(n):
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}K"


_COLUMNS = ("architecture", "depth", "params", "mults", "hint layer")
_LAYER_COLUMNS = ("layer", "output shape", "params", "mults")


def _cells(row):
    return [
        row["architecture"], str(row["depth"]), f"{row['params']:,} ({_millions(row['params'])})",
        f"{row['mults']:,} ({_millions(row['mults'])})",
        f"{row['hint_layer']} ({row['hint_layer_name']} -> {row['hint_tap']} "
        f"{'x'.join(str(d) for d in row['hint_tap_shape'])})",
    ]


def _layer_cells(layer):
    return [layer["name"], "x".join(str(d) for d in layer["output_shape"]), f"{layer['params']:,}",
            f"{layer['mults']:,}"]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    names = FLAGS.architectures or list_architectures()
    known = set(list_architectures())
    unknown = [n for n in names if n not in known]
    if unknown:
        raise app.UsageError(
            f"Unknown architecture(s) {', '.join(unknown)}. Choose from: {', '.join(list_architectures())}."
        )
    rows = [_summary(name, FLAGS.layers) for name in names]
    if FLAGS.format == "json":
        print(json.dumps({row.pop("architecture"): row for row in rows}, indent=2))
        return
    table = markdown_table if FLAGS.format == "markdown" else text_table
    print(table(_COLUMNS, [_cells(row) for row in rows]))
    if FLAGS.layers:
        for row in rows:
            print(f"\n{'### ' if FLAGS.format == 'markdown' else ''}{row['architecture']}\n")
            print(table(_LAYER_COLUMNS, [_layer_cells(layer) for layer in row["layers"]]))


if __name__ == "__main__":
    app.run(main)
