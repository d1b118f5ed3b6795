"""Pointwise (1x1) convolution, NHWC: a matrix product over the channel axis.

Shapes: x (N, H, W, Cin), w (1, 1, Cin, Cout) -> y (N, H, W, Cout).

In NHWC every pixel's channels are contiguous, so the whole layer is one GEMM:
    Y = X @ W             X = x.reshape(N*H*W, Cin), W = w[0, 0]
    dX = dY @ W^T,  dW = X^T @ dY
"""

from __future__ import annotations


def pointwise_conv2d(x, w):
    cin, cout = w.shape[2:]
    return (x.reshape(-1, cin) @ w[0, 0]).reshape(*x.shape[:3], cout)


def pointwise_conv2d_backward(dy, x, w):
    cin, cout = w.shape[2:]
    rows, dy_rows = x.reshape(-1, cin), dy.reshape(-1, cout)
    dx = (dy_rows @ w[0, 0].T).reshape(x.shape)
    dw = (rows.T @ dy_rows).reshape(w.shape)
    return dx, dw
