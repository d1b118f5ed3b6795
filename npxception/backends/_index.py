"""Window index arithmetic, written once as plain Python and compiled by each backend.

`cpu/_index.py` compiles these with `njit(inline="always")` and `cuda/_index.py` with
`cuda.jit(device=True, inline="always")`, so a CPU kernel and a CUDA kernel read or gather through
exactly the same formula. Along one axis (rows or columns alike), for an output of `out_size`
positions, a kernel tap t, and the resolved padding `pad_before` (top or left):

    output position i reads input position  i * stride + t * dilation - pad_before

which lies outside the input (in the padding) when it is < 0 or >= the input size. TensorFlow's
"same" padding itself is resolved once, on the host, before any kernel runs
(`npxception.shapes.same_padding_1d`), so kernels only ever see `pad_before`.
"""

from __future__ import annotations


def input_index(i, tap, stride, dilation, pad_before):
    """The input position that output position i reads through tap `tap` (may be in the padding)."""
    return i * stride + tap * dilation - pad_before


def output_index(r, tap, stride, dilation, pad_before, out_size):
    """The output position that read input position r through tap `tap`, or -1 when none did.

    The inverse of input_index: i = (r + pad_before - tap * dilation) / stride, when that is a whole
    number in [0, out_size). Input gradients use it to *gather* into each input element from the
    outputs that read it, so no two threads write one element.
    """
    t = r + pad_before - tap * dilation
    if t < 0 or t % stride != 0 or t // stride >= out_size:
        return -1
    return t // stride
