"""An exponential moving average of the weights, used for evaluation (what the paper, after
Inception V3, calls "Polyak averaging"; Polyak and Juditsky's average is the plain mean of the iterates).

After every step, average = d * average + (1 - d) * p (the backend's `ema_update`, a kernel on
cuda). As in TensorFlow's ExponentialMovingAverage with `num_updates`, the decay starts low,
d = min(decay, (1 + n) / (10 + n)) after n updates, so the average follows the fast early changes
instead of remembering the random initialisation for thousands of steps.

Only trainable weights are averaged; batch-norm moving statistics are already averages.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import numpy as np

from ..backends import get_backend
from .optimizers import checked_like


class EMA:
    """Moving averages of a model's trainable weights, keyed like `model.trainable()`."""

    def __init__(self, backend, decay: float = 0.999):
        if not 0 <= decay < 1:  # NaN fails this too
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.backend = get_backend(backend)
        self.decay = float(decay)
        self.updates = 0
        self.averages: dict[str, object] = {}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    def update(self, params: Mapping[str, tuple]) -> None:
        """Fold the current weights (`model.trainable()`: key -> (param, grad)) into the averages."""
        decay = self.current_decay()
        for key, (p, _) in params.items():
            if key not in self.averages:
                # decay 0 copies p exactly: 0 * 0 + 1 * p, on any backend.
                self.averages[key] = self.backend.zeros(p.shape, p.dtype)
                self.backend.ema_update(self.averages[key], p, 0.0)
            else:
                self.backend.ema_update(self.averages[key], p, decay)
        self.updates += 1

    def state_dict(self) -> dict[str, np.ndarray]:
        """The averaged weights as NumPy arrays, keyed like `model.state_dict()`."""
        return {key: self.backend.to_numpy(value) for key, value in self.averages.items()}

    def load_state_dict(self, state: Mapping[str, np.ndarray], updates: int,
                        like: Mapping[str, np.ndarray] | None = None) -> None:
        """Restore `state_dict()` output; with `like` (the model's state dict) every average must
        match its weight's shape (and takes its dtype). All or nothing."""
        if isinstance(updates, bool) or not isinstance(updates, (int, np.integer)) or updates < 0:
            raise ValueError(f"EMA updates must be a non-negative integer, got {updates!r}")
        averages = {key: checked_like(value, key, like, f"EMA average {key!r}") for key, value in state.items()}
        self.averages = {key: self.backend.to_device(value) for key, value in averages.items()}
        self.updates = int(updates)

    @contextmanager
    def swapped_in(self, model) -> Iterator[None]:
        """Within the block the model holds the averaged weights; its own come back afterwards."""
        if not self.averages:
            yield
            return
        own = model.state_dict()
        model.load_state_dict({**own, **self.state_dict()})
        try:
            yield
        finally:
            model.load_state_dict(own)
