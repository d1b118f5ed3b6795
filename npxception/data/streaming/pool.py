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

Forked workers inherit the trainer's signal handlers. Their first act puts SIGTERM back to its
default and ignores SIGINT (both blocked from before the fork until then), so no trainer handler
ever runs in a worker. A SIGTERM the parent sends (`terminate()`) ends a worker at once; one from
anyone else is left to the parent, as Ctrl-C is: stopping a whole process group or cgroup (systemd,
Slurm) signals the parent too, which finishes its step, saves, then stops its workers, whereas a
worker dead of it first would fail the next batch. Shutting down is SIGTERM to every worker, one
overall deadline, then SIGKILL for the stragglers.

The slots are one shared-memory segment (named `SHM_PREFIX` + the parent's pid + random hex), and
its name is unlinked as soon as every worker has it mapped: at once with fork (a forked worker
inherits the mapping), once each worker has reported it attached otherwise. Linux keeps an unlinked
segment alive for the processes that map it, so nothing is left in /dev/shm even when the whole
process group is killed with SIGKILL.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import secrets
import signal
import sys
import threading
import time
import traceback
import weakref
from dataclasses import dataclass
from multiprocessing import connection, shared_memory

import numpy as np

from ...resources import available_memory, format_bytes
from .decode import DecodeError
from .index import ImageIndex, Reader
from .transforms import Transform, WholeImage

POLL_SECONDS = 0.1
# How long all the workers together get to exit after SIGTERM before SIGKILL; they exit in milliseconds.
SHUTDOWN_SECONDS = 1.0
# Names of the slots' shared-memory segment: SHM_PREFIX<parent pid>-<random hex> (in /dev/shm on Linux).
SHM_PREFIX = "npxception-slots-"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# More workers than this per core only add processes, memory and start-up time: decoding is CPU-bound.
WORKERS_PER_CORE = 4
# A worker's own memory beside the slots: its private pages of the forked interpreter (about 8 MB
# measured after decoding a few batches, more as it touches the inherited heap) and one decoded
# full-size photo (a 12-megapixel JPEG is 36 MB).
WORKER_BYTES = 64 * 2**20


class WorkerError(RuntimeError):
    """A data worker process died or failed."""


@dataclass(frozen=True)
class Job:
    """What every worker needs, sent once when it starts."""

    index: ImageIndex
    transform: Transform | WholeImage
    seed: int
    slots: int
    slot_rows: int
    dtype: str


def sample_rng(seed: int, epoch: int, sample: int) -> np.random.Generator:
    """The generator of sample `sample`'s augmentation in `epoch`: a pure function of the three."""
    return np.random.default_rng([seed, epoch, sample])


def to_model_input(image: np.ndarray, dtype) -> np.ndarray:
    """uint8 -> x / 127.5 - 1 in `dtype`: the same arithmetic, in the same order, as `preprocess`
    (computed in float32, then cast), without importing the model code into the workers."""
    return (image.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).astype(dtype, copy=False)


def store(image: np.ndarray, out: np.ndarray) -> None:
    """A transformed uint8 image into its row of a batch: as it is into a uint8 batch (the up-front
    decode), else as `to_model_input`. float32, the usual case, is computed in place in the slot:
    the same two operations in the same precision, without the three temporary copies."""
    if out.dtype == np.uint8:
        out[...] = image
    elif out.dtype == np.float32:
        np.divide(image, np.float32(127.5), out=out)
        np.subtract(out, np.float32(1.0), out=out)
    else:
        out[...] = to_model_input(image, out.dtype)


def fill(reader: Reader, transform: Transform | WholeImage, seed: int, epoch: int, samples: np.ndarray,
         out: np.ndarray) -> list[tuple[int, str, str]]:
    """Decode, transform and preprocess `samples` into out[0], out[1], ... (a float array, or uint8
    for the images as decoded); returns (row, file, reason) of the images that could not be read
    (their rows are left as they were)."""
    bad = []
    for row, sample in enumerate(samples):
        sample = int(sample)
        try:
            rng = sample_rng(seed, epoch, sample) if transform.train else None
            store(transform(reader.read(sample), rng), out[row])
        except (DecodeError, OSError, ValueError) as e:
            reason = str(e) if isinstance(e, DecodeError) else f"cannot read ({type(e).__name__}: {e})"
            bad.append((row, reader.index.name(sample), reason))
    return bad


def _slot_views(shm: shared_memory.SharedMemory, slots: int, rows: int, size: int, dtype) -> list[np.ndarray]:
    """The `slots` batch buffers (rows, size, size, 3) laid end to end in the one segment."""
    dtype = np.dtype(dtype)
    nbytes = rows * size * size * 3 * dtype.itemsize
    return [np.ndarray((rows, size, size, 3), dtype=dtype, buffer=shm.buf, offset=k * nbytes) for k in range(slots)]


def _reset_signals() -> None:
    """Undo what a forked worker inherits from the trainer: its SIGTERM handler would print the
    trainer's "stopping" line and swallow `terminate()`, its SIGINT handler raise on Ctrl-C, which
    the parent handles for everyone. The parent blocked both signals around the fork; SIGINT is
    unblocked once ignored, SIGTERM stays blocked for `_end_on_parents_sigterm` to take."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not hasattr(signal, "pthread_sigmask"):
        return
    if hasattr(signal, "sigwaitinfo"):  # started before the unblocking: the thread keeps SIGTERM blocked
        threading.Thread(target=_end_on_parents_sigterm, args=(os.getppid(),), name="npxception-sigterm",
                         daemon=True).start()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGINT,))
    else:  # no sender to tell: every SIGTERM ends the worker
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


def _end_on_parents_sigterm(parent: int) -> None:
    """Take each SIGTERM (blocked in every thread of the worker) and die of it if `parent` sent it."""
    while True:
        if signal.sigwaitinfo((signal.SIGTERM,)).si_pid == parent:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, (signal.SIGTERM,))
            # This thread is the only one not blocking it now: the default action ends the worker.
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)


def _worker_main(worker: int, job: Job, shm: shared_memory.SharedMemory, tasks, results) -> None:
    _reset_signals()  # first: before anything else can run a handler inherited from the trainer
    parent = mp.parent_process()
    slots = _slot_views(shm, job.slots, job.slot_rows, job.transform.size, job.dtype)
    results.put(("ready", worker))  # the parent may unlink the segment's name once every worker has it
    reader = Reader(job.index)
    try:
        while True:
            if parent is not None and not parent.is_alive():
                return  # orphaned (the parent was killed): the tasks still queued are nobody's
            try:
                task = tasks.get(timeout=1.0)
            except queue.Empty:
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
        del slots  # the views must go before the mapping can close
        shm.close()


def _unlink(shm: shared_memory.SharedMemory) -> None:
    try:
        shm.unlink()
    except FileNotFoundError:
        pass  # unlinked already


def _start(processes) -> None:
    """Start the workers with SIGINT and SIGTERM blocked, so that neither can reach a forked worker
    before `_reset_signals` has replaced the trainer's handlers (the parent gets them once unblocked)."""
    if not hasattr(signal, "pthread_sigmask"):
        for p in processes:
            p.start()
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        for p in processes:
            p.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _stop_processes(processes, deadline: float = SHUTDOWN_SECONDS) -> None:
    """SIGTERM to every worker, wait for all of them together until `deadline` seconds have passed,
    then SIGKILL the ones still there (a worker stuck in a hung read, say)."""
    processes = [p for p in processes if p.pid is not None]  # those that were started
    for p in processes:
        if p.exitcode is None:
            p.terminate()
    _wait_all(processes, time.monotonic() + deadline)
    for p in processes:
        if p.exitcode is None:
            p.kill()
    _wait_all(processes, time.monotonic() + deadline)


def _wait_all(processes, until: float) -> None:
    """Reap the processes that exit before `until` (monotonic time), all waited for at once."""
    running = list(processes)
    while running:
        for p in running:
            p.join(timeout=0)  # reaps it if it has exited
        running = [p for p in running if p.exitcode is None]
        left = until - time.monotonic()
        if not running or left <= 0:
            return
        connection.wait([p.sentinel for p in running], timeout=left)


def _shutdown(processes, shm, queues) -> None:
    _stop_processes(processes)
    for q in queues:
        q.cancel_join_thread()  # do not block on undelivered tasks of dead workers
        q.close()
    _unlink(shm)
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

    def __init__(self, index: ImageIndex, transform: Transform | WholeImage, seed: int, *, workers: int, slots: int,
                 slot_rows: int, dtype=np.float32, start_method: str | None = None, timeout: float = 300.0):
        if workers < 1:
            raise ValueError(f"workers must be >= 1 for a worker pool, got {workers}")
        method = start_method or default_start_method()
        ctx = mp.get_context(method)
        dtype = np.dtype(dtype)
        nbytes = max(1, slots * slot_rows * transform.size * transform.size * 3 * dtype.itemsize)
        self._shm = shared_memory.SharedMemory(f"{SHM_PREFIX}{os.getpid()}-{secrets.token_hex(6)}", create=True,
                                               size=nbytes)
        self.slots = _slot_views(self._shm, slots, slot_rows, transform.size, dtype)
        self.tasks, self.results = ctx.Queue(), ctx.Queue()
        job = Job(index, transform, seed, slots, slot_rows, dtype.str)
        # Under fork the segment object (and its mapping) is inherited; otherwise it is pickled by name.
        self.processes = [ctx.Process(target=_worker_main, args=(k, job, self._shm, self.tasks, self.results),
                                      name=f"npxception-data-{k}", daemon=True) for k in range(workers)]
        self._finalizer = weakref.finalize(self, _shutdown, self.processes, self._shm, (self.tasks, self.results))
        self._waiting = set(range(workers))  # workers not yet reported attached
        if method == "fork":  # the workers inherit the mapping: the name is not needed from here on
            _unlink(self._shm)
            self._waiting.clear()
        _start(self.processes)
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
            if message[0] == "ready":
                self._attached(message[1])
                continue
            if message[0] == "crash":
                last = message[2].strip().splitlines()[-1]  # the exception itself; one line
                raise WorkerError(f"data worker {message[1]} failed: {last}")
            return message

    def _attached(self, worker: int) -> None:
        """Unlink the segment's name once the last spawned worker has mapped it."""
        if worker in self._waiting:
            self._waiting.discard(worker)
            if not self._waiting:
                _unlink(self._shm)

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


def available_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a batch scheduler)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers() -> int:
    """One worker per core, leaving one core for the training loop (at least one, at most 16)."""
    return max(1, min(16, available_cores() - 1))


def check_workers(workers: int, slot_bytes: int | None = None) -> None:
    """Refuse more workers than the cores can keep busy (WORKERS_PER_CORE per core) or, given the
    bytes of the shared batch slots, than the memory available holds with WORKER_BYTES for each."""
    cores = available_cores()
    if workers > WORKERS_PER_CORE * cores:
        raise ValueError(f"--workers {workers} is more than {WORKERS_PER_CORE * cores} ({WORKERS_PER_CORE} per core "
                         f"on the {cores} core(s) this process may use); use at most {WORKERS_PER_CORE * cores}")
    available = None if slot_bytes is None else available_memory()
    if available is None or workers * WORKER_BYTES + slot_bytes <= available:
        return
    bound = max(0, (available - slot_bytes) // WORKER_BYTES)
    raise ValueError(f"--workers {workers} needs about {format_bytes(workers * WORKER_BYTES + slot_bytes)} "
                     f"({format_bytes(WORKER_BYTES)} per worker and {format_bytes(slot_bytes)} of batch slots), "
                     f"this machine has about {format_bytes(available)} available; use at most {bound} "
                     "(0: decode in the training process) or a smaller --batch-size")

