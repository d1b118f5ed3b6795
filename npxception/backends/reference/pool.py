"""Max pooling and global average pooling, NHWC.

Max pool: x (N, H, W, C) -> y (N, Ho, Wo, C), Ho = floor((H + pt + pb - kh) / sh) + 1.
Padding is -inf, so a padded pixel never wins (Keras's "same" max pool). The gradient goes to one
input per window: the first maximum in row-major window order (ties are broken, not shared).

Global average pool: x (N, H, W, C) -> y (N, C) = mean over H, W;  dx = dy / (H * W) everywhere.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ...shapes import conv_output_hw
from ._windows import pad_nhwc, unpad_nhwc


def _windows(x, pool_size, stride, padding):
    """(N, Ho, Wo, C, kh, kw) view of every pooling window."""
    ho, wo = conv_output_hw(x.shape[1:3], pool_size, stride, padding)
    xp = pad_nhwc(x, padding, value=-np.inf)
    win = sliding_window_view(xp, pool_size, axis=(1, 2))
    return win[:, : (ho - 1) * stride[0] + 1 : stride[0], : (wo - 1) * stride[1] + 1 : stride[1]]


def max_pool2d(x, pool_size, stride, padding):
    return _windows(x, pool_size, stride, padding).max(axis=(4, 5))


def max_pool2d_backward(dy, x, pool_size, stride, padding):
    win = _windows(x, pool_size, stride, padding)
    n, ho, wo, c, kh, kw = win.shape
    first_max = win.reshape(n, ho, wo, c, kh * kw).argmax(axis=-1)
    # Padded coordinates of each window's winner, then one scatter-add (windows may overlap).
    rows = np.arange(ho)[None, :, None, None] * stride[0] + first_max // kw
    cols = np.arange(wo)[None, None, :, None] * stride[1] + first_max % kw
    dxp = np.zeros((n, x.shape[1] + padding[0] + padding[1], x.shape[2] + padding[2] + padding[3], c),
                   dtype=dy.dtype)
    nn_, cc = np.arange(n)[:, None, None, None], np.arange(c)[None, None, None, :]
    np.add.at(dxp, (nn_, rows, cols, cc), dy)
    return unpad_nhwc(dxp, padding).copy()


def global_avg_pool2d(x):
    return x.mean(axis=(1, 2))


def global_avg_pool2d_backward(dy, x):
    scale = dy.dtype.type(1.0 / (x.shape[1] * x.shape[2]))
    return np.broadcast_to((dy * scale)[:, None, None, :], x.shape).copy()
