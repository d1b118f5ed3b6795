"""The backend contract as code: every function a backend provides, its arguments and its results.

`Backend` is the source of truth (README.md in this folder explains it in prose). The three backends,
`reference` (NumPy), `cpu` (Numba) and `cuda` (Numba CUDA), are modules that implement it; their
`__all__` lists come from `exports()` below, and `tests/test_architecture.py` checks every backend's
names and parameter lists against these classes.

What every function can rely on (the callers, `npxception.ops`, `npxception.nn` and the trainer,
validate first): arrays are C-contiguous, of one float dtype (float32 or float64), of the backend's
own kind (NumPy arrays, or Numba device arrays on cuda), and are never modified; `stride`,
`dilation` and `pool_size` are pairs (h, w) of ints >= 1; `padding` is four ints (top, bottom,
left, right), already resolved (`npxception.shapes.resolve_padding`); scalars are Python numbers.
Results are new arrays of the input's dtype, except the optimizer updates (`*_update`, `scale_`),
which update their first arguments in place and return nothing.

Shapes use N batch, H x W spatial size, C channels, M depth multiplier, K classes; outputs of a
window op have Ho = (H + top + bottom - dilation_h * (kh - 1) - 1) // stride_h + 1 (likewise Wo).

`FusedOps` lists optional functions: a backend may provide any of them; each one's definition is the
composition of plain functions given in its docstring (and written out in `npxception.compose`).
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

from ..shapes import Padding4, Pair

Array = Any  # a NumPy array (reference, cpu) or a Numba device array (cuda)


class Backend(Protocol):
    name: str  # "numpy", "cpu" or "cuda"

    # ------------------------------------------------------------------ convolutions
    def conv2d(self, x: Array, w: Array, stride: Pair, padding: Padding4, dilation: Pair) -> Array:
        """Inputs: - x: (N, H, W, Cin)  - w: (kh, kw, Cin, Cout). Returns y: (N, Ho, Wo, Cout).

        A padded tap multiplies 0 by its weight (as an explicitly zero-padded x does), so an Inf
        weight gives NaN at the border on every backend.
        """

    def conv2d_backward(self, dy: Array, x: Array, w: Array, stride: Pair, padding: Padding4,
                        dilation: Pair) -> tuple[Array, Array]:
        """Inputs: - dy: (N, Ho, Wo, Cout)  - x, w: as conv2d. Returns (dx: x's shape, dw: w's shape)."""

    def depthwise_conv2d(self, x: Array, w: Array, stride: Pair, padding: Padding4,
                         dilation: Pair) -> Array:
        """Inputs: - x: (N, H, W, C)  - w: (kh, kw, C, M). Returns y: (N, Ho, Wo, C*M).

        Output channel c*M + m is channel c filtered by w[:, :, c, m]. Padded taps add 0 * w.
        """

    def depthwise_conv2d_backward(self, dy: Array, x: Array, w: Array, stride: Pair,
                                  padding: Padding4, dilation: Pair) -> tuple[Array, Array]:
        """Inputs: - dy: (N, Ho, Wo, C*M)  - x, w: as depthwise_conv2d.

        Returns (dx: (N, H, W, C), dw: (kh, kw, C, M)); padded taps add 0 * dy to dw.
        """

    def pointwise_conv2d(self, x: Array, w: Array) -> Array:
        """Inputs: - x: (N, H, W, Cin)  - w: (1, 1, Cin, Cout). Returns y: (N, H, W, Cout)."""

    def pointwise_conv2d_backward(self, dy: Array, x: Array, w: Array) -> tuple[Array, Array]:
        """Inputs: - dy: (N, H, W, Cout)  - x, w: as pointwise_conv2d. Returns (dx, dw)."""

    # ------------------------------------------------------------------ batch norm
    def batch_norm_train(self, x: Array, gamma: Array, beta: Array,
                         epsilon: float) -> tuple[Array, Array, Array]:
        """Inputs: - x: (N, H, W, C)  - gamma, beta: (C,)  - epsilon: > 0.

        Returns (y: (N, H, W, C), batch_mean: (C,), batch_var: (C,)), the statistics over N, H, W
        with the biased variance; y = gamma * (x - mean) / sqrt(var + epsilon) + beta.
        """

    def batch_norm_infer(self, x: Array, gamma: Array, beta: Array, mean: Array, var: Array,
                         epsilon: float) -> Array:
        """Inputs: - x: (N, H, W, C)  - gamma, beta, mean, var: (C,). Returns y: (N, H, W, C).

        Also the "apply" half of batch_norm_train when the statistics come from elsewhere.
        """

    def batch_norm_backward(self, dy: Array, x: Array, gamma: Array, mean: Array, var: Array,
                            epsilon: float, training: bool) -> tuple[Array, Array, Array]:
        """Inputs: - dy, x: (N, H, W, C)  - gamma, mean, var: (C,)  - training: bool.

        With training=True, mean and var are x's batch statistics and dx includes their
        dependence on x; otherwise they are constants. Returns (dx, dgamma: (C,), dbeta: (C,)).
        """

    def moving_average_update(self, moving: Array, batch: Array, momentum: float) -> Array:
        """Inputs: - moving, batch: (C,). Returns moving * momentum + batch * (1 - momentum)."""

    # ------------------------------------------------------------------ activations, pooling
    def relu(self, x: Array) -> Array:
        """Inputs: - x: any shape. Returns max(x, 0)."""

    def relu_backward(self, dy: Array, x: Array) -> Array:
        """Inputs: - dy, x: one shape. Returns dx = dy where x > 0, else 0."""

    def elu(self, x: Array, alpha: float) -> Array:
        """Inputs: - x: any shape  - alpha: > 0. Returns x if x > 0 else alpha * (exp(x) - 1)."""

    def elu_backward(self, dy: Array, x: Array, alpha: float) -> Array:
        """Inputs: - dy, x: one shape. Returns dx = dy if x > 0 else dy * alpha * exp(x)."""

    def max_pool2d(self, x: Array, pool_size: Pair, stride: Pair, padding: Padding4) -> Array:
        """Inputs: - x: (N, H, W, C). Returns y: (N, Ho, Wo, C); padding counts as -inf."""

    def max_pool2d_backward(self, dy: Array, x: Array, pool_size: Pair, stride: Pair,
                            padding: Padding4) -> Array:
        """Inputs: - dy: (N, Ho, Wo, C)  - x: (N, H, W, C). Returns dx: each window's dy goes to its
        first maximum (row-major)."""

    def global_avg_pool2d(self, x: Array) -> Array:
        """Inputs: - x: (N, H, W, C). Returns y: (N, C), the mean over H and W."""

    def global_avg_pool2d_backward(self, dy: Array, x: Array) -> Array:
        """Inputs: - dy: (N, C)  - x: (N, H, W, C). Returns dx = dy / (H * W) broadcast over H, W."""

    # ------------------------------------------------------------------ dense, dropout, loss, add
    def dense(self, x: Array, w: Array, b: Array | None) -> Array:
        """Inputs: - x: (N, Cin)  - w: (Cin, Cout)  - b: (Cout,) or None. Returns y = x @ w + b."""

    def dense_backward(self, dy: Array, x: Array, w: Array,
                       has_bias: bool) -> tuple[Array, Array, Array | None]:
        """Inputs: - dy: (N, Cout)  - x, w: as dense. Returns (dx, dw, db); db is None without bias."""

    def dropout(self, x: Array, rate: float, seed: int) -> Array:
        """Inputs: - x: any shape  - rate: in [0, 1)  - seed: int. Returns x * keep / (1 - rate).

        keep is a counter-based hash of (seed, flat index) (reference/dropout.py), the same mask
        on every backend.
        """

    def dropout_backward(self, dy: Array, rate: float, seed: int) -> Array:
        """Inputs: - dy: any shape. Returns dx = dy through the forward's mask and scale."""

    def softmax_cross_entropy(self, logits: Array, labels: Array, label_smoothing: float) -> Array:
        """Inputs: - logits: (N, K)  - labels: (N,) int64 in [0, K)  - label_smoothing: in [0, 1].

        Returns the batch mean of the cross-entropy as a 0-d array.
        """

    def softmax_cross_entropy_backward(self, dloss: float, logits: Array, labels: Array,
                                       label_smoothing: float) -> Array:
        """Inputs: - dloss: float  - logits, labels: as the forward.

        Returns dlogits: (N, K) = dloss * (softmax(logits) - targets) / N.
        """

    def add(self, a: Array, b: Array) -> Array:
        """Inputs: - a, b: one shape. Returns a + b."""

    def add_backward(self, dy: Array) -> tuple[Array, Array]:
        """Inputs: - dy. Returns (dy, dy): the same array twice."""

    # ------------------------------------------------------------------ optimizer updates (in place)
    def sgd_update(self, p: Array, g: Array, velocity: Array, lr: float, momentum: float,
                   nesterov: bool, weight_decay: float) -> None:
        """Inputs: - p, g, velocity: one shape. Updates p and velocity in place (reference/optim.py)."""

    def rmsprop_update(self, p: Array, g: Array, mean_square: Array, mom: Array, lr: float,
                       rho: float, momentum: float, epsilon: float, weight_decay: float) -> None:
        """Inputs: - p, g, mean_square, mom: one shape. Updates p, mean_square and mom in place."""

    def adam_update(self, p: Array, g: Array, m: Array, v: Array, lr: float, beta1: float,
                    beta2: float, epsilon: float, weight_decay: float, decoupled: bool,
                    step: int) -> None:
        """Inputs: - p, g, m, v: one shape  - step: >= 1. Updates p, m and v in place (AdamW when
        decoupled)."""

    def ema_update(self, average: Array, p: Array, decay: float) -> None:
        """Inputs: - average, p: one shape. average = decay * average + (1 - decay) * p, in place."""

    def sum_squares(self, a: Array) -> float:
        """Inputs: - a: any shape. Returns sum(a**2) as a Python float."""

    def scale_(self, a: Array, s: float) -> None:
        """Inputs: - a: any shape. a *= s, in place."""

    # ------------------------------------------------------------------ arrays
    def to_device(self, a: Array) -> Array:
        """Inputs: - a: a NumPy array. Returns the backend's array (a itself on numpy and cpu)."""

    def to_numpy(self, a: Array) -> Any:
        """Inputs: - a: a backend array. Returns it as a NumPy array."""

    def zeros(self, shape: tuple, dtype: Any) -> Array:
        """Returns a backend array of zeros."""

    def synchronize(self) -> None:
        """Waits until every queued kernel has finished (a no-op on numpy and cpu)."""


class FusedOps(Protocol):
    """Optional functions: fused compositions, or the part of a function a caller needs. Each must
    equal the composition in its docstring (to rounding); callers fall back to that composition."""

    def conv2d_filter_grad(self, dy: Array, x: Array, w: Array, stride: Pair, padding: Padding4,
                           dilation: Pair) -> Array:
        """conv2d_backward(dy, x, w, stride, padding, dilation)[1]: dw alone, for the network's
        first layer, whose input (the images) needs no gradient. Only w's shape is read."""

    def max_pool2d_with_taps(self, x: Array, pool_size: Pair, stride: Pair,
                             padding: Padding4) -> tuple[Array, Array]:
        """(max_pool2d(x, pool_size, stride, padding), taps): taps (N, Ho, Wo, C), int8 (int32 for
        windows of over 127 cells), holds each output's row-major window index p * kw + q of its
        first maximum, the tap max_pool2d_backward sends its gradient to (tap 0 if no cell of
        the window exceeds -inf)."""

    def max_pool2d_backward_taps(self, dy: Array, taps: Array, x_shape: tuple, pool_size: Pair,
                                 stride: Pair, padding: Padding4) -> Array:
        """max_pool2d_backward(dy, x, pool_size, stride, padding), from the taps that
        max_pool2d_with_taps returned for x (of shape x_shape) instead of from x."""

    def batch_norm_relu_train(self, x: Array, gamma: Array, beta: Array,
                              epsilon: float) -> tuple[Array, Array, Array]:
        """relu of batch_norm_train's y, with its statistics: (relu(y), batch_mean, batch_var)."""

    def batch_norm_relu_infer(self, x: Array, gamma: Array, beta: Array, mean: Array, var: Array,
                              epsilon: float) -> Array:
        """relu(batch_norm_infer(x, gamma, beta, mean, var, epsilon))."""

    def batch_norm_relu_backward(self, dy: Array, x: Array, y: Array, gamma: Array, mean: Array,
                                 var: Array, epsilon: float, training: bool) -> tuple[Array, Array, Array]:
        """batch_norm_backward(relu_backward(dy, y), x, gamma, mean, var, epsilon, training), where
        y is the fused forward's output (y > 0 exactly where the batch-norm output is > 0)."""


def functions(protocol: type) -> dict[str, inspect.Signature]:
    """name -> signature (without self) of every function a protocol declares, in declaration order."""
    out = {}
    for key, value in vars(protocol).items():
        if inspect.isfunction(value) and not key.startswith("_"):
            sig = inspect.signature(value)
            out[key] = sig.replace(parameters=list(sig.parameters.values())[1:])
    return out


REQUIRED = tuple(functions(Backend))
FUSED = tuple(functions(FusedOps))


def exports(*fused: str) -> list[str]:
    """A backend's __all__: "name", every required function and the fused ones it provides."""
    unknown = [f for f in fused if f not in FUSED]
    if unknown:
        raise ValueError(f"not fused ops of the contract: {unknown}; known: {FUSED}")
    return ["name", *REQUIRED, *fused]
