"""Pointwise (1x1) convolution, NHWC: one matrix product per pass (the math: reference/pointwise.py).

Shapes: x (N, H, W, Cin), w (1, 1, Cin, Cout) -> y (N, H, W, Cout).

    Y = X @ W,   dX = dY @ W^T,   dW = X^T @ dY      X = x.reshape(N*H*W, Cin), W = w[0, 0]

A hand-written loop would only lose to the BLAS that NumPy links: the reshapes of C-contiguous
arrays are views, and `@` on a transposed view is passed to GEMM as a transpose flag, not copied.
`tuned/pointwise.py` cuts each product into fixed single-threaded GEMM tasks on Numba's threads
(`dispatch.py` says when).
"""

from __future__ import annotations


def pointwise_conv2d(x, w):
    cin, cout = w.shape[2:]
    return (x.reshape(-1, cin) @ w[0, 0]).reshape(*x.shape[:3], cout)


def pointwise_conv2d_backward(dy, x, w):
    return pointwise_input_grad(dy, w, x.shape), pointwise_filter_grad(dy, x, w)


def pointwise_input_grad(dy, w, x_shape):
    """dx (x_shape) = dY @ W^T."""
    return (dy.reshape(-1, w.shape[3]) @ w[0, 0].T).reshape(x_shape)


def pointwise_filter_grad(dy, x, w):
    """dw (1, 1, Cin, Cout) = X^T @ dY, a sum over every pixel; only w's shape is read."""
    return (x.reshape(-1, w.shape[2]).T @ dy.reshape(-1, w.shape[3])).reshape(w.shape)
