"""Training-time augmentation: random crop with zero padding, and horizontal flips.

Both act on a uint8 batch (B, H, W, 3) and keep its shape: the crop pads `pad` zero pixels on each
side and cuts an H x W window at a random offset, i.e. shifts the image by up to `pad` pixels.
"""

from __future__ import annotations

import numpy as np


def random_crop(images: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """Shift each image by a random (dy, dx) in [-pad, pad], filling the uncovered border with 0."""
    if pad == 0:
        return images
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    offsets = rng.integers(0, 2 * pad + 1, size=(n, 2))
    out = np.empty_like(images)
    for i, (oy, ox) in enumerate(offsets):
        out[i] = padded[i, oy:oy + h, ox:ox + w]
    return out


def random_flip(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror each image left-right with probability 1/2."""
    flip = rng.random(len(images)) < 0.5
    out = images.copy()
    out[flip] = out[flip, :, ::-1]
    return out


def augment(images: np.ndarray, rng: np.random.Generator, *, pad: int = 4, flip: bool = True) -> np.ndarray:
    """Random crop with padding, then (optionally) a random horizontal flip."""
    images = random_crop(images, pad, rng)
    return random_flip(images, rng) if flip else images
