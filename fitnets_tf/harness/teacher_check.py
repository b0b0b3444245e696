"""The check of a given teacher before distilling: is it better than chance on this run's data?

A teacher loaded from `teacher_path` was trained elsewhere, with a preprocessing, a class order and channels this
run may not reproduce; distilled on inputs it cannot read, it teaches noise, and nothing fails: the run spends its
epochs and reports a student at chance. So before any training, the teacher's accuracy is measured on at most
`CHECK_IMAGES` validation images (the first ones of the train split when the run has no validation split), and
a teacher at chance level, accuracy <= `report.CHANCE_FACTOR` / classes (15% for 10 classes), stops the run with
a `ConfigError` naming the likely causes and `check_teacher`, the setting that distils anyway.
"""

from absl import logging
import numpy as np
import tensorflow as tf

from fitnets_tf.errors import ConfigError
from fitnets_tf.harness.report import CHANCE_FACTOR

CHECK_IMAGES = 512  # the teacher is measured on this many images at most: a few batches, cheap on every rerun
CHECK_BATCH = 16  # images per forward call of the check
_SHOWN_NAMES = 4  # class names quoted in the error message


def bounded_accuracy(model, dataset, limit=CHECK_IMAGES):
    """(accuracy, images) of `model` on the first `limit` examples of `dataset`, a batched dataset of
    (float32 preprocessed images, int64 labels): argmax of the model's outputs (logits, or the probabilities of a
    model ending in a softmax: the same argmax) against the labels. Reads only the batches it needs;
    accuracy is None when the dataset is empty."""
    correct = seen = 0
    # A traced forward on slices of CHECK_BATCH images: eagerly, a 224x224 MobileNetV2 on a batch of 64 took the
    # run's resident memory from 0.8 to 6.3 GB (measured with ps), four times what its training steps need.
    forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    for images, labels in dataset:
        take = min(limit - seen, int(labels.shape[0]))
        if take < labels.shape[0]:
            images, labels = images[:take], labels[:take]
        logits = np.concatenate([np.asarray(forward(images[i:i + CHECK_BATCH]))
                                 for i in range(0, take, CHECK_BATCH)])
        predicted = np.argmax(logits, axis=-1)
        correct += int(np.sum(predicted == np.asarray(labels).reshape(-1)))
        seen += take
        if seen >= limit:
            break
    return (correct / seen if seen else None), seen


def check_teacher(teacher, inputs, info, config):
    """Measures `teacher` (loaded from `config.teacher_path`) on at most `CHECK_IMAGES` images of `inputs`
    (`inputs.Inputs`: its validation split, else the first images of `train_ordered`), logs the figure, and raises
    ConfigError when it is at chance level for the `info.num_classes` classes of the data.

    Returns the record of results.json: {"accuracy", "images", "split" ("validation" or "train"), "chance"
    (1 / classes)}; None when there was no image to measure on.
    """
    split = "validation" if inputs.validation is not None else "train"
    dataset = inputs.validation if split == "validation" else inputs.train_ordered
    accuracy, images = bounded_accuracy(teacher, dataset)
    chance = 1.0 / info.num_classes
    where = f"{images} validation images" if split == "validation" else (
        f"the first {images} training images (the run has no validation split)")
    if accuracy is None:
        logging.warning("[fitnets] teacher check: skipped, no %s image to measure the teacher on", split)
        return None
    logging.info("[fitnets] teacher check: %.1f%% on %s (chance %.1f%%)", 100 * accuracy, where, 100 * chance)
    if accuracy <= CHANCE_FACTOR * chance:
        raise ConfigError(_at_chance_message(accuracy, where, chance, info, config, inputs.preprocessor.kind))
    return {"accuracy": accuracy, "images": images, "split": split, "chance": chance}


def _at_chance_message(accuracy, where, chance, info, config, preprocessing):
    """One line: the figure, the likely causes (each a setting), and how to distil anyway."""
    shown = ", ".join(repr(name) for name in info.class_names[:_SHOWN_NAMES])
    if len(info.class_names) > _SHOWN_NAMES:
        shown += ", ..."
    order = f"this data's labels are {shown} in that order" if shown else "the data's labels are in its own order"
    if str(config.dataset).startswith("folder:"):
        order += ", a folder's classes being its subfolders sorted by name"
    return (
        f"`check_teacher`: the teacher in {config.teacher_path!r} is at chance level on this run's data: "
        f"{100 * accuracy:.1f}% on {where} (chance {100 * chance:.1f}%, refused at or below "
        f"{100 * CHANCE_FACTOR * chance:.1f}%). Likely causes: the `preprocessing` it was trained with is not this "
        f"run's {preprocessing!r} (a keras.applications teacher needs tf, caffe, torch or raw); its class order is "
        f"not the data's ({order}); or its input `channels` differ. Fix the cause, or set `check_teacher` to "
        "false to distil anyway."
    )
