"""Sliding-window geometry (kernel, stride, padding, dilation) shared by convolutions and pooling.

The padding argument ("same", "valid", an int or a pair) is resolved per input size with
`npxception.shapes.resolve_padding`, the one place where TensorFlow's "same" rule lives: the
same layer pads (1, 1) at 147x147 and (0, 1) at 74x74.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..shapes import Padding4, Pair, as_pair, conv_output_hw, resolve_padding


@dataclass(frozen=True)
class Window:
    kernel: Pair
    stride: Pair
    padding: object
    dilation: Pair

    @classmethod
    def of(cls, kernel, stride=1, padding="valid", dilation=1) -> Window:
        window = cls(as_pair(kernel, "kernel_size"), as_pair(stride, "stride"), padding,
                     as_pair(dilation, "dilation"))
        window.pads((max(window.kernel) * max(window.dilation),) * 2)  # validates `padding` now
        return window

    def pads(self, in_hw: Pair) -> Padding4:
        """(top, bottom, left, right) for an input of spatial size in_hw."""
        return resolve_padding(self.padding, tuple(in_hw), self.kernel, self.stride, self.dilation)

    def out_hw(self, in_hw: Pair, who: str) -> Pair:
        """Output spatial size; a clear error when the input is too small for the window."""
        ho, wo = conv_output_hw(tuple(in_hw), self.kernel, self.stride, self.pads(in_hw),
                                self.dilation)
        if ho < 1 or wo < 1:
            raise ValueError(f"{who}: input of spatial size {tuple(in_hw)} is too small for kernel "
                             f"{self.kernel}, stride {self.stride}, padding {self.padding!r}")
        return ho, wo
