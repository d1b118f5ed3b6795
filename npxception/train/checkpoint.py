"""Checkpoints of a run: the format and its atomic writer live in `npxception.io.npz`.

The trainer's header carries `format_version`, so that a later npxception can tell which runs it
can continue. Version 1 is every checkpoint written before the field existed (a header without it);
version 2 adds the field itself and `skip_bad_images` in each history record. A reader accepts every
version up to its own and refuses a newer one by name: it cannot know what that one means.
"""

import os
import shutil
from pathlib import Path

from ..io.npz import CheckpointError, fsync_directory, load_checkpoint, save_checkpoint

__all__ = ["FORMAT_VERSION", "CheckpointError", "checkpoint_format", "keep_copy", "load_checkpoint",
           "save_checkpoint"]

FORMAT_VERSION = 2


def checkpoint_format(meta: dict, source: str = "the checkpoint") -> int:
    """The format version of a checkpoint's header (1 when absent); CheckpointError for one this
    code cannot read. `source` names the file or run in the message."""
    version = meta.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CheckpointError(f"{source} has format_version {version!r}; expected an integer >= 1")
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{source} has format version {version}, newer than this npxception reads "
                              f"(1 to {FORMAT_VERSION}); upgrade npxception to use it")
    return version


def keep_copy(checkpoint: Path, copy: Path) -> None:
    """Make `copy` hold what `checkpoint` holds now (the best epoch's weights beside the last ones),
    atomically as `save_checkpoint` writes: a hard link (no bytes copied; the checkpoint is replaced
    by rename, never written in place, so the link keeps this version), else a copy, then a rename."""
    tmp = copy.with_name(copy.name + ".tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(checkpoint, tmp)
    except OSError:  # a file system without hard links
        shutil.copyfile(checkpoint, tmp)
    os.replace(tmp, copy)
    fsync_directory(copy.parent)
