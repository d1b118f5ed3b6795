"""First-call time of every cpu-backend operation: Numba compilation, or loading it from the cache.

    python benchmarks/compile_times.py                    # float32 and float64
    python benchmarks/compile_times.py --dtype float32

Each contract function is called twice on tiny inputs; the first call's time minus the second's is
what compiling (cold: no cache files yet) or loading the cached machine code (warm) costs. The
kernels cache to `__pycache__` next to their source (`cache=True`), so run this twice to see both.
A kernel shared by several functions is paid for by the first one that calls it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _calls(be, dtype):
    """(name, thunk) for every contract function on tiny inputs of `dtype`."""
    rng = np.random.default_rng(0)

    def a(*shape):
        return rng.standard_normal(shape).astype(dtype)

    x, w, dw = a(2, 6, 6, 4), a(3, 3, 4, 5), a(3, 3, 4, 1)
    pw, g, v = a(1, 1, 4, 5), a(4), np.abs(a(4)) + 1
    one, same = (1, 1), (1, 1, 1, 1)
    logits, labels = a(3, 5), np.array([0, 4, 2])
    p, grad, s1, s2 = a(7), a(7), a(7), np.abs(a(7))
    y6 = a(2, 6, 6, 5)
    return [
        ("conv2d", lambda: be.conv2d(x, w, one, same, one)),
        ("conv2d_backward", lambda: be.conv2d_backward(y6, x, w, one, same, one)),
        ("depthwise_conv2d", lambda: be.depthwise_conv2d(x, dw, one, same, one)),
        ("depthwise_conv2d_backward", lambda: be.depthwise_conv2d_backward(x, x, dw, one, same, one)),
        ("pointwise_conv2d", lambda: be.pointwise_conv2d(x, pw)),
        ("pointwise_conv2d_backward", lambda: be.pointwise_conv2d_backward(y6, x, pw)),
        ("batch_norm_train", lambda: be.batch_norm_train(x, g, g, 1e-3)),
        ("batch_norm_infer", lambda: be.batch_norm_infer(x, g, g, g, v, 1e-3)),
        ("batch_norm_backward", lambda: be.batch_norm_backward(x, x, g, g, v, 1e-3, True)),
        ("batch_norm_relu_train", lambda: be.batch_norm_relu_train(x, g, g, 1e-3)),
        ("batch_norm_relu_backward", lambda: be.batch_norm_relu_backward(x, x, x, g, g, v, 1e-3, True)),
        ("moving_average_update", lambda: be.moving_average_update(g, v, 0.99)),
        ("relu", lambda: be.relu(x)),
        ("relu_backward", lambda: be.relu_backward(x, x)),
        ("elu", lambda: be.elu(x, 1.0)),
        ("elu_backward", lambda: be.elu_backward(x, x, 1.0)),
        ("max_pool2d", lambda: be.max_pool2d(x, (3, 3), (2, 2), (0, 1, 0, 1))),
        ("max_pool2d_backward", lambda: be.max_pool2d_backward(a(2, 3, 3, 4), x, (3, 3), (2, 2),
                                                               (0, 1, 0, 1))),
        ("global_avg_pool2d", lambda: be.global_avg_pool2d(x)),
        ("global_avg_pool2d_backward", lambda: be.global_avg_pool2d_backward(a(2, 4), x)),
        ("dense", lambda: be.dense(logits, a(5, 2), a(2))),
        ("dense_backward", lambda: be.dense_backward(a(3, 2), logits, a(5, 2), True)),
        ("dropout", lambda: be.dropout(x, 0.5, 1)),
        ("dropout_backward", lambda: be.dropout_backward(x, 0.5, 1)),
        ("softmax_cross_entropy", lambda: be.softmax_cross_entropy(logits, labels, 0.1)),
        ("softmax_cross_entropy_backward",
         lambda: be.softmax_cross_entropy_backward(1.0, logits, labels, 0.1)),
        ("add", lambda: be.add(x, x)),
        ("sgd_update", lambda: be.sgd_update(p, grad, s1, 0.1, 0.9, False, 1e-5)),
        ("rmsprop_update", lambda: be.rmsprop_update(p, grad, s2, s1, 1e-3, 0.9, 0.9, 1.0, 0.0)),
        ("adam_update", lambda: be.adam_update(p, grad, s1, s2, 1e-3, 0.9, 0.999, 1e-7, 0.0, False, 1)),
        ("ema_update", lambda: be.ema_update(s1, p, 0.99)),
        ("sum_squares", lambda: be.sum_squares(p)),
        ("scale_", lambda: be.scale_(p, 0.5)),
    ]


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", choices=["float32", "float64", "both"], default="both")
    args = parser.parse_args(argv)
    dtypes = ["float32", "float64"] if args.dtype == "both" else [args.dtype]

    start = time.perf_counter()
    from npxception.backends import cpu
    print(f"import npxception.backends.cpu: {time.perf_counter() - start:.2f} s")
    total = 0.0
    for dtype in dtypes:
        print(f"\n{dtype}: first call - second call, seconds")
        for name, fn in _calls(cpu, np.dtype(dtype).type):
            first = _seconds(fn)
            cost = max(first - _seconds(fn), 0.0)
            total += cost
            print(f"  {name:32s} {cost:7.2f}")
    print(f"\ntotal first-call cost: {total:.1f} s")


if __name__ == "__main__":
    main()
