"""Image duplicates: exact by decoded pixels, near by perceptual hash.

Exact: sha256 over the image's size and its RGB pixels, so a PNG re-saved with other
compression or metadata is the same image. Near: imagehash's pHash (64 bits of the DCT's
low frequencies), which survives resizing and JPEG re-encoding; pairs within a Hamming
distance are found by multi-index hashing (resources/lsh.hash_chunks), never all pairs.
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image

from resources.dedup.lsh import candidate_pairs, hash_chunks


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
    phash = int(str(imagehash.phash(rgb)), 16)
    return ImageKeys(digest.hexdigest(), phash, rgb.width * rgb.height)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit differences between paired uint64 hashes."""
    return np.bitwise_count(a.astype(np.uint64) ^ b.astype(np.uint64)).astype(np.int64)


def near_pairs(
    phashes: np.ndarray, max_distance: int, memory_limit: str = "1GB"
) -> tuple[np.ndarray, np.ndarray]:
    """(pairs, distances) of hashes within max_distance bits of each other."""
    pairs = candidate_pairs(hash_chunks(phashes, max_distance), memory_limit=memory_limit)
    if pairs.size == 0:
        return pairs, np.empty(0, np.int64)
    dist = hamming(phashes[pairs[:, 0]], phashes[pairs[:, 1]])
    close = dist <= max_distance
    return pairs[close], dist[close]
