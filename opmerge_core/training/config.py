"""The optimisation settings of a training run (THEORY §6): ``TrainConfig`` and its bounds.

Used by the trainer (``trainer.train``), the results it returns (``results``) and the training spec
(``train_spec.TrainSpec`` extends it); kept apart so that none of them imports another for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from opmerge_core.basics.device import DEVICES
from opmerge_core.basics.validation import check_choice, check_count, check_int, check_positive
from opmerge_core.training.graph import INPUTS

STEPS_MAX = 100_000
BATCH_MAX = 65_536
LR_MAX = 100.0
HIDDEN_MAX = 256

OPTIMIZERS = ("sgd", "adam")
STUDENTS = ("linear", "mlp")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (THEORY §6). ``S_eff = 2 · lr · steps`` is the budget SGD realises."""

    steps: int = 200
    lr: float = 0.05
    batch: int = 256
    optimizer: str = "sgd"
    seed: int = 0
    inputs: str = "forward"
    student: str = "linear"
    hidden: int = 16
    device: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", check_count(self.steps, "steps", hi=STEPS_MAX))
        object.__setattr__(self, "batch", check_count(self.batch, "batch", hi=BATCH_MAX))
        object.__setattr__(self, "hidden", check_count(self.hidden, "hidden", hi=HIDDEN_MAX))
        object.__setattr__(self, "lr", check_positive(self.lr, "lr", hi=LR_MAX))
        check_choice(self.optimizer, OPTIMIZERS, "optimizer")
        check_choice(self.inputs, INPUTS, "inputs")
        check_choice(self.student, STUDENTS, "student")
        check_choice(self.device, DEVICES, "device")
        object.__setattr__(self, "seed", check_int(self.seed, "seed", lo=0, hi=2**31 - 1))

    @property
    def S_eff(self) -> float:
        """The shrinkage budget S = κτ = 2 η n realised by SGD (THEORY §2, §6)."""
        return 2.0 * self.lr * self.steps

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}
