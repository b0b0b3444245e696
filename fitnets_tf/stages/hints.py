"""Stage 1, hint-based training (Romero et al. 2015, Algorithm 1 line 2).

    W*_Guided, W*_r = argmin over (W_Guided, W_r) of L_HT(W_Guided, W_r)                    (Eq. 3)
    L_HT = 1/2 * || u_h(x; W_Hint) - r(v_g(x; W_Guided); W_r) ||^2

Trains ONLY the student truncated at its guided layer(s) (a sub-model that shares the student's variables, so
W*_Guided is in the student when stage 2 starts, with no copy) and the regressor(s) r; the teacher, truncated at
its hint layer(s), is frozen. Several pairs trained together sum their hint losses; the original code trains them
in sequence, one stage per pair (`Distiller.compile(stage="hint", pairs=[i])`).

Logs: `loss` (= `hint_loss`) and `hint_loss`.
"""

import keras

from fitnets_tf import losses, taps
from fitnets_tf.stages.base import Stage, as_tuple


class HintStage(Stage):
    """Stage 1: the guided sub-model(s) and their regressor(s) learn the teacher's hint(s).

    Args:
        distiller: the `Distiller`, with a teacher, `hint_pairs` and their regressors.
        pairs: indices into `distiller.hint_pairs` trained together; None trains all pairs jointly.
    """

    name = "hint"
    needs_teacher = True
    uses_regressors = True
    cache_in_float16 = True

    def __init__(self, distiller, pairs=None):
        super().__init__(distiller)
        hint_pairs = distiller.hint_pairs
        if not hint_pairs:
            raise ValueError("Stage 'hint' needs hint_pairs. Received: hint_pairs=()")
        if not distiller.regressors:
            raise ValueError(
                "Stage 'hint' cannot run again: the regressors were discarded when stage 2 started "
                "(Algorithm 1). Build a new Distiller to repeat stage 1."
            )
        pairs = tuple(range(len(hint_pairs))) if pairs is None else tuple(pairs)
        if not pairs or any(not 0 <= i < len(hint_pairs) for i in pairs):
            raise ValueError(f"pairs must index hint_pairs (0..{len(hint_pairs) - 1}). Received: pairs={pairs}")
        self.pairs = pairs
        self.regressors = [distiller.regressors[i] for i in pairs]
        # One multi-output sub-model per side: the shared prefix of several pairs is computed once. Each shares its
        # model's variables; the guided one holds exactly those its outputs depend on (`taps.tap_model`).
        self.guided_model = taps.tap_model(
            distiller.student, [hint_pairs[i].guided for i in pairs], "student_guided", distiller.image_shape)
        self.hint_model = taps.tap_model(
            distiller.teacher_forward, [hint_pairs[i].hint for i in pairs], "teacher_hints", distiller.image_shape)
        self.hint_loss_tracker = keras.metrics.Mean(name="hint_loss")

    @property
    def variables(self):
        """The student up to the guided layer(s) (W_Guided) and the active regressor(s) (W_r)."""
        variables = list(self.guided_model.trainable_variables)
        for regressor in self.regressors:
            variables += regressor.trainable_variables
        return variables

    def teacher_outputs(self, images):
        """u_h(x): the teacher's hint-layer output(s), one per active pair."""
        return as_tuple(self.hint_model(images, training=False))

    def per_example_losses(self, images, labels, hints, training):
        """The sum over the active pairs of L_HT (`losses.hint_loss`), per example; no logits."""
        guided = as_tuple(self.guided_model(images, training=training))
        total = 0.0
        for regressor, g, h in zip(self.regressors, guided, hints):
            total += losses.hint_loss(h, regressor(g, training=training), self.distiller.hint_spatial_mean)
        return total, {"hint_loss": total}, None

    @property
    def metrics(self):
        return [self.hint_loss_tracker]

    def update_metrics(self, terms, labels, logits):
        self.hint_loss_tracker.update_state(terms["hint_loss"])
