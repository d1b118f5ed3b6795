"""Who am I in the job? The world size and rank, read from the launcher's environment.

Every MPI launcher tells its processes their rank and the job's size in environment variables
before MPI starts, so the world can be known without importing mpi4py (which starts MPI): a plain
`npxception train` sees no such variable and never loads MPI at all.

    MPICH / Intel MPI (Hydra)   PMI_RANK, PMI_SIZE
    Open MPI                    OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE
    MVAPICH2                    MV2_COMM_WORLD_RANK, MV2_COMM_WORLD_SIZE
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

# (launcher, rank variable, size variable), the first whose size variable is set wins.
LAUNCHER_VARIABLES = (
    ("open-mpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
    ("mvapich2", "MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"),
    ("hydra", "PMI_RANK", "PMI_SIZE"),
)


@dataclass(frozen=True)
class World:
    """The job as the launcher describes it: `size` processes, this one is `rank`."""

    size: int = 1
    rank: int = 0
    launcher: str | None = None  # None: not started by an MPI launcher

    @property
    def distributed(self) -> bool:
        return self.size > 1


def detect_world(environ: Mapping[str, str] | None = None) -> World:
    """The World from the launcher's variables (default: os.environ); World() when there are none."""
    env = os.environ if environ is None else environ
    for launcher, rank_var, size_var in LAUNCHER_VARIABLES:
        if size_var not in env:
            continue
        try:
            size, rank = int(env[size_var]), int(env.get(rank_var, "0"))
        except ValueError:
            raise ValueError(f"{size_var}={env[size_var]!r} / {rank_var}={env.get(rank_var)!r}: expected "
                             "integers set by the MPI launcher") from None
        if size < 1 or not 0 <= rank < size:
            raise ValueError(f"{rank_var}={rank} and {size_var}={size}: expected 0 <= rank < size")
        return World(size, rank, launcher)
    return World()
