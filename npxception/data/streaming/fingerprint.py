"""What a checkpoint records of a streamed dataset's files, so that `--resume` refuses replaced data.

A streamed dataset holds no pixels, so `describe_dataset`'s "digest" covers only its names and
labels. These keys add the files themselves:

- "data_bytes": the total size of the files (a folder) or of the shards used;
- "sizes_digest": every file's (or shard's) name and size, and for shards every image member's
  offset and size;
- "mtimes_digest": every file's (or shard's) name and modification time (ns);
- "content_digest": the first and last CONTENT_BYTES bytes of each image (all of a smaller one),
  for shards with the member's tar header; of every image when there are at most
  MAX_CONTENT_SAMPLES, else of that many spread evenly over the index.

Cheap by design: one stat per file, and at most MAX_CONTENT_SAMPLES x 2 x CONTENT_BYTES bytes read
(32 MiB), whatever the dataset's size. What it cannot see: a file rewritten with the same size and
modification time (`touch -r`, some copy tools) whose bytes changed only outside the hashed ends,
or in an image that is not among the hashed ones. Copying the data elsewhere without keeping
modification times (`cp -r` rather than `cp -a` or `rsync -a`) changes "mtimes_digest" alone, which
a resume notes rather than refuses (npxception/train/resume.py).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..dataset import DatasetError

CONTENT_BYTES = 4096
MAX_CONTENT_SAMPLES = 4096
TAR_HEADER = 512


def _ends(f, start: int, size: int) -> bytes:
    """The bytes [start, start + size) of `f` when small, else its first and last CONTENT_BYTES."""
    f.seek(start)
    if size <= 2 * CONTENT_BYTES:
        return f.read(size)
    head = f.read(CONTENT_BYTES)
    f.seek(start + size - CONTENT_BYTES)
    return head + f.read(CONTENT_BYTES)


def _spread(count: int) -> np.ndarray:
    """MAX_CONTENT_SAMPLES entries evenly spread over `count` (all of them when fewer)."""
    if count <= MAX_CONTENT_SAMPLES:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, MAX_CONTENT_SAMPLES).astype(np.int64))


def _stat(path: str) -> os.stat_result:
    try:
        return os.stat(path)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({type(e).__name__}: {e.strerror or e})") from None


def _digest() -> hashlib.blake2b:
    return hashlib.blake2b(digest_size=16)


def _names(index) -> list[str]:
    offsets, blob = index.name_offsets, index.names_blob
    return [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(len(index))]


def _folder(index) -> dict:
    root = Path(index.root)
    names = _names(index)
    sizes, mtimes, content = _digest(), _digest(), _digest()
    lengths = []
    for name in names:
        stat = _stat(str(root / name))
        sizes.update(f"{name}\0{stat.st_size}\n".encode())
        mtimes.update(f"{name}\0{stat.st_mtime_ns}\n".encode())
        lengths.append(stat.st_size)
    for i in _spread(len(names)):
        try:
            with open(root / names[i], "rb") as f:
                content.update(_ends(f, 0, lengths[i]))
        except OSError as e:
            raise DatasetError(f"{root / names[i]}: cannot read ({type(e).__name__}: {e.strerror or e})") from None
    return {"data_bytes": int(sum(lengths)), "sizes_digest": sizes.hexdigest(), "mtimes_digest": mtimes.hexdigest(),
            "content_digest": content.hexdigest()}


def _shards(index) -> dict:
    used = [int(s) for s in np.unique(index.shard_ids)]
    sizes, mtimes, content = _digest(), _digest(), _digest()
    total = 0
    for shard in used:
        name, stat = Path(index.shards[shard]).name, _stat(index.shards[shard])
        sizes.update(f"{name}\0{stat.st_size}\n".encode())
        mtimes.update(f"{name}\0{stat.st_mtime_ns}\n".encode())
        total += stat.st_size
    sizes.update(np.ascontiguousarray(index.offsets, dtype="<i8").tobytes())
    sizes.update(np.ascontiguousarray(index.sizes, dtype="<i8").tobytes())
    files: dict = {}
    try:
        for i in _spread(len(index)):
            shard, offset, size = int(index.shard_ids[i]), int(index.offsets[i]), int(index.sizes[i])
            f = files.get(shard) or files.setdefault(shard, open(index.shards[shard], "rb"))
            content.update(_ends(f, offset - TAR_HEADER, size + TAR_HEADER))  # the header holds name, size, mtime
    except OSError as e:
        raise DatasetError(f"{index.shards[shard]}: cannot read ({type(e).__name__}: {e.strerror or e})") from None
    finally:
        for f in files.values():
            f.close()
    return {"data_bytes": total, "sizes_digest": sizes.hexdigest(), "mtimes_digest": mtimes.hexdigest(),
            "content_digest": content.hexdigest()}


def describe_files(index) -> dict:
    """The keys above for an ImageIndex (JSON-serialisable: ints and hex strings)."""
    return _folder(index) if index.kind == "folder" else _shards(index)
