"""Stage 1, hint-based training (Romero et al. 2015, Algorithm 1 line 2).

    W*_Guided, W*_r = argmin over (W_Guided, W_r) of L_HT(W_Guided, W_r)                    (Eq. 3)
    L_HT = 1/2 * || u_h(x; W_Hint) - r(v_g(x; W_Guided); W_r) ||^2

Trains ONLY the student truncated at its guided layer(s) (a sub-model that shares the student's variables, so
W*_Guided is in the student when stage 2 starts, with no copy) and the regressor(s) r, which this stage owns; the
teacher, truncated at its hint layer(s), is frozen. Several pairs in one stage sum their hint losses; the original
code trains them in sequence, one stage per pair (`HintStage([pair])` for each). When the Distiller compiles the
next stage the regressors are discarded (Algorithm 1, line 3).

Logs: `loss` (= `hint_loss`) and `hint_loss`.
"""

import dataclasses
import logging
import re
from typing import Union

import keras

from fitnets_tf import losses, taps
from fitnets_tf.regressor import build_regressor, choose_regressor, hint_nonlinearity
from fitnets_tf.stages.base import Stage, as_tuple

logger = logging.getLogger(__name__)

# An automatic regressor ("auto") has at most this share of the student's parameters (see `choose_regressor`).
REGRESSOR_SHARE = 0.25


@dataclasses.dataclass(frozen=True)
class HintPair:
    """One hint: student layer `guided` is taught teacher layer `hint` (paper notation "guided <- hint").

    Layers are 1-based paper indices on the zoo's networks (tapped after the max-pool that follows them, as in the
    paper's code), literal layer names ("conv8", "pool2", "block_3_expand_relu"), paths into nested models
    ("mobilenetv2_0.35_32/block_3_expand_relu") or protocol names (see `fitnets_tf.taps`). `regressor` is one of
    `regressor.REGRESSOR_KINDS`; "auto" takes the paper's conv where it applies.
    """

    guided: Union[int, str]
    hint: Union[int, str]
    regressor: str = "conv"


class HintPairs:
    """Hint pairs resolved on a student and a teacher, with one regressor each: what stage 1 and the one-stage
    FitNet share.

    Args:
        pairs: `HintPair`s, or "auto": the paper's choice, the middle layers (`taps.auto_pair`).
        distiller: the `Distiller` whose student and teacher (in its precision) the pairs resolve on.
        regressor_initializer: initializer (name) of the regressors' weights.
        seed: makes the regressors' initial weights reproducible (pair i: seed * 1000 + 900 + i).
        first_pair: the index of the first of `pairs` among all the run's pairs (one stage per pair, in sequence):
            pair i's seed and name follow its index in the run.

    Attributes: `pairs` (the resolved `HintPair`s), `regressors`, `report` (per pair: the references, both shapes,
    the regressor and why), `pairing` (why the automatic pair was chosen, or None).
    """

    def __init__(self, pairs, distiller, regressor_initializer="glorot_uniform", seed=None, first_pair=0):
        self.student, self.teacher, self.image_shape = distiller.student, distiller.teacher, distiller.image_shape
        self.pairing = None
        if isinstance(pairs, str):
            pairs = self._auto_pair(pairs)
        pairs = list(pairs)
        if not pairs:
            raise ValueError("Stage 'hint' needs hint pairs. Received: pairs=()")
        self.pairs, self.regressors, self.report = [], [], []
        for i, pair in enumerate(pairs, start=first_pair):
            if not isinstance(pair, HintPair):
                raise ValueError(f"pairs must be HintPairs or 'auto'. Received: {pair!r}")
            self._add_pair(pair, i, first_pair + len(pairs), regressor_initializer, seed)

    def _auto_pair(self, pairs):
        """pairs="auto": the paper's middle-layer pair (`taps.auto_pair`), as a one-element list."""
        if pairs != "auto":
            raise ValueError(f"pairs must be HintPairs or 'auto'. Received: pairs={pairs!r}")
        guided, hint, self.pairing = taps.auto_pair(self.student, self.teacher, self.image_shape,
                                                    REGRESSOR_SHARE * self.student.count_params())
        logger.info("Automatic hint pair: %s.", self.pairing)
        return [HintPair(guided, hint, "auto")]

    def _add_pair(self, pair, i, count, regressor_initializer, seed):
        """Resolves pair `i` of `count` on both models, chooses and builds its regressor, and reports it."""
        student, teacher = self.student, self.teacher
        guided = taps.resolve(student, pair.guided, "guided layer")
        hint = taps.resolve(teacher, pair.hint, "hint layer")
        guided_shape = self._tap_shape(student, guided)
        hint_shape = self._tap_shape(teacher, hint)
        kind, reason = pair.regressor, "as given in the pair"
        if kind == "auto":  # never a regressor that outweighs a share of the student it guides
            kind, reason = choose_regressor(guided_shape, hint_shape,
                                            max_weights=REGRESSOR_SHARE * student.count_params())
            logger.info("Regressor of pair %s <- %s: '%s' (%s).", guided.name, hint.name, kind, reason)
        self.pairs.append(HintPair(guided.name, hint.name, kind))  # the resolved references
        self.report.append({
            "guided": guided.name, "hint": hint.name, "guided_shape": list(guided_shape[1:]),
            "hint_shape": list(hint_shape[1:]), "regressor": kind, "regressor_reason": reason,
            "pairing": self.pairing,
        })
        self.regressors.append(
            build_regressor(
                guided_shape,
                hint_shape,
                kind=kind,
                nonlinearity=hint_nonlinearity(hint.layer) if hint.layer is not None else ("linear", 1),
                guided_name=f"{student.name}/{guided.name}",
                hint_name=f"{teacher.name}/{hint.name}",
                initializer=keras.initializers.get({
                    "class_name": regressor_initializer,
                    "config": {"seed": None if seed is None else seed * 1000 + 900 + i},
                }),
                name=f"regressor{i + 1}" if count > 1 else "regressor",
            )
        )

    def _tap_shape(self, model, tap):
        """The (None, ...) output shape of one tap (symbolic for functional models, one zero image otherwise)."""
        cut = taps.tap_model(model, [tap], f"{model.name}_tap", self.image_shape)
        if isinstance(cut, keras.Model):
            return tuple(cut.outputs[0].shape)
        return tuple(taps.output_shapes(cut, self.image_shape)[0])


class ResolvedPairs:
    """What a stage with hint pairs reports once bound (`resolved` is its `HintPairs`, None before)."""

    resolved = None

    @property
    def hint_pairs(self):
        """The resolved pairs (after binding)."""
        return list(self.resolved.pairs) if self.resolved is not None else []

    @property
    def pair_report(self):
        """Per pair: the resolved references, both shapes, the regressor and why (after binding)."""
        return list(self.resolved.report) if self.resolved is not None else []


class HintStage(ResolvedPairs, Stage):
    """Stage 1: the guided sub-model(s) and their regressor(s) learn the teacher's hint(s).

    Args:
        pairs: `HintPair`s trained together (their hint losses summed), or "auto" (the middle layers).
        spatial_mean: the original code's hint reduction (see `losses.hint_loss`); False is the paper's Eq. 3.
        regressor_initializer: initializer (name) of the regressors' weights.
        seed: makes the regressors' initial weights reproducible.
        first_pair: the index of its first pair among all the run's pairs when each pair is its own stage (the
            original code's sequence): the regressors' seeds and names follow it.

    Once bound (`Distiller.compile`): `hint_pairs` (resolved), `regressors`, `pair_report`, `guided_model` (the
    student truncated at the guided layer(s)) and `hint_model` (the teacher, in its precision, truncated at the
    hint layer(s)).
    """

    name = "hint"
    needs_teacher = True
    cache_in_float16 = True
    monitor = ("val_hint_loss", "min")

    def __init__(self, pairs="auto", spatial_mean=False, regressor_initializer="glorot_uniform", seed=None,
                 first_pair=0):
        self.pairs = pairs if isinstance(pairs, str) else tuple(pairs)
        self.spatial_mean = bool(spatial_mean)
        self.regressor_initializer = regressor_initializer
        self.seed = seed
        self.first_pair = first_pair
        self.resolved = None
        self.regressors = []
        self.discarded = False
        # What `checkpoint_objects` saves as "regressors": this stage's, or (set by the caller for one stage per
        # pair) every pair's in order, the checkpoint layout of runs that trained their pairs in sequence.
        self.checkpointed_regressors = None

    def build(self, distiller):
        self.resolved = HintPairs(self.pairs, distiller, self.regressor_initializer, self.seed, self.first_pair)
        self.regressors = list(self.resolved.regressors)
        guided = [p.guided for p in self.resolved.pairs]
        hints = [p.hint for p in self.resolved.pairs]
        # One multi-output sub-model per side: the shared prefix of several pairs is computed once. Each shares its
        # model's variables; the guided one holds exactly those its outputs depend on (`taps.tap_model`).
        self.guided_model = taps.tap_model(distiller.student, guided, "student_guided", distiller.image_shape)
        self.hint_model = taps.tap_model(distiller.teacher_forward, hints, "teacher_hints", distiller.image_shape)
        self.hint_loss_tracker = keras.metrics.Mean(name="hint_loss")

    @property
    def cache_name(self):
        """The default name of its teacher-output cache: the stage and its hint layers."""
        hints = "_".join(p.hint for p in self.hint_pairs) if self.resolved is not None else ""
        return re.sub(r"[^A-Za-z0-9]+", "_", f"{self.name}_{hints}").strip("_")

    @property
    def own_layers(self):
        return list(self.regressors)

    @property
    def variables(self):
        """The student up to the guided layer(s) (W_Guided) and the regressor(s) (W_r)."""
        variables = list(self.guided_model.trainable_variables)
        for regressor in self.regressors:
            variables += regressor.trainable_variables
        return variables

    def teacher_outputs(self, images):
        """u_h(x): the teacher's hint-layer output(s), one per pair."""
        return as_tuple(self.hint_model(images, training=False))

    def hint_losses(self, guided, hints, training):
        """The sum over the pairs of L_HT (`losses.hint_loss`) per example, from the guided outputs."""
        total = 0.0
        for regressor, g, h in zip(self.regressors, guided, hints):
            total += losses.hint_loss(h, regressor(g, training=training), self.spatial_mean)
        return total

    def per_example_losses(self, images, labels, hints, training):
        """The sum over the pairs of L_HT, per example; no logits."""
        total = self.hint_losses(as_tuple(self.guided_model(images, training=training)), hints, training)
        return total, {"hint_loss": total}, None

    @property
    def metrics(self):
        return [self.hint_loss_tracker]

    def update_metrics(self, terms, labels, logits):
        self.hint_loss_tracker.update_state(terms["hint_loss"])

    def checkpoint_objects(self):
        regressors = self.checkpointed_regressors if self.checkpointed_regressors is not None else self.regressors
        return {"regressors": list(regressors)}

    def end(self):
        """Algorithm 1, line 3: after stage 1 only W*_Guided is kept; the regressors are dropped."""
        self.regressors = []
        self.resolved.regressors = []
        self.discarded = True
