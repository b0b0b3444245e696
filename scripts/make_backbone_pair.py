"""Builds the real-size pair of docs/own_models.md and of `scripts/benchmark.py --real_size`: a keras.applications
MobileNetV2 (alpha 1.0, 224x224x3) teacher trained on a folder of images, and a thin, untrained student, saved as
.keras files for `scripts/run.py --teacher_path=... --student_path=...`.

    python scripts/make_image_folder.py --out=runs/folders/fmnist224_5k --images=5000
    python scripts/make_backbone_pair.py --folder=runs/folders/fmnist224_5k --out=runs/pair224 --epochs=3
    python scripts/make_backbone_pair.py --folder=runs/folders/fmnist32_10k --out=runs/pairing/seed0 --image_size=32 \
        --alpha=0.35 --student=plain8 --augmentation=pad_crop --epochs=20 --batch_size=64 --learning_rate=0.002

The teacher is trained here from random weights (`weights=None`: ImageNet weights need a download) with this
package's own streamed input pipeline and `Distiller(teacher).compile(stage="ce")`, on the folder's train split (the split
`scripts/run.py` would draw with the same --seed), with the run's defaults: "tf" preprocessing (MobileNetV2's
[-1, 1]) and random resized crops + flips. The student (`student_model`) is plain convolutions, 7 of them, about a
quarter of the teacher's multiplications, named conv1..conv7 so that hints can name its layers (conv5 is 28x28,
the size of the teacher's block_6_expand_relu). `--student=plain8` is the "Distill your own model" student of
docs/own_models.md instead (8 ReLU convs of 16-48 channels, two max-pools: for small images such as 32x32),
`--image_size` and `--alpha` size the teacher.
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
flags.DEFINE_integer("image_size", 224, "Image size (square) of both models; the folder's images are resized to it.")
flags.DEFINE_float("alpha", 1.0, "MobileNetV2's width multiplier (keras.applications: 0.35, 0.5, 0.75, 1.0, 1.3, 1.4).")
flags.DEFINE_enum("augmentation", "random_resized_crop", ["random_resized_crop", "pad_crop"], "The teacher's "
                  "training augmentation (with flips): ImageNet-style crops, or CIFAR-style 4-pixel padded crops "
                  "(for small images, where an 8%-area crop leaves a few pixels).")
flags.DEFINE_enum("student", "strided7", ["strided7", "plain8"], "The student: 'strided7' (7 convs, 4 of stride 2: "
                  "for 224x224) or 'plain8' (8 convs, two max-pools: docs/own_models.md's example, for small "
                  "images).")
flags.mark_flags_as_required(["folder", "out"])
FLAGS = flags.FLAGS

IMAGE_SHAPE = (224, 224, 3)


def teacher_model(num_classes, alpha=1.0, image_shape=IMAGE_SHAPE):
    """MobileNetV2 (random weights) inside a functional model, its batch norms at momentum 0.9 (Keras's 0.999
    averages over ~1000 steps: too slow for a short training)."""
    backbone = keras.applications.MobileNetV2(weights=None, input_shape=image_shape, alpha=alpha,
                                              classes=num_classes)
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.9
    inputs = keras.Input(image_shape)
    return keras.Model(inputs, backbone(inputs), name="teacher")


def student_model(num_classes, seed=1, image_shape=IMAGE_SHAPE):
    """A thin plain-conv student: 7 convs (16-24-24-48-48-96-96 channels; 4 of stride 2), global pooling, a
    dense layer: about 1/4 of MobileNetV2 1.0's multiplications at 224x224."""
    init = keras.initializers.GlorotUniform(seed=seed)
    x = inputs = keras.Input(image_shape)
    for i, (filters, stride) in enumerate([(16, 2), (24, 2), (24, 1), (48, 2), (48, 1), (96, 2), (96, 1)]):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", activation="relu",
                                kernel_initializer=init, name=f"conv{i + 1}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, kernel_initializer=init, name="logits")(x)
    return keras.Model(inputs, outputs, name="student")


def plain8_student(num_classes, image_shape, seed=1):
    """The "Distill your own model" student of docs/own_models.md: 8 ReLU convs (16-16-16-32-32-32-48-48, 3x3,
    same padding) named c1..c8, max-pools after c3 and c6, global pooling, a dense layer."""
    init = keras.initializers.GlorotUniform(seed=seed)
    x = inputs = keras.Input(image_shape)
    for i, width in enumerate([16, 16, 16, 32, 32, 32, 48, 48], start=1):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", kernel_initializer=init, name=f"c{i}")(x)
        if i in (3, 6):
            x = keras.layers.MaxPooling2D(name=f"down{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, kernel_initializer=init, name="logits")(x)
    return keras.Model(inputs, outputs, name="student")


def main(argv):
    del argv
    keras.utils.set_random_seed(FLAGS.seed)
    image_shape = (FLAGS.image_size, FLAGS.image_size, 3)
    splits = load_splits(f"folder:{FLAGS.folder}", image_size=FLAGS.image_size, channels=3, seed=FLAGS.seed)
    info = splits.info
    pre = Preprocessor("tf")
    train = build_input(splits.source("train"), FLAGS.batch_size, True, pre, seed=FLAGS.seed,
                        augmentation=Augmentation(FLAGS.augmentation, flip=True,
                                                  crop_padding=4 if FLAGS.augmentation == "pad_crop" else 0))
    validation = build_input(splits.source("validation"), 64, False, pre)
    os.makedirs(FLAGS.out, exist_ok=True)
    teacher = teacher_model(info.num_classes, alpha=FLAGS.alpha, image_shape=image_shape)
    trainer = Distiller(teacher)
    # No XLA: on this CPU, XLA compiled MobileNetV2's training step (depthwise convolutions) many times slower.
    trainer.compile(keras.optimizers.Adam(FLAGS.learning_rate), stage="ce", jit_compile=False)
    trainer.fit(train, epochs=FLAGS.epochs, validation_data=validation, verbose=1)
    teacher.save(os.path.join(FLAGS.out, "teacher.keras"))
    if FLAGS.student == "plain8":
        student = plain8_student(info.num_classes, image_shape, seed=FLAGS.seed + 1)
    else:
        student = student_model(info.num_classes, seed=FLAGS.seed + 1)
    student.save(os.path.join(FLAGS.out, "student.keras"))
    print(f"teacher: {accuracy(teacher, validation):.2%} on the {splits.num_examples['validation']} validation "
          f"images; files in {FLAGS.out}")


if __name__ == "__main__":
    app.run(main)
