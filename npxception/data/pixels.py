"""Decoded Pillow images to 8-bit RGB, whatever their bit depth.

`Image.convert("RGB")` clips a 16-bit greyscale image (Pillow modes "I;16", "I;16B", "I") to
0..255, so a photograph stored at 16 bits becomes almost white. Pillow itself reduces 16-bit RGB,
RGBA and grey+alpha PNGs to 8 bits by keeping the high byte (value >> 8) when it opens them;
16-bit greyscale is scaled the same way here, so the same picture decodes to the same pixels
whichever of those layouts it was saved in. (value >> 8 maps 257 * k to k exactly, as rounding
value * 255 / 65535 does, and differs from it by at most one level.)
"""

from __future__ import annotations

import numpy as np

# Greyscale at 16 bits (little, big or native byte order) and 32-bit integer greyscale, which some
# decoders (TIFF, older Pillow's PNG) use for 16-bit samples: values are read as 0..65535.
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def rgb_image(image):
    """`image` as a Pillow "RGB" image, 16-bit greyscale scaled to 8 bits (value >> 8)."""
    from PIL import Image

    if image.mode not in SIXTEEN_BIT_MODES:
        return image.convert("RGB")
    values = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)  # "I" is signed 32-bit
    grey = (values >> 8).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")  # a 2-D uint8 array is mode "L"
