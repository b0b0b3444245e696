"""The stages of FitNets training, one file each: what a stage trains, what it needs from the teacher, its
per-example loss and its metrics. `Distiller.compile(stage=NAME)` builds one; `Distiller` runs the shared step.

    hints.py  stage 1 (`stage="hint"`): the guided sub-model(s) and regressor(s) learn the teacher's hint(s).
    kd.py     stage 2 (`stage="kd"`): the student on the labels and the teacher's softened outputs.
    ce.py     `stage="ce"`: a model alone on cross-entropy (the teacher's training, the backprop baseline).
    base.py   `Stage`, what every stage provides.

A new stage or method is a new `Stage` subclass registered in `STAGE_CLASSES`.
"""

from fitnets_tf.stages.base import Stage
from fitnets_tf.stages.ce import CEStage
from fitnets_tf.stages.hints import HintStage
from fitnets_tf.stages.kd import KDLambdaCallback, KDStage

STAGE_CLASSES = {cls.name: cls for cls in (HintStage, KDStage, CEStage)}

__all__ = ["CEStage", "HintStage", "KDLambdaCallback", "KDStage", "STAGE_CLASSES", "Stage"]
