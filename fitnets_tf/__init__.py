"""fitnets_tf: FitNets (Romero et al., ICLR 2015) in Keras 3 / TensorFlow 2.

Where to look: the hint loss and the KD loss in `losses`, the regressor in `regressor`, the two stages in
`distiller`, the networks in `models`, the data in `data`, a whole run in `pipeline`.
"""

from fitnets_tf.distiller import Distiller, HintPair
from fitnets_tf.layers import Maxout
from fitnets_tf.losses import hint_loss, kd_loss
from fitnets_tf.regressor import build_regressor
from fitnets_tf.schedules import KDLambdaSchedule

__all__ = ["Distiller", "HintPair", "KDLambdaSchedule", "Maxout", "build_regressor", "hint_loss", "kd_loss"]
