"""Shape arithmetic shared by ops, layers and every backend.

Everything here is plain Python on ints: no arrays, no backend. Backends receive the *resolved*
form of each argument (a pair for stride and dilation, four ints for padding), so the padding rule
is written exactly once.

TensorFlow's "same" rule (which Keras, and so Xception's published weights, depend on)::

    out   = ceil(in / stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0)
    before = total // 2, after = total - before        # the odd pixel goes bottom/right

PyTorch has no such mode: at Xception's 147x147 -> 74x74 max pool the padding is symmetric (1, 1),
but at 74x74 -> 37x37 it is (0, 1), which a symmetric pad cannot express.
"""

from __future__ import annotations

from dataclasses import dataclass

Pair = tuple[int, int]
Padding4 = tuple[int, int, int, int]  # (top, bottom, left, right)
PaddingArg = str | int | tuple


def as_pair(value, name: str) -> Pair:
    """An int or a pair of ints, each >= 1 (stride, dilation, pool size)."""
    if isinstance(value, (bool,)) or not isinstance(value, (int, tuple, list)):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in pair):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if pair[0] < 1 or pair[1] < 1:
        raise ValueError(f"{name} must be >= 1, got {value!r}")
    return int(pair[0]), int(pair[1])


def same_padding_1d(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's "same" padding along one axis: (before, after), the extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def resolve_padding(padding: PaddingArg, in_hw: Pair, kernel: Pair, stride: Pair,
                    dilation: Pair = (1, 1)) -> Padding4:
    """Turn "valid", "same", an int, (ph, pw) or ((top, bottom), (left, right)) into 4 ints."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0, 0, 0)
        if mode == "same":
            top, bottom = same_padding_1d(in_hw[0], kernel[0], stride[0], dilation[0])
            left, right = same_padding_1d(in_hw[1], kernel[1], stride[1], dilation[1])
            return (top, bottom, left, right)
        raise ValueError(f"padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    if isinstance(padding, bool):
        raise TypeError(f"padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    if isinstance(padding, int):
        pads = (padding,) * 4
    elif isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(isinstance(p, int) and not isinstance(p, bool) for p in padding):
            pads = (padding[0], padding[0], padding[1], padding[1])
        elif all(isinstance(p, (tuple, list)) and len(p) == 2 for p in padding):
            pads = (*padding[0], *padding[1])
        else:
            raise TypeError(f"padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    else:
        raise TypeError(f"padding must be 'valid', 'same', an int or a pair, got {padding!r}")
    if not all(isinstance(p, int) and not isinstance(p, bool) for p in pads):
        raise TypeError(f"padding must hold ints, got {padding!r}")
    if min(pads) < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return tuple(int(p) for p in pads)


def conv_output_hw(in_hw: Pair, kernel: Pair, stride: Pair, padding: Padding4,
                   dilation: Pair = (1, 1)) -> Pair:
    """out = floor((in + pad_before + pad_after - dilation * (k - 1) - 1) / stride) + 1."""
    out = []
    for size, k, s, d, (before, after) in zip(in_hw, kernel, stride, dilation,
                                              (padding[:2], padding[2:])):
        span = d * (k - 1) + 1
        out.append((size + before + after - span) // s + 1)
    return out[0], out[1]


def window_output_hw(in_hw: Pair, kernel: Pair, stride: Pair, padding: Padding4, dilation: Pair,
                     who: str) -> Pair:
    """conv_output_hw, or a ValueError naming `who` when the window leaves no output pixel."""
    ho, wo = conv_output_hw(tuple(in_hw), kernel, stride, padding, dilation)
    if ho < 1 or wo < 1:
        raise ValueError(f"{who}: input of spatial size {tuple(in_hw)} is too small for kernel {kernel}, "
                         f"stride {stride}, dilation {dilation} and padding {padding}: the output "
                         f"would be empty, size ({ho}, {wo})")
    return ho, wo


@dataclass(frozen=True)
class Window:
    """Sliding-window geometry (kernel, stride, padding, dilation) of a convolution or a pool.

    The arguments are checked once, when the window is made (by a layer's constructor, or by an
    op's validation); `padding` stays as given and is resolved per input size, because "same"
    depends on it: the same layer pads (1, 1) at 147x147 and (0, 1) at 74x74.
    """

    kernel: Pair
    stride: Pair
    padding: PaddingArg
    dilation: Pair

    @classmethod
    def of(cls, kernel, stride=1, padding="valid", dilation=1, kernel_name: str = "kernel_size") -> Window:
        window = cls(as_pair(kernel, kernel_name), as_pair(stride, "stride"), padding,
                     as_pair(dilation, "dilation"))
        window.pads((max(window.kernel) * max(window.dilation),) * 2)  # validates `padding` now
        return window

    def pads(self, in_hw: Pair) -> Padding4:
        """(top, bottom, left, right) for an input of spatial size in_hw."""
        return resolve_padding(self.padding, tuple(in_hw), self.kernel, self.stride, self.dilation)

    def out_hw(self, in_hw: Pair, who: str) -> Pair:
        """Output spatial size; a clear error naming `who` when the input is too small."""
        return window_output_hw(in_hw, self.kernel, self.stride, self.pads(in_hw), self.dilation, who)
