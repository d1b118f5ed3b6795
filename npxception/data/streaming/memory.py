"""Small images decoded once, up front, into an in-memory `Dataset`, instead of streamed.

Streaming pays, per image and per epoch, for a read, a JPEG header, a decode, a random box, a
Pillow resize and a seeded generator: at CIFAR's 32x32 the decode is the smaller part of that,
and all of it comes back every epoch (measured in benchmarks/results/data_cpu.md). Decoded once,
50,000 such images take 50,000 x 32 x 32 x 3 bytes = 154 MB, and the in-memory loader's crop and
flip of a batch cost far less than streaming it. So a set of
small images that fits a memory budget is decoded up front by the worker pool (uint8 slots, the
same processes, signals and shutdown as streaming) and trained from memory; anything else streams.

    choice = choose_loading(index, image_size)          # reads a few headers, decodes nothing
    if choice.in_memory:
        decoded = materialize(index, choice.image_size, workers=2, progress=True)
        data, line = decoded.data, decoded.line         # "data: 45,000 images decoded into memory ..."

`rows` selects the entries to decode (e.g. one rank's share); the images are bitwise those that
`WholeImage(size)(bytes)` gives one by one, whatever the worker count.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass

import numpy as np

from ...resources import IN_MEMORY_LIMIT, available_memory, format_bytes
from ..dataset import Dataset, DatasetError
from .decode import DecodeError, image_shape
from .index import ImageIndex, Reader
from .pool import WorkerPool, available_cores, check_workers, fill
from .transforms import RESIZE_HINT, WholeImage

log = logging.getLogger("npxception.data")
# Images up to this many pixels on their longer side are decoded up front when they fit the budget.
SMALL_IMAGE_SIDE = 64
HEADER_SAMPLE = 64
# Images per worker task: large enough that a task's messages cost nothing beside its decodes,
# small enough for a smooth progress bar and slots of a few MB.
CHUNK = 256
MAX_WORKERS = 16


def _rows(index: ImageIndex, rows) -> np.ndarray:
    if rows is None:
        return np.arange(len(index))
    rows = np.arange(len(index))[rows] if isinstance(rows, slice) else np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1 or (len(rows) and (rows.min() < 0 or rows.max() >= len(index))):
        raise ValueError(f"rows must be entries of the {len(index)}-image index, got {rows.ndim}-D values in "
                         f"[{rows.min() if rows.size else 0}, {rows.max() if rows.size else 0}]")
    return rows


def memory_budget() -> int:
    """Bytes a decoded set may take: a quarter of the memory available, at most IN_MEMORY_LIMIT."""
    available = available_memory()
    return IN_MEMORY_LIMIT if available is None else min(IN_MEMORY_LIMIT, available // 4)


@dataclass(frozen=True)
class LoadingChoice:
    """What `choose_loading` decided. image_size: the side the images are decoded to (the given
    size, else the images' own); nbytes: what the decoded set takes; reason: why, in a few words."""

    in_memory: bool
    image_size: int | None
    count: int
    nbytes: int
    budget: int
    largest_side: int
    reason: str


def _sampled_shapes(index: ImageIndex, rows: np.ndarray) -> list[tuple[int, int]]:
    """(height, width) from the headers of up to HEADER_SAMPLE entries spread over `rows`."""
    picked = rows[np.unique(np.linspace(0, len(rows) - 1, min(len(rows), HEADER_SAMPLE)).astype(np.int64))]
    reader, shapes = Reader(index), []
    try:
        for i in picked:
            try:
                shapes.append(image_shape(reader.read(int(i))))
            except (DecodeError, OSError) as e:
                raise DatasetError(f"{index.name(int(i))}: {e}") from None
    finally:
        reader.close()
    return shapes


def choose_loading(index: ImageIndex, image_size: int | None = None, *, rows=None, budget: int | None = None,
                   max_side: int = SMALL_IMAGE_SIDE) -> LoadingChoice:
    """In memory when the images are small (longer side <= max_side, from a sample of headers) and
    decoded at image_size (or their own size) they fit `budget` bytes (default `memory_budget()`);
    else streamed. Without image_size the sampled images must all be one square size."""
    rows = _rows(index, rows)
    budget = memory_budget() if budget is None else budget
    shapes = _sampled_shapes(index, rows) if len(rows) else [(0, 0)]
    largest = max(max(shape) for shape in shapes)
    size = image_size
    if size is None and len(set(shapes)) == 1 and shapes[0][0] == shapes[0][1]:
        size = shapes[0][0]
    nbytes = len(rows) * (size or largest) ** 2 * 3
    if largest > max_side:
        reason = f"images up to {largest} px, above the {max_side} px decoded up front"
    elif size is None:
        reason = f"images of different sizes ({', '.join(f'{w}x{h}' for h, w in sorted(set(shapes))[:3])}) " \
                 "and no --image-size"
    elif nbytes > budget:
        reason = f"decoded they would take {format_bytes(nbytes)}, over the {format_bytes(budget)} memory budget"
    else:
        reason = f"{format_bytes(nbytes)} decoded, within the {format_bytes(budget)} memory budget"
    in_memory = largest <= max_side and size is not None and nbytes <= budget
    return LoadingChoice(in_memory, size, len(rows), nbytes, budget, largest, reason)


@dataclass(frozen=True)
class Materialized:
    """An up-front decode: the dataset, the index rows it holds (in order: those asked for, less
    any unreadable ones left out), how long it took, with how many processes."""

    data: Dataset
    rows: np.ndarray
    seconds: float
    workers: int

    @property
    def line(self) -> str:
        """One line for the run's output: what was decoded, its size, the time and processes."""
        processes = "in this process" if self.workers == 0 else \
            f"with {self.workers} process{'es' if self.workers > 1 else ''}"
        return (f"data: {len(self.data):,} images decoded into memory ({format_bytes(self.data.images.nbytes)}) "
                f"in {self.seconds:.1f} s {processes}")


def streamed_line(workers: int, choice: LoadingChoice | None = None) -> str:
    """The run's data line when the images are streamed, with why when `choice` says."""
    why = f" ({choice.reason})" if choice is not None else ""
    return f"data: streamed with {workers} worker{'s' if workers != 1 else ''}{why}"


def materialize_workers(count: int) -> int:
    """Every core this process may use (nothing else runs during the decode), at most MAX_WORKERS,
    and no more than there are chunks; 0 (this process) for a single chunk."""
    chunks = -(-count // CHUNK)
    return 0 if chunks <= 1 else min(available_cores(), MAX_WORKERS, chunks)


def materialize(index: ImageIndex, image_size: int | None = None, *, rows=None, workers: int | None = None,
                progress: bool = True, skip_bad: bool = False, start_method: str | None = None) -> Materialized:
    """The entries `rows` (default all) of `index`, decoded to uint8 (image_size, image_size, 3) by
    `workers` processes (0: this one; default `materialize_workers`), with a progress bar on stderr
    unless `progress` is False. Without image_size every image must have the first one's square
    size. Unreadable images are a DatasetError naming the file, or with skip_bad left out with a
    logged warning each."""
    rows = _rows(index, rows)
    if not len(rows):
        raise DatasetError(f"{index.root}: no images to decode")
    transform = _transform(index, rows, image_size)
    workers = materialize_workers(len(rows)) if workers is None else workers
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0: decode in this process), got {workers}")
    size = transform.size
    images = np.empty((len(rows), size, size, 3), dtype=np.uint8)
    start = time.perf_counter()
    with _progress_bar(len(rows), progress) as bar:
        if workers == 0:
            bad = _decode_here(index, transform, rows, images, bar)
        else:
            bad = _decode_pooled(index, transform, rows, images, bar, workers, start_method)
    seconds = time.perf_counter() - start
    keep = _drop_bad(bad, len(rows), skip_bad)
    if keep is not None:
        images, rows = images[keep], rows[keep]
    data = Dataset.checked(images, index.labels[rows], index.class_names, index.root)
    return Materialized(data, rows, seconds, workers)


def _transform(index: ImageIndex, rows: np.ndarray, image_size: int | None) -> WholeImage:
    if image_size is not None:
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        return WholeImage(image_size)
    (height, width), = _sampled_shapes(index, rows[:1])
    if height != width:
        raise DatasetError(f"{index.name(int(rows[0]))}: is {width}x{height}, not square; give --image-size to "
                           "decode every image at one square size")
    return WholeImage(height, strict=True)


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n: int) -> None:
        pass


def _progress_bar(total: int, shown: bool):
    if not shown:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="image", desc="decoding", file=sys.stderr, leave=False, dynamic_ncols=True)


def _decode_here(index, transform, rows, images, bar) -> list:
    reader = Reader(index)
    bad = []
    try:
        for first in range(0, len(rows), CHUNK):
            chunk = rows[first:first + CHUNK]
            found = fill(reader, transform, 0, 0, chunk, images[first:first + len(chunk)])
            bad += [(first + row, name, reason) for row, name, reason in found]
            bar.update(len(chunk))
    finally:
        reader.close()
    return bad


def _decode_pooled(index, transform, rows, images, bar, workers, start_method) -> list:
    """Chunks of CHUNK rows, each decoded by a worker into a uint8 slot and copied out by this
    process (a few KB per image), two slots per worker so none waits for the copy."""
    chunks = [(first, rows[first:first + CHUNK]) for first in range(0, len(rows), CHUNK)]
    slots = min(2 * workers, len(chunks))
    check_workers(workers, slot_bytes=slots * CHUNK * transform.size ** 2 * 3)
    pool = WorkerPool(index, transform, 0, workers=workers, slots=slots, slot_rows=CHUNK, dtype=np.uint8,
                      start_method=start_method)
    bad, in_slot, upcoming = [], {}, iter(range(len(chunks)))
    try:
        for slot in range(slots):
            _submit(pool, chunks, next(upcoming), slot, in_slot)
        while in_slot:
            _, task, found = pool.result()
            first, chunk = chunks[task]
            slot = in_slot.pop(task)
            images[first:first + len(chunk)] = pool.slots[slot][:len(chunk)]
            bad += [(first + row, name, reason) for row, name, reason in found]
            bar.update(len(chunk))
            following = next(upcoming, None)
            if following is not None:
                _submit(pool, chunks, following, slot, in_slot)
    finally:
        pool.close()
    return bad


def _submit(pool: WorkerPool, chunks: list, task: int, slot: int, in_slot: dict) -> None:
    in_slot[task] = slot
    pool.submit(task, slot, 0, 0, chunks[task][1])


def _drop_bad(bad: list, count: int, skip_bad: bool) -> np.ndarray | None:
    """None when every image was read; else the rows to keep (skipping) or a DatasetError."""
    if not bad:
        return None
    bad.sort()
    if not skip_bad:
        _, name, reason = bad[0]
        if reason.endswith(RESIZE_HINT):  # readable, only of another size: skipping it is not the cure
            raise DatasetError(f"{name}: {reason}")
        raise DatasetError(f"{name}: {reason}; pass --skip-bad-images to leave out unreadable files")
    for _, name, reason in bad:
        log.warning("skipping unreadable image %s: %s", name, reason)
    if len(bad) == count:
        raise DatasetError(f"every one of the {count} images is unreadable, e.g. {bad[0][1]}: {bad[0][2]}")
    keep = np.ones(count, dtype=bool)
    keep[[row for row, _, _ in bad]] = False
    return keep
