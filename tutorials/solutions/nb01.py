"""Notebook 1: the cost ratio with a depth multiplier, a strided depthwise convolution, the
separable kernel as a regular one."""

import numpy as np


def cost_ratio(k, c_in, c_out, multiplier):
    """Multiply-adds (or weights) of a separable convolution divided by those of a regular one.

    k x k window, c_in -> c_out channels, depthwise depth multiplier `multiplier`, no biases.
    """
    # BEGIN SOLUTION
    separable = k * k * c_in * multiplier + c_in * multiplier * c_out
    regular = k * k * c_in * c_out
    return separable / regular
    # END SOLUTION


def depthwise_strided(x, w, stride):
    """Depthwise convolution with stride `stride`, 'valid' padding, depth multiplier M.

    x (N, H, W, C), w (kh, kw, C, M) -> (N, Ho, Wo, C*M) with Ho = (H - kh) // stride + 1.
    """
    # BEGIN SOLUTION
    kh, kw, c_in, mult = w.shape
    ho = (x.shape[1] - kh) // stride + 1
    wo = (x.shape[2] - kw) // stride + 1
    y = np.zeros((x.shape[0], ho, wo, c_in, mult), dtype=x.dtype)
    for p in range(kh):
        for q in range(kw):
            # Tap (p, q) of output (i, j) reads input (i*stride + p, j*stride + q): a strided slice.
            window = x[:, p:p + (ho - 1) * stride + 1:stride, q:q + (wo - 1) * stride + 1:stride, :]
            y += window[..., None] * w[p, q]
    return y.reshape(x.shape[0], ho, wo, c_in * mult)
    # END SOLUTION


def separable_kernel(depthwise, pointwise):
    """The regular kernel K (kh, kw, C, Cout) that computes the same as depthwise-then-pointwise.

    depthwise (kh, kw, C, M), pointwise (1, 1, C*M, Cout).
    """
    # BEGIN SOLUTION
    kh, kw, c_in, mult = depthwise.shape
    p = pointwise[0, 0].reshape(c_in, mult, -1)    # row c*M + m -> (c, m)
    return np.einsum("pqcm,cmo->pqco", depthwise, p)
    # END SOLUTION
