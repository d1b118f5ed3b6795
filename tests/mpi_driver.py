"""Runs under `mpiexec -n N python tests/mpi_driver.py MODE OUT` for tests/test_distributed.py.

train:  a float64 Trainer run of `tiny` with sync-BN (N = 1 is one plain process), checkpoint in OUT.
raise:  the same run, where rank 1 raises at its third training forward (rank 0 carries on).
layers: one training step of a small conv + sync-BN + pool + dense network on `backend` (argv[3],
        e.g. cuda in Numba's simulator) through the gradient buckets with reduction argv[4]
        (default ordered); writes OUT/grads.npz.
"""

from __future__ import annotations

import contextlib
import sys

from npxception import Xception, XceptionConfig, distributed
from npxception.data import make_shapes
from npxception.train import TrainConfig, Trainer

CONFIG = TrainConfig(epochs=2, batch_size=16, optimizer="nesterov", lr=0.05, schedule="cosine", warmup_epochs=0.5,
                     ema_decay=0.9, clip_norm=5.0, seed=3, eval_batch_size=12)


class _RaiseAt:
    """Wraps a model; raises RuntimeError at training forward number `at`."""

    def __init__(self, model, at):
        self.__dict__.update(_model=model, _at=at, _calls=0)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def forward(self, x, training):
        if training:
            if self._calls == self._at:
                raise RuntimeError("injected failure in the forward pass")
            self.__dict__["_calls"] += 1
        return self._model.forward(x, training)


def layers_step(out: str, backend: str, reduction: str = "ordered") -> None:
    """Device arrays through sync-BN and the host-buffer buckets, against the numpy backend."""
    from pathlib import Path
    from types import SimpleNamespace

    import numpy as np

    from npxception import nn
    from npxception.distributed.buckets import GradientBuckets
    from npxception.distributed.sync_bn import SyncBatchNorm

    dist = distributed.init(sync_bn=True, bucket_mb=1e-4)
    rng = np.random.default_rng(0)
    common = {"backend": backend, "dtype": "float64"}
    blocks = [nn.Sequential("b1", [nn.Conv2D("conv", 2, 3, 3, padding="same", rng=rng, **common),
                                   nn.BatchNorm("bn", 3, **common), nn.ReLU("relu", **common)], **common),
              nn.Sequential("top", [nn.GlobalAvgPool2D("pool", **common),
                                    nn.Dense("dense", 3, 4, rng=rng, **common)], **common)]
    network = nn.Sequential("net", blocks, **common)
    be = network.backend
    model = SimpleNamespace(network=network, backend=be, dtype=np.float64, leaves=lambda: list(network.leaves()))
    x = rng.standard_normal((6, 4, 4, 2))
    dy = rng.standard_normal((6, 4))
    rows = slice(None)
    if dist is not None:
        SyncBatchNorm(dist.comm).attach(model)
        buckets = GradientBuckets(dist.comm, model, bucket_mb=1e-4, reduction=reduction)
        rows = slice(3 * dist.rank, 3 * dist.rank + 3)
    network.forward(be.to_device(x[rows]), True)
    d = be.to_device(np.ascontiguousarray(dy[rows]))
    if dist is None:
        network.backward(d)
    else:
        for block in reversed(network.layers):
            d = block.backward(d)
            buckets.ready(block)
        buckets.finish()
    if dist is None or dist.is_root:
        Path(out).mkdir(parents=True, exist_ok=True)
        grads = {f"{leaf.name}/{k}": be.to_numpy(g) for leaf in network.leaves() for k, g in leaf.grads.items()}
        np.savez(Path(out) / "grads.npz", **grads, buckets=len(buckets.buckets) if dist is not None else 0)


def main(mode: str, out: str, *rest: str) -> None:
    if mode == "layers":
        layers_step(out, *rest)
        return
    dist = distributed.init(sync_bn=True, bucket_mb=0.05)
    model = Xception(XceptionConfig.tiny(num_classes=10, bn_momentum=0.9, dropout=0.3), backend="numpy", seed=3,
                     dtype="float64")
    if mode == "raise" and dist is not None and dist.rank == 1:
        model = _RaiseAt(model, 2)
    # 60 images in batches of 16: the last batch (12 rows) is split too.
    trainer = Trainer(model, make_shapes(60, 16, seed=0), make_shapes(30, 16, seed=1), CONFIG, out, quiet=True,
                      distributed=dist)
    with dist.guard() if dist is not None else contextlib.nullcontext():
        trainer.fit()


if __name__ == "__main__":
    main(*sys.argv[1:])
