"""The built-in dataset: ten classes of procedurally drawn shapes and textures, no download needed.

Every image is drawn from its own seeded generator, so `make_shapes(n, size, seed)` returns the
same pixels on every machine, at any size. What varies per image (so that no single pixel or
colour gives the class away, and a linear model on pixels does poorly):

- the background and foreground colours (random, with a minimum contrast between them),
  and a smooth background brightness gradient;
- the shape's centre, scale and rotation; the textures' frequency, phase and orientation;
- pixel noise.

Shapes are drawn from signed distance functions d(p) (negative inside), with one pixel of
anti-aliasing: coverage = clip(0.5 - d / pixel, 0, 1).
"""

from __future__ import annotations

import operator

import numpy as np

from ..resources import check_fits
from .dataset import Dataset

CLASS_NAMES = ("disk", "ring", "square", "frame", "triangle", "cross", "star",
               "stripes", "checkerboard", "dots")


def _box(px, py, half_x, half_y=None):
    """Signed distance to an axis-aligned rectangle of half-widths `half_x`, `half_y` (a square)."""
    qx, qy = np.abs(px) - half_x, np.abs(py) - (half_x if half_y is None else half_y)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0)


def _triangle(px, py, r):
    """Signed distance to an equilateral triangle with circumradius r (Inigo Quilez's formula)."""
    k = np.sqrt(3.0)
    side = r * k / 2
    px = np.abs(px) - side
    py = py + r / 2
    flip = px + k * py > 0
    px, py = (np.where(flip, (px - k * py) / 2, px), np.where(flip, (-k * px - py) / 2, py))
    px = px - np.clip(px, -2 * side, 0)
    return -np.hypot(px, py) * np.sign(py)


def _shape_distance(label, px, py, r, rng):
    """Signed distance of the shape `label` (0..6) at scale r, in the rotated frame (px, py)."""
    if label == 0:
        return np.hypot(px, py) - r
    if label == 1:
        return np.abs(np.hypot(px, py) - 0.75 * r) - 0.25 * r
    if label == 2:
        return _box(px, py, 0.8 * r)
    if label == 3:
        return np.abs(_box(px, py, 0.75 * r)) - 0.2 * r
    if label == 4:
        return _triangle(px, py, 1.1 * r)
    if label == 5:
        return np.minimum(_box(px, py, 0.9 * r, 0.3 * r), _box(px, py, 0.3 * r, 0.9 * r))
    points = rng.integers(5, 7)  # a five- or six-pointed star
    angle = np.arctan2(py, px)
    radius = r * (0.6 + 0.4 * np.cos(points * angle))
    return np.hypot(px, py) - radius


def _texture_mask(label, px, py, size, rng):
    """Coverage in [0, 1] of the texture `label` (7..9) over the whole image."""
    period = size * rng.uniform(0.2, 0.35)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    u, v = 2 * np.pi * px / period + phase[0], 2 * np.pi * py / period + phase[1]
    if label == 7:
        wave = np.sin(u)
    elif label == 8:
        wave = np.sin(u) * np.sin(v)
    else:
        wave = np.cos(u) + np.cos(v) - 1.0
    # A steep ramp instead of a hard threshold: one pixel of anti-aliasing at the edges.
    return np.clip(0.5 + wave * period / 4, 0, 1)


def _colours(rng):
    """Background and foreground RGB in [0, 1], at least 0.35 apart in mean brightness."""
    while True:
        background, foreground = rng.uniform(0, 1, size=(2, 3))
        if abs(background.mean() - foreground.mean()) >= 0.35:
            return background, foreground


def draw_image(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One (size, size, 3) uint8 image of class `label`."""
    coords = np.arange(size) + 0.5
    y, x = np.meshgrid(coords, coords, indexing="ij")
    theta = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(theta), np.sin(theta)
    if label < 7:
        r = size * rng.uniform(0.2, 0.34)
        cx, cy = rng.uniform(r, size - r, size=2)
        px, py = c * (x - cx) + s * (y - cy), -s * (x - cx) + c * (y - cy)
        coverage = np.clip(0.5 - _shape_distance(label, px, py, r, rng), 0, 1)
    else:
        px, py = c * x + s * y, -s * x + c * y
        coverage = _texture_mask(label, px, py, size, rng)
    background, foreground = _colours(rng)
    gx, gy = rng.uniform(-0.25, 0.25, size=2)
    shade = 1 + (gx * (x - size / 2) + gy * (y - size / 2)) / size
    image = (background * shade[..., None]) * (1 - coverage[..., None]) + foreground * coverage[..., None]
    image = image + rng.normal(0, rng.uniform(0.02, 0.08), size=image.shape)
    return np.clip(np.round(image * 255), 0, 255).astype(np.uint8)


def make_shapes(count: int, size: int = 32, seed: int = 0) -> Dataset:
    """`count` images (size x size), classes balanced and in random order, reproducible from `seed`.

    Image i is drawn from its own generator, seeded by (seed, i), so drawing is order-independent.
    """
    count, size = operator.index(count), operator.index(size)
    if count < 1 or size < 8:
        raise ValueError(f"make_shapes needs count >= 1 and size >= 8, got count={count}, size={size}")
    # The images, and the float64 planes drawing one image takes (coordinates, distances, colours).
    check_fits(count * size * size * 3 + 16 * 8 * size * size,
               f"{count} built-in {size}x{size} images", "ask for fewer (--train-size, --val-size) or smaller "
               "(--image-size) images")
    k = len(CLASS_NAMES)
    labels = np.random.default_rng([seed, 2**31]).permutation(np.arange(count) % k)
    images = np.empty((count, size, size, 3), dtype=np.uint8)
    for i, label in enumerate(labels):
        images[i] = draw_image(int(label), size, np.random.default_rng([seed, i]))
    return Dataset.checked(images, labels, CLASS_NAMES, "built-in shapes")
