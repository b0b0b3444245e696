"""Builds the real-size pair of the README and of `scripts/benchmark.py --real_size`: a keras.applications
MobileNetV2 (alpha 1.0, 224x224x3) teacher trained on a folder of images, and a thin, untrained student, saved as
.keras files for `scripts/run.py --teacher_path=... --student_path=...`.

    python scripts/make_image_folder.py --out=runs/folders/fmnist224_5k --images=5000
    python scripts/make_backbone_pair.py --folder=runs/folders/fmnist224_5k --out=runs/pair224 --epochs=3

The teacher is trained here from random weights (`weights=None`: ImageNet weights need a download) with this
package's own streamed input pipeline and `Distiller(stage="ce")`, on the folder's train split (the split
`scripts/run.py` would draw with the same --seed), with the run's defaults: "tf" preprocessing (MobileNetV2's
[-1, 1]) and random resized crops + flips. The student (`student_model`) is plain convolutions, 7 of them, about a
quarter of the teacher's multiplications, named conv1..conv7 so that hints can name its layers (conv5 is 28x28,
the size of the teacher's block_6_expand_relu).
"""

import os
import sys

from absl import app, flags
import keras

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fitnets_tf import Distiller  # noqa: E402
from fitnets_tf.data import Augmentation, Preprocessor, build_input, load_splits  # noqa: E402
from fitnets_tf.harness.training import accuracy  # noqa: E402

flags.DEFINE_string("folder", None, "The folder of images (one subfolder per class).")
flags.DEFINE_string("out", None, "Where teacher.keras and student.keras are written.")
flags.DEFINE_integer("epochs", 3, "Epochs of the teacher's training.")
flags.DEFINE_integer("batch_size", 32, "Batch size of the teacher's training.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate.")
flags.DEFINE_integer("seed", 0, "Seed of the split (as scripts/run.py --seed) and of the weights.")
flags.mark_flags_as_required(["folder", "out"])
FLAGS = flags.FLAGS

IMAGE_SHAPE = (224, 224, 3)


def teacher_model(num_classes, alpha=1.0):
    """MobileNetV2 (random weights) inside a functional model, its batch norms at momentum 0.9 (Keras's 0.999
    averages over ~1000 steps: too slow for a short training)."""
    backbone = keras.applications.MobileNetV2(weights=None, input_shape=IMAGE_SHAPE, alpha=alpha,
                                              classes=num_classes)
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    inputs = keras.Input(IMAGE_SHAPE)
    return keras.Model(inputs, backbone(inputs), name="teacher")


def student_model(num_classes, seed=1):
    """A thin plain-conv student: 7 convs (16-24-24-48-48-96-96 channels; 4 of stride 2), global pooling, a
    dense layer: about 1/4 of MobileNetV2 1.0's multiplications at 224x224."""
    init = keras.initializers.GlorotUniform(seed=seed)
    x = inputs = keras.Input(IMAGE_SHAPE)
    for i, (filters, stride) in enumerate([(16, 2), (24, 2), (24, 1), (48, 2), (48, 1), (96, 2), (96, 1)]):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", activation="relu",
                                kernel_initializer=init, name=f"conv{i + 1}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, kernel_initializer=init, name="logits")(x)
    return keras.Model(inputs, outputs, name="student")


def main(argv):
    del argv
    keras.utils.set_random_seed(FLAGS.seed)
    splits = load_splits(f"folder:{FLAGS.folder}", image_size=224, channels=3, seed=FLAGS.seed)
    info = splits.info
    pre = Preprocessor("tf")
    train = build_input(splits.source("train"), FLAGS.batch_size, True, pre, seed=FLAGS.seed,
                        augmentation=Augmentation("random_resized_crop", flip=True))
    validation = build_input(splits.source("validation"), 64, False, pre)
    os.makedirs(FLAGS.out, exist_ok=True)
    teacher = teacher_model(info.num_classes)
    trainer = Distiller(teacher)
    # No XLA: on this CPU, XLA compiled MobileNetV2's training step (depthwise convolutions) many times slower.
    trainer.compile(keras.optimizers.Adam(FLAGS.learning_rate), stage="ce", jit_compile=False)
    trainer.fit(train, epochs=FLAGS.epochs, validation_data=validation, verbose=1)
    teacher.save(os.path.join(FLAGS.out, "teacher.keras"))
    student_model(info.num_classes, seed=FLAGS.seed + 1).save(os.path.join(FLAGS.out, "student.keras"))
    print(f"teacher: {accuracy(teacher, validation):.2%} on the {splits.num_examples['validation']} validation "
          f"images; files in {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
