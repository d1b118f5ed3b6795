"""BatchNorm: Keras's BatchNormalization over N, H, W for each channel (axis -1).

x (N, H, W, C) -> y (N, H, W, C) = gamma * (x - mean) / sqrt(var + epsilon) + beta.
Trainable: gamma (ones), beta (zeros). Non-trainable state: moving_mean (zeros),
moving_variance (ones). Training normalises with the batch's mean and biased variance and moves
the state toward them, moving = moving * momentum + batch * (1 - momentum); inference normalises
with the state. Keras's defaults for Xception: epsilon 1e-3, momentum 0.99.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

from .. import compose
from .initializers import ones, zeros
from .layer import Layer, check_input


class _Saved(NamedTuple):
    x: Any
    mean: Any  # the batch's statistics in training, the moving ones in inference
    var: Any
    training: bool


class BatchNorm(Layer):
    def __init__(self, name: str, channels: int, *, epsilon: float = 1e-3, momentum: float = 0.99,
                 backend="auto", dtype="float32"):
        super().__init__(name, backend, dtype)
        self.channels, self.epsilon, self.momentum = channels, float(epsilon), float(momentum)
        self.params["gamma"] = self._new_weight(ones((channels,)))
        self.params["beta"] = self._new_weight(zeros((channels,)))
        self.state["moving_mean"] = self._new_weight(zeros((channels,)))
        self.state["moving_variance"] = self._new_weight(ones((channels,)))
        # Synchronised batch norm (npxception.distributed.SyncBatchNorm): when set, training
        # statistics and their gradient sums cover the global batch of every rank.
        self.sync = None

    def forward(self, x, training: bool):
        check_input(self, x, 4, self.channels)
        be, p, st = self.backend, self.params, self.state
        if training:
            statistics = None if self.sync is None else partial(self.sync.statistics, self)
            out = compose.batch_norm_train(be, x, p["gamma"], p["beta"], st["moving_mean"],
                                           st["moving_variance"], self.momentum, self.epsilon,
                                           statistics=statistics)
            y, mean, var = out.y, out.mean, out.var
            st["moving_mean"], st["moving_variance"] = out.moving_mean, out.moving_variance
        else:
            mean, var = st["moving_mean"], st["moving_variance"]
            y = compose.batch_norm_infer(be, x, p["gamma"], p["beta"], mean, var, self.epsilon)
        self._saved = _Saved(x, mean, var, bool(training))
        return y

    def backward(self, dy):
        s = self._saved_for_backward()
        if s.training and self.sync is not None:
            dx, self.grads["gamma"], self.grads["beta"] = self.sync.backward(self, dy, s.x, s.mean, s.var)
            return dx
        dx, self.grads["gamma"], self.grads["beta"] = compose.batch_norm_backward(
            self.backend, dy, s.x, self.params["gamma"], s.mean, s.var, self.epsilon, s.training)
        return dx
