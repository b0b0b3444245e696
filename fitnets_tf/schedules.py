"""The curriculum on lambda, the weight of the teacher's soft targets in the KD loss (paper Sec. 2.4)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class KDLambdaSchedule:
    """lambda as a function of the 0-based epoch: constant, or linear decay between two epochs.

    lambda(e) = initial                                                  for e <= start_epoch
              = initial + (final - initial) * (e - start) / (end - start)  between them
              = final                                                    for e >= end_epoch

    The paper anneals lambda linearly from 4 to 1 (CIFAR over 500 epochs, MNIST over the first 150):
    `KDLambdaSchedule(4.0, 1.0, 0, 150)`. The original code takes equal steps once per epoch between its
    `start` and `saturate` epochs, which is this schedule up to one epoch of offset.
    """

    initial: float
    final: float = None
    start_epoch: int = 0
    end_epoch: int = 0

    def __post_init__(self):
        if self.final is None:
            object.__setattr__(self, "final", self.initial)
        if self.initial < 0 or self.final < 0:
            raise ValueError(
                f"kd_lambda must be >= 0. Received: initial={self.initial}, final={self.final}"
            )
        if self.start_epoch < 0 or self.end_epoch < self.start_epoch:
            raise ValueError(
                "The lambda decay needs 0 <= start_epoch <= end_epoch. Received: "
                f"start_epoch={self.start_epoch}, end_epoch={self.end_epoch}"
            )

    @classmethod
    def constant(cls, value):
        return cls(float(value), float(value))

    def __call__(self, epoch):
        if epoch <= self.start_epoch or self.end_epoch == self.start_epoch:
            return float(self.initial if epoch <= self.start_epoch else self.final)
        if epoch >= self.end_epoch:
            return float(self.final)
        fraction = (epoch - self.start_epoch) / (self.end_epoch - self.start_epoch)
        return float(self.initial + (self.final - self.initial) * fraction)
