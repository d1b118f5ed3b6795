"""Training and validation sets from a `DataSpec` ("folder" or "shards"): StreamingDatasets, or
for small images `Dataset`s decoded up front (memory.py), whichever `choose_loading` picks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..dataset import Dataset, DatasetError
from .index import ImageIndex, folder_index, shard_index
from .loader import StreamingDataset
from .memory import LoadingChoice, choose_loading, materialize, streamed_line
from .pool import default_workers


def spec_index(spec) -> ImageIndex:
    """The index of the folder or shards `spec` names."""
    if spec.dataset == "folder":
        return folder_index(spec.data_dir)
    if spec.dataset == "shards":  # --skip-bad-images also leaves out what a damaged shard lost
        return shard_index(spec.data_dir, skip_bad=spec.skip_bad_images)
    raise DatasetError(f"only the folder and shards datasets can be streamed, not {spec.dataset!r}")


def _dataset(spec, index: ImageIndex, workers: int | None) -> StreamingDataset:
    if spec.image_size is None:
        raise DatasetError("a streamed dataset needs an image size (--image-size)")
    return StreamingDataset(index, spec.image_size, skip_bad=spec.skip_bad_images,
                            workers=default_workers() if workers is None else workers)


def split_rows(spec, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, validation rows) of an n-entry index: the same seeded hold-out as
    `holdout_split` (and so, for a folder, the images the in-memory reader holds out), then the
    first `train_size` of the rest."""
    val_count = spec.val_size or max(1, n // 10)
    if not 0 < val_count < n:
        raise DatasetError(f"cannot hold out {val_count} of {n} images for validation; "
                           f"choose a count between 1 and {n - 1}")
    order = np.random.default_rng(spec.seed).permutation(n)
    return np.sort(order[val_count:])[:spec.train_size], np.sort(order[:val_count])


def streaming_split(spec, workers: int | None = None) -> tuple[StreamingDataset, StreamingDataset]:
    """(train, validation) StreamingDatasets of `split_rows`."""
    index = spec_index(spec)
    train, val = split_rows(spec, len(index))
    data = _dataset(spec, index, workers)
    return data.subset(train), data.subset(val)


@dataclass(frozen=True)
class Loaded:
    """Data for a run: `train` and `val` (`val` None for an evaluation set), in memory or streamed,
    and the run's one-line account of it ("data: 45,000 images decoded into memory (138.2 MB) in
    ... s with 2 processes", or "data: streamed with 2 workers (why)")."""

    train: Dataset | StreamingDataset
    val: Dataset | StreamingDataset | None
    in_memory: bool
    line: str


def _decide(spec, index: ImageIndex, rows: np.ndarray, in_memory: bool | None, budget: int | None) -> LoadingChoice:
    choice = choose_loading(index, spec.image_size, rows=rows, budget=budget)
    if in_memory is None or in_memory == choice.in_memory:
        return choice
    if in_memory and choice.image_size is None:
        raise DatasetError(f"{spec.data_dir}: cannot decode into memory: {choice.reason}")
    why = "as recorded (decoded up front)" if in_memory else "as recorded"
    return LoadingChoice(in_memory, choice.image_size, choice.count, choice.nbytes, choice.budget,
                         choice.largest_side, why)


def _decoded(spec, index, parts: list[np.ndarray], choice: LoadingChoice, workers, progress) -> tuple[list, str]:
    """Each of `parts` (rows of `index`) as an in-memory Dataset, all decoded in one pass."""
    rows = np.concatenate(parts)
    decoded = materialize(index, choice.image_size, rows=rows, workers=workers, progress=progress,
                          skip_bad=spec.skip_bad_images)
    # The decode keeps the rows' order, so each part's surviving images stay together.
    kept = np.isin(rows, decoded.rows)
    ends = np.cumsum([len(part) for part in parts])
    bounds = [0] + [int(kept[:end].sum()) for end in ends]
    return [decoded.data.subset(slice(a, b)) for a, b in zip(bounds[:-1], bounds[1:])], decoded.line


def decoded_or_streamed_split(spec, workers: int | None = None, *, in_memory: bool | None = None,
                              budget: int | None = None, progress: bool = True, train_rows=None,
                              val_rows=None) -> Loaded:
    """(train, validation) of `split_rows`, decoded into memory when `choose_loading` says the
    images are small and fit `budget` (in_memory None), or as given (True/False: what a run
    recorded, so that --resume loads its data the same way). workers: processes decoding (for the
    up-front decode, default every core; for streaming, cores - 1). train_rows / val_rows:
    positions within the training / validation rows to keep (a rank's share); all by default."""
    index = spec_index(spec)
    train, val = split_rows(spec, len(index))
    train = train if train_rows is None else train[train_rows]
    val = val if val_rows is None else val[val_rows]
    choice = _decide(spec, index, np.concatenate([train, val]), in_memory, budget)
    if not choice.in_memory:
        data = _dataset(spec, index, workers)
        return Loaded(data.subset(train), data.subset(val), False, streamed_line(data.workers, choice))
    (train_data, val_data), line = _decoded(spec, index, [train, val], choice, workers, progress)
    return Loaded(train_data, val_data, True, line)


def decoded_or_streamed_evaluation(spec, workers: int | None = None, *, in_memory: bool | None = None,
                                   budget: int | None = None, progress: bool = True) -> Loaded:
    """Every image of the folder or shards, loaded as `decoded_or_streamed_split` would (`val` None)."""
    index = spec_index(spec)
    rows = np.arange(len(index))
    choice = _decide(spec, index, rows, in_memory, budget)
    if not choice.in_memory:
        data = _dataset(spec, index, workers)
        return Loaded(data, None, False, streamed_line(data.workers, choice))
    (data,), line = _decoded(spec, index, [rows], choice, workers, progress)
    return Loaded(data, None, True, line)


def streaming_evaluation(spec, workers: int | None = None) -> StreamingDataset:
    """Every image of the folder or shards."""
    return _dataset(spec, spec_index(spec), workers)
