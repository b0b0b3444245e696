"""Which hint layer fits which guided layer: the sweeps' fixed rules for pairing conv layers by paper index.

Layers are the paper's 1-based indices of the conv layers, tapped as the pipeline taps an index (after the max-pool
that directly follows a layer, as in the paper's code; `models.resolve_tap`). Whether a regressor can map a guided
map onto a hint map is the regressor's own rule (`regressor.regressor_refusal`); the rules here only choose, among
the pairs it accepts, the one closest to the architectures' default (`default_pair`) or to a location in the
student (`hint_location_pairs`).
"""

import math

from fitnets_tf.errors import ConfigError
from fitnets_tf.models import zoo
from fitnets_tf.models.builders import paper_index
from fitnets_tf.regressor import regressor_refusal

LOCATIONS = ("early", "middle", "late")


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
    """Whether a `regressor` can map a guided map (H, W) onto a hint map (H, W) (`regressor.regressor_refusal`).

    "auto" is asked as the paper's "conv", which it takes wherever that applies: the sweeps choose pairs the conv
    regressor maps, so that every cell of a sweep trains the same kind of regressor.
    """
    kind = "conv" if regressor == "auto" else regressor
    return regressor_refusal((None, *guided_map, 1), (None, *hint_map, 1), kind) is None


def _position(taps, layer, arch, setting):
    """0-based position in `taps` of a conv layer given by its 1-based paper index."""
    index = paper_index(layer)
    if index is not None and 1 <= index <= len(taps):
        return index - 1
    raise ConfigError(
        f"`{setting}`: the default hint/guided layer {layer!r} of {arch!r} is not the paper index of one of its "
        f"{len(taps)} conv layers; the experiments pair conv layers by index. Choose a zoo architecture whose "
        "default layer is a conv layer."
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
        names: the (teacher, student) architectures, for the messages.
    Returns:
        ((guided index, hint index), note), note "" when the default pair was kept.
    Raises:
        ConfigError when no pair fits.
    """
    g, h = _position(student_taps, guided, names[1], "student"), _position(teacher_taps, hint, names[0], "teacher")
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
    raise ConfigError(
        f"`student`: no conv layer of {names[1]!r} can be guided by a conv layer of {names[0]!r} with a "
        f"'{regressor}' regressor ({default}). Choose other architectures, or set `regressor` to 'dense'."
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
        ConfigError if two locations coincide or a location has no fitting hint.
    """
    n, m = len(student_taps), len(teacher_taps)
    d = _position(student_taps, default_guided, names[1], "student") + 1
    guided = {"early": math.ceil(d / 2), "middle": d, "late": n}
    if len(set(guided.values())) != len(guided):
        raise ConfigError(
            f"`student`: {names[1]!r} has {n} conv layers and its default guided layer is {d}: the early / middle / "
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
            raise ConfigError(
                f"`student`: no conv layer of {names[0]!r} from {proportional} on fits the {location} guided layer "
                f"{describe_tap(student_taps, g - 1)} of {names[1]!r} with a '{regressor}' regressor. Choose other "
                "architectures, or set `regressor` to 'dense'."
            )
    return pairs
