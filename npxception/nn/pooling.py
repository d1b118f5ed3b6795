"""MaxPool2D and GlobalAvgPool2D, NHWC.

MaxPool2D: x (N, H, W, C) -> (N, Ho, Wo, C); padding counts as -inf, so with Keras's "same" the
odd padded pixel (bottom/right) never wins. The gradient goes to each window's first maximum.
GlobalAvgPool2D: x (N, H, W, C) -> (N, C), the mean over H and W.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .layer import Layer, Shape, check_input
from ..shapes import Window


class _Saved(NamedTuple):
    x: Any
    pads: tuple
    taps: Any  # each output's winning tap (backend.max_pool2d_with_taps), or None: found again from x


class _SavedInput(NamedTuple):
    x: Any  # only its shape matters to the backward pass


class MaxPool2D(Layer):
    def __init__(self, name: str, pool_size=3, *, stride=2, padding="same", backend="auto",
                 dtype="float32"):
        super().__init__(name, backend, dtype)
        self.window = Window.of(pool_size, stride, padding)

    def forward(self, x, training: bool):
        check_input(self, x, 4)
        w = self.window
        w.out_hw(x.shape[1:3], self.name)
        pads = w.pads(x.shape[1:3])
        be = self.backend
        if training:  # keep the winners for the backward pass
            y, taps = be.max_pool2d_with_taps(x, w.kernel, w.stride, pads)
        else:
            y, taps = be.max_pool2d(x, w.kernel, w.stride, pads), None
        self._saved = _Saved(x, pads, taps)
        return y

    def backward(self, dy):
        s = self._saved_for_backward()
        w = self.window
        if s.taps is not None:
            return self.backend.max_pool2d_backward_taps(dy, s.taps, s.x.shape, w.kernel, w.stride, s.pads)
        return self.backend.max_pool2d_backward(dy, s.x, w.kernel, w.stride, s.pads)

    def output_shape(self, input_shape: Shape) -> Shape:
        return (*self.window.out_hw(input_shape[:2], self.name), input_shape[2])


class GlobalAvgPool2D(Layer):
    def forward(self, x, training: bool):
        check_input(self, x, 4)
        self._saved = _SavedInput(x)
        return self.backend.global_avg_pool2d(x)

    def backward(self, dy):
        return self.backend.global_avg_pool2d_backward(dy, self._saved_for_backward().x)

    def output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[-1],)
