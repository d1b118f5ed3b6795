"""Datasets and batches: the built-in shapes, CIFAR-10, .npz arrays, image folders, tar shards; the loaders."""

from .dataset import Dataset, DatasetError, describe_dataset, holdout_split, warn_if_one_class
from .files import load_cifar10, load_image_folder, load_npz, read_image
from .loader import Loader, preprocess
from .shapes import make_shapes
from .sources import DATASETS, DataSpec, load_evaluation, load_split, resolve_stream
from .streaming import StreamingDataset, StreamingLoader, make_loader

__all__ = ["DATASETS", "DataSpec", "Dataset", "DatasetError", "Loader", "StreamingDataset", "StreamingLoader",
           "describe_dataset", "holdout_split", "load_cifar10", "load_evaluation", "load_image_folder", "load_npz",
           "load_split", "make_loader", "make_shapes", "preprocess", "read_image", "resolve_stream",
           "warn_if_one_class"]
