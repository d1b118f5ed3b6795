"""Checkpoints: one .npz of named arrays plus a JSON header, written atomically.

Layout: "model/<key>" (every weight, with batch-norm statistics), "ema/<key>", "optimizer/<key>",
and "__meta__", a JSON string (epoch, step, configuration, history, ...). Plain arrays and JSON,
no pickle: a checkpoint can be opened with `np.load(path)` and read by anyone.

Atomic: the file is written to "<name>.tmp" beside the target, flushed to disk, then renamed over
it with `os.replace`, which is atomic on POSIX and Windows. A crash or Ctrl-C while saving leaves
the previous checkpoint intact, never a half-written one.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

META = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read."""


def save_checkpoint(path, groups: Mapping[str, Mapping[str, np.ndarray]], meta: dict) -> Path:
    """Write {group: {key: array}} and `meta` to `path` atomically; returns the path."""
    path = Path(path)
    arrays = {f"{group}/{key}": np.asarray(value) for group, items in groups.items()
              for key, value in items.items()}
    arrays[META] = np.asarray(json.dumps(meta))
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """({group: {key: array}}, meta) from a file written by `save_checkpoint`."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "checkpoint.npz"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if META not in archive.files:
                raise CheckpointError(f"{path}: not an npxception checkpoint (no {META} entry)")
            meta = json.loads(str(archive[META]))
            groups: dict[str, dict[str, np.ndarray]] = {}
            for name in archive.files:
                if name != META:
                    group, key = name.split("/", 1)
                    groups.setdefault(group, {})[key] = archive[name]
    except CheckpointError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CheckpointError(f"{path}: cannot read checkpoint ({type(e).__name__}: {e})") from None
    return groups, meta
