"""Runs under `mpiexec -n N python tests/mpi_driver.py MODE OUT` for tests/test_distributed.py.

train:  a float64 Trainer run of `tiny` with sync-BN (N = 1 is one plain process), checkpoint in OUT.
raise:  the same run, where rank 1 raises at its third training forward (rank 0 carries on).
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


def main(mode: str, out: str) -> None:
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
    main(*sys.argv[1:3])
