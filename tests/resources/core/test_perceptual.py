from pathlib import Path

import imagehash
import numpy as np
import pytest
import skimage.data
from PIL import Image

from resources.core.hamming import hamming
from resources.core.perceptual import ORIENTATIONS, dhash, orient, oriented_hashes, phash

DATA = Path(skimage.data.__file__).parent
PHOTOS = ["camera.png", "astronaut.png", "coffee.png"]


def _open(name: str) -> Image.Image:
    image = Image.open(DATA / name)
    image.load()
    return image


@pytest.mark.parametrize("name", PHOTOS)
def test_identity_hashes_are_imagehash_bit_for_bit(name):
    image = _open(name)
    oriented = oriented_hashes(image)
    assert oriented.phash[0] == phash(image) == int(str(imagehash.phash(image)), 16)
    assert oriented.dhash[0] == dhash(image) == int(str(imagehash.dhash(image)), 16)


@pytest.mark.parametrize(
    "transpose",
    [
        Image.Transpose.FLIP_LEFT_RIGHT,
        Image.Transpose.FLIP_TOP_BOTTOM,
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_180,
        Image.Transpose.ROTATE_270,
        Image.Transpose.TRANSPOSE,
    ],
)
def test_some_orientation_of_a_turned_image_recovers_the_original_hash(transpose):
    for name in PHOTOS:
        image = _open(name)
        turned = oriented_hashes(image.transpose(transpose))
        # Resizing then turning differs from turning then resizing only by uint8 rounding.
        assert min(hamming(h, phash(image)) for h in turned.phash) <= 2
        assert min(hamming(h, dhash(image)) for h in turned.dhash) <= 2


def test_mirror_is_not_a_bit_permutation_of_phash():
    # Why orientations are hashed on the query side: flipping the odd-frequency bits of the
    # listed hash does not give the mirrored image's phash.
    image = _open("astronaut.png")
    odd_columns = int("".join("1" if c % 2 else "0" for _ in range(8) for c in range(8)), 2)
    mirrored = phash(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    assert hamming(phash(image) ^ odd_columns, mirrored) > 0
    assert mirrored in oriented_hashes(image).phash


def test_orientations_are_the_eight_distinct_dihedral_operations():
    grid = np.arange(12).reshape(3, 4)
    turned = {orient(grid, o).tobytes() + bytes(orient(grid, o).shape) for o in ORIENTATIONS}
    assert len(turned) == 8
    assert np.array_equal(orient(grid, "mirror"), grid[:, ::-1])
    assert np.array_equal(orient(grid, "rot90"), np.rot90(grid))
