"""A thin, deterministic layer over an MPI communicator (mpi4py), for data-parallel training.

Every sum that decides the arithmetic is computed in a fixed order by the package, not by MPI: the
small collectives gather the contributions (Iallgather) and add them as rank 0 + rank 1 + ... on
every rank, the gradient buckets sum around a fixed ring (ring.py). So the result is bitwise the
same on all ranks and from run to run at a fixed number of ranks, whatever algorithm or message
timing the MPI library chooses. (The MPI standard only *recommends* that a reduction give the
same result for the same arguments in the same order; it does not guarantee it, nor that all ranks
of an allreduce see the same bits.)

Deadlines: every wait is a polling loop on non-blocking requests (`wait_until`), never a blocking
MPI call, so a rank that does not arrive (stopped, stuck in a kernel or a data worker) is noticed
after `timeout` seconds. The ranks still alive then call the roll (a few bytes to every rank, on a
tag of their own): the lowest of them says once which ranks did not answer and at which step, and
the job ends through MPI_Abort. Until the first training step has ended the deadline is
`STARTUP_FACTOR` times longer (at least `STARTUP_MIN_S`): the first step may compile every kernel
from an empty cache. The ranks waiting for rank 0's writes (a checkpoint, plots) get that allowance
too (`patient`); rank 0 meets them under the deadline, so a rank missing there is still named.

Traffic: `traffic[channel]` counts the payload bytes this rank sent and received, the gradient
buckets on channel "gradients", everything else on "other". Point-to-point messages are counted
exactly; a collective counts what it must move whatever its algorithm (an allgather brings every
other rank's part, and on average a rank sends as much as it receives).
"""

from __future__ import annotations

import hashlib
import pickle
import sys
import time
from collections.abc import Callable

import numpy as np

from .world import World

ABORT_GRACE_S = 0.5  # seconds between the error line and MPI_Abort
DEFAULT_TIMEOUT_S = 300.0
STARTUP_FACTOR, STARTUP_MIN_S = 10, 1800.0  # the deadline before the first step has ended
ROLL_TAG = 32000  # below 32767, the least MPI_TAG_UB the standard allows
ROLL_CALL_S = 2.0  # how long the roll waits for the ranks that are alive (they answer within a poll)
POLL_MIN_S, POLL_MAX_S = 1e-5, 5e-3  # the polling loop's sleep grows from the first to the second


def rank_order_sum(gathered: np.ndarray) -> np.ndarray:
    """gathered (N, ...) -> gathered[0] + gathered[1] + ... + gathered[N-1], in that order."""
    total = gathered[0].copy()
    for part in gathered[1:]:
        total += part
    return total


class RanksMissing(RuntimeError):
    """Some ranks did not arrive at a collective within the deadline. `speaker`: this rank is the
    lowest one still alive and says so; the others end without a word."""

    def __init__(self, message: str, speaker: bool):
        super().__init__(message)
        self.speaker = speaker


class Communicator:
    """MPI.COMM_WORLD (or `mpi_comm`) with the few collectives training needs, each under a deadline."""

    def __init__(self, mpi_comm=None, timeout: float = DEFAULT_TIMEOUT_S):
        from mpi4py import MPI  # only ever imported when the world has more than one process

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if mpi_comm is None else mpi_comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        # Checked with the other options (cli/options.py), where the ranks agree on the error.
        self.timeout, self.armed = float(timeout), False  # armed: the first step has ended
        self.step = 0  # training steps every rank finished; named when a rank goes missing
        self.traffic = {channel: {"sent": 0, "received": 0} for channel in ("gradients", "other")}
        # Ranks on the same host (shared memory): rank r picks GPU local_rank mod GPUs on its host.
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_rank, self.local_size = local.Get_rank(), local.Get_size()
        local.Free()

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def world(self) -> World:
        return World(self.size, self.rank, "mpi")

    # ------------------------------------------------------------------ waiting, with a deadline
    def deadline_s(self, patient: bool = False) -> float:
        """The deadline of a wait; `patient`: the allowance of the first step, for a wait on writes."""
        if self.armed and not patient:
            return self.timeout
        return max(STARTUP_MIN_S, STARTUP_FACTOR * self.timeout)

    def wait(self, requests: list, what: str, patient: bool = False) -> None:
        """Wait for every request in `requests`, at most the deadline (then RanksMissing)."""
        test = self.MPI.Request.Testall
        self.wait_until(lambda: test(requests), what, patient)

    def wait_until(self, done: Callable[[], bool], what: str, patient: bool = False) -> None:
        """Poll `done()` (which moves the transfers along) until it is True; a roll call answered
        on the way, RanksMissing after the deadline."""
        limit = self.deadline_s(patient)
        deadline = time.monotonic() + limit
        pause = POLL_MIN_S
        while not done():
            if self.comm.Iprobe(source=self.MPI.ANY_SOURCE, tag=ROLL_TAG) or time.monotonic() > deadline:
                self._roll_call(what, limit)
            time.sleep(pause)
            pause = min(POLL_MAX_S, 2 * pause)

    def _roll_call(self, what: str, limit: float) -> None:
        """Which ranks are alive: each one that takes part sends its rank to all and listens for
        ROLL_CALL_S. Raises RanksMissing naming the others."""
        others = [r for r in range(self.size) if r != self.rank]
        mine = np.array([self.rank, self.step], np.int64)
        sends = [self.comm.Isend(mine, dest=r, tag=ROLL_TAG) for r in others]
        answers = {r: np.zeros(2, np.int64) for r in others}
        receives = {r: self.comm.Irecv(answers[r], source=r, tag=ROLL_TAG) for r in others}
        end = time.monotonic() + ROLL_CALL_S
        while time.monotonic() < end and not all(req.Test() for req in receives.values()):
            time.sleep(POLL_MAX_S)
        alive = [self.rank] + [r for r, req in receives.items() if req.Test()]
        missing = sorted(set(range(self.size)) - set(alive))
        del sends  # small messages: sent eagerly, nothing to wait for
        deadline = f"--comm-timeout {self.timeout:g} s" if limit == self.timeout else \
            f"{limit:g} s (the allowance of the first step and of writes, for --comm-timeout {self.timeout:g} s)"
        if missing:
            who = f"rank {missing[0]}" if len(missing) == 1 else f"ranks {', '.join(map(str, missing))}"
            line = (f"{who} of {self.size} did not arrive within {deadline} ({what} of step {self.step + 1}); "
                    f"the last step reached was {self.step}, the last checkpoint is kept")
        else:
            line = (f"every rank is alive but {what} of step {self.step + 1} did not complete within {deadline}; "
                    f"the last step reached was {self.step}")
        raise RanksMissing(line, speaker=self.rank == min(alive))

    # ------------------------------------------------------------------ point to point (counted)
    def _count(self, channel: str, sent: int, received: int) -> None:
        self.traffic[channel]["sent"] += int(sent)
        self.traffic[channel]["received"] += int(received)

    def isend(self, buffer: np.ndarray, dest: int, tag: int, channel: str = "other"):
        self._count(channel, buffer.nbytes, 0)
        return self.comm.Isend(buffer, dest=dest, tag=tag)

    def irecv(self, buffer: np.ndarray, source: int, tag: int, channel: str = "other"):
        self._count(channel, 0, buffer.nbytes)
        return self.comm.Irecv(buffer, source=source, tag=tag)

    # ------------------------------------------------------------------ collectives
    def iallgather(self, local: np.ndarray, gathered: np.ndarray, channel: str = "other"):
        """Non-blocking allgather (counted: the other ranks' parts in, as much out on average)."""
        self._count(channel, gathered.nbytes - local.nbytes, gathered.nbytes - local.nbytes)
        return self.comm.Iallgather(local, gathered)

    def iallreduce_sum(self, local: np.ndarray, total: np.ndarray, channel: str = "other"):
        """Non-blocking MPI_Iallreduce(SUM) (counted as the 2 (N-1)/N of a bandwidth-optimal one)."""
        moved = 2 * (self.size - 1) * local.nbytes // self.size
        self._count(channel, moved, moved)
        return self.comm.Iallreduce(local, total, op=self.MPI.SUM)

    def barrier(self, what: str = "a barrier", patient: bool = False) -> None:
        self.wait([self.comm.Ibarrier()], what, patient)

    def gather_rows(self, values, what: str = "a small exchange") -> np.ndarray:
        """(N, ...) float64: every rank's `values`, row r from rank r."""
        local = np.ascontiguousarray(values, dtype=np.float64)
        gathered = np.empty((self.size, *local.shape), dtype=np.float64)
        self.wait([self.iallgather(local, gathered)], what)
        return gathered

    def sum(self, values, what: str = "a small sum") -> np.ndarray:
        """The rank-order sum of `values` (an array or a list of numbers) over all ranks, in float64."""
        return rank_order_sum(self.gather_rows(values, what))

    def gather_ints(self, values, what: str) -> np.ndarray:
        """(N, k) int64: every rank's k integers, row r from rank r (exact, unlike floats)."""
        local = np.ascontiguousarray(values, dtype=np.int64)
        gathered = np.empty((self.size, *local.shape), dtype=np.int64)
        self.wait([self.iallgather(local, gathered)], what)
        return gathered

    def any(self, flag: bool, what: str = "the stop check") -> bool:
        """True on every rank when `flag` is True on at least one."""
        return bool(self.gather_ints([int(bool(flag))], what).any())

    def gather_objects(self, obj, what: str = "the comparison of the ranks' settings") -> list:
        """Every rank's `obj` (small and picklable), item r from rank r, on every rank."""
        data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
        lengths = self.gather_ints([data.size], what)[:, 0]
        gathered = np.empty(int(lengths.sum()), np.uint8)
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        self._count("other", gathered.nbytes - data.nbytes, gathered.nbytes - data.nbytes)
        request = self.comm.Iallgatherv(data, [gathered, (lengths.tolist(), offsets.tolist()), self.MPI.BYTE])
        self.wait([request], what)
        return [pickle.loads(gathered[o:o + n].tobytes()) for o, n in zip(offsets, lengths)]  # noqa: S301 - peers

    def bcast_object(self, obj, what: str = "a broadcast from rank 0"):
        """Rank 0's `obj` (picklable) on every rank."""
        data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8) if self.is_root else None
        length = np.array([0 if data is None else data.size], np.int64)
        self.wait([self.comm.Ibcast(length, root=0)], what)
        buffer = data.copy() if self.is_root else np.empty(int(length[0]), np.uint8)
        self.wait([self.comm.Ibcast(buffer, root=0)], what)
        return obj if self.is_root else pickle.loads(buffer.tobytes())  # noqa: S301 - from rank 0 of this job

    def bcast_arrays(self, arrays: dict[str, np.ndarray], what: str = "the broadcast of rank 0's weights"
                     ) -> dict[str, np.ndarray]:
        """Rank 0's arrays (same keys, shapes and dtypes on every rank) on every rank, in key order."""
        out = {key: np.ascontiguousarray(arrays[key]).copy() for key in sorted(arrays)}
        self.wait([self.comm.Ibcast(buffer, root=0) for buffer in out.values()], what)
        if not self.is_root:
            self._count("other", 0, sum(b.nbytes for b in out.values()))
        return out

    def check_equal(self, what: str, arrays: dict[str, np.ndarray], description: str = "") -> None:
        """Raise RuntimeError on every rank unless `arrays` (and `description`) are bitwise equal everywhere."""
        digest = hashlib.sha256(description.encode())
        for key in sorted(arrays):
            value = np.ascontiguousarray(arrays[key])
            digest.update(key.encode() + str(value.dtype).encode() + str(value.shape).encode())
            digest.update(value.tobytes())
        digests = self.gather_objects(digest.hexdigest(), f"the comparison of {what}")
        differ = [r for r, d in enumerate(digests) if d != digests[0]]
        if differ:
            raise RuntimeError(f"{what} differ between ranks: rank 0 and rank(s) {differ} hold different "
                               "values; every rank must run the same command on the same data")

    # ------------------------------------------------------------------ faults
    def abort(self, message: str | None, code: int = 1) -> None:
        """Print `message` naming this rank (None: say nothing), then end every rank of the job (MPI_Abort)."""
        if message is not None:
            print(f"npxception: rank {self.rank} of {self.size}: {message}; aborting all {self.size} ranks",
                  file=sys.stderr, flush=True)
        # MPI_Abort does not wait for the launcher to forward what the rank wrote: Hydra can kill the
        # processes while the line is still in the pipe. A short pause lets it reach the terminal; a
        # rank that stays silent leaves the speaker time to be heard first.
        time.sleep(ABORT_GRACE_S if message is not None else 4 * ABORT_GRACE_S)
        self.comm.Abort(code)
