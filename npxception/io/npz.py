"""Our own checkpoints: one .npz of named arrays plus a JSON header, written atomically.

Layout: "model/<key>" (every weight, with batch-norm statistics), "ema/<key>", "optimizer/<key>",
and "__meta__", a JSON string (epoch, step, configuration, history, ...). Plain arrays and JSON,
no pickle: a checkpoint can be opened with `np.load(path)` and read by anyone.

Atomic: the file is written to "<name>.tmp" beside the target, flushed to disk, then renamed over
it with `os.replace`, which is atomic on POSIX and Windows. A crash or Ctrl-C while saving leaves
the previous checkpoint intact, never a half-written one. The rename itself lives in the folder's
directory entry, so the folder is fsynced too (as databases do): without that a power cut right
after saving can bring back the old name. This is the project's one writer of .npz files:
`save_npz` below is a model's state dict saved as a checkpoint with one "model" group.
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
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)
    return path


def fsync_directory(folder: Path) -> None:
    """Make a rename in `folder` durable. Windows cannot open a directory; there NTFS journals it."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_checkpoint(path, *, require_meta: bool = True) -> tuple[dict[str, dict[str, np.ndarray]], dict]:
    """({group: {key: array}}, meta) from a file written by `save_checkpoint`.

    `require_meta=False` also reads a plain .npz without the header (meta {}, keys without a
    "/" in group ""), for state dicts written by other tools.
    """
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "checkpoint.npz"
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    # np.load takes anything that is not a zip or .npy for a pickle and suggests allow_pickle=True:
    # advice that would run code from a file we cannot read. A checkpoint is a zip, whatever else.
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: cannot read checkpoint (not an .npz zip archive of arrays: "
                              f"{path.stat().st_size} bytes of something else)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if META not in archive.files and require_meta:
                raise CheckpointError(f"{path}: not an npxception checkpoint (no {META} entry)")
            meta = json.loads(str(archive[META])) if META in archive.files else {}
            if not isinstance(meta, dict):
                raise CheckpointError(f"{path}: the {META} entry is not a JSON object")
            groups: dict[str, dict[str, np.ndarray]] = {}
            for name in archive.files:
                if name != META:
                    group, key = name.split("/", 1) if "/" in name else ("", name)
                    groups.setdefault(group, {})[key] = archive[name]
    except CheckpointError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, MemoryError) as e:
        raise CheckpointError(f"{path}: cannot read checkpoint ({_reason(e)})") from None
    return groups, meta


def _reason(e: Exception) -> str:
    """One line on why an archive member cannot be read, without NumPy's allow_pickle advice."""
    text = str(e)
    if "pickle" in text:  # an object array, or a member that is a pickle: never in our checkpoints
        return "it holds pickled Python objects, which a checkpoint never does; refused"
    lines = text.strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else 'no detail'}"


GROUP = "model"


def save_npz(path, state: Mapping[str, np.ndarray], metadata: dict | None = None) -> Path:
    """Save a state dict (key -> array) and JSON-able metadata atomically: a one-group checkpoint."""
    return save_checkpoint(path, {GROUP: state}, dict(metadata or {}))


def load_npz(path) -> tuple[dict[str, np.ndarray], dict]:
    """(state, metadata) from a file written by save_npz; a plain .npz of arrays gives metadata {}."""
    groups, meta = load_checkpoint(path, require_meta=False)
    if meta or set(groups) <= {GROUP}:
        return dict(groups.get(GROUP, {})), meta
    return {f"{group}/{key}" if group else key: value for group, items in groups.items()
            for key, value in items.items()}, meta
