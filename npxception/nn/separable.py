"""SeparableConv2D: a depthwise convolution, then a pointwise (1x1) one: Xception's building block.

x (N, H, W, Cin) -> depthwise (kh, kw, Cin, M) -> h (N, Ho, Wo, Cin*M)
                 -> [optional activation a = f(h)] -> pointwise (1, 1, Cin*M, Cout) -> y (N, Ho, Wo, Cout)

Keras stores both kernels in one layer ("block4_sepconv2/depthwise_kernel" and
".../pointwise_kernel"), so this is one layer rather than a container. `intermediate_activation`
(None, "relu" or "elu") is the paper's Figure 10 ablation: Xception uses none, because the
depthwise output is too shallow (one channel per filter) for a non-linearity to help.

The forward and backward compositions live in `npxception.compose` (shared with `ops`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from .. import compose
from ..compose import ACTIVATIONS
from .initializers import glorot_uniform
from .layer import Layer, Shape, check_input
from ..shapes import Window

class _Saved(NamedTuple):
    x: Any
    steps: compose.SeparableSaved  # the depthwise output and the pointwise step's input
    pads: tuple


class SeparableConv2D(Layer):
    def __init__(self, name: str, in_channels: int, filters: int, kernel_size=3, *,
                 depth_multiplier: int = 1, stride=1, padding="same", dilation=1,
                 intermediate_activation: str | None = None, rng: np.random.Generator,
                 backend="auto", dtype="float32"):
        super().__init__(name, backend, dtype)
        if intermediate_activation not in ACTIVATIONS:
            raise ValueError(f"intermediate_activation must be one of {ACTIVATIONS}, "
                             f"got {intermediate_activation!r}")
        self.window = Window.of(kernel_size, stride, padding, dilation)
        self.in_channels, self.filters = in_channels, filters
        self.depth_multiplier = depth_multiplier
        self.intermediate_activation = intermediate_activation
        mid = in_channels * depth_multiplier
        self.params["depthwise_kernel"] = self._new_weight(
            glorot_uniform((*self.window.kernel, in_channels, depth_multiplier), rng))
        self.params["pointwise_kernel"] = self._new_weight(
            glorot_uniform((1, 1, mid, filters), rng))

    def forward(self, x, training: bool):
        check_input(self, x, 4, self.in_channels)
        w, p = self.window, self.params
        w.out_hw(x.shape[1:3], self.name)
        pads = w.pads(x.shape[1:3])
        y, steps = compose.separable_conv2d(self.backend, x, p["depthwise_kernel"], p["pointwise_kernel"],
                                            w.stride, pads, w.dilation, self.intermediate_activation)
        self._saved = _Saved(x, steps, pads)
        return y

    def backward(self, dy):
        s = self._saved_for_backward()
        w, p = self.window, self.params
        dx, self.grads["depthwise_kernel"], self.grads["pointwise_kernel"] = compose.separable_conv2d_backward(
            self.backend, dy, s.x, p["depthwise_kernel"], p["pointwise_kernel"], s.steps, w.stride, s.pads,
            w.dilation, self.intermediate_activation)
        return dx

    def output_shape(self, input_shape: Shape) -> Shape:
        return (*self.window.out_hw(input_shape[:2], self.name), self.filters)

    def macs(self, input_shape: Shape) -> int:
        ho, wo, _ = self.output_shape(input_shape)
        mid = self.in_channels * self.depth_multiplier
        kh, kw = self.window.kernel
        return ho * wo * mid * (kh * kw + self.filters)
