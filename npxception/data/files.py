"""Datasets from disk: CIFAR-10's Python pickles, any `.npz` of arrays, and image folders.

Each reader returns a `Dataset` and turns every way a path can be wrong (missing, not a file,
unreadable, corrupt, inconsistent) into one `DatasetError` that names the path.

CIFAR-10's batches are pickles, and unpickling runs whatever functions the file names: they are
read by `SafeUnpickler`, which builds only what those files hold and refuses every other global.
"""

from __future__ import annotations

import os
import pickle
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..resources import check_fits
from .dataset import Dataset, DatasetError
from .pixels import rgb_image

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
                   "truck")
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Without class names, an .npz's classes are 0..max(label). More than this means a stray label, not
# a dataset: the classifier, the per-class metrics and the K x K confusion matrix would not fit.
MAX_UNNAMED_CLASSES = 100_000


def _existing(path, kind: str) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path}: no such {kind}")
    if kind == "file" and not path.is_file():
        raise DatasetError(f"{path}: expected a file, found a directory")
    if kind == "directory" and not path.is_dir():
        raise DatasetError(f"{path}: expected a directory, found a file")
    return path


def _pickle_globals() -> dict:
    """(module, name) -> object for every global a CIFAR-10 batch may name.

    The official files (Python 2, protocol 2) hold a dict of bytes keys, a list of ints, a list of
    file names and one uint8 array; an array pickles as `multiarray._reconstruct(ndarray, ...)` with
    a `dtype`. Files written again with NumPy 2 say `numpy._core`, protocol 5 uses `_frombuffer`,
    NumPy integers in the label list pickle as `multiarray.scalar`, and Python 3's protocol 2 writes
    bytes as `_codecs.encode(text, "latin1")`. Each of these only builds data."""
    import _codecs

    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # NumPy 1.x
        from numpy.core import multiarray, numeric
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype, ("_codecs", "encode"): _codecs.encode}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR-10 batches: builds dicts, lists, bytes, str, numbers and NumPy arrays;
    any other global (os.system, builtins.eval, ...) raises UnsafePickleError before it is looked up."""

    def find_class(self, module: str, name: str):
        found = _pickle_globals().get((module, name))
        if found is None:
            raise UnsafePickleError(repr(f"{module}.{name}"))  # repr: a crafted name may hold a newline
        return found


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle naming a global that a data file has no business calling."""


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch: b"data" (n, 3072) uint8 stored channel-planar (R, G, B planes of 32x32)."""
    try:
        with open(path, "rb") as f:
            batch = SafeUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"])
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except UnsafePickleError as e:
        raise DatasetError(f"{path}: refused: the pickle asks for {e}, which a CIFAR-10 batch never holds (only "
                           "arrays, lists, bytes and numbers); a crafted pickle runs code when loaded") from None
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, IndexError,
            AttributeError) as e:
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
            with zipfile.ZipFile(path) as z:
                unpacked = sum(info.file_size for info in z.infolist())
            check_fits(2 * unpacked, f"the arrays of {path} (and a copy for the split)",
                       "use a smaller .npz")
            images, labels = archive["images"], archive["labels"]
            names = archive["class_names"] if "class_names" in archive.files else None
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DatasetError(f"{path}: cannot read as .npz ({type(e).__name__}: {e})") from None
    if names is None:
        count = int(np.max(labels)) + 1 if np.size(labels) and np.issubdtype(labels.dtype, np.integer) else 0
        if count > MAX_UNNAMED_CLASSES:
            raise DatasetError(f"{path}: labels go up to {count - 1}, which would make {count} classes; "
                               f"without a 'class_names' array at most {MAX_UNNAMED_CLASSES} are accepted "
                               "(add class_names, or number the classes from 0)")
        names = [str(i) for i in range(count)]
    return Dataset.checked(images, labels, [str(n) for n in names], str(path))


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.size
    except Image.DecompressionBombError as e:
        raise DatasetError(f"{path}: too large to decode safely ({e})") from None
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read as an image ({type(e).__name__}: {e})") from None


def _read_image(path: Path, size: int | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            width, height = image.size
            # Decoding, the RGB copy and the resize each hold the whole picture.
            check_fits(3 * 4 * width * height, f"decoding {path} ({width}x{height})", "use a smaller image")
            image = rgb_image(image)  # 16-bit greyscale scaled to 8 bits, not clipped
            if size is not None and image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except Image.DecompressionBombError as e:  # Pillow's guard against images made to exhaust memory
        raise DatasetError(f"{path}: too large to decode safely ({e})") from None
    except MemoryError as e:
        raise DatasetError(f"{path}: not enough memory to decode it ({e})") from None
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DatasetError(f"{path}: cannot read as an image ({type(e).__name__}: {e})") from None


def read_image(path, size: int | None = None) -> np.ndarray:
    """One image file as uint8 (H, W, 3) RGB, resized to size x size when `size` is given."""
    return _read_image(_existing(path, "file"), size)


def _is_image_file(entry: os.DirEntry) -> bool:
    try:
        return entry.is_file() and Path(entry.name).suffix.lower() in IMAGE_SUFFIXES  # follows symlinks
    except OSError:  # a link into a folder we may not read
        return False


def list_image_folder(root: Path) -> tuple[list[str], list[list[str]], str | None]:
    """(class names, each class's image file names, both sorted; a one-line note naming what is left out).

    Left out and counted: every entry of a class folder that is not an image file (other files,
    subfolders, broken links) and image files directly under `root`, outside any class. Hidden
    names (".DS_Store", ".git") are ignored silently, as are other files under `root` (a README)."""
    with os.scandir(root) as entries:
        top = list(entries)
    classes = sorted(e.name for e in top if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root}: an image folder needs one subfolder per class; found none")
    left_out = sorted(e.name for e in top if not e.name.startswith(".") and _is_image_file(e))
    found = []
    for name in classes:
        with os.scandir(root / name) as entries:
            images, other = [], []
            for e in entries:
                if _is_image_file(e):
                    images.append(e.name)
                elif not e.name.startswith("."):
                    other.append(f"{name}/{e.name}" + ("/" if e.is_dir() else ""))
        found.append(sorted(images))
        left_out += sorted(other)
    if not any(found):
        raise DatasetError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    note = None
    if left_out:
        note = (f"{root}: {len(left_out)} entries left out, not being an image file "
                f"({', '.join(IMAGE_SUFFIXES)}) inside a class folder: {', '.join(left_out[:3])}"
                f"{', ...' if len(left_out) > 3 else ''}")
    return classes, found, note


def load_image_folder(data_dir, size: int | None = None) -> Dataset:
    """One subfolder per class (sorted names = class order), images resized to size x size.

    Without `size` every image must already have the same height and width.
    """
    root = _existing(data_dir, "directory")
    classes, found, note = list_image_folder(root)
    if note:
        warnings.warn(note, UserWarning, stacklevel=2)
    files = [root / name / f for name, names in zip(classes, found) for f in names]
    labels = [label for label, names in enumerate(found) for _ in names]
    # Headers first: what the decoded images will take is known before the first one is decoded.
    sizes = [_image_size(file) for file in files]
    if size is None and len(set(sizes)) > 1:
        raise DatasetError(f"{root}: images have different sizes {sorted(set(sizes))[:3]}...; "
                           "give --image-size to resize them")
    pixels = len(files) * size * size if size is not None else sum(w * h for w, h in sizes)
    check_fits(2 * 3 * pixels, f"the {len(files)} images of {root} (uint8, and a stacked copy)",
               "give a smaller --image-size" if size is not None else "give --image-size to shrink them")
    images = [_read_image(file, size) for file in files]
    shapes = {image.shape for image in images}
    if len(shapes) > 1:  # a header that lied about the size
        raise DatasetError(f"{root}: images have different sizes {sorted(shapes)[:3]}...; "
                           "give --image-size to resize them")
    return Dataset.checked(np.stack(images), np.asarray(labels), classes, str(root))
