"""DepthwiseConv2D: each input channel filtered on its own (space mixing, no channel mixing).

x (N, H, W, C) -> y (N, Ho, Wo, C*M); depthwise_kernel (kh, kw, C, M), Glorot uniform with
Keras's fans (fan_in = C*kh*kw, fan_out = M*kh*kw). Output channel c*M + m is channel c filtered
by depthwise_kernel[:, :, c, m].
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .initializers import glorot_uniform
from .layer import Layer, Shape, check_input
from ..shapes import Window


class _Saved(NamedTuple):
    x: Any
    pads: tuple


class DepthwiseConv2D(Layer):
    def __init__(self, name: str, channels: int, kernel_size=3, *, depth_multiplier: int = 1,
                 stride=1, padding="valid", dilation=1, rng: np.random.Generator, backend="auto",
                 dtype="float32"):
        super().__init__(name, backend, dtype)
        self.window = Window.of(kernel_size, stride, padding, dilation)
        self.channels, self.depth_multiplier = channels, depth_multiplier
        shape = (*self.window.kernel, channels, depth_multiplier)
        self.params["depthwise_kernel"] = self._new_weight(glorot_uniform(shape, rng))

    def forward(self, x, training: bool):
        check_input(self, x, 4, self.channels)
        self.window.out_hw(x.shape[1:3], self.name)
        pads = self.window.pads(x.shape[1:3])
        self._saved = _Saved(x, pads)
        w = self.window
        return self.backend.depthwise_conv2d(x, self.params["depthwise_kernel"], w.stride, pads,
                                             w.dilation)

    def backward(self, dy):
        s = self._saved_for_backward()
        w = self.window
        dx, self.grads["depthwise_kernel"] = self.backend.depthwise_conv2d_backward(
            dy, s.x, self.params["depthwise_kernel"], w.stride, s.pads, w.dilation)
        return dx

    def output_shape(self, input_shape: Shape) -> Shape:
        return (*self.window.out_hw(input_shape[:2], self.name),
                self.channels * self.depth_multiplier)

    def macs(self, input_shape: Shape) -> int:
        ho, wo, cm = self.output_shape(input_shape)
        return ho * wo * self.window.kernel[0] * self.window.kernel[1] * cm
