"""Dropout: inverted dropout, active only in training.

y = x * keep / (1 - rate). The mask is a pure function of (seed, element index) on every backend,
so backward recomputes it from the seed instead of storing it. Whoever drives training sets
`seed` before each training forward (the model advances it per step), which makes a run
reproducible and resumable from a step counter.
"""

from __future__ import annotations

from typing import NamedTuple

from ..backends.reference.dropout import GOLDEN
from .layer import Layer

_GOLDEN_INVERSE = pow(GOLDEN, -1, 2**64)  # GOLDEN is odd, so invertible modulo 2**64


def shifted_seed(seed: int, shift: int) -> int:
    """The seed whose mask element i is element i + shift of `seed`'s mask.

    The mask hashes index + (seed + 1) * GOLDEN modulo 2**64 (backends/reference/dropout.py), so
    adding shift / GOLDEN (mod 2**64) to the seed moves the stream by `shift` elements.
    """
    return (seed + shift * _GOLDEN_INVERSE) % 2**64


class _Saved(NamedTuple):
    seed: int
    active: bool  # False in inference or with rate 0: the layer is the identity


class Dropout(Layer):
    def __init__(self, name: str, rate: float, *, seed: int = 0, backend="auto", dtype="float32"):
        super().__init__(name, backend, dtype)
        if not 0 <= rate < 1:
            raise ValueError(f"{name}: rate must be in [0, 1), got {rate!r}")
        self.rate, self.seed = float(rate), int(seed)
        # Index of this batch's first sample in the global batch when several processes share it
        # (npxception.distributed): the masks continue the global batch's stream, so a sample's
        # mask does not depend on how the batch is split.
        self.first_sample = 0

    def forward(self, x, training: bool):
        active = bool(training) and self.rate > 0
        seed = self.seed
        if active and self.first_sample:
            seed = shifted_seed(seed, self.first_sample * (x.size // x.shape[0]))
        self._saved = _Saved(seed, active)
        return self.backend.dropout(x, self.rate, seed) if active else x

    def backward(self, dy):
        s = self._saved_for_backward()
        return self.backend.dropout_backward(dy, self.rate, s.seed) if s.active else dy
