"""Dropout: inverted dropout, active only in training.

y = x * keep / (1 - rate). The mask is a pure function of (seed, element index) on every backend,
so backward recomputes it from the seed instead of storing it. Whoever drives training sets
`seed` before each training forward (the model advances it per step), which makes a run
reproducible and resumable from a step counter.
"""

from __future__ import annotations

from typing import NamedTuple

from .layer import Layer


class _Saved(NamedTuple):
    seed: int
    active: bool  # False in inference or with rate 0: the layer is the identity


class Dropout(Layer):
    def __init__(self, name: str, rate: float, *, seed: int = 0, backend="auto", dtype="float32"):
        super().__init__(name, backend, dtype)
        if not 0 <= rate < 1:
            raise ValueError(f"{name}: rate must be in [0, 1), got {rate!r}")
        self.rate, self.seed = float(rate), int(seed)

    def forward(self, x, training: bool):
        active = bool(training) and self.rate > 0
        self._saved = _Saved(self.seed, active)
        return self.backend.dropout(x, self.rate, self.seed) if active else x

    def backward(self, dy):
        s = self._saved_for_backward()
        return self.backend.dropout_backward(dy, self.rate, s.seed) if s.active else dy
