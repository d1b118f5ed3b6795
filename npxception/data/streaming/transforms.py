"""Per-image transforms of the streaming pipeline: the Inception crop for training, the centre
crop for evaluation, both ending at size x size RGB uint8.

Training (Szegedy et al., "Going deeper with convolutions", 2015, as the Inception and Xception
ImageNet recipes use it): a random box covering 8% to 100% of the image's area, with an aspect
ratio drawn log-uniformly from [3/4, 4/3] (so w/h and h/w are equally likely), at a uniformly
random position; ten draws, and if none fits, the largest centred box within those ratios. The box
is resized to size x size and mirrored left-right with probability 1/2.

Evaluation: a centred square of `crop_fraction` times the shorter side, resized to size x size,
i.e. "resize the shorter side to size / crop_fraction, crop the centre". The default 0.8975 is
timm's value for Xception at 299 (resize to 333, crop 299); TF-slim's Inception evaluation uses
0.875; Keras's Xception weights are documented at 299 without naming a crop, and 1.0 (the whole
shorter side) reproduces a plain squash-free resize.

Decoding up front (memory.py): the whole image at full size, resized (bilinear) to size x size
only when it is not that size already, as `load_image_folder` reads a folder into memory; the
in-memory loader then crops and flips each batch.

Every random draw comes from the generator handed in, which the loader seeds by (seed, epoch,
sample), so an image's crop and flip do not depend on which process decodes it or when.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .decode import DecodeError, decode, image_shape, min_decode_size

EVAL_CROP_FRACTION = 0.8975
RESIZE_HINT = "give --image-size to resize them all"
AREA_RANGE = (0.08, 1.0)
ASPECT_RANGE = (3 / 4, 4 / 3)
ATTEMPTS = 10


def random_resized_box(height: int, width: int, rng: np.random.Generator, area_range=AREA_RANGE,
                       aspect_range=ASPECT_RANGE) -> tuple[int, int, int, int]:
    """(top, left, box_h, box_w) of an Inception crop of a height x width image."""
    area = height * width
    log_lo, log_hi = math.log(aspect_range[0]), math.log(aspect_range[1])
    for _ in range(ATTEMPTS):
        target = area * rng.uniform(*area_range)
        aspect = math.exp(rng.uniform(log_lo, log_hi))  # w / h
        box_w = int(round(math.sqrt(target * aspect)))
        box_h = int(round(math.sqrt(target / aspect)))
        if 0 < box_w <= width and 0 < box_h <= height:
            top = int(rng.integers(0, height - box_h + 1))
            left = int(rng.integers(0, width - box_w + 1))
            return top, left, box_h, box_w
    # No draw fitted (a very elongated image): the whole image, trimmed to the nearest allowed aspect.
    aspect = width / height
    if aspect < aspect_range[0]:
        box_w, box_h = width, int(round(width / aspect_range[0]))
    elif aspect > aspect_range[1]:
        box_h, box_w = height, int(round(height * aspect_range[1]))
    else:
        box_h, box_w = height, width
    return (height - box_h) // 2, (width - box_w) // 2, box_h, box_w


def center_box(height: int, width: int, crop_fraction: float) -> tuple[float, float, float, float]:
    """(top, left, side, side) of the centred square of crop_fraction x the shorter side."""
    side = crop_fraction * min(height, width)
    return (height - side) / 2, (width - side) / 2, side, side


@dataclass(frozen=True)
class Transform:
    """Bytes -> uint8 (size, size, 3). train: Inception crop + flip; else the centre crop.
    reduced_decode: decode JPEGs at the smallest DCT scale that keeps the crop at >= size pixels."""

    size: int
    train: bool
    crop_fraction: float = EVAL_CROP_FRACTION
    reduced_decode: bool = True

    def __post_init__(self):
        if self.size < 1:
            raise ValueError(f"size must be >= 1, got {self.size}")
        if not 0 < self.crop_fraction <= 1:
            raise ValueError(f"crop_fraction must be in (0, 1], got {self.crop_fraction}")

    def __call__(self, data: bytes, rng: np.random.Generator | None) -> np.ndarray:
        from PIL import Image

        height, width = image_shape(data)
        if self.train:
            top, left, box_h, box_w = random_resized_box(height, width, rng)
            flip = rng.random() < 0.5
        else:
            top, left, box_h, box_w = center_box(height, width, self.crop_fraction)
            flip = False
        min_h, min_w = min_decode_size(height, width, box_h, box_w, self.size)
        pixels = decode(data, min_h, min_w, reduced=self.reduced_decode)
        # The decoded image may be a DCT-scaled copy: map the box into its pixel grid.
        sy, sx = pixels.shape[0] / height, pixels.shape[1] / width
        box = (left * sx, top * sy, (left + box_w) * sx, (top + box_h) * sy)
        resized = Image.fromarray(pixels).resize((self.size, self.size), Image.Resampling.BILINEAR, box=box)
        out = np.asarray(resized, dtype=np.uint8)
        return out[:, ::-1] if flip else out


@dataclass(frozen=True)
class WholeImage:
    """Bytes -> uint8 (size, size, 3): the whole image, decoded at full size, resized (bilinear) when
    it is not size x size. strict: refuse an image of another size instead of resizing it (no
    --image-size was given, so every image must be as large as the first). No random draws."""

    size: int
    strict: bool = False
    train: bool = False  # read by the workers: no per-sample generator is drawn

    def __call__(self, data: bytes, rng: np.random.Generator | None = None) -> np.ndarray:
        from PIL import Image

        pixels = decode(data, reduced=False)
        if pixels.shape[:2] == (self.size, self.size):
            return pixels
        if self.strict:
            raise DecodeError(f"is {pixels.shape[1]}x{pixels.shape[0]}, the first image {self.size}x{self.size}; "
                              f"{RESIZE_HINT}")
        resized = Image.fromarray(pixels).resize((self.size, self.size), Image.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)
