"""Datasets from disk: CIFAR-10's Python pickles, any `.npz` of arrays, and image folders.

Each reader returns a `Dataset` and turns every way a path can be wrong (missing, not a file,
unreadable, corrupt, inconsistent) into one `DatasetError` that names the path.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np

from .dataset import Dataset, DatasetError

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def _existing(path, kind: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: no such {kind}")
    if kind == "file" and not path.is_file():
        raise DatasetError(f"{path}: expected a file, found a directory")
    if kind == "directory" and not path.is_dir():
        raise DatasetError(f"{path}: expected a directory, found a file")
    return path


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch: b"data" (n, 3072) uint8 stored channel-planar (R, G, B planes of 32x32)."""
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"])
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"{path}: not a CIFAR-10 Python batch ({type(e).__name__}: {e})") from None
    return images, labels


def load_cifar10(data_dir, split: str = "train") -> Dataset:
    """CIFAR-10 from `cifar-10-batches-py` (or its parent): split "train" (50,000) or "test" (10,000)."""
    root = _existing(data_dir, "directory")
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = CIFAR10_TRAIN_FILES if split == "train" else (CIFAR10_TEST_FILE,)
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise DatasetError(f"{root}: not a CIFAR-10 Python folder (cifar-10-batches-py); missing "
                           f"{', '.join(missing)}")
    parts = [_cifar_batch(root / name) for name in names]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return Dataset.checked(images, labels, CIFAR10_CLASSES, str(root))


def load_npz(path) -> Dataset:
    """An .npz with `images` uint8 (N, H, W, 3) and `labels` int (N,); optional `class_names`."""
    path = _existing(path, "file")
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path}: not an .npz archive (np.savez writes a zip of .npy arrays)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = {"images", "labels"} - set(archive.files)
            if missing:
                raise DatasetError(f"{path}: an .npz dataset needs arrays 'images' and 'labels'; "
                                   f"missing {sorted(missing)} (found {sorted(archive.files)})")
            images, labels = archive["images"], archive["labels"]
            names = archive["class_names"] if "class_names" in archive.files else None
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from None
    if names is None:
        count = int(np.max(labels)) + 1 if np.size(labels) and np.issubdtype(labels.dtype, np.integer) else 0
        names = [str(i) for i in range(count)]
    return Dataset.checked(images, labels, [str(n) for n in names], str(path))


def _read_image(path: Path, size: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size is not None and image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read as an image ({type(e).__name__}: {e})") from None


def read_image(path, size: int | None = None) -> np.ndarray:
    """One image file as uint8 (H, W, 3) RGB, resized to size x size when `size` is given."""
    return _read_image(_existing(path, "file"), size)


def load_image_folder(data_dir, size: int | None = None) -> Dataset:
    """One subfolder per class (sorted names = class order), images resized to size x size.

    Without `size` every image must already have the same height and width.
    """
    root = _existing(data_dir, "directory")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root}: an image folder needs one subfolder per class; found none")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for file in files:
            images.append(_read_image(file, size))
            labels.append(label)
    if not images:
        raise DatasetError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise DatasetError(f"{root}: images have different sizes {sorted(shapes)[:3]}...; "
                           "give an image size to resize them")
    return Dataset.checked(np.stack(images), np.asarray(labels), classes, str(root))
