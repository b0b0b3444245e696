"""A teacher or student given as a .keras file: loading it, and checking that it fits the data and the other model.

Errors are one-line `ConfigError`s naming the setting (`teacher_path`, `student_path`), the file and the mismatch.
"""

import zipfile

import keras

from fitnets_tf.errors import ConfigError
from fitnets_tf.taps import check_single_input_output, model_input_shape


def load_model_file(path, setting="teacher_path"):
    """Loads a .keras model (any architecture; custom classes must be registered for serialization). `setting`:
    the config field that named the file, for the error."""
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # Keras raises several types for a bad file.
        # For a file that is not a zip archive Keras says "File not found", which misleads: the file exists.
        reason = ("not a zip archive" if not zipfile.is_zipfile(path) else
                  f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
        raise ConfigError(
            f"`{setting}`: cannot load {path!r}: the file exists but is not a readable .keras model ({reason}). "
            "Give a model saved with model.save('x.keras') (a subclassed model's class must be registered with "
            "keras.saving.register_keras_serializable and imported)."
        ) from None


def io_shapes(model):
    """(input (H, W, C), number of classes) of a model, or None for what it does not say."""
    shape = model_input_shape(model)
    try:
        classes = model.output_shape[-1]
    except (AttributeError, ValueError, RuntimeError):
        classes = None
    return (None if shape is None else tuple(shape)), classes


def check_shapes(info, teacher, student, teacher_where="", student_where=""):
    """Refuses, in one line naming all three, data / teacher / student whose image shapes or classes disagree.

    `info`: the data's `DatasetInfo`; `*_where`: how the message names each model (e.g. "in 'teacher.keras' ")."""
    for model, role, setting in ((teacher, "teacher", "teacher_path"), (student, "student", "student_path")):
        try:
            check_single_input_output(model, role)
        except ValueError as error:
            raise ConfigError(f"`{setting}`: {error}") from None
    data = (tuple(info.image_shape), info.num_classes)
    (t_shape, t_classes), (s_shape, s_classes) = io_shapes(teacher), io_shapes(student)
    bad = [not (t_shape in (None, data[0]) and t_classes in (None, data[1])),
           not (s_shape in (None, data[0]) and s_classes in (None, data[1]))]
    if any(bad):
        settings = "/".join(f"`{s}`" for s, b in zip(("teacher_path", "student_path"), bad) if b)
        raise ConfigError(
            f"{settings}: the teacher {teacher_where}takes {t_shape} images and predicts {t_classes} classes, but "
            f"dataset {info.name!r} has {data[0]} images and {data[1]} classes, and the student {student_where}"
            f"takes {s_shape} images and predicts {s_classes} classes. Give models built for the data, or resize "
            "the images with `image_size`."
        )
