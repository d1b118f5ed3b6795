"""Pointwise (1x1) convolution on the GPU: one GEMM each way (see gemm.py for the kernel).

Shapes: x (N, H, W, Cin), w (1, 1, Cin, Cout) -> y (N, H, W, Cout). In NHWC the pixels are the
rows of a (N*H*W, Cin) matrix, so reshapes are free and no data moves besides the GEMMs:
    Y = X @ W,   dX = dY @ W^T,   dW = X^T @ dY   (split-K over the N*H*W pixels)
"""

from __future__ import annotations

from .gemm import matmul


def pointwise_conv2d(x, w):
    cin, cout = w.shape[2], w.shape[3]
    rows = x.size // cin
    y = matmul(x.reshape(rows, cin), w.reshape(cin, cout))
    return y.reshape(x.shape[0], x.shape[1], x.shape[2], cout)


def pointwise_conv2d_backward(dy, x, w):
    cin, cout = w.shape[2], w.shape[3]
    rows = x.size // cin
    x_rows, dy_rows, w2 = x.reshape(rows, cin), dy.reshape(rows, cout), w.reshape(cin, cout)
    dx = matmul(dy_rows, w2, b_transposed=True).reshape(x.shape)
    dw = matmul(x_rows, dy_rows, a_transposed=True).reshape(w.shape)
    return dx, dw
