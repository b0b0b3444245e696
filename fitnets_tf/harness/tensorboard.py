"""The TensorBoard records a run writes once it is measured, beside each stage's own training curves.

    <tensorboard_dir>/hparams         the run's identity as HParams, with every model's test accuracy
    <tensorboard_dir>/graphs/<model>  each model's forward graph
"""

import json
import os
import shutil

import tensorflow as tf


def write_run_records(tensorboard_dir, identity, trial_id, rows, models, image_shape):
    """Writes the HParams of a run (`identity`: its settings; `rows`: the report's rows, with "model" and
    "test_accuracy") and the forward graph of each of `models` ({name: keras.Model} taking `image_shape` images).

    One record of each per run: the records of an earlier report (e.g. one cut off by a kill) are replaced."""
    from tensorboard.plugins.hparams import api as hparams_api

    for old in (os.path.join(tensorboard_dir, "hparams"), os.path.join(tensorboard_dir, "graphs")):
        shutil.rmtree(old, ignore_errors=True)

    flat = {k: (v if isinstance(v, (bool, int, float, str)) else json.dumps(v)) for k, v in identity.items()}
    writer = tf.summary.create_file_writer(os.path.join(tensorboard_dir, "hparams"))
    with writer.as_default():
        hparams_api.hparams(flat, trial_id=trial_id)
        for row in rows:
            if row["test_accuracy"] is not None:
                tf.summary.scalar(f"test_accuracy/{row['model']}", row["test_accuracy"], step=0)
    writer.close()
    for name, model in models.items():
        graph_writer = tf.summary.create_file_writer(os.path.join(tensorboard_dir, "graphs", name))
        forward = tf.function(lambda x, m=model: m(x, training=False))
        tf.summary.trace_on(graph=True)
        forward(tf.zeros((1, *image_shape)))
        with graph_writer.as_default():
            tf.summary.trace_export(name=f"{name}_forward", step=0)
        graph_writer.close()
