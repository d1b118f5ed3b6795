"""The sum of one flat buffer over the ranks around a fixed ring: reduce-scatter, then allgather.

The buffer is cut into N chunks (sizes differ by at most one element). Rank r sends to r + 1 and
receives from r - 1 (mod N), one chunk per round:

  reduce-scatter, rounds k = 0 .. N-2: send chunk (r - k), receive chunk (r - k - 1) and add it to
      this rank's own; after N - 1 rounds rank r holds the whole sum of chunk (r + 1);
  allgather, rounds j = 0 .. N-2: send chunk (r + 1 - j), receive the finished chunk (r - j) in place.

Each rank sends and receives 2 (N - 1) / N of the buffer, whatever N: the bandwidth-optimal
allreduce (Patarasuk and Yuan 2009; Baidu's ring allreduce, Horovod). Chunk c is summed in the order
x_c + x_(c+1) + ... + x_(c-1), always the same for a fixed N and buffer, and the allgather copies it:
every rank holds the same bits, and so does every run. The order differs from the rank-order sum
of the "ordered" reduction, so the two reductions differ in their last bits.

The rounds depend on each other, so `progress()` advances as far as the messages allow and is
called often (after every block of backward, and in the final wait). Memory: the buffer itself
and one chunk to receive into.
"""

from __future__ import annotations

import numpy as np

from .comm import Communicator


def chunk_bounds(size: int, parts: int) -> list[tuple[int, int]]:
    """[start, stop) of `parts` consecutive chunks covering `size` elements (sizes differ by at most one)."""
    base, extra = divmod(size, parts)
    starts = [c * base + min(c, extra) for c in range(parts + 1)]
    return list(zip(starts[:-1], starts[1:]))


class RingAllreduce:
    """Sums one buffer in place over `comm`'s ranks, on message tag `tag`."""

    def __init__(self, comm: Communicator, size: int, dtype, tag: int):
        self.comm, self.tag = comm, tag
        self.n, self.rank = comm.size, comm.rank
        self.left, self.right = (self.rank - 1) % self.n, (self.rank + 1) % self.n
        self.bounds = chunk_bounds(size, self.n)
        self.incoming = np.empty(max(stop - start for start, stop in self.bounds), dtype)
        self.rounds = 2 * (self.n - 1)
        self.round, self.buffer, self.requests = self.rounds, None, []

    def start(self, buffer: np.ndarray) -> None:
        """Begin summing `buffer` (flat, contiguous; it holds the sum once `progress()` says done)."""
        self.buffer, self.round = buffer, 0
        self._post()

    def progress(self) -> bool:
        """Move through every round whose messages have arrived; True once the sum is complete."""
        while self.round < self.rounds:
            if not self.comm.MPI.Request.Testall(self.requests):
                return False
            if self.round < self.n - 1:  # reduce-scatter: add the left neighbour's partial sum
                start, stop = self._chunk(self.rank - self.round - 1)
                self.buffer[start:stop] += self.incoming[:stop - start]
            self.round += 1
            if self.round < self.rounds:
                self._post()
        return True

    def _chunk(self, index: int) -> tuple[int, int]:
        return self.bounds[index % self.n]

    def _post(self) -> None:
        k, r = self.round, self.rank
        if k < self.n - 1:
            send, receive = self._chunk(r - k), self._chunk(r - k - 1)
            target = self.incoming[:receive[1] - receive[0]]
        else:  # the finished chunk lands where it belongs (a different one is being sent)
            j = k - (self.n - 1)
            send, receive = self._chunk(r + 1 - j), self._chunk(r - j)
            target = self.buffer[receive[0]:receive[1]]
        self.requests = [self.comm.irecv(target, self.left, self.tag, channel="gradients"),
                         self.comm.isend(self.buffer[send[0]:send[1]], self.right, self.tag, channel="gradients")]
