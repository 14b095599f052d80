"""Image duplicates: exact by decoded pixels, near by perceptual hash.

Exact: sha256 over the image's size and its RGB pixels, so a PNG re-saved with other
compression or metadata is the same image. Near: the pHash of resources/core/perceptual.py
(64 bits of the DCT's low frequencies, bit for bit imagehash's), which survives resizing and
JPEG re-encoding; pairs within a Hamming distance are found by the multi-index search of
resources/core/hamming.py, never by comparing all pairs.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from resources.core.perceptual import phash


@dataclass(frozen=True)
class ImageKeys:
    pixel_sha256: str
    phash: int
    pixels: int
    """width x height: among equally ranked copies the larger one survives"""


def image_keys(path: str | Path) -> ImageKeys:
    """Pixel digest, 64-bit pHash and pixel count of an image file."""
    with Image.open(path) as img:
        rgb = img.convert("RGB")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}\0".encode())
    digest.update(rgb.tobytes())
    phash_value = phash(rgb)
    return ImageKeys(digest.hexdigest(), phash_value, rgb.width * rgb.height)
