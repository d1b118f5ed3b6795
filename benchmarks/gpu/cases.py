"""Xception's layers at 299x299 as cases of the test suite's catalogue (`npxception.testing.cases.Case`).

One case per distinct layer shape of the paper network and per backend function, in the contract's
resolved form, so the correctness check (against the NumPy reference) and the timings (against
PyTorch) run the same calls. Output sizes come from `npxception.shapes` through `conv_args` and
`pool_args`. In the simulator (`sim=True`) every spatial size shrinks to 6 or 7 pixels (keeping its
parity, hence TensorFlow's asymmetric "same" padding at 74 -> 37) and every channel count to at most
8, and only the first layer of each kind is kept: the simulator runs each CUDA thread in Python.
"""

from __future__ import annotations

import re

import numpy as np

from npxception.testing.cases import Case, conv_args, pool_args

# (H = W, Cin, Cout, kernel, stride, padding): block1_conv1, block1_conv2, the four 1x1 shortcuts.
CONVS = [(299, 3, 32, 3, 2, "valid"), (149, 32, 64, 3, 1, "valid"), (147, 64, 128, 1, 2, "same"),
         (74, 128, 256, 1, 2, "same"), (37, 256, 728, 1, 2, "same"), (19, 728, 1024, 1, 2, "same")]
# (H = W, C): the inputs of the depthwise 3x3 "same" convolutions of every separable convolution.
DEPTHWISE = [(147, 64), (147, 128), (74, 128), (74, 256), (37, 256), (37, 728), (19, 728), (10, 1024),
             (10, 1536)]
# (H = W, Cin, Cout): the pointwise convolutions that follow them.
POINTWISE = [(147, 64, 128), (147, 128, 128), (74, 128, 256), (74, 256, 256), (37, 256, 728),
             (37, 728, 728), (19, 728, 728), (19, 728, 1024), (10, 1024, 1536), (10, 1536, 2048)]
# (H = W, C): every batch-norm input shape.
BATCH_NORM = [(149, 32), (147, 64), (147, 128), (74, 256), (37, 728), (19, 728), (19, 1024),
              (10, 1536), (10, 2048)]
# (H = W, C): the 3x3/2 "same" max pools (74 -> 37 pads (0, 1): TensorFlow's asymmetric case).
POOLS = [(147, 128), (74, 256), (37, 728), (19, 1024)]
ELEMENTWISE = [(147, 128), (74, 256), (19, 728), (10, 2048)]    # ReLU, ELU and residual adds
GAP = (10, 2048)
DENSE = (2048, 1000)
PARAM_SIZES = [2048, 1536 * 2048]   # a BN vector; the largest kernel (block14_sepconv2 pointwise)


def _normal(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


class Sizes:
    """Layer sizes as measured (the paper network) or shrunk for the simulator."""

    def __init__(self, sim: bool):
        self.sim = sim

    def hw(self, h: int) -> int:
        return 6 + h % 2 if self.sim else h

    def ch(self, c: int) -> int:
        return min(c, 8) if self.sim else c

    def pick(self, table: list, keep: int = 1) -> list:
        return table[:keep] if self.sim else table


def _conv_cases(s: Sizes, n: int) -> list[Case]:
    out = []
    for h, cin, cout, k, stride, padding in s.pick(CONVS, 3):
        h, cin, cout = s.hw(h), s.ch(cin), s.ch(cout)
        xs, ws = (n, h, h, cin), (k, k, cin, cout)
        tag = f"{h}x{h}x{cin}->{cout} k{k} s{stride} {padding}"
        for fn, backward in (("conv2d", False), ("conv2d_backward", True)):
            out.append(Case(f"{fn}/{tag}", fn, conv_args(xs, ws, stride, padding, 1, backward=backward,
                                                         cout=lambda w: w[3])))
    return out


def _depthwise_cases(s: Sizes, n: int) -> list[Case]:
    out = []
    for h, c in s.pick(DEPTHWISE):
        h, c = s.hw(h), s.ch(c)
        xs, ws = (n, h, h, c), (3, 3, c, 1)
        for fn, backward in (("depthwise_conv2d", False), ("depthwise_conv2d_backward", True)):
            out.append(Case(f"{fn}/{h}x{h}x{c}", fn, conv_args(xs, ws, 1, "same", 1, backward=backward,
                                                               cout=lambda w: w[2] * w[3])))
    return out


def _pointwise_cases(s: Sizes, n: int) -> list[Case]:
    out = []
    for h, cin, cout in s.pick(POINTWISE):
        h, cin, cout = s.hw(h), s.ch(cin), s.ch(cout)

        def fwd(rng, dt, a=(n, h, h, cin), b=(1, 1, cin, cout)):
            return _normal(rng, a, dt), _normal(rng, b, dt)

        def bwd(rng, dt, a=(n, h, h, cin), b=(1, 1, cin, cout)):
            return _normal(rng, (*a[:3], b[3]), dt), *fwd(rng, dt, a, b)

        tag = f"{h}x{h}x{cin}->{cout}"
        out += [Case(f"pointwise_conv2d/{tag}", "pointwise_conv2d", fwd),
                Case(f"pointwise_conv2d_backward/{tag}", "pointwise_conv2d_backward", bwd)]
    return out


def _batch_norm_cases(s: Sizes, n: int) -> list[Case]:
    out = []
    for h, c in s.pick(BATCH_NORM):
        shape = (n, s.hw(h), s.hw(h), s.ch(c))
        c = shape[3]

        def x_of(rng, dt, shape=shape):
            return (_normal(rng, shape, dt) * 2 + 3).astype(dt)   # an offset, as after a convolution

        def train(rng, dt, c=c):
            return x_of(rng, dt), _normal(rng, c, dt), _normal(rng, c, dt), 1e-3

        def infer(rng, dt, c=c):
            return (*train(rng, dt)[:3], _normal(rng, c, dt), (rng.random(c) + 0.5).astype(dt), 1e-3)

        def backward(rng, dt, shape=shape):
            x = x_of(rng, dt)
            return (_normal(rng, shape, dt), x, _normal(rng, shape[3], dt), x.mean(axis=(0, 1, 2)).astype(dt),
                    x.var(axis=(0, 1, 2)).astype(dt), 1e-3, True)

        tag = "x".join(map(str, shape[1:]))
        out += [Case(f"batch_norm_train/{tag}", "batch_norm_train", train),
                Case(f"batch_norm_infer/{tag}", "batch_norm_infer", infer),
                Case(f"batch_norm_backward/{tag}", "batch_norm_backward", backward)]
    return out


def _elementwise_cases(s: Sizes, n: int) -> list[Case]:
    out = []
    for h, c in s.pick(ELEMENTWISE):
        shape = (n, s.hw(h), s.hw(h), s.ch(c))
        tag = "x".join(map(str, shape[1:]))

        def one(rng, dt, shape=shape):
            return (_normal(rng, shape, dt),)

        def two(rng, dt, shape=shape):
            return _normal(rng, shape, dt), _normal(rng, shape, dt)

        out += [Case(f"relu/{tag}", "relu", one),
                Case(f"relu_backward/{tag}", "relu_backward", two),
                Case(f"elu/{tag}", "elu", lambda rng, dt, f=one: (*f(rng, dt), 1.0)),
                Case(f"elu_backward/{tag}", "elu_backward", lambda rng, dt, f=two: (*f(rng, dt), 1.0)),
                Case(f"add/{tag}", "add", two, exact=True)]
    return out


def _pool_cases(s: Sizes, n: int) -> list[Case]:
    out = []
    for h, c in s.pick(POOLS, 2):
        shape = (n, s.hw(h), s.hw(h), s.ch(c))
        tag = "x".join(map(str, shape[1:]))
        out += [Case(f"max_pool2d/{tag}", "max_pool2d", pool_args(3, 2, "same", shape=shape)),
                Case(f"max_pool2d_backward/{tag}", "max_pool2d_backward",
                     pool_args(3, 2, "same", backward=True, shape=shape))]
    return out


def _head_cases(s: Sizes, n: int) -> list[Case]:
    g = (n, s.hw(GAP[0]), s.hw(GAP[0]), s.ch(GAP[1]))
    cin, k = s.ch(DENSE[0]), (7 if s.sim else DENSE[1])

    def labels(rng):
        return rng.integers(0, k, n).astype(np.int64)

    return [
        Case(f"global_avg_pool2d/{'x'.join(map(str, g[1:]))}", "global_avg_pool2d",
             lambda rng, dt: (_normal(rng, g, dt),)),
        Case(f"global_avg_pool2d_backward/{'x'.join(map(str, g[1:]))}", "global_avg_pool2d_backward",
             lambda rng, dt: (_normal(rng, (n, g[3]), dt), _normal(rng, g, dt))),
        Case(f"dense/{cin}->{k}", "dense",
             lambda rng, dt: (_normal(rng, (n, cin), dt), _normal(rng, (cin, k), dt), _normal(rng, k, dt))),
        Case(f"dense_backward/{cin}->{k}", "dense_backward",
             lambda rng, dt: (_normal(rng, (n, k), dt), _normal(rng, (n, cin), dt), _normal(rng, (cin, k), dt),
                              True)),
        Case(f"dropout/{n}x{cin}", "dropout", lambda rng, dt: (_normal(rng, (n, cin), dt), 0.5, 12345),
             exact=True),
        Case(f"dropout_backward/{n}x{cin}", "dropout_backward",
             lambda rng, dt: (_normal(rng, (n, cin), dt), 0.5, 12345), exact=True),
        Case(f"softmax_cross_entropy/{n}x{k}", "softmax_cross_entropy",
             lambda rng, dt: (_normal(rng, (n, k), dt), labels(rng), 0.1)),
        Case(f"softmax_cross_entropy_backward/{n}x{k}", "softmax_cross_entropy_backward",
             lambda rng, dt: (1.0, _normal(rng, (n, k), dt), labels(rng), 0.1)),
    ]


def _optimizer_cases(s: Sizes) -> list[Case]:
    out = []
    for p in [700] if s.sim else PARAM_SIZES:
        def two(rng, dt, p=p):
            return _normal(rng, p, dt), _normal(rng, p, dt)

        def positive(rng, dt, p=p):
            return (rng.random(p) + 0.1).astype(dt)

        out += [
            Case(f"sgd_update/nesterov/{p}", "sgd_update",
                 lambda rng, dt, f=two, p=p: (*f(rng, dt), _normal(rng, p, dt), 0.045, 0.9, True, 1e-5),
                 in_place=True),
            Case(f"rmsprop_update/{p}", "rmsprop_update",
                 lambda rng, dt, f=two, q=positive, p=p: (*f(rng, dt), q(rng, dt), _normal(rng, p, dt), 1e-3,
                                                           0.9, 0.9, 1e-7, 1e-5), in_place=True),
            Case(f"adam_update/decoupled/{p}", "adam_update",
                 lambda rng, dt, f=two, q=positive, p=p: (*f(rng, dt), _normal(rng, p, dt), q(rng, dt), 1e-3,
                                                           0.9, 0.999, 1e-7, 1e-2, True, 5), in_place=True),
            Case(f"ema_update/{p}", "ema_update", lambda rng, dt, f=two: (*f(rng, dt), 0.999), in_place=True),
            Case(f"moving_average_update/{p}", "moving_average_update",
                 lambda rng, dt, f=two: (*f(rng, dt), 0.99)),
            Case(f"scale_/{p}", "scale_", lambda rng, dt, p=p: (_normal(rng, p, dt), 0.5), in_place=True),
            Case(f"sum_squares/{p}", "sum_squares", lambda rng, dt, p=p: (_normal(rng, p, dt),)),
        ]
    return out


def xception_cases(batch: int, sim: bool) -> list[Case]:
    """Every backend function at every distinct layer shape of Xception (299x299, `batch` images)."""
    s = Sizes(sim)
    cases = [*_conv_cases(s, batch), *_depthwise_cases(s, batch), *_pointwise_cases(s, batch),
             *_batch_norm_cases(s, batch), *_elementwise_cases(s, batch), *_pool_cases(s, batch),
             *_head_cases(s, batch), *_optimizer_cases(s)]
    cases.append(Case("add_backward", "add_backward", lambda rng, dt: (_normal(rng, (batch, 8), dt),), exact=True))
    return cases


def selected_cases(run, batch: int) -> list[Case]:
    """xception_cases for this run, only those whose name matches the --ops pattern if one is given."""
    pattern = run.options.get("ops_pattern")
    return [c for c in xception_cases(batch, run.sim) if not pattern or re.search(pattern, c.name)]
