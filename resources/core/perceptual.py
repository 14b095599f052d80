"""Perceptual image hashes (phash, dhash) of an image in its eight dihedral orientations.

The hashes are bit-for-bit those of the ``imagehash`` package (``phash`` and ``dhash`` with
hash_size 8) for the identity orientation, so hash lists made with ``imagehash`` match. A hash
is a 64-bit unsigned int whose most significant bit is the first bit of imagehash's row-major
bit array, so ``int(str(imagehash.phash(img)), 16)`` is the same number.

Why the query side, not the list side: a list holds only the 64 bits, and the phash of a
mirrored or rotated image is not a permutation of those bits (mirroring flips the sign of the
odd-frequency DCT coefficients, which moves the median the bits are thresholded against). So
each listed hash stays as it is and each screened image is hashed in all eight orientations.

Why that is cheap: the expensive step is the antialiased resize of the full image to 32x32
(phash) or 9x8 (dhash). PIL's resampling is separable with a symmetric kernel, so resizing a
mirrored or rotated image equals mirroring or rotating the resized one (up to uint8 rounding
of the intermediate pass, a bit or two of the hash at most). The resize is done once per
image (twice for dhash, whose grid is not square) and the orientations are taken on the small
array.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy.fft import dct

_SIDE = 8
_PHASH_SIZE = 32

# The eight elements of the dihedral group of the square, as operations on a 2-D array.
# Names say what was done to the listed image to get the query, inverted when matching
# is irrelevant: the group is closed, so trying all eight covers every mirror/rotation.
ORIENTATIONS: tuple[str, ...] = (
    "identity",
    "rot90",
    "rot180",
    "rot270",
    "mirror",
    "mirror_rot90",
    "mirror_rot180",
    "mirror_rot270",
)


def orient(pixels: np.ndarray, orientation: str) -> np.ndarray:
    """The array turned by one dihedral operation (rotations counter-clockwise)."""
    index = ORIENTATIONS.index(orientation)
    out = np.fliplr(pixels) if index >= 4 else pixels
    return np.rot90(out, k=index % 4)


def _swaps_axes(orientation: str) -> bool:
    return ORIENTATIONS.index(orientation) % 2 == 1


def bits_to_int(bits: np.ndarray) -> int:
    """Pack a boolean array, row-major, first bit most significant."""
    packed = np.packbits(bits.astype(np.uint8).reshape(-1))
    return int.from_bytes(packed.tobytes(), "big")


def _grey(image: Image.Image) -> Image.Image:
    return image.convert("L")


def _phash_bits(pixels: np.ndarray) -> np.ndarray:
    coefficients = dct(dct(pixels.astype(np.float64), axis=0), axis=1)
    low = coefficients[:_SIDE, :_SIDE]
    return low > np.median(low)


def _dhash_bits(pixels: np.ndarray) -> np.ndarray:
    return pixels[:, 1:] > pixels[:, :-1]


@dataclass(frozen=True)
class OrientedHashes:
    """One image's phash and dhash in each orientation (index i is ORIENTATIONS[i])."""

    phash: tuple[int, ...]
    dhash: tuple[int, ...]


def oriented_hashes(image: Image.Image) -> OrientedHashes:
    """phash and dhash of the image as imagehash computes them on each dihedral variant."""
    grey = _grey(image)
    square = np.asarray(grey.resize((_PHASH_SIZE, _PHASH_SIZE), Image.Resampling.LANCZOS))
    # dhash compares horizontal neighbours on a 9-wide, 8-high grid; an orientation that swaps
    # axes needs the 8-wide, 9-high grid of the original, turned.
    wide = np.asarray(grey.resize((_SIDE + 1, _SIDE), Image.Resampling.LANCZOS))
    tall = np.asarray(grey.resize((_SIDE, _SIDE + 1), Image.Resampling.LANCZOS))
    phashes = []
    dhashes = []
    for orientation in ORIENTATIONS:
        phashes.append(bits_to_int(_phash_bits(orient(square, orientation))))
        grid = tall if _swaps_axes(orientation) else wide
        dhashes.append(bits_to_int(_dhash_bits(orient(grid, orientation))))
    return OrientedHashes(phash=tuple(phashes), dhash=tuple(dhashes))


def phash(image: Image.Image) -> int:
    """imagehash.phash(image) as a 64-bit int."""
    square = np.asarray(_grey(image).resize((_PHASH_SIZE, _PHASH_SIZE), Image.Resampling.LANCZOS))
    return bits_to_int(_phash_bits(square))


def dhash(image: Image.Image) -> int:
    """imagehash.dhash(image) as a 64-bit int."""
    wide = np.asarray(_grey(image).resize((_SIDE + 1, _SIDE), Image.Resampling.LANCZOS))
    return bits_to_int(_dhash_bits(wide))
