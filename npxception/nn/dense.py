"""Dense: a fully connected layer with bias (the classifier).

x (N, Cin) -> y (N, Cout) = x @ kernel + bias; kernel (Cin, Cout) Glorot uniform, bias zeros.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .initializers import glorot_uniform, zeros
from .layer import Layer, Shape, check_input


class _Saved(NamedTuple):
    x: Any


class Dense(Layer):
    def __init__(self, name: str, in_features: int, units: int, *, rng: np.random.Generator,
                 backend="auto", dtype="float32"):
        super().__init__(name, backend, dtype)
        self.in_features, self.units = in_features, units
        self.params["kernel"] = self._new_weight(glorot_uniform((in_features, units), rng))
        self.params["bias"] = self._new_weight(zeros((units,)))

    def forward(self, x, training: bool):
        check_input(self, x, 2, self.in_features)
        self._saved = _Saved(x)
        return self.backend.dense(x, self.params["kernel"], self.params["bias"])

    def backward(self, dy):
        s = self._saved_for_backward()
        dx, self.grads["kernel"], self.grads["bias"] = self.backend.dense_backward(
            dy, s.x, self.params["kernel"], True)
        return dx

    def output_shape(self, input_shape: Shape) -> Shape:
        return (self.units,)

    def macs(self, input_shape: Shape) -> int:
        return self.in_features * self.units
