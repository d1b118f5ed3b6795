"""Worker processes that decode and augment into shared memory, and hand back small messages.

The parent creates `slots` shared-memory blocks, each holding one batch (rows, size, size, 3) in
the model's dtype, and starts the workers. A task names a slot, a first row and the samples to
decode there; the worker decodes, augments and preprocesses (x / 127.5 - 1) straight into the
slot and answers with the task's id and the rows it could not read. No pixel array is ever
pickled, the parent's only per-batch work is one copy out of the slot, and memory is bounded by
the slots, whatever the dataset's size.

Never a hang: the parent waits for answers with a short timeout and checks between waits that
every worker is alive, so a worker that dies (killed, out of memory, a crash in a decoder) turns
into a `WorkerError` naming it and its exit status. Workers ignore Ctrl-C (the trainer stops
cleanly on its own) and exit when the parent is gone.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import traceback
import weakref
from dataclasses import dataclass
from multiprocessing import shared_memory

import numpy as np

from .decode import DecodeError
from .index import ImageIndex, Reader
from .transforms import Transform

POLL_SECONDS = 0.1


class WorkerError(RuntimeError):
    """A data worker process died or failed."""


@dataclass(frozen=True)
class Job:
    """What every worker needs, sent once when it starts."""

    index: ImageIndex
    transform: Transform
    seed: int
    slot_names: tuple[str, ...]
    slot_rows: int
    dtype: str


def sample_rng(seed: int, epoch: int, sample: int) -> np.random.Generator:
    """The generator of sample `sample`'s augmentation in `epoch`: a pure function of the three."""
    return np.random.default_rng([seed, epoch, sample])


def to_model_input(image: np.ndarray, dtype) -> np.ndarray:
    """uint8 -> x / 127.5 - 1 in `dtype`: the same arithmetic, in the same order, as `preprocess`
    (computed in float32, then cast), without importing the model code into the workers."""
    return (image.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).astype(dtype, copy=False)


def fill(reader: Reader, transform: Transform, seed: int, epoch: int, samples: np.ndarray,
         out: np.ndarray) -> list[tuple[int, str, str]]:
    """Decode, transform and preprocess `samples` into out[0], out[1], ... (a float array); returns
    (row, file, reason) of the images that could not be read (their rows are left as they were)."""
    bad = []
    for row, sample in enumerate(samples):
        sample = int(sample)
        try:
            rng = sample_rng(seed, epoch, sample) if transform.train else None
            out[row] = to_model_input(transform(reader.read(sample), rng), out.dtype)
        except (DecodeError, OSError, ValueError) as e:
            reason = str(e) if isinstance(e, DecodeError) else f"cannot read ({type(e).__name__}: {e})"
            bad.append((row, reader.index.name(sample), reason))
    return bad


def _slot_view(shm: shared_memory.SharedMemory, rows: int, size: int, dtype) -> np.ndarray:
    return np.ndarray((rows, size, size, 3), dtype=dtype, buffer=shm.buf)


def _worker_main(worker: int, job: Job, tasks, results) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and then stops us
    parent = mp.parent_process()
    shms = [shared_memory.SharedMemory(name=name) for name in job.slot_names]
    slots = [_slot_view(shm, job.slot_rows, job.transform.size, job.dtype) for shm in shms]
    reader = Reader(job.index)
    try:
        while True:
            try:
                task = tasks.get(timeout=1.0)
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return
                continue
            if task is None:
                return
            task_id, slot, row, epoch, samples = task
            bad = fill(reader, job.transform, job.seed, epoch, samples, slots[slot][row:row + len(samples)])
            results.put(("done", task_id, [(row + r, name, reason) for r, name, reason in bad]))
    except BaseException:  # noqa: BLE001 - reported to the parent, which raises it as a WorkerError
        results.put(("crash", worker, traceback.format_exc()))
    finally:
        reader.close()
        del slots  # the views must go before the mappings can close
        for shm in shms:
            shm.close()


def _shutdown(processes, shms, queues) -> None:
    processes = [p for p in processes if p.pid is not None]  # those that were started
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=2.0)
        if p.is_alive():
            p.kill()
            p.join()
    for q in queues:
        q.cancel_join_thread()  # do not block on undelivered tasks of dead workers
        q.close()
    for shm in shms:
        try:
            shm.unlink()
        except FileNotFoundError:
            pass
        try:
            shm.close()
        except BufferError:
            pass  # a view is still alive somewhere; the mapping goes with it, the name is gone already


def _exit_status(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def default_start_method() -> str:
    """fork on Linux, as PyTorch's DataLoader: a worker starts in milliseconds, shares the index
    with the parent copy-on-write, and scripts need no `if __name__ == "__main__"` guard. Workers
    use only NumPy, Pillow and simplejpeg, never the OpenMP or Numba threads a forked child cannot
    use. Elsewhere the platform's default (spawn on macOS and Windows), which needs that guard."""
    return "fork" if sys.platform.startswith("linux") else mp.get_start_method()


class WorkerPool:
    """`workers` processes and `slots` shared batch buffers; `slots[k]` is the parent's view."""

    def __init__(self, index: ImageIndex, transform: Transform, seed: int, *, workers: int, slots: int,
                 slot_rows: int, dtype=np.float32, start_method: str | None = None, timeout: float = 300.0):
        if workers < 1:
            raise ValueError(f"workers must be >= 1 for a worker pool, got {workers}")
        ctx = mp.get_context(start_method or default_start_method())
        dtype = np.dtype(dtype)
        nbytes = max(1, slot_rows * transform.size * transform.size * 3 * dtype.itemsize)
        self._shms = [shared_memory.SharedMemory(create=True, size=nbytes) for _ in range(slots)]
        self.slots = [_slot_view(shm, slot_rows, transform.size, dtype) for shm in self._shms]
        self.tasks, self.results = ctx.Queue(), ctx.Queue()
        job = Job(index, transform, seed, tuple(shm.name for shm in self._shms), slot_rows, dtype.str)
        self.processes = [ctx.Process(target=_worker_main, args=(k, job, self.tasks, self.results),
                                      name=f"npxception-data-{k}", daemon=True) for k in range(workers)]
        self._finalizer = weakref.finalize(self, _shutdown, self.processes, self._shms, (self.tasks, self.results))
        for p in self.processes:
            p.start()
        self.timeout = timeout

    def submit(self, task_id, slot: int, row: int, epoch: int, samples: np.ndarray) -> None:
        self.tasks.put((task_id, slot, row, epoch, np.asarray(samples, dtype=np.int64)))

    def result(self) -> tuple:
        """The next ("done", task_id, bad rows); raises WorkerError if a worker died or crashed.

        Liveness is checked before every wait, not only after a timeout: a dead worker may have
        taken a task (or the task queue's lock) with it, so the epoch cannot finish correctly."""
        waited = 0.0
        while True:
            self._check_alive()
            try:
                message = self.results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                waited += POLL_SECONDS
                if waited > self.timeout:
                    raise WorkerError(f"no answer from the {len(self.processes)} data worker(s) in "
                                      f"{self.timeout:.0f} s; they are alive but stuck (a hung file system?)") from None
                continue
            if message[0] == "crash":
                last = message[2].strip().splitlines()[-1]  # the exception itself; one line
                raise WorkerError(f"data worker {message[1]} failed: {last}")
            return message

    def _check_alive(self) -> None:
        for k, p in enumerate(self.processes):
            if p.exitcode is not None:
                raise WorkerError(f"data worker {k} (pid {p.pid}) died ({_exit_status(p.exitcode)}) while "
                                  "decoding images; if it ran out of memory, use fewer --workers or a "
                                  "smaller --batch-size")

    def close(self) -> None:
        """Stop the workers and free the shared memory (also done when the pool is collected)."""
        self.slots = []
        self._finalizer()


def default_workers() -> int:
    """One worker per core, leaving one core for the training loop (at least one, at most 16)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(16, cores - 1))

