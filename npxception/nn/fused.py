"""BatchNormReLU: a BatchNorm and the ReLU after it, run as the backend's one fused op.

Xception follows most batch norms with a ReLU (the stem, the first sepconv of every block, block 14).
Run as two layers, the pair makes two full passes over the activations forward (normalise, then
clamp) and two backward (mask, then the batch-norm gradient), and keeps two tensors of the
activation's size alive. The backend's fused ops (`contract.FusedOps`:
`batch_norm_relu_train/_infer/_backward`) clamp as y is written and mask as dy is read where the
backend has a fused kernel (the cpu backend's tuned/norm_relu.py), so the pair costs the passes of
batch norm alone; elsewhere they are their definitions, the compositions in backends/fused.py.

The pair is a Sequential of the two ordinary layers, so names, weights, the summary and checkpoints
are exactly those of the unfused network. With a synchronised batch norm (whose statistics span
processes) it simply runs its two layers.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .. import compose
from .activations import ReLU
from .batch_norm import BatchNorm
from .containers import Sequential
from .layer import Layer, check_input


class _Saved(NamedTuple):
    x: Any
    y: Any  # relu(batch_norm(x)): y > 0 is the ReLU's mask
    mean: Any
    var: Any
    training: bool


class BatchNormReLU(Sequential):
    def __init__(self, bn: BatchNorm, relu: ReLU):
        if not (isinstance(bn, BatchNorm) and isinstance(relu, ReLU)):
            raise TypeError(f"BatchNormReLU takes a BatchNorm and a ReLU, got {type(bn).__name__} and "
                            f"{type(relu).__name__}")
        super().__init__(f"{bn.name}+{relu.name}", [bn, relu], backend=bn.backend, dtype=bn.dtype)
        self.bn, self.relu = bn, relu
        self._fused_ran = False

    def _fused(self) -> bool:
        # A synchronised batch norm's statistics span processes: it runs as its two layers.
        return self.bn.sync is None

    def forward(self, x, training: bool):
        self._fused_ran = self._fused()
        if not self._fused_ran:
            return super().forward(x, training)
        bn, be = self.bn, self.backend
        check_input(bn, x, 4, bn.channels)
        p, st = bn.params, bn.state
        if training:
            y, mean, var = be.batch_norm_relu_train(x, p["gamma"], p["beta"], bn.epsilon)
            st["moving_mean"], st["moving_variance"] = compose.moving_statistics(
                be, st["moving_mean"], st["moving_variance"], mean, var, bn.momentum)
        else:
            mean, var = st["moving_mean"], st["moving_variance"]
            y = be.batch_norm_relu_infer(x, p["gamma"], p["beta"], mean, var, bn.epsilon)
        self._saved = _Saved(x, y, mean, var, bool(training))
        return y

    def backward(self, dy):
        if not self._fused_ran:
            return super().backward(dy)
        s, bn = self._saved_for_backward(), self.bn
        dx, bn.grads["gamma"], bn.grads["beta"] = self.backend.batch_norm_relu_backward(
            dy, s.x, s.y, bn.params["gamma"], s.mean, s.var, bn.epsilon, s.training)
        return dx

    def compute_layers(self):
        if self._fused():
            yield self
        else:
            yield from super().compute_layers()


def fuse_batch_norm_relu(layers: list[Layer]) -> list[Layer]:
    """`layers` with every BatchNorm directly followed by a ReLU replaced by one BatchNormReLU."""
    out: list[Layer] = []
    for layer in layers:
        if isinstance(layer, ReLU) and out and type(out[-1]) is BatchNorm:
            out[-1] = BatchNormReLU(out[-1], layer)
        else:
            out.append(layer)
    return out
