"""Which dataset a run uses, as a small JSON-friendly description, and how to load it.

A `DataSpec` is what `npxception train` records in its checkpoint, so that `evaluate` and
`--resume` rebuild exactly the same training and validation images:

- "shapes": the built-in procedural set; train and validation images are drawn from different
  seeds (`seed` and `seed + 1`), so they never overlap.
- "cifar10": `data_dir` holds `cifar-10-batches-py`; training = the five data batches,
  validation = the test batch.
- "npz": `data_path` is an .npz (`images`, `labels`); `val_size` images are held out by a seeded
  permutation (default: a tenth).
- "folder": `data_dir` has one subfolder per class; images resized to `image_size`; held out as npz.
- "shards": `data_dir` is a folder of webdataset-style .tar shards (`KEY.jpg` + `KEY.cls`), a
  glob or a `{000..099}` range; small images (CIFAR-size) decoded into memory up front when they
  fit, else streamed (`resolve_stream`); held out as npz.

`val_data_dir`: for folder and shards, the validation images come from there (a held-out shard, a
test folder) and every image of `data_dir` trains; without it they are held out of `data_dir`.

`stream`: read a folder lazily through worker processes (`streaming/`) instead of into memory;
None decides by size (`resolve_stream`), and the resolved value is what a checkpoint records.
Streamed images are cropped to `image_size` (the Inception crop for training, the centre crop for
evaluation); `skip_bad_images` drops unreadable files from a streamed set instead of stopping,
and the samples a damaged shard lost (see README.md, "Every byte accounted for").

`train_size` (and for cifar10 `val_size`) keep the first images only, for quick runs.
"""

from __future__ import annotations

import dataclasses
import operator
import os
from dataclasses import dataclass
from pathlib import Path

from ..resources import IN_MEMORY_LIMIT
from .dataset import Dataset, DatasetError, holdout_split, warn_if_one_class
from .files import load_cifar10, load_image_folder, load_npz
from .shapes import make_shapes

DATASETS = ("shapes", "cifar10", "npz", "folder", "shards")
STREAMABLE = ("folder", "shards")
SHAPES_TRAIN_SIZE, SHAPES_VAL_SIZE, SHAPES_IMAGE_SIZE = 6000, 1000, 32


@dataclass(frozen=True)
class DataSpec:
    dataset: str = "shapes"
    data_dir: str | None = None
    data_path: str | None = None
    train_size: int | None = None
    val_size: int | None = None
    image_size: int | None = None
    seed: int = 0
    stream: bool | None = None
    skip_bad_images: bool = False
    val_data_dir: str | None = None

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise DatasetError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.dataset in ("cifar10", "folder", "shards") and not self.data_dir:
            raise DatasetError(f"--dataset {self.dataset} needs --data-dir")
        if self.dataset == "npz" and not self.data_path:
            raise DatasetError("--dataset npz needs --data-path (an .npz with 'images' and 'labels')")
        if self.val_data_dir is not None and self.dataset not in STREAMABLE:
            raise DatasetError(f"--val-data-dir takes a folder or shards like --data-dir; --dataset {self.dataset} "
                               "brings its own validation images")
        if self.stream and self.dataset not in STREAMABLE:
            raise DatasetError(f"only {' and '.join(STREAMABLE)} datasets can be streamed, not {self.dataset!r}")
        for name in ("train_size", "val_size", "image_size", "seed"):
            value = getattr(self, name)
            if value is None and name != "seed":
                continue
            flag = "--data-seed" if name == "seed" else f"--{name.replace('_', '-')}"
            try:
                value = operator.index(value)
            except TypeError:
                raise DatasetError(f"{flag} must be an integer, got {value!r}") from None
            if value < (0 if name == "seed" else 1):
                raise DatasetError(f"{flag} must be >= {0 if name == 'seed' else 1}, got {value}")
            object.__setattr__(self, name, value)
        if self.dataset == "npz" and self.image_size is not None:
            raise DatasetError("--image-size resizes the shapes and folder datasets; an .npz is used at the "
                               "size of its images (resize them when writing it)")
        # Absolute paths, so a checkpoint still finds its data from another working directory.
        for name in ("data_dir", "data_path", "val_data_dir"):
            value = getattr(self, name)
            if value is not None and self.dataset == "shards" and any(c in value for c in "*?[{"):
                object.__setattr__(self, name, os.path.abspath(os.path.expanduser(value)))  # keep the pattern
            elif value is not None:
                object.__setattr__(self, name, str(Path(value).expanduser().resolve()))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 16 * 2**30


def resolve_stream(spec: DataSpec) -> DataSpec:
    """`spec` with `stream` decided: shards in memory when their images are small and fit
    (`streaming.choose_loading`), else streamed; a folder when its decoded images (count x
    image_size^2 x 3 bytes, or the first image's own size) exceed IN_MEMORY_LIMIT or a quarter of
    this machine's memory; everything else is in memory."""
    if spec.stream is not None or spec.dataset not in STREAMABLE:
        return spec if spec.stream is not None else dataclasses.replace(spec, stream=False)
    from .streaming import Reader, choose_loading, folder_index, image_shape
    from .streaming.split import spec_index

    if spec.dataset == "shards":
        return dataclasses.replace(spec, stream=not choose_loading(spec_index(spec), spec.image_size).in_memory)
    index = folder_index(spec.data_dir)
    if spec.image_size:
        pixels = spec.image_size ** 2
    else:
        reader = Reader(index)
        height, width = image_shape(reader.read(0))
        reader.close()
        pixels = height * width
    count = min(len(index), spec.train_size or len(index))
    return dataclasses.replace(spec, stream=count * pixels * 3 > min(IN_MEMORY_LIMIT, _memory_bytes() // 4))


def _first(data: Dataset, count: int | None) -> Dataset:
    return data if count is None or count >= len(data) else data.subset(slice(0, count))


def load_split(spec: DataSpec, workers: int | None = None, *, progress: bool = False,
               report=None) -> tuple[Dataset, Dataset]:
    """(train, validation) for `spec`; StreamingDatasets (decoded by `workers` processes) when it
    streams; shards that do not stream decoded up front by `workers` processes (a progress bar
    with `progress`; `report(line)` receives the one-line account of it). Warns when the training
    images are all of one class."""
    spec = resolve_stream(spec)
    if spec.val_data_dir is not None:
        train = load_evaluation(dataclasses.replace(spec, val_data_dir=None), workers, progress=progress, report=report)
        train = _first(train, spec.train_size)
        val = _first(load_evaluation(_validation(spec), workers, progress=progress), spec.val_size)
    elif spec.dataset == "shards" and not spec.stream:
        from .streaming import decoded_or_streamed_split

        loaded = decoded_or_streamed_split(spec, workers, in_memory=True, progress=progress)
        train, val = loaded.train, loaded.val
        if report is not None:
            report(loaded.line)
    elif spec.stream:
        from .streaming import streaming_split

        train, val = streaming_split(spec, workers)
    else:
        train, val = _split(spec)
    warn_if_one_class(train, spec.data_path or spec.data_dir or spec.dataset)
    return train, val


def _validation(spec: DataSpec) -> DataSpec:
    """The spec of a run's separate validation images: `val_data_dir`'s, loaded the training data's way."""
    return dataclasses.replace(spec, data_dir=spec.val_data_dir, val_data_dir=None, train_size=None, val_size=None)


def _split(spec: DataSpec) -> tuple[Dataset, Dataset]:
    if spec.dataset == "shapes":
        size = spec.image_size or SHAPES_IMAGE_SIZE
        train = make_shapes(spec.train_size or SHAPES_TRAIN_SIZE, size, spec.seed)
        return train, make_shapes(spec.val_size or SHAPES_VAL_SIZE, size, spec.seed + 1)
    if spec.dataset == "cifar10":
        if spec.image_size not in (None, 32):
            raise DatasetError(f"CIFAR-10 images are 32x32; --image-size {spec.image_size} is not supported")
        train = _first(load_cifar10(spec.data_dir, "train"), spec.train_size)
        return train, _first(load_cifar10(spec.data_dir, "test"), spec.val_size)
    data = load_evaluation(spec)
    train, val = holdout_split(data, spec.val_size or max(1, len(data) // 10), spec.seed)
    return _first(train, spec.train_size), val


def load_evaluation(spec: DataSpec, workers: int | None = None, *, progress: bool = False,
                    report=None) -> Dataset:
    """The images to evaluate on when a dataset is named for `evaluate`: the validation set for
    shapes and cifar10 (the test batch), every image of an .npz file, image folder or shards
    (`progress` and `report` as for `load_split`)."""
    spec = resolve_stream(spec)
    if spec.dataset == "shards" and not spec.stream:
        from .streaming import decoded_or_streamed_evaluation

        loaded = decoded_or_streamed_evaluation(spec, workers, in_memory=True, progress=progress)
        data = loaded.train
        if report is not None:
            report(loaded.line)
    elif spec.stream:
        from .streaming import streaming_evaluation

        data = streaming_evaluation(spec, workers)
    elif spec.dataset == "npz":
        data = load_npz(spec.data_path)
    elif spec.dataset == "folder":
        data = load_image_folder(spec.data_dir, spec.image_size)
    else:
        return load_split(spec)[1]
    return data
