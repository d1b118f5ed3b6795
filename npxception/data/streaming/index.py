"""The index of a streamed dataset: where each image's bytes are, its label, the class names.

Two layouts:

- an image folder, one subfolder per class (sorted names = class order, files sorted within a
  class, the same order `load_image_folder` reads them in); an entry is a path relative to the root;
- webdataset-style `.tar` shards: members `KEY.jpg` (or .jpeg/.png/.webp) and `KEY.cls` (the
  label as ASCII digits) side by side; an entry is (shard, byte offset, byte size) of the image
  member, so a worker reads it with one seek and one read, without parsing the tar again.

Paths are kept as one UTF-8 blob with offsets rather than a list of str: a million entries
take tens of MB and pickle to the worker processes in one piece.

The index is cached beside the data (`.npxception-index.npz`, written atomically) or, where the
data folder is read-only, under ~/.cache/npxception. A folder's cache is reused while the mtime
of every class folder is unchanged (adding, removing or renaming a file changes it); a shard
index while every shard's size and mtime are.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dataset import DatasetError
from ..files import IMAGE_SUFFIXES

CACHE_NAME = ".npxception-index.npz"
CACHE_VERSION = 1
SHARD_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


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


def _blob(names: list[str]) -> tuple[bytes, np.ndarray]:
    encoded = [n.encode("utf-8") for n in names]
    return b"".join(encoded), np.concatenate([[0], np.cumsum([len(e) for e in encoded])]).astype(np.int64)


# --------------------------------------------------------------------------- caching

def _cache_paths(root: Path, key: str) -> list[Path]:
    beside = root / CACHE_NAME if root.is_dir() else root.parent / f".npxception-index-{key[:16]}.npz"
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "npxception"
    return [beside, home / f"index-{key[:32]}.npz"]


def _load_cache(root: Path, key: str) -> ImageIndex | None:
    for path in _cache_paths(root, key):
        try:
            with np.load(path, allow_pickle=False) as f:
                if int(f["version"]) != CACHE_VERSION or str(f["key"]) != key:
                    continue
                optional = {n: (f[n] if n in f.files else None) for n in ("shard_ids", "offsets", "sizes")}
                return ImageIndex(str(f["kind"]), str(f["root"]), tuple(str(s) for s in f["shards"]),
                                  f["names_blob"].tobytes(), f["name_offsets"], f["labels"],
                                  tuple(str(c) for c in f["class_names"]), **optional)
        except (OSError, KeyError, ValueError, EOFError):
            continue
    return None


def _save_cache(root: Path, key: str, index: ImageIndex) -> None:
    arrays = {"version": np.asarray(CACHE_VERSION), "key": np.asarray(key), "kind": np.asarray(index.kind),
              "root": np.asarray(index.root), "shards": np.asarray(index.shards, dtype=str),
              "names_blob": np.frombuffer(index.names_blob, dtype=np.uint8), "name_offsets": index.name_offsets,
              "labels": index.labels, "class_names": np.asarray(index.class_names, dtype=str)}
    for name in ("shard_ids", "offsets", "sizes"):
        if getattr(index, name) is not None:
            arrays[name] = getattr(index, name)
    for path in _cache_paths(root, key):
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)  # atomic: a reader sees the old index or the new one
            return
        except OSError:
            tmp.unlink(missing_ok=True)
    # No writable place: the index is rebuilt next time, which is slower but still correct.


def _key(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- image folders

def folder_index(data_dir, *, cache: bool = True) -> ImageIndex:
    """The index of an image folder (one subfolder per class), from the cache when still valid."""
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{root}: no such directory" if not root.exists() else
                           f"{root}: expected a directory, found a file")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{root}: an image folder needs one subfolder per class; found none")
    key = _key([f"folder {root}"] + [f"{c} {(root / c).stat().st_mtime_ns}" for c in classes])
    if cache and (index := _load_cache(root, key)) is not None:
        return index
    names, labels = [], []
    for label, name in enumerate(classes):
        with os.scandir(root / name) as entries:
            files = sorted(e.name for e in entries if e.is_file() and Path(e.name).suffix.lower() in IMAGE_SUFFIXES)
        names.extend(f"{name}/{f}" for f in files)
        labels.extend([label] * len(files))
    if not names:
        raise DatasetError(f"{root}: no image files ({', '.join(IMAGE_SUFFIXES)}) in its class folders")
    blob, offsets = _blob(names)
    index = ImageIndex("folder", str(root), (), blob, offsets, np.asarray(labels, dtype=np.int64), tuple(classes))
    if cache:
        _save_cache(root, key, index)
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


def _read_label(tar: tarfile.TarFile, member: tarfile.TarInfo, where: str) -> int:
    text = tar.extractfile(member).read().decode("ascii", errors="replace").strip()
    if not text.isdigit():
        raise DatasetError(f"{where}:{member.name}: a .cls member must hold a non-negative integer label, "
                           f"got {text[:20]!r}")
    return int(text)


def _scan_shard(path: Path, shard: int, rows: list) -> None:
    """Append (key, member name, shard, offset, size, label) for every sample with an image and a label."""
    images, labels = {}, {}
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                stem, dot, ext = base.partition(".")
                key = member.name[:len(member.name) - len(base)] + stem
                ext = "." + ext.lower() if dot else ""
                if ext == ".cls":
                    labels[key] = _read_label(tar, member, str(path))
                elif ext in SHARD_IMAGE_SUFFIXES:
                    images[key] = (member.name, member.offset_data, member.size)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetError(f"{path}: cannot read as a tar shard ({type(e).__name__}: {e})") from None
    unlabelled = [k for k in images if k not in labels]
    if unlabelled:
        raise DatasetError(f"{path}: sample {unlabelled[0]!r} has an image but no .cls label "
                           f"({len(unlabelled)} such samples)")
    for key, (name, offset, size) in images.items():
        rows.append((name, shard, offset, size, labels[key]))


def shard_index(spec: str, *, cache: bool = True) -> ImageIndex:
    """The index of webdataset-style shards (`KEY.jpg` + `KEY.cls`), from the cache when valid.

    Class names are "0".."K-1", K = the largest label + 1.
    """
    files = shard_files(spec)
    stats = [f.stat() for f in files]
    key = _key(["shards"] + [f"{f} {s.st_size} {s.st_mtime_ns}" for f, s in zip(files, stats)])
    anchor = files[0].parent
    if cache and (index := _load_cache(anchor, key)) is not None:
        return index
    rows: list = []
    for shard, path in enumerate(files):
        _scan_shard(path, shard, rows)
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
    if cache:
        _save_cache(anchor, key, index)
    return index


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
