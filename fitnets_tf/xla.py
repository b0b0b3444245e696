"""XLA per model: the student's part of a step and the frozen teacher's forward pass, each compiled or not.

A distillation step is two computations of different shape: the teacher's forward pass (large, inference only) and
the student's forward and backward passes. XLA does not speed both up alike on every device, so each has its own
setting: `True`, `False` or "auto". "auto" is what `scripts/benchmark.py` measured faster on this kind of device
(`XLA_AUTO`; the benchmark's "xla" table compares each part with XLA on and off, paired per round), and off under a
tf.distribute strategy, as Keras decides for its own "auto" (XLA does not compile the replicas' all-reduces).
"""

import tensorflow as tf

JIT_CHOICES = (True, False, "auto")
PARTS = ("student", "teacher")

# What the benchmark measured faster, per device type and part (README, "Speed").
#   CPU: `scripts/benchmark.py` (cifar_teacher -> fitnet1, batch 128, AVX512 CPU, 2 cores): the teacher's forward
#        pass is slower compiled (float32 and bfloat16); the student's step is faster compiled.
#   GPU: not measured here; Keras's own "auto" (XLA on for a GPU) is kept for both parts.
XLA_AUTO = {
    "CPU": {"student": True, "teacher": False},
    "GPU": {"student": True, "teacher": True},
}


def device_type():
    """"GPU" when TensorFlow sees an accelerator (GPU or TPU), else "CPU"."""
    return "GPU" if any(d.device_type != "CPU" for d in tf.config.list_physical_devices()) else "CPU"


def resolve_jit_compile(setting, part, distributed=False):
    """The XLA setting (a bool) of one part of a step.

    Args:
        setting: True, False or "auto".
        part: "student" (its forward, loss and gradients) or "teacher" (its forward pass).
        distributed: the step runs under a tf.distribute strategy with several replicas ("auto" is then off).
    """
    if setting not in JIT_CHOICES or isinstance(setting, int) and not isinstance(setting, bool):
        raise ValueError(f"jit_compile must be True, False or 'auto'. Received: {setting!r}")
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}. Received: {part!r}")
    if setting != "auto":
        return bool(setting)
    return False if distributed else XLA_AUTO[device_type()][part]
