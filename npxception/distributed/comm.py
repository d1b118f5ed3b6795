"""A thin, deterministic layer over an MPI communicator (mpi4py), for data-parallel training.

Every sum that decides the arithmetic is computed in rank order by this module, not by MPI: the
contributions are gathered (Allgather / Iallgather) and added as rank 0 + rank 1 + ... on every
rank. So the result is bitwise the same on all ranks and from run to run at a fixed number of
ranks, whatever algorithm or message timing the MPI library chooses. (The MPI standard only
*recommends* that a reduction give the same result for the same arguments in the same order; it
does not guarantee it, nor that all ranks of an allreduce see the same bits.) `mode="mpi"` in the
gradient buckets uses MPI_Iallreduce instead, for large jobs where gathering N copies costs too
much; see buckets.py.
"""

from __future__ import annotations

import hashlib
import sys
import time

import numpy as np

from .world import World

ABORT_GRACE_S = 0.5  # seconds between the error line and MPI_Abort


def rank_order_sum(gathered: np.ndarray) -> np.ndarray:
    """gathered (N, ...) -> gathered[0] + gathered[1] + ... + gathered[N-1], in that order."""
    total = gathered[0].copy()
    for part in gathered[1:]:
        total += part
    return total


class Communicator:
    """MPI.COMM_WORLD (or `mpi_comm`) with the few collectives training needs."""

    def __init__(self, mpi_comm=None):
        from mpi4py import MPI  # only ever imported when the world has more than one process

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if mpi_comm is None else mpi_comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # Ranks on the same host (shared memory): rank r picks GPU local_rank mod GPUs on its host.
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def world(self) -> World:
        return World(self.size, self.rank, "mpi")

    # ------------------------------------------------------------------ collectives
    def barrier(self) -> None:
        self.comm.Barrier()

    def sum(self, values) -> np.ndarray:
        """The rank-order sum of `values` (an array or a list of numbers) over all ranks, in float64."""
        local = np.ascontiguousarray(values, dtype=np.float64)
        gathered = np.empty((self.size, *local.shape), dtype=np.float64)
        self.comm.Allgather(local, gathered)
        return rank_order_sum(gathered)

    def gather_rows(self, values) -> np.ndarray:
        """(N, ...) float64: every rank's `values`, row r from rank r."""
        local = np.ascontiguousarray(values, dtype=np.float64)
        gathered = np.empty((self.size, *local.shape), dtype=np.float64)
        self.comm.Allgather(local, gathered)
        return gathered

    def any(self, flag: bool) -> bool:
        """True on every rank when `flag` is True on at least one."""
        return bool(self.comm.allreduce(int(bool(flag)), op=self.MPI.MAX))

    def gather_objects(self, obj) -> list:
        """Every rank's `obj` (small and picklable), item r from rank r, on every rank."""
        return self.comm.allgather(obj)

    def bcast_object(self, obj):
        """Rank 0's `obj` (picklable) on every rank."""
        return self.comm.bcast(obj, root=0)

    def bcast_arrays(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rank 0's arrays (same keys, shapes and dtypes on every rank) on every rank, in key order."""
        out = {}
        for key in sorted(arrays):
            buffer = np.ascontiguousarray(arrays[key]).copy()
            self.comm.Bcast(buffer, root=0)
            out[key] = buffer
        return out

    def check_equal(self, what: str, arrays: dict[str, np.ndarray], description: str = "") -> None:
        """Raise RuntimeError on every rank unless `arrays` (and `description`) are bitwise equal everywhere."""
        digest = hashlib.sha256(description.encode())
        for key in sorted(arrays):
            value = np.ascontiguousarray(arrays[key])
            digest.update(key.encode() + str(value.dtype).encode() + str(value.shape).encode())
            digest.update(value.tobytes())
        digests = self.comm.allgather(digest.hexdigest())
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise RuntimeError(f"{what} differ between ranks: rank 0 and rank(s) {differ} hold different "
                               "values; every rank must run the same command on the same data")

    # ------------------------------------------------------------------ faults
    def abort(self, message: str, code: int = 1) -> None:
        """Print `message` naming this rank, then end every rank of the job (MPI_Abort)."""
        print(f"npxception: rank {self.rank} of {self.size}: {message}; aborting all {self.size} ranks",
              file=sys.stderr, flush=True)
        # MPI_Abort does not wait for the launcher to forward what the rank wrote: Hydra can kill the
        # processes while the line is still in the pipe. A short pause lets it reach the terminal.
        time.sleep(ABORT_GRACE_S)
        self.comm.Abort(code)
