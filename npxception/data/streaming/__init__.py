"""Datasets bigger than memory: image folders and tar shards read lazily, decoded by worker processes.

    index.py       where each image is (paths or shard offsets), labels, class names; cached
    shards.py      reading one tar shard, refusing truncation, links, duplicate keys, bad labels
    cache.py       the index cache: atomic writes, fallback location, damaged or stale files rebuilt
    fingerprint.py sizes, modification times and sampled content hashes for checkpoints
    decode.py      JPEG decoding at reduced DCT size (simplejpeg, Pillow's draft mode as fallback)
    transforms.py  the Inception crop + flip for training, the centre crop for evaluation
    pool.py        worker processes writing batches into shared memory
    loader.py      StreamingDataset and StreamingLoader (the in-memory Loader's interface)
    memory.py      small images decoded once, up front, into an in-memory Dataset
    split.py       training / validation sets from a DataSpec, streamed or decoded up front
"""

from .decode import DecodeError, decode, image_shape
from .index import ImageIndex, Reader, folder_index, shard_files, shard_index
from .loader import StreamingDataset, StreamingLoader, make_loader
from .memory import LoadingChoice, Materialized, choose_loading, materialize, memory_budget, streamed_line
from .pool import WorkerError, WorkerPool, default_workers, sample_rng
from .split import (
    Loaded, decoded_or_streamed_evaluation, decoded_or_streamed_split, split_rows, streaming_evaluation,
    streaming_split,
)
from .transforms import EVAL_CROP_FRACTION, Transform, WholeImage, center_box, random_resized_box

__all__ = ["EVAL_CROP_FRACTION", "DecodeError", "ImageIndex", "Loaded", "LoadingChoice", "Materialized", "Reader",
           "StreamingDataset", "StreamingLoader", "Transform", "WholeImage", "WorkerError", "WorkerPool",
           "center_box", "choose_loading", "decode", "decoded_or_streamed_evaluation", "decoded_or_streamed_split",
           "default_workers", "folder_index", "image_shape", "make_loader", "materialize", "memory_budget",
           "random_resized_box", "sample_rng", "shard_files", "shard_index", "split_rows", "streamed_line",
           "streaming_evaluation", "streaming_split"]
