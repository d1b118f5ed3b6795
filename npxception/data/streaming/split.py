"""Training and validation StreamingDatasets from a `DataSpec` ("folder" or "shards")."""

from __future__ import annotations

import numpy as np

from ..dataset import DatasetError
from .index import ImageIndex, folder_index, shard_index
from .loader import StreamingDataset
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


def streaming_split(spec, workers: int | None = None) -> tuple[StreamingDataset, StreamingDataset]:
    """(train, validation): the same seeded hold-out as `holdout_split` (and so, for a folder,
    the same images the in-memory reader would hold out), then the first `train_size`."""
    index = spec_index(spec)
    n = len(index)
    val_count = spec.val_size or max(1, n // 10)
    if not 0 < val_count < n:
        raise DatasetError(f"cannot hold out {val_count} of {n} images for validation; "
                           f"choose a count between 1 and {n - 1}")
    order = np.random.default_rng(spec.seed).permutation(n)
    train = np.sort(order[val_count:])[:spec.train_size]
    data = _dataset(spec, index, workers)
    return data.subset(train), data.subset(np.sort(order[:val_count]))


def streaming_evaluation(spec, workers: int | None = None) -> StreamingDataset:
    """Every image of the folder or shards."""
    return _dataset(spec, spec_index(spec), workers)
