"""Runs under `mpiexec -n N python tests/mpi_driver.py MODE OUT` for tests/test_distributed.py.

train:  a float64 Trainer run of `tiny` with sync-BN (N = 1 is one plain process), checkpoint in OUT,
        and OUT/hosts.json: the number of ranks and how many share rank 0's host (memory).
raise:  the same run, where rank 1 raises at its third training forward (rank 0 carries on).
slow:   the same run for 3 steps with comm_timeout argv[5] s, where rank 1 sleeps argv[4] s at its
        training forward number argv[3] (0: in the first step, whose deadline is longer).
stream: 2-step float64 training of `tiny` on the streamed shards argv[3] (one unreadable image,
        skipped), after writing OUT/batches_rank{r}.npz (epoch 0 of the rank's loader) and
        OUT/reads_rank{r}.json (how many images that rank read for it).
layers: one training step of a small conv + sync-BN + pool + dense network on `backend` (argv[3],
        e.g. cuda in Numba's simulator) through the gradient buckets with reduction argv[4]
        (default ring); writes OUT/grads.npz (rank 0), and OUT/grads_rank{r}.npz with the bytes each
        rank sent and the gradients' size.
"""

from __future__ import annotations

import contextlib
import sys

from npxception import Xception, XceptionConfig, distributed
from npxception.data import make_shapes
from npxception.train import TrainConfig, Trainer

CONFIG = TrainConfig(epochs=2, batch_size=16, optimizer="nesterov", lr=0.05, schedule="cosine", warmup_epochs=0.5,
                     ema_decay=0.9, clip_norm=5.0, seed=3, eval_batch_size=12)


class _SleepAt:
    """Wraps a model; sleeps `seconds` at training forward number `at` (a rank stuck in a kernel)."""

    def __init__(self, model, at, seconds):
        self.__dict__.update(_model=model, _at=at, _seconds=seconds, _calls=0)

    def __getattr__(self, name):
        return getattr(self._model, name)

    def forward(self, x, training):
        if training:
            if self._calls == self._at:
                import time

                time.sleep(self._seconds)
            self.__dict__["_calls"] += 1
        return self._model.forward(x, training)


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


def layers_step(out: str, backend: str, reduction: str = "ring") -> None:
    """Device arrays through sync-BN and the host-buffer buckets, against the numpy backend."""
    from pathlib import Path
    from types import SimpleNamespace

    import numpy as np

    from npxception import nn
    from npxception.distributed.buckets import GradientBuckets
    from npxception.distributed.data_parallel import shard_bounds
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
        rows = slice(*shard_bounds(len(x), dist.size, dist.rank))
    network.forward(be.to_device(x[rows]), True)
    d = be.to_device(np.ascontiguousarray(dy[rows]))
    if dist is None:
        network.backward(d)
    else:
        for block in reversed(network.layers):
            d = block.backward(d)
            buckets.ready(block)
        buckets.finish()
    Path(out).mkdir(parents=True, exist_ok=True)
    grads = {f"{leaf.name}/{k}": be.to_numpy(g) for leaf in network.leaves() for k, g in leaf.grads.items()}
    if dist is None or dist.is_root:
        np.savez(Path(out) / "grads.npz", **grads, buckets=len(buckets.buckets) if dist is not None else 0)
    if dist is not None:
        np.savez(Path(out) / f"grads_rank{dist.rank}.npz", **grads, sent=dist.comm.traffic["gradients"]["sent"],
                 gradient_bytes=sum(b.nbytes for b in buckets.buckets), buckets=len(buckets.buckets))


def stream_run(out: str, shards: str) -> None:
    """Each rank's streamed batches and reads, then a short float64 run that skips a bad image."""
    import json
    from pathlib import Path

    import numpy as np

    from npxception.data import make_loader
    from npxception.data.streaming import StreamingDataset, shard_index
    from npxception.data.streaming.index import Reader

    dist = distributed.init(sync_bn=True, bucket_mb=0.05)
    rank = 0 if dist is None else dist.rank
    data = StreamingDataset(shard_index(shards, cache=False), 16, skip_bad=True, workers=0)
    reads = []
    read = Reader.read
    Reader.read = lambda self, i: reads.append(int(i)) or read(self, i)
    options = {"shuffle": True, "augment": True, "seed": 3, "dtype": "float64"}
    loader = make_loader(data, 8, **options) if dist is None else dist.loader(data, 8, **options)
    batches = list(loader.epoch(0))
    Reader.read = read
    Path(out).mkdir(parents=True, exist_ok=True)
    np.savez(Path(out) / f"batches_rank{rank}.npz", **{f"x{b}": x for b, (x, _) in enumerate(batches)},
             **{f"y{b}": y for b, (_, y) in enumerate(batches)})
    (Path(out) / f"reads_rank{rank}.json").write_text(json.dumps(reads))
    model = Xception(XceptionConfig.tiny(num_classes=3, input_shape=(16, 16, 3), bn_momentum=0.9, dropout=0.3),
                     backend="numpy", seed=3, dtype="float64")
    config = TrainConfig(epochs=1, batch_size=8, optimizer="nesterov", lr=0.05, seed=3, eval_batch_size=6)
    trainer = Trainer(model, data, data.subset(np.arange(12)), config, Path(out) / "run", quiet=True,
                      distributed=dist)
    with dist.guard() if dist is not None else contextlib.nullcontext():
        trainer.fit(max_steps=2)


def main(mode: str, out: str, *rest: str) -> None:
    if mode == "layers":
        layers_step(out, *rest)
        return
    if mode == "stream":
        stream_run(out, *rest)
        return
    timeout = float(rest[2]) if mode == "slow" else 300.0
    dist = distributed.init(sync_bn=True, bucket_mb=0.05, comm_timeout=timeout)
    model = Xception(XceptionConfig.tiny(num_classes=10, bn_momentum=0.9, dropout=0.3), backend="numpy", seed=3,
                     dtype="float64")
    if mode == "raise" and dist is not None and dist.rank == 1:
        model = _RaiseAt(model, 2)
    if mode == "slow" and dist is not None and dist.rank == 1:
        model = _SleepAt(model, int(rest[0]), float(rest[1]))
    # 60 images in batches of 16: the last batch (12 rows) is split too.
    trainer = Trainer(model, make_shapes(60, 16, seed=0), make_shapes(30, 16, seed=1), CONFIG, out, quiet=True,
                      distributed=dist)
    with dist.guard() if dist is not None else contextlib.nullcontext():
        trainer.fit(max_steps=3 if mode == "slow" else None)
    if mode == "train" and (dist is None or dist.is_root):
        import json
        from pathlib import Path

        ranks, local = (1, 1) if dist is None else (dist.size, dist.comm.local_size)
        (Path(out) / "hosts.json").write_text(json.dumps({"ranks": ranks, "ranks_on_rank_0s_host": local}))


if __name__ == "__main__":
    main(*sys.argv[1:])
