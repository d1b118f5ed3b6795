"""Datasets bigger than memory: image folders and tar shards read lazily, decoded by worker processes.

    index.py       where each image is (paths or shard offsets), labels, class names; cached
    shards.py      reading one tar shard, refusing truncation, links, duplicate keys, bad labels
    cache.py       the index cache: atomic writes, fallback location, damaged or stale files rebuilt
    fingerprint.py sizes, modification times and sampled content hashes for checkpoints
    decode.py      JPEG decoding at reduced DCT size (simplejpeg, Pillow's draft mode as fallback)
    transforms.py  the Inception crop + flip for training, the centre crop for evaluation
    pool.py        worker processes writing batches into shared memory
    loader.py      StreamingDataset and StreamingLoader (the in-memory Loader's interface)
    split.py       training / validation sets from a DataSpec
"""

from .decode import DecodeError, decode, image_shape
from .index import ImageIndex, Reader, folder_index, shard_files, shard_index
from .loader import StreamingDataset, StreamingLoader, make_loader
from .pool import WorkerError, WorkerPool, default_workers, sample_rng
from .split import streaming_evaluation, streaming_split
from .transforms import EVAL_CROP_FRACTION, Transform, center_box, random_resized_box

__all__ = ["EVAL_CROP_FRACTION", "DecodeError", "ImageIndex", "Reader", "StreamingDataset", "StreamingLoader",
           "Transform", "WorkerError", "WorkerPool", "center_box", "decode", "default_workers", "folder_index",
           "image_shape", "make_loader", "random_resized_box", "sample_rng", "shard_files", "shard_index",
           "streaming_evaluation", "streaming_split"]
