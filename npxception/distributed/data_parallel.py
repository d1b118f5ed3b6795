"""Data-parallel training: what the Trainer asks of the job when it runs on several ranks.

The arithmetic is that of one process on the whole global batch:
  - rows: each rank's loader reads, decodes and augments only its contiguous rows of every global
    batch (rows.py; the order and augmentation are a pure function of (seed, epoch, batch or
    sample)), bitwise those rows of one process's batch. Before each step one exchange of two
    integers per rank (`begin_step`) tells every rank the global batch's row count (smaller than
    B when unreadable images were skipped), where its rows start, and whether any rank was asked
    to stop; the dropout layers are told where the rows start, so row r draws the mask it draws
    in one process;
  - loss: each rank's mean loss is weighted by its share of the rows (n_r / B), so the summed
    gradients are the gradient of the global mean loss;
  - gradients: summed in buckets that overlap backward (buckets.py);
  - batch norm: with sync_bn, statistics of the global batch (sync_bn.py); without, each rank's
    own rows (as DDP does by default) and rank 0's moving statistics, broadcast before evaluation;
  - evaluation: each rank evaluates a contiguous shard of the validation set; the sums are reduced.
Only rank 0 writes (checkpoint, metrics.jsonl, plots) or shows a progress bar.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Iterator

import numpy as np

from ..data.loader import batch_share as shard_bounds  # [start, stop) of a rank's rows of a batch
from .agreement import entries, plan_differences, set_up_failures
from .buckets import GradientBuckets
from .comm import Communicator, RanksMissing
from .rows import share_loader
from .sync_bn import SyncBatchNorm

__all__ = ["AgreedError", "DataParallel", "shard_bounds"]


def _layout(model) -> str:
    """A digest of the model's weight names, shapes and types: its buckets and batch norms."""
    layout = [(key, value.shape, str(value.dtype)) for key, value in sorted(model.state_dict().items())]
    return hashlib.sha256(json.dumps(layout).encode()).hexdigest()[:16]


class AgreedError(ValueError):
    """An error every rank raises at the same point, from the same inputs or from values all ranks
    gathered (agreement.py). No rank waits in a collective, so the job ends without MPI_Abort: rank 0
    prints the one-line error and every rank exits with status 1, as one process does on an error."""


class DataParallel:
    """One rank's part in a data-parallel run over `comm`."""

    def __init__(self, comm: Communicator, *, sync_bn: bool = False, bucket_mb: float = 4.0,
                 reduction: str = "ring"):
        self.comm, self.sync_bn = comm, bool(sync_bn)
        self.bucket_mb, self.reduction = float(bucket_mb), reduction
        self.rank, self.size, self.is_root = comm.rank, comm.size, comm.is_root
        self.buckets: GradientBuckets | None = None
        self.loss_weight, self.global_rows = 1.0, 0
        self.step_times: collections.deque[dict] = collections.deque(maxlen=256)  # the latest steps' timings
        self._dropouts: list = []

    def describe(self) -> dict:
        """Saved with the checkpoint: what a resume must keep to repeat the same arithmetic."""
        return {"world_size": self.size, "sync_bn": self.sync_bn, "reduction": self.reduction,
                "bucket_mb": self.bucket_mb}

    # ------------------------------------------------------------------ set-up
    def loader(self, data, batch_size: int, **options):
        """The Trainer's loader on this rank: only this rank's rows of every global batch."""
        return share_loader(data, batch_size, self.rank, self.size, **options)

    def check_batches(self, batch_size: int, train_rows: int, val_rows: int) -> None:
        """Clear errors for a global batch that cannot be split over the ranks."""
        n = self.size
        if batch_size % n:
            raise AgreedError(f"--batch-size is the global batch and must divide evenly over the {n} ranks, "
                             f"got {batch_size} ({batch_size} % {n} = {batch_size % n})")
        last = train_rows % batch_size
        if 0 < last < n:
            raise AgreedError(f"the last batch of each epoch holds {last} of the {train_rows} training images, "
                             f"fewer than the {n} ranks; choose a --batch-size or --train-size so that "
                             f"{train_rows} % batch-size is 0 or at least {n}")
        if val_rows < n:
            raise AgreedError(f"{val_rows} validation images cannot be shared by {n} ranks; "
                             f"give --val-size {n} or more")

    def attach(self, trainer) -> None:
        """Called by the Trainer once it is built: buckets, sync-BN, the split checks."""
        cfg = trainer.config
        self.check_batches(cfg.batch_size, len(trainer.loader.data), len(trainer.val_data))
        model = trainer.model
        self.buckets = GradientBuckets(self.comm, model, bucket_mb=self.bucket_mb, reduction=self.reduction)
        if self.sync_bn:
            SyncBatchNorm(self.comm).attach(model)
        self._dropouts = [leaf for leaf in model.leaves() if hasattr(leaf, "first_sample")]

    def agree_set_up(self, failure: str | None) -> None:
        """Called by every rank at the end of its set-up with its one-line error (None: it succeeded);
        AgreedError on every rank when any rank failed."""
        line = set_up_failures(self.comm.gather_objects(failure))
        if line is not None:
            raise AgreedError(line)

    def plan(self, trainer) -> dict:
        """What must be the same on every rank for the ranks to make the same collectives: the data,
        the settings, the step limit, where the run starts, and how gradients and batch norm travel."""
        plan = {f"{split} data {key}": value for split, description in trainer.data_description.items()
                for key, value in description.items()}
        plan.update(dataclasses.asdict(trainer.config))
        plan.update({"max_steps": trainer.max_steps, "steps per epoch": len(trainer.loader),
                     "starts at": f"epoch {trainer.epoch + 1}, batch {trainer.batch + 1}",
                     "skip_bad_images": trainer.skip_bad_images, "model layout": _layout(trainer.model),
                     "comm_timeout": self.comm.timeout, **self.describe()})
        return plan

    def start(self, trainer) -> None:
        """Before the first step (fresh or resumed): the same run on every rank (or AgreedError on
        every rank), then rank 0's weights everywhere."""
        line = plan_differences(self.comm.gather_objects(entries(self.plan(trainer))))
        if line is not None:
            raise AgreedError(line)
        model = trainer.model
        state = self.comm.bcast_arrays(model.state_dict())
        model.load_state_dict(state)
        settings = json.dumps({"config": repr(trainer.config), "epoch": trainer.epoch, "batch": trainer.batch,
                               "dropout_counter": int(getattr(model, "dropout_counter", 0)),
                               "distributed": self.describe()}, sort_keys=True)
        groups = {**{f"model/{k}": v for k, v in model.state_dict().items()},
                  **{f"optimizer/{k}": v for k, v in trainer.optimizer.state_dict().items()}}
        if trainer.ema is not None:
            groups.update({f"ema/{k}": v for k, v in trainer.ema.state_dict().items()})
        self.comm.check_equal("the training settings, weights or optimizer state", groups, settings)

    # ------------------------------------------------------------------ one step
    def begin_step(self, stop: bool, rows: int) -> tuple[bool, int]:
        """Before a step, with whether this rank was asked to stop (Ctrl-C) and how many rows its
        loader gave: (whether any rank was asked, the global batch's rows), the same on every rank.
        Sets the loss weight and where this rank's rows start for the dropout masks."""
        counts = self.comm.gather_ints([int(bool(stop)), rows], "the exchange of row counts")
        self.global_rows = int(counts[:, 1].sum())
        self.loss_weight = rows / max(self.global_rows, 1)
        start = int(counts[:self.rank, 1].sum())
        for layer in self._dropouts:
            layer.first_sample = start
        return bool(counts[:, 0].any()), self.global_rows

    def end_step(self) -> None:
        """After a step every rank finished: the deadline now holds (compilation is behind)."""
        self.comm.step += 1
        self.comm.armed = True

    def backward(self, model, dlogits) -> None:
        """Backward with the gradient buckets reducing as blocks finish; one wait at the end."""
        start = time.perf_counter()
        model.backward(dlogits, on_block_done=self.buckets.ready, input_grad=False)
        backward_s = time.perf_counter() - start
        timings = self.buckets.finish()
        self.step_times.append({"backward_s": backward_s, **timings})

    def reduce_metrics(self, loss: float, correct: int, rows: int, global_rows: int) -> tuple[float, int]:
        """(mean loss over the global batch, correct predictions over it), the same on every rank."""
        loss_sum, correct_sum = self.comm.sum([loss * rows, correct], "the sum of the metrics")
        return float(loss_sum / global_rows), int(round(correct_sum))

    # ------------------------------------------------------------------ evaluation and writes
    def evaluate(self, model, data, batch_size: int = 100, label_smoothing: float = 0.0) -> dict:
        """train.evaluate over the whole of `data`, each rank on its shard; the same result everywhere."""
        from ..nn import BatchNorm
        from ..train.evaluate import evaluate

        if not self.sync_bn:  # the ranks' moving statistics saw different rows: use rank 0's
            bns = [leaf for leaf in model.leaves() if isinstance(leaf, BatchNorm)]
            local = {f"{i}/{k}": model.backend.to_numpy(v) for i, bn in enumerate(bns) for k, v in bn.state.items()}
            for key, value in self.comm.bcast_arrays(local).items():
                i, name = key.split("/")
                bns[int(i)].state[name] = model.backend.to_device(value.astype(model.dtype, copy=False))
        params = {f"{leaf.name}/{k}": model.backend.to_numpy(v) for leaf in model.leaves()
                  for k, v in leaf.weights().items()}
        self.comm.check_equal("the weights", params)
        start, stop = shard_bounds(len(data), self.size, self.rank)
        part = evaluate(model, data.subset(np.arange(start, stop)), batch_size, label_smoothing)
        n = part["count"]
        sums = self.comm.sum([part["loss"] * n, round(part["top1"] * n), round(part["top5"] * n), n], "the evaluation")
        confusion = np.rint(self.comm.sum(part["confusion"], "the evaluation")).astype(np.int64)
        total = sums[3]
        return {"loss": float(sums[0] / total), "top1": float(sums[1] / total), "top5": float(sums[2] / total),
                "count": int(total), "confusion": confusion}

    def barrier(self) -> None:
        """Where the ranks meet after rank 0's writes (checkpoint, plots). The others wait for those
        with the allowance of the first step (a large checkpoint on a slow disk); rank 0, arriving
        last, under the deadline, so that a rank missing there is still named in time."""
        what = "the meeting after the checkpoint" if self.is_root else "the wait for rank 0's checkpoint"
        self.comm.barrier(what, patient=not self.is_root)

    def bcast_object(self, obj):
        return self.comm.bcast_object(obj)

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """A rank that raises ends the whole job (MPI_Abort) with a message naming it and the cause.

        A Ctrl-C stop is agreed by all ranks at the same step (begin_step), so TrainingInterrupted
        passes through and every rank exits normally after rank 0 saved the checkpoint; so does an
        AgreedError (a set-up error or ranks started differently), said once by rank 0.
        """
        from ..train import TrainingInterrupted

        try:
            yield
        except TrainingInterrupted:
            raise
        except AgreedError:
            if self.is_root:
                raise
            raise SystemExit(1) from None  # rank 0 says it once
        except RanksMissing as error:  # the lowest rank still alive says which did not arrive
            self.comm.abort(str(error) if error.speaker else None)
            raise
        except KeyboardInterrupt:  # before training started, or a second Ctrl-C: nothing to save
            self.comm.abort("interrupted (Ctrl-C) outside a training step")
            raise
        except BaseException as error:  # noqa: B036 - any escape from one rank would hang the others
            self.comm.abort(f"{type(error).__name__}: {error}")
            raise

    def select_gpu(self) -> int:
        """Rank r uses GPU (local rank mod GPUs on this host); returns the device index."""
        from numba import cuda

        count = max(1, len(cuda.gpus))
        index = self.comm.local_rank % count
        cuda.select_device(index)
        return index
