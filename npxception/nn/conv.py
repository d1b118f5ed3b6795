"""Conv2D: a regular convolution without bias (Xception's stem and shortcut convolutions).

x (N, H, W, Cin) -> y (N, Ho, Wo, Cout); kernel (kh, kw, Cin, Cout), Glorot uniform.
Ho = floor((H + pad_top + pad_bottom - dh * (kh - 1) - 1) / sh) + 1 (likewise Wo).
With `input_grad` False (the network's first layer in training) backward computes dw alone.
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


class Conv2D(Layer):
    def __init__(self, name: str, in_channels: int, filters: int, kernel_size=3, *, stride=1,
                 padding="valid", dilation=1, rng: np.random.Generator, backend="auto",
                 dtype="float32"):
        super().__init__(name, backend, dtype)
        self.window = Window.of(kernel_size, stride, padding, dilation)
        self.in_channels, self.filters = in_channels, filters
        shape = (*self.window.kernel, in_channels, filters)
        self.params["kernel"] = self._new_weight(glorot_uniform(shape, rng))

    def forward(self, x, training: bool):
        check_input(self, x, 4, self.in_channels)
        pads = self.window.pads(x.shape[1:3])
        self.window.out_hw(x.shape[1:3], self.name)
        self._saved = _Saved(x, pads)
        w = self.window
        return self.backend.conv2d(x, self.params["kernel"], w.stride, pads, w.dilation)

    def backward(self, dy):
        s = self._saved_for_backward()
        w, be, kernel = self.window, self.backend, self.params["kernel"]
        if not self.input_grad:  # dw alone (the network's first layer: the images need no gradient)
            self.grads["kernel"] = be.conv2d_filter_grad(dy, s.x, kernel, w.stride, s.pads, w.dilation)
            return None
        dx, self.grads["kernel"] = be.conv2d_backward(dy, s.x, kernel, w.stride, s.pads, w.dilation)
        return dx

    def output_shape(self, input_shape: Shape) -> Shape:
        return (*self.window.out_hw(input_shape[:2], self.name), self.filters)

    def macs(self, input_shape: Shape) -> int:
        ho, wo, _ = self.output_shape(input_shape)
        kh, kw = self.window.kernel
        return ho * wo * kh * kw * self.in_channels * self.filters
