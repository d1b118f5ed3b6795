"""Small generated image folders and tar shards for the streaming tests (written at test time)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from npxception.data.streaming import folder_index


def jpeg_bytes(pixels: np.ndarray, quality: int = 90) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def picture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth colour gradients plus noise: compresses like a photograph, unlike pure noise."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([np.sin(6 * x + rng.uniform(0, 6)), np.cos(5 * y + rng.uniform(0, 6)), x * y], axis=-1)
    return np.clip(127 + 100 * base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def make_folder(root, count: int, classes: int = 3, seed: int = 0, png_every: int = 5):
    """`count` images of mixed sizes (JPEG, every `png_every`-th PNG) in `classes` class folders."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        folder = root / f"class{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        h, w = rng.integers(24, 56, size=2)
        pixels = picture(rng, int(h), int(w))
        if png_every and i % png_every == 0:
            Image.fromarray(pixels).save(folder / f"img{i:04d}.png")
        else:
            (folder / f"img{i:04d}.jpg").write_bytes(jpeg_bytes(pixels))
    return root


def make_shards(folder_root, out, per_shard: int = 7):
    """The folder's images, in its index order, as webdataset shards KEY.jpg/.png + KEY.cls."""
    index = folder_index(folder_root, cache=False)
    out.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(index), per_shard):
        with tarfile.open(out / f"part-{start // per_shard:03d}.tar", "w") as tar:
            for i in range(start, min(start + per_shard, len(index))):
                path = index.name(i)
                key = f"sample{i:05d}"
                for name, data in ((key + os.path.splitext(path)[1], Path(path).read_bytes()),
                                   (key + ".cls", str(int(index.labels[i])).encode())):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    return out


def write_shard(path, samples) -> None:
    """A tar shard of (key, image bytes, label) samples: KEY.jpg (or .png for PNG bytes) + KEY.cls."""
    with tarfile.open(path, "w") as tar:
        for key, data, label in samples:
            suffix = ".png" if data[:4] == b"\x89PNG" else ".jpg"
            for name, payload in ((key + suffix, data), (key + ".cls", str(label).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def make_small_shards(out, count: int, size: int = 32, classes: int = 3, per_shard: int = 10, seed: int = 0):
    """`count` size x size JPEGs (label i % classes) in shards part-000.tar, part-001.tar, ..."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    samples = [(f"sample{i:05d}", jpeg_bytes(picture(rng, size, size)), i % classes) for i in range(count)]
    for start in range(0, count, per_shard):
        write_shard(out / f"part-{start // per_shard:03d}.tar", samples[start:start + per_shard])
    return out
