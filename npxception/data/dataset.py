"""The one in-memory dataset type every source returns, its checks, and a seeded hold-out split.

A `Dataset` is uint8 images (N, H, W, 3), NHWC RGB, 0..255, and int64 labels (N,) in [0, K),
with the K class names. Every reader builds one through `Dataset.checked`, so a wrong file gives
the same clear `DatasetError` whatever its format.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass

import numpy as np


class DatasetError(ValueError):
    """A dataset that cannot be used: a wrong path, a corrupt file, or inconsistent contents."""


@dataclass(frozen=True)
class Dataset:
    """images: uint8 (N, H, W, 3); labels: int64 (N,) in [0, len(class_names))."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    @classmethod
    def checked(cls, images, labels, class_names, source: str) -> Dataset:
        """Validate and normalise; `source` names the file or folder in error messages."""
        images, labels = np.asarray(images), np.asarray(labels)
        if images.dtype != np.uint8:
            raise DatasetError(f"{source}: images must be uint8 (0..255), got dtype {images.dtype}")
        if images.ndim != 4 or images.shape[3] != 3:
            raise DatasetError(f"{source}: images must be NHWC RGB with shape (N, H, W, 3), "
                               f"got shape {images.shape}")
        if not np.issubdtype(labels.dtype, np.integer) or labels.ndim != 1:
            raise DatasetError(f"{source}: labels must be a 1-D integer array, got dtype "
                               f"{labels.dtype} and shape {labels.shape}")
        if len(images) != len(labels):
            raise DatasetError(f"{source}: {len(images)} images but {len(labels)} labels; "
                               "the two must have the same length")
        if len(images) == 0:
            raise DatasetError(f"{source}: the dataset is empty")
        k = len(class_names)
        if labels.min() < 0 or labels.max() >= k:
            raise DatasetError(f"{source}: labels must be in [0, {k}) for {k} classes, got values "
                               f"in [{labels.min()}, {labels.max()}]")
        return cls(np.ascontiguousarray(images), labels.astype(np.int64),
                   tuple(str(name) for name in class_names))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def subset(self, index: np.ndarray) -> Dataset:
        return Dataset(self.images[index], self.labels[index], self.class_names)


def describe_dataset(data: Dataset) -> dict:
    """What a checkpoint records of its data: counts, shape, class names and a digest of the pixels and
    labels, so that a resumed run can tell it is given the same images (JSON-serialisable).

    A streamed dataset (data/streaming) holds no pixels: the digest covers its index instead (which
    files, in which order), and the keys "data_bytes", "sizes_digest", "mtimes_digest" and
    "content_digest" its files: their sizes and modification times and a hash of a bounded sample of
    their bytes (streaming/fingerprint.py), so a folder whose pictures were replaced is told apart
    without decoding an image. "digest" keeps its meaning, so checkpoints written before those keys
    still match the same data."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(data.labels, dtype="<i8").tobytes())
    images = getattr(data, "images", None)
    files = {}
    if images is None:
        digest.update(data.index.names_blob)
        files = data.index.describe_files()
    else:
        digest.update(memoryview(np.ascontiguousarray(images)).cast("B"))
    return {"count": len(data), "image_shape": list(data.image_shape), "class_names": list(data.class_names),
            "digest": digest.hexdigest(), **files}


def warn_if_one_class(data: Dataset, source: str) -> None:
    """Training on one class learns nothing (every prediction is right): say so, do not refuse."""
    present = np.unique(data.labels)
    if len(present) == 1:
        warnings.warn(f"{source}: every training image has the same class "
                      f"({data.class_names[int(present[0])]!r}); a classifier learns nothing from it",
                      UserWarning, stacklevel=2)


def holdout_split(data: Dataset, val_count: int, seed: int) -> tuple[Dataset, Dataset]:
    """(train, val): `val_count` images drawn by a seeded permutation are held out for validation."""
    if not 0 < val_count < len(data):
        raise DatasetError(f"cannot hold out {val_count} of {len(data)} images for validation; "
                           f"choose --val-size between 1 and {len(data) - 1}")
    order = np.random.default_rng(seed).permutation(len(data))
    return data.subset(np.sort(order[val_count:])), data.subset(np.sort(order[:val_count]))
