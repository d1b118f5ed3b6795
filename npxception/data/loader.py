"""Mini-batches for training and evaluation: seeded shuffling, augmentation, background prefetch.

Batch b of epoch e is a pure function of (seed, e, b): the epoch's order is a permutation drawn
from the generator seeded by (seed, e), and batch b's augmentation from (seed, e, b). So a run
resumed at any batch sees exactly the batches an uninterrupted run would, with no generator
state to save, and the prefetch thread cannot change what is drawn.

Batches are preprocessed as Keras's Xception expects: x / 127.5 - 1, in the model's dtype.

`share=(rank, size)` makes the loader prepare only rank's contiguous rows of every global batch
(`batch_share`), with the augmentation those rows get in the whole batch: rank r of a data-parallel
job reads and augments its own images only, and its rows are bitwise those of one process.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np

from ..preprocessing import preprocess_input
from .augment import augment as augment_batch
from .dataset import Dataset


def preprocess(images: np.ndarray, dtype=np.float32) -> np.ndarray:
    """uint8 (N, H, W, 3) in 0..255 -> floats in [-1, 1]: x / 127.5 - 1 (Keras's Xception)."""
    return preprocess_input(images).astype(dtype, copy=False)


def batch_share(rows: int, size: int, rank: int) -> tuple[int, int]:
    """[start, stop) of `rank`'s contiguous share of a batch of `rows` (shares differ by at most one)."""
    base, extra = divmod(rows, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class _RowsOfBatch:
    """A generator that draws what a whole batch of `total` images draws and hands back `rows` of it.

    The augmentation draws one value (or one row of values) per image, in arrays of the batch's
    length; through this its draws for a share of the batch are those the share's images get when
    the whole batch is augmented."""

    def __init__(self, rng: np.random.Generator, total: int, rows: slice):
        self.rng, self.total, self.rows = rng, total, rows

    def _whole(self, size) -> tuple:
        size = (size,) if np.isscalar(size) else tuple(size)
        return (self.total, *size[1:])

    def integers(self, low, high=None, size=None, **options):
        return self.rng.integers(low, high, size=self._whole(size), **options)[self.rows]

    def random(self, size=None, **options):
        return self.rng.random(size=self._whole(size), **options)[self.rows]


def epoch_order(count: int, shuffle: bool, seed: int, epoch: int) -> np.ndarray:
    """The order of `count` samples in `epoch`: a permutation seeded by (seed, epoch), or 0..count-1.

    Every loader (in memory or streamed) draws it here, so batch b of epoch e holds the same samples
    whichever loader serves it."""
    if not shuffle:
        return np.arange(count)
    return np.random.default_rng([seed, epoch]).permutation(count)


class Loader:
    """Iterates a Dataset in batches of (x (B, H, W, 3) float, labels (B,) int64).

    shuffle: a new seeded order each epoch; augment: random crop (pad 4) and flip, for training
    only; the last batch holds the remainder (it is smaller, never dropped); prefetch: how many
    batches a background thread prepares ahead of the consumer (0: prepare in the caller);
    share: (rank, size) to prepare only that rank's rows of every batch.
    """

    def __init__(self, data: Dataset, batch_size: int, *, shuffle: bool = False, augment: bool = False,
                 seed: int = 0, prefetch: int = 2, dtype=np.float32, share: tuple[int, int] | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if share is not None and not 0 <= share[0] < share[1]:
            raise ValueError(f"share must be (rank, size) with 0 <= rank < size, got {share!r}")
        self.data, self.batch_size = data, batch_size
        self.shuffle, self.augment, self.seed = shuffle, augment, seed
        self.prefetch, self.dtype, self.share = prefetch, np.dtype(dtype), share

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of `epoch`."""
        return epoch_order(len(self.data), self.shuffle, self.seed, epoch)

    def batch(self, epoch: int, index: int, order: np.ndarray | None = None):
        """Batch `index` of `epoch`: (x, labels), only this loader's share of it when it has one."""
        order = self.order(epoch) if order is None else order
        rows = order[index * self.batch_size:(index + 1) * self.batch_size]
        total, mine = len(rows), slice(None)
        if self.share is not None:
            mine = slice(*batch_share(total, self.share[1], self.share[0]))
            rows = rows[mine]
        images = self.data.images[rows]
        if self.augment:
            rng = np.random.default_rng([self.seed, epoch, index])
            images = augment_batch(images, rng if self.share is None else _RowsOfBatch(rng, total, mine))
        return preprocess(images, self.dtype), self.data.labels[rows]

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The batches of `epoch` from batch `start` on (to resume in the middle of an epoch)."""
        order = self.order(epoch)
        make = lambda index: self.batch(epoch, index, order)  # noqa: E731
        if self.prefetch <= 0:
            return (make(index) for index in range(start, len(self)))
        return _prefetched(make, range(start, len(self)), self.prefetch)


_DONE = object()


def _prefetched(make: Callable, indices: range, depth: int) -> Iterator:
    """Yield make(i) for i in indices, computed `depth` items ahead in a daemon thread.

    NumPy releases the GIL in the copies and arithmetic, so preparing batch b+1 overlaps with the
    model's work on batch b. If the consumer stops early (an exception, Ctrl-C, a break), the
    `finally` tells the worker to stop instead of leaving it blocked on a full queue.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def worker():
        try:
            for index in indices:
                if not put(make(index)):
                    return
            put(_DONE)
        except BaseException as error:  # handed to the consumer, which re-raises it
            put(error)

    thread = threading.Thread(target=worker, name="npxception-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
