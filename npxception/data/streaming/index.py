"""The index of a streamed dataset: where each image's bytes are, its label, the class names.

Two layouts:

- an image folder, one subfolder per class (sorted names = class order, files sorted within a
  class, the same order `load_image_folder` reads them in); an entry is a path relative to the root;
- webdataset-style `.tar` shards: members `KEY.jpg` (or .jpeg/.png/.webp) and `KEY.cls` (the
  label as ASCII digits) side by side; an entry is (shard, byte offset, byte size) of the image
  member, so a worker reads it with one seek and one read, without parsing the tar again.

Paths are kept as one UTF-8 blob with offsets rather than a list of str: a million entries
take tens of MB and pickle to the worker processes in one piece.

The index is cached beside the data (`.npxception-index.npz` in an image folder,
`.npxception-index-<hash of the shard list>.npz` beside shards; written atomically) or, where the
data folder is read-only, under ~/.cache/npxception (cache.py). A folder's cache is reused while
the mtime of every class folder is unchanged (adding, removing or renaming a file changes it); a
shard index while every shard's size and mtime are. A damaged or stale cache is rebuilt, with a
warning naming it.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import names_for_labels
from ..dataset import DatasetError
from ..files import list_image_folder
from .cache import cache_paths, load_cache, save_cache
from .fingerprint import describe_files
from .shards import SHARD_IMAGE_SUFFIXES, scan_shard

log = logging.getLogger("npxception.data")
CACHE_NAME = ".npxception-index.npz"


@dataclass(frozen=True)
class ImageIndex:
    """kind "folder" or "shards"; root: the folder, or the shard files; per entry: the name
    (relative path, or the shard member's name), label, and for shards the shard number,
    byte offset and size of the image member."""

    kind: str
    root: str
    shards: tuple[str, ...]
    names_blob: bytes
    name_offsets: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    shard_ids: np.ndarray | None = None
    offsets: np.ndarray | None = None
    sizes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def name(self, i: int) -> str:
        """The file (folder) or `shard.tar:member` (shards) of entry i, for error messages."""
        raw = self.names_blob[self.name_offsets[i]:self.name_offsets[i + 1]].decode("utf-8")
        if self.kind == "folder":
            return str(Path(self.root) / raw)
        return f"{self.shards[self.shard_ids[i]]}:{raw}"

    def subset(self, rows: np.ndarray) -> ImageIndex:
        """The entries `rows`, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.name_offsets[rows], self.name_offsets[rows + 1]
        blob = b"".join(self.names_blob[s:e] for s, e in zip(starts, ends))
        offsets = np.concatenate([[0], np.cumsum(ends - starts)]).astype(np.int64)
        pick = (lambda a: None if a is None else a[rows])  # noqa: E731
        return ImageIndex(self.kind, self.root, self.shards, blob, offsets, self.labels[rows],
                          self.class_names, pick(self.shard_ids), pick(self.offsets), pick(self.sizes))

    def describe_files(self) -> dict:
        """Sizes, modification times and a sampled content hash of the entries' files (fingerprint.py)."""
        return describe_files(self)


def _blob(names: list[str]) -> tuple[bytes, np.ndarray]:
    encoded = [n.encode("utf-8") for n in names]
    return b"".join(encoded), np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)


# --------------------------------------------------------------------------- caching

def _key(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def _to_arrays(index: ImageIndex, notes: list[str]) -> dict:
    arrays = {"kind": np.asarray(index.kind), "root": np.asarray(index.root),
              "shards": np.asarray(index.shards, dtype=str),
              "names_blob": np.frombuffer(index.names_blob, dtype=np.uint8), "name_offsets": index.name_offsets,
              "labels": index.labels, "class_names": np.asarray(index.class_names, dtype=str),
              "notes": np.asarray(notes, dtype=str)}
    for name in ("shard_ids", "offsets", "sizes"):
        if getattr(index, name) is not None:
            arrays[name] = getattr(index, name)
    return arrays


def _from_arrays(a: dict) -> tuple[ImageIndex, list[str]]:
    optional = {n: a.get(n) for n in ("shard_ids", "offsets", "sizes")}
    index = ImageIndex(str(a["kind"]), str(a["root"]), tuple(str(s) for s in a["shards"]), a["names_blob"].tobytes(),
                       a["name_offsets"], a["labels"], tuple(str(c) for c in a["class_names"]), **optional)
    return index, [str(n) for n in a["notes"]]


def _check(arrays: dict) -> None:
    """Raise ValueError unless the cached arrays make a consistent index (a cache is not trusted)."""
    index, _ = _from_arrays(arrays)
    n, offsets = len(index.labels), index.name_offsets
    if index.kind not in ("folder", "shards") or offsets.shape != (n + 1,) or n == 0:
        raise ValueError(f"{n} labels with {offsets.shape} name offsets")
    if offsets[0] != 0 or offsets[-1] != len(index.names_blob) or (np.diff(offsets) < 0).any():
        raise ValueError("name offsets do not cover the names")
    if index.labels.min() < 0 or index.labels.max() >= len(index.class_names):
        raise ValueError("labels outside the class list")
    if index.kind == "shards":
        parts = (index.shard_ids, index.offsets, index.sizes)
        if any(p is None or p.shape != (n,) for p in parts) or not 0 <= index.shard_ids.min() <= \
                index.shard_ids.max() < len(index.shards):
            raise ValueError("shard entries do not match the labels")


def _cached(beside: Path, identity: str, key: str) -> ImageIndex | None:
    arrays = load_cache(cache_paths(beside, identity), key, _check)
    if arrays is None:
        return None
    index, notes = _from_arrays(arrays)
    _tell(notes)  # what was left out is said on every run, not only the one that built the index
    return index


def _tell(notes: list[str]) -> None:
    # One line for both the built and the cached index: Python shows a warning once per text and
    # line, so a run that reads the index twice (deciding whether to stream, then loading) says it once.
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=1)  # this line, whichever path called


def _store(beside: Path, identity: str, key: str, index: ImageIndex, notes: list[str]) -> None:
    save_cache(cache_paths(beside, identity), key, _to_arrays(index, notes))
    # No writable place: the index is rebuilt next time, which is slower but still correct.


# --------------------------------------------------------------------------- image folders

def folder_index(data_dir, *, cache: bool = True) -> ImageIndex:
    """The index of an image folder (one subfolder per class), from the cache when still valid.

    Entries of the class folders that are not image files are left out with a warning naming them."""
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{root}: no such directory" if not root.exists() else
                           f"{root}: expected a directory, found a file")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root}: an image folder needs one subfolder per class; found none")
    identity = _key([f"folder {root}"])
    key = _key([f"folder {root}"] + [f"{c} {(root / c).stat().st_mtime_ns}" for c in classes])
    if cache and (index := _cached(root / CACHE_NAME, identity, key)) is not None:
        return index
    classes, found, note = list_image_folder(root)
    names = [f"{name}/{f}" for name, files in zip(classes, found) for f in files]
    labels = [label for label, files in enumerate(found) for _ in files]
    blob, offsets = _blob(names)
    index = ImageIndex("folder", str(root), (), blob, offsets, np.asarray(labels, dtype=np.int64), tuple(classes))
    notes = [note] if note else []
    _tell(notes)
    if cache:
        _store(root / CACHE_NAME, identity, key, index, notes)
    return index


# --------------------------------------------------------------------------- tar shards

def _expand_braces(pattern: str) -> list[str]:
    """webdataset's `shard-{000000..000099}.tar`: zero-padded numeric ranges, expanded in order."""
    match = re.search(r"\{(\d+)\.\.(\d+)\}", pattern)
    if match is None:
        return [pattern]
    first, last = match.group(1), match.group(2)
    width = len(first) if first.startswith("0") else 0
    head, tail = pattern[:match.start()], pattern[match.end():]
    return [p for i in range(int(first), int(last) + 1) for p in _expand_braces(f"{head}{i:0{width}d}{tail}")]


def shard_files(spec: str) -> list[Path]:
    """The shard files of `spec`: a folder (every *.tar in it), a glob, or a {000..099} range."""
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.tar"))
        if not files:
            raise DatasetError(f"{path}: no .tar shards in this folder")
        return [f.resolve() for f in files]
    files = []
    for pattern in _expand_braces(str(path)):
        matched = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        files.extend(Path(m) for m in matched)
    missing = [str(f) for f in files if not f.is_file()]
    if not files or missing:
        raise DatasetError(f"{spec}: no such shard file(s): {', '.join(missing[:3]) or 'nothing matched'}")
    return [f.resolve() for f in files]


def shard_index(spec: str, *, cache: bool = True, skip_bad: bool = False) -> ImageIndex:
    """The index of webdataset-style shards (`KEY.jpg` + `KEY.cls`), from the cache when valid.

    Class names come from a `classes.txt` or `classes.json` beside the (first) shard (data/classes.py),
    else "0".."K-1", K = the largest label + 1. A truncated shard, a link member or an
    incomplete sample is an error naming the shard (shards.py), or with `skip_bad` a logged warning
    counting what is left out; such an index is not cached, so the warning comes again next time.
    """
    files = shard_files(spec)
    stats = [f.stat() for f in files]
    identity = _key(["shards"] + [str(f) for f in files])
    key = _key(["shards"] + [f"{f} {s.st_size} {s.st_mtime_ns}" for f, s in zip(files, stats)])
    anchor = files[0].parent
    beside = anchor / f".npxception-index-{identity[:16]}.npz"
    if cache and (index := _cached(beside, identity, key)) is not None:
        return _named(index, anchor)
    rows: list = []
    notes = []
    for shard, path in enumerate(files):
        notes += scan_shard(path, shard, rows, skip_bad)
    for note in notes:
        log.warning("%s", note)
    if not rows:
        raise DatasetError(f"{spec}: the shards hold no samples with an image ({', '.join(SHARD_IMAGE_SUFFIXES)}) "
                           "and a .cls label")
    blob, offsets = _blob([r[0] for r in rows])
    labels = np.asarray([r[4] for r in rows], dtype=np.int64)
    index = ImageIndex("shards", str(anchor), tuple(str(f) for f in files), blob, offsets, labels,
                       tuple(str(i) for i in range(int(labels.max()) + 1)),
                       np.asarray([r[1] for r in rows], dtype=np.int32),
                       np.asarray([r[2] for r in rows], dtype=np.int64),
                       np.asarray([r[3] for r in rows], dtype=np.int64))
    if cache and not notes:
        _store(beside, identity, key, index, [])
    return _named(index, anchor)


def _named(index: ImageIndex, folder: Path) -> ImageIndex:
    """`index` with the names of the class file in `folder`, when there is one. Applied after the
    cache, which keeps the numeric names: the file is read, and checked, on every run."""
    names = names_for_labels(folder, int(index.labels.max()))
    return index if names is None else dataclasses.replace(index, class_names=names)


class Reader:
    """Reads entry i's encoded bytes; keeps shard files open (one handle each) between reads."""

    def __init__(self, index: ImageIndex):
        self.index = index
        self._files: dict = {}

    def read(self, i: int) -> bytes:
        index = self.index
        if index.kind == "folder":
            with open(index.name(i), "rb") as f:
                return f.read()
        shard = int(index.shard_ids[i])
        f = self._files.get(shard)
        if f is None:
            f = self._files[shard] = open(index.shards[shard], "rb")
        f.seek(int(index.offsets[i]))
        data = f.read(int(index.sizes[i]))
        if len(data) != index.sizes[i]:
            raise OSError(f"the shard ends after {len(data)} of the member's {index.sizes[i]} bytes")
        return data

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
