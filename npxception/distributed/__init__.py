"""Data-parallel training over MPI (mpi4py), with the arithmetic of one process.

    mpiexec -n 4 npxception train --preset small --batch-size 64 --sync-bn

`init()` reads the world from the launcher's environment (world.py) and imports mpi4py only when
there is more than one process: without a launcher, or with `-n 1`, it returns None and nothing of
MPI is loaded. The pieces: comm.py (rank-order sums, broadcast, checks, deadlines, abort), ring.py
(the ring reduce-scatter + allgather), buckets.py (gradient buckets overlapping backward), rows.py
(each rank's rows of the global batch), sync_bn.py (synchronised batch norm), agreement.py (what
the ranks compare before the first step), data_parallel.py (what the Trainer calls).
"""

from __future__ import annotations

from .world import World, detect_world

__all__ = ["World", "detect_world", "init"]


def init(*, sync_bn: bool = False, bucket_mb: float = 4.0, reduction: str = "ring", comm_timeout: float = 300.0,
         world: World | None = None):
    """A DataParallel for this rank when the job has several processes, else None (mpi4py not imported).

    comm_timeout: seconds any rank waits for the others at a collective before the job ends naming
    the ranks that did not arrive (comm.py)."""
    world = detect_world() if world is None else world
    if not world.distributed:
        return None
    from .comm import Communicator
    from .data_parallel import DataParallel

    try:
        comm = Communicator(timeout=comm_timeout)
    except ImportError as error:
        raise RuntimeError(f"started by an MPI launcher as rank {world.rank} of {world.size}, but mpi4py is "
                           f"missing ({error}); install it with: pip install 'npxception[mpi]'") from None
    if comm.size != world.size:
        raise RuntimeError(f"the launcher announced {world.size} processes but MPI sees {comm.size}: "
                           "mpi4py is linked to a different MPI than the one that started the job")
    return DataParallel(comm, sync_bn=sync_bn, bucket_mb=bucket_mb, reduction=reduction)
