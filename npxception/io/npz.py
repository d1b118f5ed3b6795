"""Our own checkpoints: a state dict (plus optional JSON-able metadata) in one .npz file.

Writes go to a temporary file in the same folder, then `os.replace` moves it over the target in one
step, so a crash mid-write never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

_META = "__metadata__.json"  # a key no "layer/weight" state-dict key can take


def save_npz(path, state: dict, metadata: dict | None = None) -> None:
    """Save state (key -> array) and metadata (JSON-serialisable) atomically to `path`."""
    path = os.fspath(path)
    if _META in state:
        raise ValueError(f"state dict must not use the reserved key {_META!r}")
    arrays = {k: np.asarray(v) for k, v in state.items()}
    arrays[_META] = np.frombuffer(json.dumps(metadata or {}).encode("utf8"), dtype=np.uint8)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_npz(path) -> tuple[dict[str, np.ndarray], dict]:
    """(state, metadata) from a file written by save_npz (metadata {} for plain .npz files)."""
    with np.load(os.fspath(path), allow_pickle=False) as data:
        state = {k: data[k] for k in data.files if k != _META}
        metadata = json.loads(data[_META].tobytes().decode("utf8")) if _META in data.files else {}
    return state, metadata
