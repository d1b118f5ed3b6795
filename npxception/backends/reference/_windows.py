"""The one piece of index arithmetic every convolution and pool here shares."""

from __future__ import annotations

import numpy as np


def pad_nhwc(x: np.ndarray, padding, value: float = 0.0) -> np.ndarray:
    """Pad the two spatial axes of an NHWC array by (top, bottom, left, right)."""
    top, bottom, left, right = padding
    if not any(padding):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def tap_slice(p: int, q: int, out_hw, stride, dilation) -> tuple:
    """Index of the padded input that kernel tap (p, q) reads for every output pixel.

    Output pixel (i, j) reads padded input (i * sh + p * dil_h, j * sw + q * dil_w), so for one tap the
    pixels it reads over the whole output form a strided slice.
    """
    (ho, wo), (sh, sw), (dil_h, dil_w) = out_hw, stride, dilation
    rows = slice(p * dil_h, p * dil_h + (ho - 1) * sh + 1, sh)
    cols = slice(q * dil_w, q * dil_w + (wo - 1) * sw + 1, sw)
    return (slice(None), rows, cols)


def unpad_nhwc(xp: np.ndarray, padding) -> np.ndarray:
    """Crop what pad_nhwc added (the gradient of the padding is dropped)."""
    top, bottom, left, right = padding
    return xp[:, top:xp.shape[1] - bottom, left:xp.shape[2] - right]
