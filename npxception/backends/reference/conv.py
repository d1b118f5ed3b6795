"""Regular 2-D convolution (cross-correlation, as in every deep-learning framework), NHWC.

Shapes: x (N, H, W, Cin), w (kh, kw, Cin, Cout) -> y (N, Ho, Wo, Cout) with
Ho = floor((H + pad_top + pad_bottom - dil_h * (kh - 1) - 1) / sh) + 1 (likewise Wo).

    y[n, i, j, o] = sum_{p, q, c} xpad[n, i*sh + p*dil_h, j*sw + q*dil_w, c] * w[p, q, c, o]

The loop runs over the kh*kw kernel taps; each tap is one matrix product of a strided view of the
input, (N*Ho*Wo, Cin) @ (Cin, Cout). The backward pass follows from the same sum:
    dw[p, q] = sum over pixels of  x_tap^T @ dy          (x_tap: the input view that tap reads)
    dx_tap  += dy @ w[p, q]^T                            (scattered back through the same view)
"""

from __future__ import annotations

import numpy as np

from ...shapes import conv_output_hw
from ._windows import pad_nhwc, tap_slice, unpad_nhwc


def conv2d(x, w, stride, padding, dilation):
    kh, kw, _, cout = w.shape
    ho, wo = conv_output_hw(x.shape[1:3], (kh, kw), stride, padding, dilation)
    xp = pad_nhwc(x, padding)
    y = np.zeros((x.shape[0], ho, wo, cout), dtype=x.dtype)
    for p in range(kh):
        for q in range(kw):
            y += xp[tap_slice(p, q, (ho, wo), stride, dilation)] @ w[p, q]
    return y


def conv2d_backward(dy, x, w, stride, padding, dilation):
    kh, kw, cin, _ = w.shape
    ho, wo = dy.shape[1:3]
    xp = pad_nhwc(x, padding)
    dxp = np.zeros_like(xp)
    dw = np.empty_like(w)
    dy_rows = dy.reshape(-1, dy.shape[-1])
    for p in range(kh):
        for q in range(kw):
            tap = tap_slice(p, q, (ho, wo), stride, dilation)
            dw[p, q] = xp[tap].reshape(-1, cin).T @ dy_rows
            dxp[tap] += dy @ w[p, q].T
    return unpad_nhwc(dxp, padding).copy(), dw
