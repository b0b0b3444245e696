"""The FitNets losses, per example, always computed in float32.

Each function returns a per-example loss of shape (batch,); the training step averages it over the GLOBAL batch
(`tf.nn.compute_average_loss`), which is what keeps one replica and N replicas on the same update.
"""

from keras import ops


def _float32(x):
    return ops.cast(x, "float32")


def hint_loss(hint, regressed, spatial_mean=False):
    """Hint loss, Romero et al. (2015), Eq. (3): `L_HT = 1/2 * || u_h(x) - r(v_g(x)) ||^2`.

    Args:
        hint: `u_h(x)`, the teacher's hint-layer output, shape (batch, ...) e.g. (batch, H, W, C).
        regressed: `r(v_g(x))`, the regressor applied to the student's guided-layer output, same shape.
        spatial_mean: False (default, the paper's Eq. 3) sums the squared error over every feature of an
            example. True follows the original Theano code: sum over the channel axis, mean over the positions.
    Returns:
        float32 tensor (batch,): `0.5 * sum_features (hint - regressed)^2` per example.
    """
    squared = ops.square(_float32(hint) - _float32(regressed))
    if spatial_mean and len(squared.shape) > 2:
        per_position = ops.sum(squared, axis=-1)
        return 0.5 * ops.mean(ops.reshape(per_position, (ops.shape(squared)[0], -1)), axis=-1)
    return 0.5 * ops.sum(ops.reshape(squared, (ops.shape(squared)[0], -1)), axis=-1)


def cross_entropy(labels, logits):
    """`H(y_true, P_S)` with `P_S = softmax(logits)`: sparse cross-entropy per example, float32, shape (batch,)."""
    log_probs = ops.log_softmax(_float32(logits), axis=-1)
    labels = ops.cast(ops.reshape(labels, (-1,)), "int32")
    return -ops.take_along_axis(log_probs, labels[:, None], axis=-1)[:, 0]


def soft_cross_entropy(teacher_logits, student_logits, temperature):
    """`H(P_T^tau, P_S^tau) = -sum_k softmax(a_T/tau)_k * log softmax(a_S/tau)_k`, per example, float32."""
    teacher_probs = ops.softmax(_float32(teacher_logits) / temperature, axis=-1)
    student_log_probs = ops.log_softmax(_float32(student_logits) / temperature, axis=-1)
    return -ops.sum(teacher_probs * student_log_probs, axis=-1)


def kd_loss(labels, student_logits, teacher_logits, temperature, kd_lambda, tau_squared=False):
    """Knowledge-distillation loss, Romero et al. (2015), Eq. (2) (after Hinton et al., 2015):

        L_KD = H(y_true, P_S) + lambda * H(P_T^tau, P_S^tau),   P^tau = softmax(a / tau).

    The paper and its code have no tau^2 factor on the soft term; Hinton et al. multiply it by tau^2 so that its
    gradient keeps its size as tau grows (`tau_squared=True`).

    Args:
        labels: int class ids (batch,) or (batch, 1).
        student_logits, teacher_logits: pre-softmax activations a_S, a_T, (batch, classes).
        temperature: tau > 0 (the paper uses 3).
        kd_lambda: lambda, a float or scalar tensor (annealed by `KDLambdaSchedule`).
        tau_squared: multiply the soft term by tau^2.
    Returns:
        (total, ce, soft), each float32 (batch,): total = ce + lambda * [tau^2 *] soft.
    """
    ce = cross_entropy(labels, student_logits)
    soft = soft_cross_entropy(teacher_logits, student_logits, temperature)
    weight = _float32(kd_lambda) * (temperature**2 if tau_squared else 1.0)
    return ce + weight * soft, ce, soft
