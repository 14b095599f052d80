from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from resources.core.hamming import pairs_within
from resources.dedup.images import image_keys


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("img")
    out = {}
    for name in ["astronaut", "coffee", "chelsea", "camera"]:
        img = Image.fromarray(getattr(data, name)()).convert("RGB").resize((256, 256))
        out[name] = root / f"{name}.png"
        img.save(out[name])
    base = Image.open(out["astronaut"])
    out["recompressed"] = root / "recompressed.png"
    base.save(out["recompressed"], compress_level=9)
    out["small_jpeg"] = root / "small.jpg"
    base.resize((120, 120)).save(out["small_jpeg"], quality=60)
    out["big_webp"] = root / "big.webp"
    base.resize((400, 400)).save(out["big_webp"], quality=50)
    return out


def test_same_pixels_same_digest_whatever_the_encoding(images):
    assert image_keys(images["astronaut"]).pixel_sha256 == (
        image_keys(images["recompressed"]).pixel_sha256
    )
    assert image_keys(images["astronaut"]).pixel_sha256 != (
        image_keys(images["small_jpeg"]).pixel_sha256
    )


def test_resized_and_reencoded_are_near_distinct_are_far(images):
    names = ["astronaut", "small_jpeg", "big_webp", "coffee", "chelsea", "camera"]
    hashes = np.array([image_keys(images[n]).phash for n in names], dtype=np.uint64)
    pairs, dist = pairs_within(hashes, max_distance=6)
    assert sorted(map(tuple, pairs.tolist())) == [(0, 1), (0, 2), (1, 2)]
    assert (dist <= 6).all()
