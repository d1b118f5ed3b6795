"""Checkpoints of a run: the format and its atomic writer live in `npxception.io.npz`."""

from ..io.npz import CheckpointError, load_checkpoint, save_checkpoint

__all__ = ["CheckpointError", "load_checkpoint", "save_checkpoint"]
