"""The one-stage FitNet of RepDistiller and mdistiller (what their tables call "FitNet"): not the paper's method.

    W*_S, W*_r = argmin over (W_S, W_r) of
                 H(y_true, P_S) + beta * MSE(u_h(x), r(v_g(x)))  [+ lambda * H(P_T^tau, P_S^tau)]

The whole student and the regressor(s) train together from the first step: cross-entropy on the labels plus beta
times the hint loss through the regressor, with no separate stage 1 and no KD unless asked for. The paper instead
trains the guided sub-model on the hint loss alone first (stage 1, `stages/hints.py`), then the whole student on KD
(stage 2, `stages/kd.py`).

The scale of beta. RepDistiller (`HintLoss`: `nn.MSELoss()`) and mdistiller (`F.mse_loss`, FEAT_WEIGHT 100) weight
the MEAN squared error over every element of the batch's hint maps by beta = 100. Eq. 3's L_HT (our `hint_loss`) is
half the SUM of squared errors of one example, over its n = H * W * C hint elements, so their term is
beta * (2 / n) * L_HT per example, averaged over the batch: that is what this stage computes, so `beta` means what it
means in their configs (100), whatever the hint's size.

Logs: `loss`, `ce_loss`, `hint_loss` (L_HT, as stage 1 logs it), `kd_loss` when lambda > 0, and `accuracy`.
"""

import numbers

import keras
import numpy as np
import tensorflow as tf

from fitnets_tf import losses, taps
from fitnets_tf.stages.base import Stage, as_tuple
from fitnets_tf.stages.hints import HintPairs, ResolvedPairs
from fitnets_tf.stages.kd import check_temperature

BETA = 100.0  # RepDistiller's `-b 100` and mdistiller's FITNET.LOSS.FEAT_WEIGHT


class OneStageFitNetStage(ResolvedPairs, Stage):
    """The student and the regressor(s) on CE + beta x the hint loss (+ optional KD), all from the first step.

    Args:
        pairs: `HintPair`s (their hint terms summed), or "auto" (the middle layers, as stage 1).
        beta: weight of the per-element mean squared hint error (RepDistiller and mdistiller: 100).
        kd_lambda: weight of the soft KD term H(P_T^tau, P_S^tau) (the paper's form, no tau^2: RepDistiller's
            `-a` weighs KL x tau^2); 0 (their FitNet) leaves the teacher's logits out and computes no KD term.
        temperature: tau of the soft term (with kd_lambda > 0).
        regressor_initializer, seed: the regressors' initial weights, as stage 1's.
    """

    name = "one_stage"
    needs_teacher = True

    def __init__(self, pairs="auto", beta=BETA, kd_lambda=0.0, temperature=3.0,
                 regressor_initializer="glorot_uniform", seed=None):
        for setting, value in (("beta", beta), ("kd_lambda", kd_lambda)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value < 0:
                raise ValueError(f"{setting} must be a finite number >= 0. Received: {setting}={value!r}")
        self.pairs = pairs if isinstance(pairs, str) else tuple(pairs)
        self.beta = float(beta)
        self.kd_lambda = float(kd_lambda)
        self.temperature = check_temperature(temperature)
        self.regressor_initializer = regressor_initializer
        self.seed = seed
        self.resolved = None
        self.regressors = []
        self.discarded = False

    @property
    def cache_in_float16(self):  # hints alone may be rounded to float16; not the logits of the KD term
        return self.kd_lambda == 0

    def build(self, distiller):
        self.resolved = HintPairs(self.pairs, distiller, self.regressor_initializer, self.seed)
        self.regressors = list(self.resolved.regressors)
        guided = [p.guided for p in self.resolved.pairs]
        self.hint_model = taps.tap_model(distiller.teacher_forward, [p.hint for p in self.resolved.pairs],
                                         "teacher_hints", distiller.image_shape)
        # For a functional student one model gives the guided output(s) and the logits from one call (a guided layer
        # inside a nested model is a cut copy of that model applied to the same input, so its prefix runs twice);
        # other students are called twice, for the guided output(s) and for the logits.
        self.guided_model = taps.tap_model(distiller.student, guided, "student_guided", distiller.image_shape)
        self.student_outputs = None
        logits = distiller.student_logits
        if isinstance(self.guided_model, keras.Model) and taps.is_functional(logits):
            self.student_outputs = keras.Model(self.guided_model.inputs[0] if len(self.guided_model.inputs) == 1
                                               else self.guided_model.inputs,
                                               [*self.guided_model.outputs, logits.outputs[0]],
                                               name="student_guided_and_logits")
        self.trackers = {name: keras.metrics.Mean(name=name)
                         for name in ("ce_loss", "hint_loss") + (("kd_loss",) if self.kd_lambda else ())}
        self.accuracy_metric = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def own_layers(self):
        return list(self.regressors)

    @property
    def variables(self):
        """The whole student (W_S) and the regressor(s) (W_r)."""
        variables = list(self.distiller.student.trainable_variables)
        for regressor in self.regressors:
            variables += regressor.trainable_variables
        return variables

    def teacher_outputs(self, images):
        """The hint(s), then the teacher's logits when the KD term is on."""
        hints = as_tuple(self.hint_model(images, training=False))
        if self.kd_lambda:
            return (*hints, self.distiller.teacher_logits(images, training=False))
        return hints

    def per_example_losses(self, images, labels, teacher_outputs, training):
        count = len(self.resolved.pairs)
        if self.student_outputs is not None:
            outputs = as_tuple(self.student_outputs(images, training=training))
            guided, logits = outputs[:count], outputs[count]
        else:
            guided = as_tuple(self.guided_model(images, training=training))
            logits = self.distiller.student_logits(images, training=training)
        ce = losses.cross_entropy(labels, logits)
        hint, weighted = 0.0, 0.0
        for regressor, g, h in zip(self.regressors, guided, teacher_outputs[:count]):
            term = losses.hint_loss(h, regressor(g, training=training))
            hint += term
            size = tf.cast(tf.reduce_prod(tf.shape(h)[1:]), term.dtype)  # n = H * W * C, known or not until now
            weighted += (self.beta * 2.0 / size) * term  # beta x the mean squared error per element
        total = ce + weighted
        terms = {"ce_loss": ce, "hint_loss": hint}
        if self.kd_lambda:
            soft = losses.soft_cross_entropy(teacher_outputs[count], logits, self.temperature)
            total += self.kd_lambda * soft
            terms["kd_loss"] = soft
        return total, terms, logits

    @property
    def metrics(self):
        return [*self.trackers.values(), self.accuracy_metric]

    def update_metrics(self, terms, labels, logits):
        for name, tracker in self.trackers.items():
            tracker.update_state(terms[name])
        self.accuracy_metric.update_state(labels, logits)

    def checkpoint_objects(self):
        return {"regressors": list(self.regressors)}

    def end(self):
        """Its regressors are dropped when another stage starts; compiling it again is refused."""
        self.regressors = []
        self.resolved.regressors = []
        self.discarded = True
