"""fitnets_tf: FitNets (Romero et al., ICLR 2015) in Keras 3 / TensorFlow 2.

Where to look: the hint loss and the KD loss in `losses`, the regressor in `regressor`, one file per stage in
`stages` (stage 1 `stages/hints.py`, stage 2 `stages/kd.py`, plain cross-entropy `stages/ce.py`, the one-stage
variant `stages/one_stage.py`), each stage an object with its own settings; the step they share in `distiller`, the networks in `models`, the data in `data`, a whole run in `harness.pipeline`.
"""

from fitnets_tf.distiller import Distiller
from fitnets_tf.layers import Maxout
from fitnets_tf.losses import hint_loss, kd_loss
from fitnets_tf.regressor import build_regressor
from fitnets_tf.schedules import KDLambdaSchedule
from fitnets_tf.stages import CEStage, HintPair, HintStage, KDStage, OneStageFitNetStage, Stage

__all__ = ["CEStage", "Distiller", "HintPair", "HintStage", "KDLambdaSchedule", "KDStage", "Maxout",
           "OneStageFitNetStage", "Stage", "build_regressor", "hint_loss", "kd_loss"]
