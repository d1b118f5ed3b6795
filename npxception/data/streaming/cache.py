"""The index cache: a keyed .npz of arrays, written atomically to the first writable of its places.

A cache is only ever an optimisation. Reading one that is damaged (truncated, random bytes, a
bad CRC), inconsistent or stale (another version, or data changed since) rebuilds the index with a
one-line warning naming the file; writing goes to the next place when one refuses (a read-only
data folder, a full disk), and when none accepts, the index is rebuilt next time.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from pathlib import Path

import numpy as np

# 2: shards are checked for truncation, links and duplicate keys, and labels range-checked when
# scanned, so an index cached by version 1 may hold samples that version 2 refuses.
CACHE_VERSION = 2


def cache_paths(beside: Path, identity: str) -> list[Path]:
    """Where the cache of the data named `identity` may live: `beside` the data, else per user."""
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "npxception"
    return [beside, home / f"index-{identity[:32]}.npz"]


def load_cache(paths: list[Path], key: str, check) -> dict | None:
    """The arrays of the first cache in `paths` holding `key` and passing `check(arrays)` (which
    raises ValueError when they are inconsistent); None, after one warning, when none does."""
    problems = []
    for path in paths:
        if not path.is_file():
            continue
        try:
            if not zipfile.is_zipfile(path):  # np.load would take it for a pickle and suggest allow_pickle
                raise ValueError("not a zip archive")
            with np.load(path, allow_pickle=False) as f:
                arrays = {name: f[name] for name in f.files}
            if int(arrays["version"]) != CACHE_VERSION:
                problems.append(f"{path}: written by another npxception version")
                continue
            if str(arrays["key"]) != key:
                problems.append(f"{path}: out of date (the data changed since it was written)")
                continue
            check(arrays)
            return arrays
        except Exception as e:  # noqa: BLE001 - whatever is wrong with a cache, the cure is to rebuild it
            problems.append(f"{path}: damaged ({type(e).__name__}: {_first_line(e)})")
    if problems:
        warnings.warn(f"index cache {'; '.join(problems)}; rebuilding the index", UserWarning, stacklevel=3)
    return None


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else "no detail"


def save_cache(paths: list[Path], key: str, arrays: dict) -> Path | None:
    """Write `arrays` (with the version and `key`) to the first of `paths` that accepts it."""
    arrays = {"version": np.asarray(CACHE_VERSION), "key": np.asarray(key), **arrays}
    for path in paths:
        if _write_atomically(path, arrays):
            return path
    return None


def _write_atomically(path: Path, arrays: dict) -> bool:
    if _marked_read_only(path.parent):
        return False
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)  # atomic: a reader sees the old cache or the new one
        return True
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only file system refuses even to remove what is not there (EROFS)
        return False


def _marked_read_only(folder: Path) -> bool:
    """A folder whose owner took every write bit away (a shared data set, `chmod a-w`): root could
    still write there, but whoever laid the data out asked that nothing be added beside it."""
    try:
        return not folder.stat().st_mode & 0o222
    except OSError:
        return False  # not there yet: mkdir decides
