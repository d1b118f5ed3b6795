"""Synchronised batch norm: every rank normalises with the statistics of the whole global batch.

A BatchNorm layer whose `sync` attribute holds a SyncBatchNorm takes its training statistics from
`SyncBatchNorm.statistics` (the replaceable statistics step of `compose.batch_norm_train`) and hands
its training backward to `SyncBatchNorm.backward`. The per-channel sums are made global here, in
rank order (comm.py), so N ranks compute the function one process computes on the whole batch (up
to float rounding).

Forward: each rank's batch statistics (count n_r, mean m_r, biased variance v_r, from the
backend's own batch-norm kernel) are gathered and combined exactly as one pass over all rows
would give them (the pairwise formula of Chan et al.):
    M = sum n_r,   mean = sum n_r m_r / M,   var = sum n_r (v_r + (m_r - mean)^2) / M
then `compose.batch_norm_train` normalises with (mean, var) by the backend's apply step
(its inference kernel) and moves the moving statistics toward them.

Backward: with xhat = (x - mean) / s, s = sqrt(var + eps), the training gradient is
    dx = gamma / s * (dy - sum(dy) / M - xhat * sum(dy * xhat) / M)
where the sums run over the global batch. The backend's inference-mode backward gives the local
sums (dbeta_r = sum dy, dgamma_r = sum dy * xhat) and gamma / s * dy; the global sums are the
rank-order sums of those, and the remaining term is a per-channel affine function of x,
    -gamma / s * (a + b * xhat),  a = sum(dy) / M,  b = sum(dy * xhat) / M,
which the backend's inference forward computes as batch_norm_infer(x, -gamma b / s, -gamma a / s,
mean, var, eps). dgamma and dbeta stay local: the gradient buckets sum them over the ranks with
every other gradient.
"""

from __future__ import annotations

import numpy as np

from .comm import Communicator


def combine_statistics(counts: np.ndarray, means: np.ndarray, variances: np.ndarray):
    """(N,), (N, C), (N, C) per-rank counts, means and biased variances -> global (M, mean, var), float64."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    mean = (counts[:, None] * means).sum(axis=0) / total
    var = (counts[:, None] * (variances + (means - mean) ** 2)).sum(axis=0) / total
    return total, mean, var


class SyncBatchNorm:
    """Turns the local batch-norm sums of a training step into global ones over `comm`."""

    def __init__(self, comm: Communicator):
        self.comm = comm
        self._counts: dict[int, float] = {}

    def attach(self, model) -> int:
        """Make every BatchNorm of `model` synchronised; returns how many there are."""
        from ..nn import BatchNorm

        layers = [leaf for leaf in model.leaves() if isinstance(leaf, BatchNorm)]
        for layer in layers:
            layer.sync = self
        return len(layers)

    def statistics(self, layer, be, x):
        """(mean, var) of the global batch: the statistics step of `compose.batch_norm_train`."""
        p = layer.params
        n = x.shape[0] * x.shape[1] * x.shape[2]
        _, mean, var = be.batch_norm_train(x, p["gamma"], p["beta"], layer.epsilon)
        c = layer.channels
        local = np.concatenate([[n], be.to_numpy(mean).astype(np.float64), be.to_numpy(var).astype(np.float64)])
        rows = self.comm.gather_rows(local, "the batch-norm statistics")
        total, g_mean, g_var = combine_statistics(rows[:, 0], rows[:, 1:1 + c], rows[:, 1 + c:])
        self._counts[id(layer)] = total
        mean = be.to_device(g_mean.astype(layer.dtype))
        var = be.to_device(g_var.astype(layer.dtype))
        return mean, var

    def backward(self, layer, dy, x, mean, var):
        """(dx, dgamma, dbeta) of a training backward; dgamma and dbeta are this rank's share."""
        be, eps = layer.backend, layer.epsilon
        gamma = layer.params["gamma"]
        dx_fixed, dgamma, dbeta = be.batch_norm_backward(dy, x, gamma, mean, var, eps, False)
        c = layer.channels
        local = np.concatenate([be.to_numpy(dgamma).astype(np.float64), be.to_numpy(dbeta).astype(np.float64)])
        sums = self.comm.sum(local, "the batch-norm gradient sums")
        total = self._counts.pop(id(layer))
        b, a = sums[:c] / total, sums[c:] / total
        scale = be.to_numpy(gamma).astype(np.float64) / np.sqrt(be.to_numpy(var).astype(np.float64) + eps)
        gamma_c = be.to_device((-scale * b).astype(layer.dtype))
        beta_c = be.to_device((-scale * a).astype(layer.dtype))
        correction = be.batch_norm_infer(x, gamma_c, beta_c, mean, var, eps)
        return be.add(dx_fixed, correction), dgamma, dbeta
