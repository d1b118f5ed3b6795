"""Gradient buckets: flat buffers of a few MB whose reduction starts while backward goes on.

As in PyTorch DDP and Horovod, the gradients are packed into flat buckets in the order backward
produces them (the network's last block first). A bucket holds whole blocks, closes when it
reaches `bucket_mb`, and its non-blocking reduction starts the moment its last block's backward
is done, so communication overlaps the backward pass of the earlier blocks. `finish()` is the one
wait before the optimizer step; it unpacks the summed gradients back into every layer.

Reductions (both non-blocking):
  "ordered" (default) MPI_Iallgather of the bucket, then the rank-order sum of comm.py: the same
            bits on every rank and in every run, whatever MPI does. Moves N copies of the bucket
            to every rank: right for a handful of ranks.
  "mpi"     MPI_Iallreduce(SUM): 2 (N-1)/N of the bucket per rank, right for many ranks. Its
            repeatability rests on the MPI library choosing its algorithm from the communicator
            size, message size and operation alone (MPICH and Open MPI do; the standard only
            recommends it), which holds because the buckets are the same every step.

Non-blocking collectives progress inside MPI calls; `ready()` tests the pending requests after
every block, which is what drives the transfers forward on MPI libraries without a progress
thread.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .comm import Communicator, rank_order_sum

REDUCTIONS = ("ordered", "mpi")


@dataclass(eq=False)  # compared by identity: its fields hold arrays
class Bucket:
    """Consecutive blocks (backward order) whose gradients travel as one flat buffer."""

    blocks: list                    # the top-level blocks, in backward order
    slots: list                     # (leaf, weight name, shape, offset, size)
    size: int = 0                   # elements
    send: np.ndarray | None = None
    recv: np.ndarray | None = None
    request: object = None
    started_at: float = 0.0
    done_at: float = 0.0
    stats: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return 0 if self.send is None else self.send.nbytes


def plan_buckets(blocks: list, bucket_bytes: int, itemsize: int) -> list[Bucket]:
    """Group `blocks` (backward order) into buckets of at least `bucket_bytes` (the last may be smaller)."""
    buckets, current = [], Bucket([], [])
    for block in blocks:
        params = [(leaf, name, tuple(value.shape)) for leaf in reversed(list(block.leaves()))
                  for name, value in reversed(list(leaf.params.items()))]
        if not params:
            continue
        current.blocks.append(block)
        for leaf, name, shape in params:
            size = int(np.prod(shape))
            current.slots.append((leaf, name, shape, current.size, size))
            current.size += size
        if current.size * itemsize >= bucket_bytes:
            buckets.append(current)
            current = Bucket([], [])
    if current.blocks:
        buckets.append(current)
    return buckets


class GradientBuckets:
    """Reduces a model's gradients over `comm` in buckets that overlap its backward pass."""

    def __init__(self, comm: Communicator, model, *, bucket_mb: float = 4.0, reduction: str = "ordered"):
        if not bucket_mb > 0:
            raise ValueError(f"bucket_mb must be > 0, got {bucket_mb!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.comm, self.model, self.reduction = comm, model, reduction
        self.backend = model.backend
        dtype = np.dtype(model.dtype)
        blocks = list(reversed(model.network.layers))
        self.buckets = plan_buckets(blocks, int(bucket_mb * 2**20), dtype.itemsize)
        self._closing = {id(b.blocks[-1]): b for b in self.buckets}  # block whose end starts the bucket
        for b in self.buckets:
            b.send = np.empty(b.size, dtype)
            b.recv = np.empty((comm.size, b.size) if reduction == "ordered" else b.size, dtype)
        self._pending: list[Bucket] = []
        self.last: dict = {}

    def sizes_mb(self) -> list[float]:
        return [b.nbytes / 2**20 for b in self.buckets]

    def describe(self) -> list[dict]:
        """One row per bucket: its blocks, elements and MB."""
        return [{"blocks": [blk.name for blk in b.blocks], "elements": b.size, "mb": b.nbytes / 2**20}
                for b in self.buckets]

    # ------------------------------------------------------------------ during backward
    def ready(self, block) -> None:
        """Called after `block`'s backward: start its bucket's reduction if it was the last one."""
        bucket = self._closing.get(id(block))
        if bucket is not None:
            self._start(bucket)
        if self._pending:  # let MPI move the earlier buckets along
            self.comm.MPI.Request.Testall([b.request for b in self._pending])

    def _start(self, bucket: Bucket) -> None:
        be = self.backend
        for leaf, name, _shape, offset, size in bucket.slots:
            # Host buffers: a device gradient comes to the host here (CUDA-aware MPI is not assumed).
            bucket.send[offset:offset + size] = be.to_numpy(leaf.grads[name]).reshape(-1)
        comm = self.comm.comm
        if self.reduction == "ordered":
            bucket.request = comm.Iallgather(bucket.send, bucket.recv)
        else:
            bucket.request = comm.Iallreduce(bucket.send, bucket.recv, op=self.comm.MPI.SUM)
        bucket.started_at = time.perf_counter()
        self._pending.append(bucket)

    # ------------------------------------------------------------------ before the update
    def finish(self) -> dict:
        """Wait for every bucket, write the summed gradients into the layers; returns timings (s)."""
        missing = [b for b in self.buckets if b not in self._pending]
        if missing:
            raise RuntimeError(f"{len(missing)} gradient bucket(s) were never started: the backward pass "
                               "did not report every block (call model.backward with on_block_done)")
        start = time.perf_counter()
        self.comm.MPI.Request.Waitall([b.request for b in self._pending])
        waited = time.perf_counter() - start
        be = self.backend
        for b in self._pending:
            total = rank_order_sum(b.recv) if self.reduction == "ordered" else b.recv.copy()
            for leaf, name, shape, offset, size in b.slots:
                leaf.grads[name] = be.to_device(total[offset:offset + size].reshape(shape))
        first_start = min(b.started_at for b in self._pending)
        self._pending = []
        self.last = {"wait_s": waited, "comm_window_s": time.perf_counter() - first_start}
        return self.last
