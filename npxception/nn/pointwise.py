"""PointwiseConv2D: a 1x1 convolution, i.e. one matrix product over the channel axis.

x (N, H, W, Cin) -> y (N, H, W, Cout); pointwise_kernel (1, 1, Cin, Cout), Glorot uniform
(fan_in = Cin, fan_out = Cout).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .initializers import glorot_uniform
from .layer import Layer, Shape, check_input


class _Saved(NamedTuple):
    x: Any


class PointwiseConv2D(Layer):
    def __init__(self, name: str, in_channels: int, filters: int, *, rng: np.random.Generator,
                 backend="auto", dtype="float32"):
        super().__init__(name, backend, dtype)
        self.in_channels, self.filters = in_channels, filters
        self.params["pointwise_kernel"] = self._new_weight(
            glorot_uniform((1, 1, in_channels, filters), rng))

    def forward(self, x, training: bool):
        check_input(self, x, 4, self.in_channels)
        self._saved = _Saved(x)
        return self.backend.pointwise_conv2d(x, self.params["pointwise_kernel"])

    def backward(self, dy):
        s = self._saved_for_backward()
        dx, self.grads["pointwise_kernel"] = self.backend.pointwise_conv2d_backward(
            dy, s.x, self.params["pointwise_kernel"])
        return dx

    def output_shape(self, input_shape: Shape) -> Shape:
        return (*input_shape[:2], self.filters)

    def macs(self, input_shape: Shape) -> int:
        return input_shape[0] * input_shape[1] * self.in_channels * self.filters
