"""Pointwise (1x1) convolution, tuned: each product cut into fixed single-threaded GEMM tasks.

The plain version (../pointwise.py) makes one multi-threaded BLAS call per pass. Each product is
tall (P = N*H*W rows); gemm.py cuts it into tasks that depend on the shapes alone, each one
single-threaded GEMM on Numba's threads (dW adds the chunks' partial sums in order), so no second
thread pool waits beside Numba's and the bits do not depend on the thread count. Benchmark:
`benchmarks/bench_ops.py` (ops `pointwise_*`).
"""

from __future__ import annotations

from .gemm import tall_matmul, tall_transpose_matmul


def pointwise_conv2d(x, w):
    cin, cout = w.shape[2:]
    return tall_matmul(x.reshape(-1, cin), w[0, 0]).reshape(*x.shape[:3], cout)


def pointwise_input_grad(dy, w, x_shape):
    """dx (x_shape) = dY @ W^T."""
    return tall_matmul(dy.reshape(-1, w.shape[3]), w[0, 0].T).reshape(x_shape)


def pointwise_filter_grad(dy, x, w):
    """dw (1, 1, Cin, Cout) = X^T @ dY; only w's shape is read."""
    return tall_transpose_matmul(x.reshape(-1, w.shape[2]), dy.reshape(-1, w.shape[3])).reshape(w.shape)
