"""The cpu backend's dispatch table: the one place that picks a tuned kernel over a plain one.

Every pass below has a plain kernel (`PLAIN`, in ../cpu/<op>.py, the version to read beside
reference/<op>.py). `TABLE` lists the tuned kernels (tuned/): the pass each implements, the
condition under which it runs (tried in table order; the first that holds runs, and if none does
the plain kernel runs), the benchmark that justifies it, and whether it gives the plain kernel's
bits exactly or its sums to rounding. tests/test_dispatch.py runs every row against its plain twin.

`passes(plain)` builds the functions the backend exports: with plain=True (the environment
variable NPXCEPTION_PLAIN=1 when the backend is imported) the plain kernels alone, so the whole
network runs on them and `benchmarks/bench_model.py --variants ours,ours_plain` shows what the tuned
ones buy.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import conv, dense, depthwise, pointwise
from .tuned import conv as tuned_conv
from .tuned import conv_direct, norm_relu
from .tuned import dense as tuned_dense
from .tuned import depthwise as tuned_depthwise
from .tuned import pointwise as tuned_pointwise

# The passes, each with its plain kernel. Signatures: forward (x, w, ...), input gradient
# (dy, w, x_shape, ...), filter gradient (dy, x, w, ...), w read for its shape only.
PLAIN: dict[str, Callable] = {
    "depthwise_conv2d": depthwise.depthwise_conv2d,
    "depthwise_input_grad": depthwise.depthwise_input_grad,
    "depthwise_filter_grad": depthwise.depthwise_filter_grad,
    "pointwise_conv2d": pointwise.pointwise_conv2d,
    "pointwise_input_grad": pointwise.pointwise_input_grad,
    "pointwise_filter_grad": pointwise.pointwise_filter_grad,
    "conv2d": conv.conv2d,
    "conv2d_input_grad": conv.conv2d_input_grad,
    "conv2d_filter_grad": conv.conv2d_filter_grad,
    "dense": dense.dense,
    "dense_backward": dense.dense_backward,
}
FUSED_BN_RELU = ("batch_norm_relu_train", "batch_norm_relu_infer", "batch_norm_relu_backward")

# Direct convolution thresholds (benchmarks/bench_ops.py, stem cases; docs/performance.md).
DIRECT_FORWARD_MAX_COUT = 8
DIRECT_INPUT_GRAD_MAX_CIN = 4
DIRECT_FILTER_GRAD_MAX_CIN = 4
DIRECT_FILTER_GRAD_MAX_COUT = 8


@dataclass(frozen=True)
class Tuned:
    op: str                      # the pass it replaces (a key of PLAIN, or a fused op)
    kernel: Callable             # same signature as the pass
    when: Callable[..., bool]    # called with the pass's arguments
    condition: str               # `when` in words
    benchmark: str               # what measures it, in benchmarks/
    bitwise: bool                # the plain kernel's bits exactly (else its sums to rounding)


def always(*args) -> bool:
    return True


def _finite(w) -> bool:
    return bool(np.isfinite(w).all())


def _larger_than_1x1(w) -> bool:
    return w.shape[0] * w.shape[1] > 1


def _direct_forward(x, w, stride, padding, dilation) -> bool:
    return _larger_than_1x1(w) and w.shape[3] <= DIRECT_FORWARD_MAX_COUT


def _direct_input_grad(dy, w, x_shape, stride, padding, dilation) -> bool:
    # The flipped form adds 0 * w where no output used a tap: equal unless w holds Inf or NaN.
    return (tuple(stride) == (1, 1) and _larger_than_1x1(w) and w.shape[2] <= DIRECT_INPUT_GRAD_MAX_CIN
            and _finite(w))


def _direct_filter_grad(dy, x, w, stride, padding, dilation) -> bool:
    return (_larger_than_1x1(w) and w.shape[2] <= DIRECT_FILTER_GRAD_MAX_CIN
            and w.shape[3] <= DIRECT_FILTER_GRAD_MAX_COUT)


def _blocked_forward(x, w, stride, padding, dilation) -> bool:
    return tuned_conv.blockable(x, w.shape, stride, padding)


def _flipped_input_grad(dy, w, x_shape, stride, padding, dilation) -> bool:
    return (tuple(stride) == (1, 1) and _larger_than_1x1(w) and _finite(w)
            and tuned_conv.blockable(dy, w.shape, (1, 1), padding))


def _blocked_filter_grad(dy, x, w, stride, padding, dilation) -> bool:
    return tuned_conv.blockable(x, w.shape, stride, padding) and dy.size > 0


OPS = "benchmarks/bench_ops.py"
STEP = "benchmarks/bench_model.py"

TABLE: tuple[Tuned, ...] = (
    Tuned("depthwise_conv2d", tuned_depthwise.depthwise_conv2d, always,
          "any shape (3x3 rows unrolled)", f"{OPS}: depthwise forward", bitwise=True),
    Tuned("depthwise_input_grad", tuned_depthwise.depthwise_input_grad, always,
          "any shape (3x3, stride 1, M = 1 rows unrolled)", f"{OPS}: depthwise input grad", bitwise=True),
    Tuned("depthwise_filter_grad", tuned_depthwise.depthwise_filter_grad, always,
          "any shape", f"{OPS}: depthwise filter grad", bitwise=False),
    Tuned("pointwise_conv2d", tuned_pointwise.pointwise_conv2d, always,
          "any shape", f"{OPS}: pointwise forward", bitwise=False),
    Tuned("pointwise_input_grad", tuned_pointwise.pointwise_input_grad, always,
          "any shape", f"{OPS}: pointwise input grad", bitwise=False),
    Tuned("pointwise_filter_grad", tuned_pointwise.pointwise_filter_grad, always,
          "any shape", f"{OPS}: pointwise filter grad", bitwise=False),
    Tuned("conv2d", conv_direct.conv2d, _direct_forward,
          f"kernel larger than 1x1, Cout <= {DIRECT_FORWARD_MAX_COUT}", f"{OPS}: stem forward", bitwise=False),
    Tuned("conv2d", tuned_conv.conv2d, _blocked_forward,
          "OpenBLAS callable, float, non-empty, cols not x itself", f"{OPS}: stem forward", bitwise=False),
    Tuned("conv2d", tuned_conv.conv2d_tasks, always,
          "otherwise", f"{OPS}: stem forward", bitwise=False),
    Tuned("conv2d_input_grad", conv_direct.conv2d_input_grad, _direct_input_grad,
          f"stride 1, kernel larger than 1x1, Cin <= {DIRECT_INPUT_GRAD_MAX_CIN}, finite w",
          f"{OPS}: stem input grad", bitwise=False),
    Tuned("conv2d_input_grad", tuned_conv.conv2d_input_grad_flipped, _flipped_input_grad,
          "stride 1, kernel larger than 1x1, finite w, blockable", f"{OPS}: stem input grad", bitwise=False),
    Tuned("conv2d_input_grad", tuned_conv.conv2d_input_grad_tasks, always,
          "otherwise", f"{OPS}: stem input grad", bitwise=False),
    Tuned("conv2d_filter_grad", conv_direct.conv2d_filter_grad, _direct_filter_grad,
          f"kernel larger than 1x1, Cin <= {DIRECT_FILTER_GRAD_MAX_CIN}, Cout <= {DIRECT_FILTER_GRAD_MAX_COUT}",
          f"{OPS}: stem filter grad", bitwise=False),
    Tuned("conv2d_filter_grad", tuned_conv.conv2d_filter_grad, _blocked_filter_grad,
          "blockable, dy non-empty", f"{OPS}: stem filter grad", bitwise=False),
    Tuned("conv2d_filter_grad", tuned_conv.conv2d_filter_grad_tasks, always,
          "otherwise", f"{OPS}: stem filter grad", bitwise=False),
    Tuned("dense", tuned_dense.dense, always, "any shape", f"{STEP}: the step against ours_plain", bitwise=False),
    Tuned("dense_backward", tuned_dense.dense_backward, always,
          "any shape", f"{STEP}: the step against ours_plain", bitwise=False),
    Tuned("batch_norm_relu_train", norm_relu.batch_norm_relu_train, always,
          "any shape", f"{STEP}: the step, fused against ours_plain", bitwise=True),
    Tuned("batch_norm_relu_infer", norm_relu.batch_norm_relu_infer, always,
          "any shape", f"{STEP}: the step, fused against ours_plain", bitwise=True),
    Tuned("batch_norm_relu_backward", norm_relu.batch_norm_relu_backward, always,
          "any shape", f"{STEP}: the step, fused against ours_plain", bitwise=False),
)


def rows(op: str) -> list[Tuned]:
    """The table's rows for one pass, in the order they are tried."""
    return [row for row in TABLE if row.op == op]


def chosen(op: str, *args) -> Tuned | None:
    """The row that runs for these arguments, or None when the plain kernel does."""
    return next((row for row in rows(op) if row.when(*args)), None)


def passes(plain: bool) -> dict[str, Callable]:
    """pass name -> the function the backend runs; plain: the plain kernels alone (no fused ops:
    the backend binds their compositions instead)."""
    if plain:
        return dict(PLAIN)
    return {op: _dispatcher(op, PLAIN.get(op)) for op in dict.fromkeys([*PLAIN, *(r.op for r in TABLE)])}


def _dispatcher(op: str, fallback: Callable | None) -> Callable:
    table = rows(op)
    if table and table[0].when is always:  # nothing to decide per call
        return table[0].kernel

    def run(*args):
        for row in table:
            if row.when(*args):
                return row.kernel(*args)
        return fallback(*args)

    run.__name__ = run.__qualname__ = op
    run.__signature__ = inspect.signature(fallback or table[0].kernel)
    run.__doc__ = f"{op}: the first row of dispatch.TABLE whose condition holds, else the plain kernel."
    return run
