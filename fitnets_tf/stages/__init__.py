"""The stages of training, one file each: a stage is one object that owns its settings, what it trains (and its
regressors), what it needs from the teacher, its per-example loss, its metrics, what it checkpoints and the metric
it is monitored by. `Distiller.compile(optimizer, stage=...)` takes one; the `Distiller` runs the shared step.

    hints.py      stage 1, `HintStage(pairs)`: the guided sub-model(s) and regressor(s) learn the teacher's hint(s).
    kd.py         stage 2, `KDStage(temperature, kd_lambda)`: the student on the labels and the softened outputs.
    ce.py         `CEStage()`: a model alone on cross-entropy (the teacher's training, the backprop baseline).
    one_stage.py  `OneStageFitNetStage(pairs, beta)`: RepDistiller's and mdistiller's "FitNet", CE + beta x hint
                  loss from the first step (not the paper's method; a baseline beside it).
    base.py       `Stage`, what every stage provides.

A new stage or method is one new file with a `Stage` subclass, registered in `STAGE_CLASSES` (its name is then a
`stage=` string, built with its default settings).
"""

from fitnets_tf.stages.base import Stage
from fitnets_tf.stages.ce import CEStage
from fitnets_tf.stages.hints import HintPair, HintStage
from fitnets_tf.stages.kd import KDLambdaCallback, KDStage
from fitnets_tf.stages.one_stage import OneStageFitNetStage

STAGE_CLASSES = {cls.name: cls for cls in (HintStage, KDStage, CEStage, OneStageFitNetStage)}


def make_stage(stage):
    """`stage` itself when it is a `Stage`, else the registered stage of that name with its default settings."""
    if isinstance(stage, Stage):
        return stage
    if stage not in STAGE_CLASSES:
        raise ValueError(f"stage must be a Stage or one of {tuple(STAGE_CLASSES)}. Received: stage={stage!r}")
    return STAGE_CLASSES[stage]()


__all__ = ["CEStage", "HintPair", "HintStage", "KDLambdaCallback", "KDStage", "OneStageFitNetStage", "STAGE_CLASSES",
           "Stage", "make_stage"]
