"""XLA per model: the student's part of a step and the frozen teacher's forward pass, each compiled or not.

A distillation step is two computations of different shape: the teacher's forward pass (large, inference only) and
the student's forward and backward passes. XLA does not speed both up alike on every device, so each has its own
setting: `True`, `False` or "auto". "auto" is what `scripts/benchmark.py` measured faster on this kind of device
(`XLA_AUTO`; the benchmark's "xla" table compares each part with XLA on and off, paired per round), and off under a
tf.distribute strategy, as Keras decides for its own "auto" (XLA does not compile the replicas' all-reduces). On a
CPU "auto" also leaves a part uncompiled when it has depthwise or separable convolutions (`SLOW_ON_CPU`) and the
student's part when its images are larger than 64x64 (`SMALL_IMAGE_PIXELS`): both ran slower compiled here.
"""

from absl import logging
import tensorflow as tf

JIT_CHOICES = (True, False, "auto")
PARTS = ("student", "teacher")

# What the benchmark measured faster, per device type and part (docs/benchmark.md).
#   CPU: `scripts/benchmark.py` (cifar_teacher -> fitnet1, batch 128, AVX512 CPU, 2 cores): the teacher's forward
#        pass is slower compiled (float32 and bfloat16); the student's step is faster compiled.
#   GPU: not measured here; Keras's own "auto" (XLA on for a GPU) is kept for both parts.
XLA_AUTO = {
    "CPU": {"student": True, "teacher": False},
    "GPU": {"student": True, "teacher": True},
}
# Layers XLA compiles slowly on a CPU: a MobileNetV2 (alpha 0.35, 32x32, batch 64) CE step took 3.5-6.7x longer
# compiled, after a compile of about 70 s against 40 s of tracing (`python scripts/xla_depthwise.py`; docs/benchmark.md).
SLOW_ON_CPU = ("DepthwiseConv2D", "SeparableConv2D")
# The largest images (height x width) for which "auto" compiles the student's part on a CPU. The student's CE step,
# XLA off / on, paired per round on this 2-core AVX2 CPU (`python scripts/xla_student.py`; docs/benchmark.md):
# maxout FitNets 2.21x (digits, 8x8), 1.97x (MNIST, 28x28), 1.36x (FitNet 1, 32x32); plain ReLU convs 0.99x (8 convs,
# 32x32), 1.05x (7 convs, 56x56), 0.83x (112x112), 0.65x (224x224): above 64x64 the compiled step was slower.
SMALL_IMAGE_PIXELS = 64 * 64


def slow_on_cpu(layers):
    """The name of the first layer among `layers` that XLA compiles slowly on a CPU (`SLOW_ON_CPU`), or None."""
    for layer in layers:
        if type(layer).__name__ in SLOW_ON_CPU:
            return layer.name
    return None


def device_type():
    """"GPU" when TensorFlow sees an accelerator (GPU or TPU), else "CPU"."""
    return "GPU" if any(d.device_type != "CPU" for d in tf.config.list_physical_devices()) else "CPU"


def op_determinism_enabled():
    """Whether `tf.config.experimental.enable_op_determinism()` is in force (TensorFlow has no public getter;
    Keras reads the same function to turn its own XLA off)."""
    from tensorflow.python.framework.config import is_op_determinism_enabled
    return bool(is_op_determinism_enabled())


def resolve_jit_compile(setting, part, distributed=False, supported=True, slow_layer=None, image_shape=None):
    """The XLA setting (a bool) of one part of a step.

    Off, whatever the setting, where Keras turns its own `jit_compile=True` off too: with TensorFlow's op
    determinism on (XLA has no deterministic kernels for some gradients, e.g. MaxPool's) or when a layer does not
    support XLA (`supported=False`); a requested True is then logged as ignored.

    Args:
        setting: True, False or "auto".
        part: "student" (its forward, loss and gradients) or "teacher" (its forward pass).
        distributed: the step runs under a tf.distribute strategy with several replicas ("auto" is then off).
        supported: every layer involved supports XLA (`layer.supports_jit`).
        slow_layer: the name of a layer XLA compiles slowly on a CPU (`slow_on_cpu`): "auto" is then off on a CPU.
        image_shape: the (height, width, channels) of the images; "auto" leaves the student's part uncompiled on a
            CPU for images of more than `SMALL_IMAGE_PIXELS` pixels.
    """
    if setting not in JIT_CHOICES or isinstance(setting, int) and not isinstance(setting, bool):
        raise ValueError(f"jit_compile must be True, False or 'auto'. Received: {setting!r}")
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}. Received: {part!r}")
    blocker = ("op determinism is enabled" if op_determinism_enabled()
               else None if supported else "a layer does not support XLA")
    if blocker:
        if setting is True:
            logging.warning("[fitnets] XLA for the %s is off: %s.", part, blocker)
        return False
    if setting != "auto":
        return bool(setting)
    if distributed:
        return False
    device = device_type()
    if device == "CPU" and slow_layer is not None and XLA_AUTO[device][part]:
        logging.info("[fitnets] XLA for the %s is off: layer '%s' (%s) runs slower compiled on a CPU.", part,
                     slow_layer, "depthwise or separable convolution")
        return False
    if (device == "CPU" and part == "student" and XLA_AUTO[device][part] and image_shape is not None
            and len(image_shape) >= 2 and None not in image_shape[:2]
            and image_shape[0] * image_shape[1] > SMALL_IMAGE_PIXELS):
        logging.info("[fitnets] XLA for the %s is off: its %dx%d images are larger than the %d pixels up to which "
                     "a compiled step ran faster on a CPU (scripts/xla_student.py).", part, image_shape[0],
                     image_shape[1], SMALL_IMAGE_PIXELS)
        return False
    return XLA_AUTO[device][part]
