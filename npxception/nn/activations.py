"""Element-wise activations as layers; any input shape.

ReLU: y = max(x, 0), dx = dy * [x > 0].   ELU: y = x if x > 0 else alpha * (exp(x) - 1).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .layer import Layer


class _Saved(NamedTuple):
    x: Any


class ReLU(Layer):
    def forward(self, x, training: bool):
        self._saved = _Saved(x)
        return self.backend.relu(x)

    def backward(self, dy):
        return self.backend.relu_backward(dy, self._saved_for_backward().x)


class ELU(Layer):
    def __init__(self, name: str, *, alpha: float = 1.0, backend="auto", dtype="float32"):
        super().__init__(name, backend, dtype)
        self.alpha = float(alpha)

    def forward(self, x, training: bool):
        self._saved = _Saved(x)
        return self.backend.elu(x, self.alpha)

    def backward(self, dy):
        return self.backend.elu_backward(dy, self._saved_for_backward().x, self.alpha)
