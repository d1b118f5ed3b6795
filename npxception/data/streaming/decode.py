"""Decoding encoded images to uint8 RGB, JPEGs at reduced size where the crop allows it.

libjpeg can run its inverse DCT at 1/8, 2/8, ..., 8/8 of the full size, skipping most of the
work of a full decode; `simplejpeg` (libjpeg-turbo) exposes that as a minimum output size, and
Pillow's `Image.draft` as the coarser 1/8, 1/4, 1/2 steps. We ask for the smallest scale whose
output still holds the crop at the target size or more, so the final resize only shrinks and
the result stays sharp. Other formats (PNG, WebP, ...) are decoded by Pillow at full size.
"""

from __future__ import annotations

import io
import math

import numpy as np

from ..pixels import rgb_image

try:
    import simplejpeg
except ImportError:  # Pillow's draft mode is the fallback
    simplejpeg = None

JPEG_MAGIC = b"\xff\xd8"


class DecodeError(ValueError):
    """Bytes that cannot be decoded as an image."""


class _EncodedBytes(io.BytesIO):
    """An in-memory image file. Pillow's "cannot identify image file %r" shows the file object's
    repr, which for a plain BytesIO is `<_io.BytesIO object at 0x...>`: noise beside the file
    name the caller puts in front of the message."""

    def __repr__(self) -> str:
        return f"<{len(self.getbuffer())} bytes>"


def _pillow(data: bytes):
    from PIL import Image

    return Image.open(_EncodedBytes(data))


def _reason(e: Exception, data: bytes) -> str:
    """Why `data` is not an image, without the in-memory file object (the caller names the file)."""
    if type(e).__name__ == "UnidentifiedImageError":
        return f"not an image format Pillow can read; it starts with {bytes(data[:8])!r}"
    return f"{type(e).__name__}: {e}"


def image_shape(data: bytes) -> tuple[int, int]:
    """(height, width) from the header only."""
    try:
        if data[:2] == JPEG_MAGIC and simplejpeg is not None:
            try:
                height, width, _, _ = simplejpeg.decode_jpeg_header(data)
                return int(height), int(width)
            except ValueError:
                pass  # Pillow reads some headers libjpeg-turbo's strict mode rejects
        with _pillow(data) as image:
            return image.size[1], image.size[0]
    except Exception as e:  # noqa: BLE001 - any failure here means "not an image we can read"
        raise DecodeError(f"cannot read as an image ({_reason(e, data)})") from None


def decode(data: bytes, min_height: int = 0, min_width: int = 0, *, reduced: bool = True) -> np.ndarray:
    """uint8 (h, w, 3) RGB. With `reduced` and a JPEG: the smallest DCT scale with h >= min_height
    and w >= min_width (the full size when no smaller one qualifies); otherwise the full size.
    16-bit greyscale is scaled to 8 bits (value >> 8, see data/pixels.py), not clipped."""
    try:
        if data[:2] == JPEG_MAGIC and simplejpeg is not None:
            try:
                if reduced:
                    return simplejpeg.decode_jpeg(data, "RGB", min_height=max(min_height, 1),
                                                  min_width=max(min_width, 1))
                return simplejpeg.decode_jpeg(data, "RGB")
            except ValueError:
                pass  # e.g. CMYK or a recoverable corruption: Pillow is more lenient, or says why
        with _pillow(data) as image:
            if reduced and image.format == "JPEG" and min_height > 0 and min_width > 0:
                image.draft("RGB", (min_width, min_height))
            return np.asarray(rgb_image(image), dtype=np.uint8)
    except Exception as e:  # noqa: BLE001 - Pillow raises OSError, SyntaxError, DecompressionBombError...
        raise DecodeError(f"cannot read as an image ({_reason(e, data)})") from None


def min_decode_size(height: int, width: int, box_h: float, box_w: float, size: int) -> tuple[int, int]:
    """The smallest full-image decode size at which a box_h x box_w crop still spans `size` pixels."""
    return (min(height, math.ceil(size * height / box_h)), min(width, math.ceil(size * width / box_w)))
