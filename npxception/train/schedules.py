"""Learning-rate schedules, as functions of training progress t in epochs (a float).

- "step":     the paper's exponential step decay: lr * rate ** floor(t / every) (0.94 every 2 epochs)
- "cosine":   lr * (1 + cos(pi * t' )) / 2, t' the fraction of the post-warm-up epochs done
- "constant": lr
Any of them can start with a linear warm-up over `warmup_epochs`: the rate ramps from lr / steps
to lr, which keeps the first updates of a freshly initialised network (large gradients, batch
statistics still moving) from throwing the weights far off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("step", "cosine", "constant")


@dataclass(frozen=True)
class Schedule:
    lr: float
    kind: str = "step"
    epochs: int = 1
    warmup_epochs: float = 0.0
    decay_rate: float = 0.94
    decay_epochs: float = 2.0

    def __post_init__(self):
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.kind!r}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr}")
        if self.warmup_epochs < 0 or self.decay_epochs <= 0:
            raise ValueError("warmup_epochs must be >= 0 and decay_epochs > 0")

    def __call__(self, t: float) -> float:
        """The learning rate after t epochs (t = epoch + fraction of the epoch done)."""
        if self.kind == "step":
            lr = self.lr * self.decay_rate ** math.floor(t / self.decay_epochs)
        elif self.kind == "cosine":
            span = max(self.epochs - self.warmup_epochs, 1e-12)
            done = min(max((t - self.warmup_epochs) / span, 0.0), 1.0)
            lr = self.lr * 0.5 * (1.0 + math.cos(math.pi * done))
        else:
            lr = self.lr
        if t < self.warmup_epochs:
            lr *= t / self.warmup_epochs
        return lr
