"""Simulated ranks in one process: notebook 8's stand-in for MPI.

    results, messages = run_ranks(fn, arrays)

runs fn(arrays[r], r, size, send, recv) for every rank r at once, each on a Python thread of its
own, and returns each rank's result and the log of every message. send(to, array) puts a copy of
`array` in rank `to`'s mailbox and returns at once (MPI's buffered send); recv(source) waits for
the next array from `source`, in the order it was sent. A rank that waits longer than `timeout`
seconds, for a message nobody sends, ends the run with an error naming it, instead of hanging.

The message log is what the notebook's check reads: who sent how many elements to whom, in order.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Message:
    source: int
    dest: int
    elements: int
    nbytes: int


class RankError(RuntimeError):
    """A simulated rank failed: it raised, sent to a rank that does not exist, or waited forever."""


def run_ranks(fn, arrays, timeout: float = 20.0):
    """(results, messages): fn's return value on every rank, and every message in the order sent.

    A deadlock (every rank that has not returned waits for a message nobody can still send) and a
    rank that raises both end the run at once with a RankError; `timeout` bounds a rank that
    computes forever.
    """
    size = len(arrays)
    boxes = {(s, d): [] for s in range(size) for d in range(size)}
    waiting: dict[int, int] = {}   # rank -> the source it waits for
    done: set[int] = set()
    messages: list[Message] = []
    errors: list[str] = []
    results: list = [None] * size
    cv = threading.Condition()

    def stuck() -> bool:  # under cv: no rank can make progress
        return (len(waiting) + len(done) == size and waiting
                and all(not boxes[source, rank] for rank, source in waiting.items()))

    def endpoints(rank):
        def send(to, array):
            if not isinstance(to, (int, np.integer)) or not 0 <= to < size:
                raise RankError(f"rank {rank} sent to rank {to!r}: ranks are 0..{size - 1}")
            array = np.array(array, copy=True)
            with cv:
                messages.append(Message(rank, int(to), array.size, array.nbytes))
                boxes[rank, int(to)].append(array)
                cv.notify_all()

        def recv(source):
            if not isinstance(source, (int, np.integer)) or not 0 <= source < size:
                raise RankError(f"rank {rank} received from rank {source!r}: ranks are 0..{size - 1}")
            box = boxes[int(source), rank]
            with cv:
                waiting[rank] = int(source)
                try:
                    if not cv.wait_for(lambda: box or errors or stuck(), timeout):
                        raise RankError(f"rank {rank} waited {timeout:g} s for a message from rank {source}")
                    if box:
                        return box.pop(0)
                    if errors:
                        raise RankError("stopped: another rank failed")
                    errors.append("deadlock: " + ", ".join(f"rank {r} waits for rank {s}"
                                                           for r, s in sorted(waiting.items()))
                                  + " (no message on the way)")
                    cv.notify_all()
                    raise RankError("deadlock")
                finally:
                    waiting.pop(rank, None)

        return send, recv

    def main(rank):
        send, recv = endpoints(rank)
        try:
            results[rank] = fn(np.array(arrays[rank], copy=True), rank, size, send, recv)
        except RankError as error:
            if str(error) not in ("deadlock", "stopped: another rank failed"):
                with cv:
                    errors.append(str(error))
        except Exception as error:  # reported below, with the rank
            with cv:
                errors.append(f"rank {rank} raised {type(error).__name__}: {error}")
        finally:
            with cv:
                done.add(rank)
                cv.notify_all()

    threads = [threading.Thread(target=main, args=(r,), daemon=True) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5.0)
    if any(t.is_alive() for t in threads):
        errors.append("a rank never returned")
    if errors:
        raise RankError("; ".join(errors))
    unread = sorted((s, d) for (s, d), box in boxes.items() if box)
    if unread:
        s, d = unread[0]
        raise RankError(f"rank {s} sent rank {d} a message it never received "
                        f"({len(unread)} mailbox(es) left unread)")
    return results, messages
