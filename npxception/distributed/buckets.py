"""Gradient buckets: flat buffers of a few MB whose reduction starts while backward goes on.

As in PyTorch DDP and Horovod, the gradients are packed into flat buckets in the order backward
produces them (the network's last block first). A bucket holds whole blocks, closes when it
reaches `bucket_mb`, and its non-blocking reduction starts the moment its last block's backward
is done, so communication overlaps the backward pass of the earlier blocks. `finish()` is the one
wait before the optimizer step; it unpacks the summed gradients back into every layer.

Reductions (all non-blocking):
  "ring"    (default) the fixed ring of ring.py on point-to-point messages: 2 (N-1)/N of the
            bucket sent and received per rank, one bucket and one chunk of memory, whatever N; the
            same bits on every rank and in every run at a fixed N and bucket size.
  "ordered" MPI_Iallgather of the bucket, then the rank-order sum of comm.py: the same bits on
            every rank and in every run, whatever MPI does. Moves N - 1 copies of the bucket to
            every rank and holds N: kept for the runs checkpointed with it (the default before the
            ring), which resume with it.
  "mpi"     MPI_Iallreduce(SUM): the MPI library's own algorithm. Its repeatability rests on the
            library choosing it from the communicator size, message size and operation alone
            (MPICH and Open MPI do; the standard only recommends it), which holds because the
            buckets are the same every step.

Transfers progress inside MPI calls; `ready()` moves the pending buckets along after every block,
which is what drives them forward on MPI libraries without a progress thread (and what advances
the ring from round to round).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .comm import Communicator, rank_order_sum
from .ring import RingAllreduce

REDUCTIONS = ("ring", "ordered", "mpi")
TAG_BASE = 1000  # bucket b's ring messages travel on tag TAG_BASE + b


@dataclass(eq=False)  # compared by identity: its fields hold arrays
class Bucket:
    """Consecutive blocks (backward order) whose gradients travel as one flat buffer."""

    blocks: list                    # the top-level blocks, in backward order
    slots: list                     # (leaf, weight name, shape, offset, size)
    size: int = 0                   # elements
    send: np.ndarray | None = None
    recv: np.ndarray | None = None
    request: object = None
    ring: RingAllreduce | None = None
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

    def __init__(self, comm: Communicator, model, *, bucket_mb: float = 4.0, reduction: str = "ring"):
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
        for index, b in enumerate(self.buckets):
            b.send = np.empty(b.size, dtype)
            if reduction == "ring":  # summed in place: no second buffer
                b.ring = RingAllreduce(comm, b.size, dtype, TAG_BASE + index)
            else:
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
            self._progress()

    def _progress(self) -> bool:
        """Advance every pending bucket; True when all are summed."""
        if self.reduction == "ring":
            done = [b.ring.progress() for b in self._pending]  # a list: every ring moves
            now = time.perf_counter()
            for b, finished in zip(self._pending, done):
                if finished and not b.done_at:
                    b.done_at = now  # when this rank first saw its sum complete
            return all(done)
        return self.comm.MPI.Request.Testall([b.request for b in self._pending])

    def comm_bytes(self) -> int:
        """The bytes of the buffers the reduction holds (the buckets and what they receive into)."""
        held = sum(b.send.nbytes + (b.recv.nbytes if b.recv is not None else b.ring.incoming.nbytes)
                   for b in self.buckets)
        return int(held)

    def _start(self, bucket: Bucket) -> None:
        be = self.backend
        for leaf, name, _shape, offset, size in bucket.slots:
            # Host buffers: a device gradient comes to the host here (CUDA-aware MPI is not assumed).
            bucket.send[offset:offset + size] = be.to_numpy(leaf.grads[name]).reshape(-1)
        if self.reduction == "ring":
            bucket.ring.start(bucket.send)
        elif self.reduction == "ordered":
            bucket.request = self.comm.iallgather(bucket.send, bucket.recv, channel="gradients")
        else:
            bucket.request = self.comm.iallreduce_sum(bucket.send, bucket.recv, channel="gradients")
        bucket.started_at, bucket.done_at = time.perf_counter(), 0.0
        self._pending.append(bucket)

    # ------------------------------------------------------------------ before the update
    def finish(self) -> dict:
        """Wait for every bucket, write the summed gradients into the layers; returns timings (s)."""
        missing = [b for b in self.buckets if b not in self._pending]
        if missing:
            raise RuntimeError(f"{len(missing)} gradient bucket(s) were never started: the backward pass "
                               "did not report every block (call model.backward with on_block_done)")
        start = time.perf_counter()
        self.comm.wait_until(self._progress, "the gradient reduction")
        waited = time.perf_counter() - start
        for b in self._pending:  # "ordered" and "mpi" are tested all at once: done by now
            b.done_at = b.done_at or start + waited
        be = self.backend
        for b in self._pending:
            if self.reduction == "ring":
                total = b.send
            else:
                total = rank_order_sum(b.recv) if self.reduction == "ordered" else b.recv
            for leaf, name, shape, offset, size in b.slots:
                # A copy: the bucket's buffers are refilled next step while the layers keep these.
                leaf.grads[name] = be.to_device(total[offset:offset + size].reshape(shape).copy())
        first_start = min(b.started_at for b in self._pending)
        # Per bucket, in backward order: (started, summed) in perf_counter seconds, for timelines.
        timeline = [(b.started_at, b.done_at) for b in self._pending]
        self._pending = []
        self.last = {"wait_s": waited, "comm_window_s": time.perf_counter() - first_start, "timeline": timeline}
        return self.last
