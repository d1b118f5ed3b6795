"""Weights in and out: Keras's legacy HDF5 files and our own .npz state-dict checkpoints."""

from .keras_h5 import keras_to_state_dict, load_keras_weights, read_keras_h5, write_keras_h5
from .npz import CheckpointError, load_checkpoint, load_npz, save_checkpoint, save_npz

__all__ = ["CheckpointError", "keras_to_state_dict", "load_checkpoint", "load_keras_weights", "load_npz",
           "read_keras_h5", "save_checkpoint", "save_npz", "write_keras_h5"]
