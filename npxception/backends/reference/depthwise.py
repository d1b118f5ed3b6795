"""Depthwise 2-D convolution, NHWC: every input channel is filtered on its own.

Shapes: x (N, H, W, C), w (kh, kw, C, M) -> y (N, Ho, Wo, C*M), M the depth multiplier;
output channel c*M + m is input channel c filtered by w[:, :, c, m] (Keras's order).
Ho = floor((H + pad_top + pad_bottom - dil_h * (kh - 1) - 1) / sh) + 1 (likewise Wo).

    y[n, i, j, c*M + m] = sum_{p, q} xpad[n, i*sh + p*dil_h, j*sw + q*dil_w, c] * w[p, q, c, m]

No sum over channels: a depthwise convolution mixes space, never channels (that is the pointwise
convolution's job). Differentiating the sum:
    dw[p, q, c, m]          = sum_{n, i, j} x_tap[n, i, j, c] * dy[n, i, j, c, m]
    dx_tap[n, i, j, c]     += sum_m dy[n, i, j, c, m] * w[p, q, c, m]
"""

from __future__ import annotations

import numpy as np

from ...shapes import conv_output_hw
from ._windows import pad_nhwc, tap_slice, unpad_nhwc


def depthwise_conv2d(x, w, stride, padding, dilation):
    kh, kw, c, mult = w.shape
    ho, wo = conv_output_hw(x.shape[1:3], (kh, kw), stride, padding, dilation)
    xp = pad_nhwc(x, padding)
    y = np.zeros((x.shape[0], ho, wo, c, mult), dtype=x.dtype)
    for p in range(kh):
        for q in range(kw):
            y += xp[tap_slice(p, q, (ho, wo), stride, dilation)][..., None] * w[p, q]
    return y.reshape(x.shape[0], ho, wo, c * mult)


def depthwise_conv2d_backward(dy, x, w, stride, padding, dilation):
    kh, kw, c, mult = w.shape
    n, ho, wo, _ = dy.shape
    dy5 = dy.reshape(n, ho, wo, c, mult)
    xp = pad_nhwc(x, padding)
    dxp = np.zeros_like(xp)
    dw = np.empty_like(w)
    for p in range(kh):
        for q in range(kw):
            tap = tap_slice(p, q, (ho, wo), stride, dilation)
            dw[p, q] = np.einsum("nhwc,nhwcm->cm", xp[tap], dy5)
            dxp[tap] += np.einsum("nhwcm,cm->nhwc", dy5, w[p, q])
    return unpad_nhwc(dxp, padding).copy(), dw
