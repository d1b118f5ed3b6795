"""Pointwise (1x1) convolution, NHWC: one BLAS GEMM on free reshapes (the math: reference/pointwise.py).

Shapes: x (N, H, W, Cin), w (1, 1, Cin, Cout) -> y (N, H, W, Cout).

    Y = X @ W,   dX = dY @ W^T,   dW = X^T @ dY      X = x.reshape(N*H*W, Cin), W = w[0, 0]

A hand-written Numba loop would only lose to the BLAS that NumPy links: the reshapes of
C-contiguous arrays are views, and `@` on a transposed view is passed to GEMM as a transpose flag,
not copied. Each product is tall (P = N*H*W rows), so all three go through gemm.py, which cuts it
into fixed tasks, each one single-threaded GEMM (dW adds the chunks' partial sums in order).
"""

from __future__ import annotations

from .gemm import tall_matmul, tall_transpose_matmul


def pointwise_conv2d(x, w):
    cin, cout = w.shape[2:]
    return tall_matmul(x.reshape(-1, cin), w[0, 0]).reshape(*x.shape[:3], cout)


def pointwise_conv2d_backward(dy, x, w):
    return pointwise_input_grad(dy, w, x.shape), pointwise_filter_grad(dy, x, w.shape)


def pointwise_input_grad(dy, w, x_shape):
    """dx (x_shape) = dY @ W^T."""
    return tall_matmul(dy.reshape(-1, w.shape[3]), w[0, 0].T).reshape(x_shape)


def pointwise_filter_grad(dy, x, w_shape):
    """dw (1, 1, Cin, Cout) = X^T @ dY, a sum over every pixel."""
    return tall_transpose_matmul(x.reshape(-1, w_shape[2]), dy.reshape(-1, w_shape[3])).reshape(w_shape)
