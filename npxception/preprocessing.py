"""Keras's Xception input preprocessing, shared by the data loader and the model (imports numpy only)."""

from __future__ import annotations

import numpy as np


def preprocess_input(images) -> np.ndarray:
    """uint8 (or any real) images in [0, 255] -> float32 in [-1, 1]: x / 127.5 - 1 (Keras's "tf" mode)."""
    return (np.asarray(images, dtype=np.float32) / np.float32(127.5) - np.float32(1.0))
