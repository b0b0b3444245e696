"""The optimizers of a FitNets run, and the original code's RMSProp.

The paper trains with RMSProp (decay 0.9). Its pylearn2 code (`learning_rule.RMSProp(decay=0.9, max_scaling=1e5)`)
divides each gradient by its running RMS with a FLOOR of 1 / max_scaling = 1e-5 on that RMS:

    ms_t  = decay * ms_{t-1} + (1 - decay) * g_t^2
    w_t   = w_{t-1} - lr * g_t / max(sqrt(ms_t), 1 / max_scaling)

Keras's `RMSprop` instead divides by sqrt(ms_t + epsilon) with epsilon = 1e-7, a floor of sqrt(1e-7) = 3.2e-4 on the
RMS. The difference matters exactly where FitNets live: from the paper's U(-0.005, 0.005) initialisation a deep
thin net's gradients are far below 3.2e-4 (the MNIST FitNet's start near 1e-11), and Keras then takes steps up to
32x smaller than pylearn2 for every gradient between 1e-5 and 3.2e-4 -- the plateau in which plain backprop sits.
`MaxScalingRMSprop` is pylearn2's rule; `build_optimizer("rmsprop", ..., rmsprop_max_scaling=0)` is Keras's.
"""

import keras
from keras import ops

OPTIMIZERS = ("rmsprop", "adam", "sgd")


@keras.saving.register_keras_serializable(package="fitnets_tf")
class MaxScalingRMSprop(keras.optimizers.Optimizer):
    """RMSProp as in pylearn2: the gradient over max(running RMS, 1 / max_scaling) (see the module docstring).

    Args:
        learning_rate: the step size (the paper: 0.005; its MNIST code: 0.0005).
        rho: decay of the running mean of squared gradients (pylearn2's `decay`; the paper: 0.9).
        max_scaling: the largest factor a gradient is multiplied by (pylearn2's default and the code's: 1e5).
    """

    def __init__(self, learning_rate=0.001, rho=0.9, max_scaling=1e5, name="max_scaling_rmsprop", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if not 0.0 <= rho < 1.0:
            raise ValueError(f"rho must be in [0, 1). Received: rho={rho}")
        if max_scaling <= 0:
            raise ValueError(f"max_scaling must be > 0. Received: max_scaling={max_scaling}")
        self.rho = rho
        self.max_scaling = max_scaling

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._velocities = self.add_optimizer_variables(var_list, "velocity")

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        velocity = self._velocities[self._get_variable_index(variable)]
        self.assign(velocity, ops.add(ops.multiply(self.rho, velocity),
                                      ops.multiply(1.0 - self.rho, ops.square(gradient))))
        rms = ops.maximum(ops.sqrt(velocity), 1.0 / self.max_scaling)
        self.assign_sub(variable, ops.divide(ops.multiply(lr, gradient), rms))

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "max_scaling": self.max_scaling})
        return config


def build_optimizer(name, learning_rate, rmsprop_rho=0.9, rmsprop_max_scaling=0.0):
    """A fresh optimizer for one stage.

    Args:
        name: one of `OPTIMIZERS`.
        learning_rate: > 0.
        rmsprop_rho: RMSProp's decay.
        rmsprop_max_scaling: > 0 gives the original code's RMSProp (`MaxScalingRMSprop`, floor 1 / max_scaling on
            the RMS; the code uses 1e5); 0 gives Keras's `RMSprop` (epsilon 1e-7 inside the square root).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}. Received: optimizer={name!r}")
    if name == "rmsprop":
        if rmsprop_max_scaling:
            return MaxScalingRMSprop(learning_rate, rho=rmsprop_rho, max_scaling=rmsprop_max_scaling)
        return keras.optimizers.RMSprop(learning_rate, rho=rmsprop_rho)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate)
    return keras.optimizers.SGD(learning_rate, momentum=0.9)
