"""The sweeps' hint-pair rules: taps by paper index, the regressor's rule, default and per-location pairs."""

import pytest

from fitnets_tf.errors import ConfigError
from fitnets_tf.harness.sweeps import pairing
from fitnets_tf.regressor import REGRESSOR_KINDS, build_regressor

# Hint/guided taps (tap layer, (H, W)) by paper index, as models.resolve_tap gives them (an index includes the
# max-pool right after the conv): digits nets on 8x8 images, CIFAR nets on 32x32.
DIGITS_TEACHER = [("conv1", (8, 8)), ("pool1", (4, 4)), ("conv3", (4, 4))]
DIGITS_FITNET = [("conv1", (8, 8)), ("conv2", (8, 8)), ("conv3", (8, 8)), ("pool1", (4, 4))] + [
    (f"conv{i}", (4, 4)) for i in range(5, 9)]
DEPTH5_ON_DIGITS = [("pool1", (4, 4)), ("pool2", (2, 2)), ("conv3", (2, 2))]
CIFAR_TEACHER = [("pool1", (15, 15)), ("pool2", (6, 6)), ("pool3", (4, 4))]
FITNET1 = [("conv1", (32, 32)), ("conv2", (32, 32)), ("pool1", (16, 16)), ("conv4", (16, 16)), ("conv5", (16, 16)),
           ("pool2", (8, 8)), ("conv7", (8, 8)), ("conv8", (8, 8)), ("conv9", (8, 8))]


def test_fits_follows_the_regressor_kernel_rule():
    assert pairing.fits((8, 8), (8, 8)) and pairing.fits((16, 16), (14, 14))
    assert not pairing.fits((8, 8), (14, 14))
    assert not pairing.fits((8, 8), (4, 4), "conv1x1") and pairing.fits((4, 4), (4, 4), "conv1x1")
    assert pairing.fits((2, 2), (14, 14), "dense")


@pytest.mark.parametrize("guided,hint", [((8, 8), (8, 8)), ((16, 16), (14, 14)), ((8, 8), (14, 14)),
                                         ((8, 16), (9, 4)), ((4, 4), (2, 2))])
def test_fits_says_yes_exactly_where_build_regressor_maps_the_pair(guided, hint):
    for kind in REGRESSOR_KINDS:
        if kind == "auto":
            continue
        try:
            build_regressor((None, *guided, 3), (None, *hint, 2), kind=kind)
            built = True
        except ValueError:
            built = False
        assert pairing.fits(guided, hint, kind) == built, kind
    # "auto" is asked as the conv it prefers, so that every cell of a sweep trains the same kind of regressor.
    assert pairing.fits(guided, hint, "auto") == pairing.fits(guided, hint, "conv")


def test_conv_taps_follow_the_pipelines_index_semantics():
    assert pairing.conv_taps("digits_teacher", (8, 8, 1), 10) == DIGITS_TEACHER
    assert pairing.conv_taps("digits_fitnet", (8, 8, 1), 10) == DIGITS_FITNET


def test_default_pair_is_kept_when_it_fits():
    assert pairing.default_pair(CIFAR_TEACHER, FITNET1, 6, 2) == ((6, 2), "")
    assert pairing.default_pair(DIGITS_TEACHER, DIGITS_FITNET, 4, 2) == ((4, 2), "")
    assert pairing.default_pair(DIGITS_TEACHER, DIGITS_FITNET, "4", "2") == ((4, 2), "")


def test_default_pair_moves_the_guided_layer_earlier_then_the_hint_deeper():
    # depth5_30m on 8x8 digits: its guided layer 2 (2x2 after pool2) cannot take the 4x4 hint; layer 1 can.
    pair, note = pairing.default_pair(DIGITS_TEACHER, DEPTH5_ON_DIGITS, 2, 2)
    assert pair == (1, 2) and "2 (pool2 2x2)" in note and "moved to 1 (pool1 4x4)" in note
    # No student layer is as large as the teacher's layer 1: the hint moves deeper instead.
    pair, note = pairing.default_pair([("conv1", (16, 16)), ("conv2", (4, 4))],
                                      [("conv1", (8, 8)), ("conv2", (4, 4))], 2, 1)
    assert pair == (2, 2) and "hint layer moved" in note
    with pytest.raises(ConfigError, match="no conv layer"):
        pairing.default_pair([("conv1", (16, 16))], [("conv1", (8, 8))], 1, 1)


def test_default_layers_that_are_not_conv_indices_are_refused_naming_the_architecture_setting():
    with pytest.raises(ConfigError, match=r"^`student`: .*'fc1' of 'student'"):
        pairing.default_pair(DIGITS_TEACHER, DIGITS_FITNET, "fc1", 2)
    with pytest.raises(ConfigError, match=r"^`teacher`: .*4 of 'teacher' is not the paper index of one of its 3"):
        pairing.default_pair(DIGITS_TEACHER, DIGITS_FITNET, 4, 4)


def test_hint_location_pairs_map_the_teacher_proportionally():
    pairs = pairing.hint_location_pairs(DIGITS_TEACHER, DIGITS_FITNET, 4)
    # early = ceil(4 / 2) = 2 <- teacher ceil(2 * 3 / 8) = 1; middle 4 <- ceil(4 * 3 / 8) = 2; late 8 <- 3.
    assert {k: v[0] for k, v in pairs.items()} == {"early": (2, 1), "middle": (4, 2), "late": (8, 3)}
    assert all(note == "" for _, note in pairs.values())
    pairs = pairing.hint_location_pairs(CIFAR_TEACHER, FITNET1, 6)
    assert {k: v for k, v in pairs.items()} == {"early": ((3, 1), ""), "middle": ((6, 2), ""), "late": ((9, 3), "")}
    # A proportional hint larger than the guided map moves to the next teacher layer that fits.
    large_first = [("conv1", (33, 33))] + CIFAR_TEACHER[1:]
    pairs = pairing.hint_location_pairs(large_first, FITNET1, 6)
    assert pairs["early"][0] == (3, 2) and "1 (conv1 33x33)" in pairs["early"][1]
    with pytest.raises(ConfigError, match="not distinct"):
        pairing.hint_location_pairs(DIGITS_TEACHER, DIGITS_FITNET[:2], 1)
