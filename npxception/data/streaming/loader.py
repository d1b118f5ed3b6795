"""A dataset read from disk as it is used, and its loader, with the in-memory `Loader`'s interface.

`StreamingDataset` holds an index (paths or shard offsets, labels, class names), never pixels;
`StreamingLoader` yields (x (B, size, size, 3) float, labels (B,) int64) like `Loader`, with
`len(loader)` and `loader.epoch(epoch, start=batch)`, so the trainer and `evaluate` take either.

Determinism: the epoch's order is the permutation seeded by (seed, epoch), exactly as `Loader`
draws it, and sample i's crop and flip come from the generator seeded by (seed, epoch, i). A batch
is therefore the same whether 0, 1 or 16 workers decode it, in whatever order they finish, and a
run resumed at batch b sees the batches an uninterrupted run would. `rows` selects a row range of
every global batch (rank r of R data-parallel processes can take its share of the same batch).

Unreadable images raise a `DatasetError` naming the file; with `skip_bad=True` they are logged
once (with the file and the reason) and dropped from their batch, which is then smaller.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..dataset import DatasetError
from ..loader import Loader, epoch_order
from .index import ImageIndex, Reader
from .pool import WorkerPool, check_workers, default_workers, fill
from .transforms import EVAL_CROP_FRACTION, Transform

log = logging.getLogger("npxception.data")
# The default prefetch depth stays within this much shared memory (float32: 31 batches of 32 at 299).
PREFETCH_BYTES = 2**30


@dataclass(frozen=True)
class StreamingDataset:
    """Images of `index`, decoded on demand to image_size x image_size RGB.

    workers: processes decoding for each loader (0: decode in the calling process);
    skip_bad: drop unreadable images instead of stopping; crop_fraction: evaluation's centre crop.
    """

    index: ImageIndex
    image_size: int
    skip_bad: bool = False
    workers: int = field(default_factory=default_workers)
    crop_fraction: float = EVAL_CROP_FRACTION
    reduced_decode: bool = True

    def __post_init__(self):
        if self.image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {self.image_size}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0: decode in this process), got {self.workers}")
        check_workers(self.workers)  # the cores' bound; the loader checks the memory for its batches

    def __len__(self) -> int:
        return len(self.index)

    @property
    def labels(self) -> np.ndarray:
        return self.index.labels

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.index.class_names

    @property
    def num_classes(self) -> int:
        return len(self.index.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, 3)

    def subset(self, rows) -> StreamingDataset:
        rows = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows)
        return dataclasses.replace(self, index=self.index.subset(rows))

    def loader(self, batch_size: int, **options) -> StreamingLoader:
        return StreamingLoader(self, batch_size, **options)


class StreamingLoader:
    """Batches of a StreamingDataset, decoded by `data.workers` processes `prefetch` batches ahead.

    augment: the Inception crop and flip (training); otherwise the centre crop (evaluation).
    rows: a slice of every global batch's rows to produce (default all). The pool lives for one
    `epoch()` iteration and is shut down when it ends or is abandoned.
    """

    def __init__(self, data: StreamingDataset, batch_size: int, *, shuffle: bool = False, augment: bool = False,
                 seed: int = 0, prefetch: int | None = None, dtype=np.float32, rows: slice | None = None,
                 start_method: str | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if rows is not None and (not isinstance(rows, slice) or rows.step not in (None, 1)):
            raise ValueError(f"rows must be a slice with step 1 (e.g. slice(0, 32)), got {rows!r}")
        if prefetch is not None and prefetch < 1:
            raise ValueError(f"prefetch must be >= 1 batch, got {prefetch}")
        self.data, self.batch_size = data, batch_size
        self.shuffle, self.augment, self.seed, self.rows = shuffle, augment, seed, rows
        self.workers = data.workers
        # Two batches per worker keep every worker busy while the trainer consumes one.
        self.dtype, self.start_method = np.dtype(dtype), start_method
        batch_bytes = batch_size * data.image_size ** 2 * 3 * self.dtype.itemsize
        self.prefetch = prefetch or max(2, min(2 * self.workers, PREFETCH_BYTES // batch_bytes))
        if self.workers:
            check_workers(self.workers, slot_bytes=self.prefetch * batch_bytes)
        self.transform = Transform(data.image_size, train=augment, crop_fraction=data.crop_fraction,
                                   reduced_decode=data.reduced_decode)
        self._reported: set[str] = set()

    def __len__(self) -> int:
        return -(-len(self.data) // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The sample order of `epoch` (the same permutation `Loader` draws)."""
        return epoch_order(len(self.data), self.shuffle, self.seed, epoch)

    def samples(self, epoch: int, index: int, order: np.ndarray | None = None) -> np.ndarray:
        """The sample numbers in batch `index` of `epoch` (only `rows` of it, when given)."""
        order = self.order(epoch) if order is None else order
        batch = order[index * self.batch_size:(index + 1) * self.batch_size]
        return batch if self.rows is None else batch[self.rows]

    def batch(self, epoch: int, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Batch `index` of `epoch`, decoded in this process."""
        samples = self.samples(epoch, index)
        out = np.empty((len(samples), *self.data.image_shape), dtype=self.dtype)
        reader = Reader(self.data.index)
        try:
            bad = fill(reader, self.transform, self.seed, epoch, samples, out)
        finally:
            reader.close()
        return self._finish(out, samples, bad, epoch, index)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The batches of `epoch` from batch `start` on."""
        if not 0 <= start <= len(self):
            raise ValueError(f"start must be in [0, {len(self)}], got {start}")
        if self.workers == 0:
            return (self.batch(epoch, index) for index in range(start, len(self)))
        return self._pooled(epoch, start)

    def _pooled(self, epoch: int, start: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = self.order(epoch)
        indices = range(start, len(self))
        if not indices:
            return
        slot_rows = max(len(self.samples(epoch, i, order)) for i in (indices[0], indices[-1]))
        slots = min(self.prefetch, len(indices))
        pool = WorkerPool(self.data.index, self.transform, self.seed, workers=self.workers, slots=slots,
                          slot_rows=max(slot_rows, 1), dtype=self.dtype, start_method=self.start_method)
        pending: dict[int, list] = {}  # batch -> [slot, samples, tasks outstanding, bad rows]
        free = list(range(slots))
        upcoming = iter(indices)

        def submit() -> None:
            index = next(upcoming, None)
            if index is None:
                return
            slot, samples = free.pop(), self.samples(epoch, index, order)
            # Split the batch over the workers so that each batch is ready as soon as possible.
            chunks = np.array_split(np.arange(len(samples)), min(self.workers, len(samples))) if len(samples) else []
            pending[index] = [slot, samples, len(chunks), []]
            for part, rows in enumerate(chunks):
                pool.submit((index, part), slot, int(rows[0]), epoch, samples[rows])

        try:
            for _ in range(slots):
                submit()
            for index in indices:
                while pending[index][2] > 0:
                    _, (done, _), bad = pool.result()
                    pending[done][2] -= 1
                    pending[done][3].extend(bad)
                slot, samples, _, bad = pending.pop(index)
                # A copy: the slot is refilled while the consumer still holds this batch.
                batch = self._finish(pool.slots[slot][:len(samples)].copy(), samples, bad, epoch, index)
                free.append(slot)
                submit()
                yield batch
        finally:
            pool.close()

    def _finish(self, images: np.ndarray, samples: np.ndarray, bad: list, epoch: int, index: int):
        """(images, labels), without the unreadable rows when skipping them."""
        if bad:
            _, name, reason = min(bad)
            if not self.data.skip_bad:
                # Counted from 1 in what a person reads, as the progress bar counts.
                raise DatasetError(f"{name}: {reason} (batch {index + 1} of epoch {epoch + 1}); pass "
                                   "--skip-bad-images to leave out unreadable files")
            for _, name, reason in bad:
                if name not in self._reported:
                    self._reported.add(name)
                    log.warning("skipping unreadable image %s: %s", name, reason)
            keep = np.ones(len(samples), dtype=bool)
            keep[[row for row, _, _ in bad]] = False
            if not keep.any():
                raise DatasetError(f"every image of batch {index + 1} of epoch {epoch + 1} is unreadable, e.g. "
                                   f"{name}: {reason}")
            images, samples = images[keep], samples[keep]
        return images, self.data.labels[samples]


def make_loader(data, batch_size: int, **options) -> Loader | StreamingLoader:
    """The loader for `data`: a StreamingLoader for a StreamingDataset, else the in-memory Loader.

    options: shuffle, augment, seed, dtype (both), prefetch.
    """
    if isinstance(data, StreamingDataset):
        return data.loader(batch_size, **options)
    return Loader(data, batch_size, **options)
