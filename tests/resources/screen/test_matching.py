import hashlib
from pathlib import Path

import polars as pl
import pytest
import skimage.data
from PIL import Image

from resources.core.normalize import normalized_sha256
from resources.core.perceptual import dhash, phash
from resources.core.records import IMAGE, RECORD_SCHEMA, record_id, text_record_id
from resources.screen.config import ScreenConfig
from resources.screen.hashlists import load_lists
from resources.screen.matching import (
    CHANGED,
    Screener,
    empty_cache,
    hash_records,
    hash_with_cache,
    merge_cache,
)

MAX_DISTANCE = ScreenConfig().max_distance


DATA = Path(skimage.data.__file__).parent


def _id(row: dict, i: int) -> str:
    """The record_id ingest would give: of the file's bytes for an image that exists."""
    path = Path(row["image_path"]) if row.get("image_path") else None
    if path is not None and path.is_file():
        return record_id(IMAGE, path.read_bytes())
    return f"r{i}"


def _records(rows: list[dict]) -> pl.DataFrame:
    full = [
        {
            "record_id": row.get("record_id") or _id(row, i),
            "source_id": "src",
            "source_key": row.get("source_key", f"item-{i}"),
            "kind": row["kind"],
            "text": row.get("text"),
            "image_path": str(row["image_path"]) if row.get("image_path") else None,
        }
        for i, row in enumerate(rows)
    ]
    return pl.DataFrame(full, schema=RECORD_SCHEMA)


def _image(tmp_path: Path, name: str, change=None, fmt: str = "PNG") -> Path:
    image = Image.open(DATA / name).convert("RGB")
    if change is not None:
        image = change(image)
    path = tmp_path / f"{name}.{len(list(tmp_path.iterdir()))}.{fmt.lower()}"
    image.save(path, fmt, **({"quality": 40} if fmt == "JPEG" else {}))
    return path


def _screen(tmp_path: Path, list_rows: list[str], records: pl.DataFrame, **kwargs):
    lists = tmp_path / "lists"
    lists.mkdir(exist_ok=True)
    (lists / "test.csv").write_text("hash,type,label\n" + "\n".join(list_rows) + "\n")
    return Screener(load_lists(lists), **kwargs).match(hash_records(records))


def test_each_exact_hash_type_matches_and_nothing_else_does(tmp_path):
    camera = _image(tmp_path, "camera.png")
    coffee = _image(tmp_path, "coffee.png")
    rows = [
        f"{hashlib.sha256(camera.read_bytes()).hexdigest()},sha256,cam-bytes",
        f"{hashlib.md5(coffee.read_bytes()).hexdigest()},md5,coffee-bytes",
        f"{normalized_sha256('Known  BAD text')},sha256_text,bad-text",
        f"{hashlib.sha256(b'raw text item').hexdigest()},sha256,raw-text",
    ]
    records = _records(
        [
            {"kind": "image", "image_path": camera},
            {"kind": "image", "image_path": coffee},
            {"kind": "text", "text": "known bad\ttext"},
            {"kind": "text", "text": "raw text item"},
            {"kind": "text", "text": "an innocent sentence"},
            {"kind": "image", "image_path": _image(tmp_path, "astronaut.png")},
        ]
    )
    matches = _screen(tmp_path, rows, records)
    got = sorted(
        zip(matches["source_key"], matches["hash_type"], matches["entry_label"], strict=True)
    )
    assert got == [
        ("item-0", "sha256", "cam-bytes"),
        ("item-1", "md5", "coffee-bytes"),
        ("item-2", "sha256_text", "bad-text"),
        ("item-3", "sha256", "raw-text"),
    ]
    assert set(matches["distance"]) == {0}


@pytest.mark.parametrize("hash_type", ["phash", "dhash"])
def test_perceptual_types_match_a_resized_reencoded_copy(tmp_path, hash_type):
    original = Image.open(DATA / "astronaut.png")
    listed = {"phash": phash, "dhash": dhash}[hash_type](original)
    copy = _image(tmp_path, "astronaut.png", lambda im: im.resize((200, 200)), "JPEG")
    other = _image(tmp_path, "coffee.png")
    records = _records(
        [{"kind": "image", "image_path": copy}, {"kind": "image", "image_path": other}]
    )
    matches = _screen(tmp_path, [f"{listed:016x},{hash_type},astro"], records)
    assert matches["source_key"].to_list() == ["item-0"]
    assert matches["hash_type"].to_list() == [hash_type]
    assert 0 <= matches["distance"][0] <= MAX_DISTANCE[hash_type]


@pytest.mark.parametrize("hash_type", ["phash", "dhash"])
def test_perceptual_threshold_boundary(tmp_path, hash_type):
    path = _image(tmp_path, "camera.png")
    own = {"phash": phash, "dhash": dhash}[hash_type](Image.open(path))
    limit = 5
    at_limit = own ^ 0b11111
    past_limit = own ^ 0b111111
    records = _records([{"kind": "image", "image_path": path}])
    rows = [f"{at_limit:016x},{hash_type},at", f"{past_limit:016x},{hash_type},past"]
    matches = _screen(tmp_path, rows, records, max_distance={hash_type: limit})
    assert matches["entry_label"].to_list() == ["at"]
    assert matches["distance"].to_list() == [limit]
    assert matches["orientation"].to_list() == ["identity"]


@pytest.mark.parametrize(
    "transpose",
    [
        Image.Transpose.FLIP_LEFT_RIGHT,
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_180,
        Image.Transpose.ROTATE_270,
    ],
)
def test_mirror_and_rotations_match_the_listed_original(tmp_path, transpose):
    listed = phash(Image.open(DATA / "chelsea.png"))
    turned = _image(tmp_path, "chelsea.png", lambda im: im.transpose(transpose))
    records = _records([{"kind": "image", "image_path": turned}])
    # Without orientations the turned copy is far from the listed hash.
    assert bin(phash(Image.open(turned)) ^ listed).count("1") > MAX_DISTANCE["phash"]
    matches = _screen(tmp_path, [f"{listed:016x},phash,cat"], records)
    assert matches["entry_label"].to_list() == ["cat"]
    assert matches["orientation"][0] != "identity"
    assert matches["distance"][0] <= 2


def test_unreadable_items_are_reported_not_passed(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    records = _records(
        [
            {"kind": "image", "image_path": tmp_path / "missing.png"},
            {"kind": "image", "image_path": broken},
        ]
    )
    hashes = hash_records(records)
    assert hashes["hash_error"].to_list() == [
        "read: FileNotFoundError",
        "decode: UnidentifiedImageError",
    ]
    # The bytes could be read, so exact-hash screening still applies to the broken file.
    assert hashes["sha256"][1] == hashlib.sha256(broken.read_bytes()).hexdigest()


def test_uniform_dhash_entries_are_not_matched_but_reported(tmp_path):
    path = _image(tmp_path, "camera.png")
    records = _records([{"kind": "image", "image_path": path}])
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "u.csv").write_text("hash,type\nffffffffffffffff,dhash\n0000000000000001,dhash\n")
    screener = Screener(load_lists(lists), max_distance={"dhash": 63})
    assert screener.low_information["entry_hash"].to_list() == [
        "ffffffffffffffff",
        "0000000000000001",
    ]
    assert screener.match(hash_records(records)).is_empty()


def test_relative_image_paths_resolve_against_base_dir(tmp_path):
    path = _image(tmp_path, "coins.png")
    ident = record_id(IMAGE, path.read_bytes())
    records = _records([{"kind": "image", "image_path": path.name, "record_id": ident}])
    hashes = hash_records(records, base_dir=tmp_path)
    assert hashes["hash_error"][0] is None
    assert hashes["phash"][0] == f"{phash(Image.open(path)):016x}"


def test_hashes_and_matches_hold_no_content(tmp_path):
    secret = "the secret harmful sentence 12345"
    records = _records([{"kind": "text", "text": secret, "record_id": text_record_id(secret)}])
    matches = _screen(tmp_path, [f"{normalized_sha256(secret)},sha256_text,t"], records)
    hashes = hash_records(records)
    for frame in (hashes, matches):
        assert "text" not in frame.columns
        dumped = frame.drop([c for c in frame.columns if c.endswith("_oriented")]).write_csv()
        assert secret not in dumped and secret.casefold() not in dumped


def test_an_image_changed_since_ingest_is_flagged_and_still_matched(tmp_path):
    path = _image(tmp_path, "camera.png")
    records = _records([{"kind": "image", "image_path": path}])
    cache = merge_cache(empty_cache(), hash_records(records))
    assert hash_with_cache(records, cache)["hash_error"].to_list() == [None]
    # Same path, other bytes: a listed picture swapped in after ingest.
    Image.open(DATA / "astronaut.png").save(path)
    for hashes in (hash_records(records), hash_with_cache(records, cache)):
        assert hashes["hash_error"].to_list() == [CHANGED]
        assert hashes["phash"][0] == f"{phash(Image.open(DATA / 'astronaut.png')):016x}"


def test_hash_records_on_ray_returns_what_the_step_process_returns(tmp_path, ray_engine):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    swapped = _image(tmp_path, "coins.png")
    records = _records(
        [
            {"kind": "image", "image_path": _image(tmp_path, "camera.png")},
            {"kind": "text", "text": "Some text, hashed in the step's process."},
            {"kind": "image", "image_path": tmp_path / "missing.png"},
            {"kind": "image", "image_path": broken},
            {"kind": "image", "image_path": swapped},
            {"kind": "image", "image_path": _image(tmp_path, "coffee.png", fmt="JPEG")},
            {"kind": "text", "text": "another text"},
        ]
    )
    Image.open(DATA / "astronaut.png").save(swapped)  # after its record_id was taken
    here = hash_records(records, base_dir=tmp_path)
    assert here["hash_error"].to_list() == [
        None,
        None,
        "read: FileNotFoundError",
        "decode: UnidentifiedImageError",
        CHANGED,
        None,
        None,
    ]
    assert hash_records(records, base_dir=tmp_path, engine=ray_engine).equals(here)
    cache = merge_cache(empty_cache(), here[:1])
    assert hash_with_cache(records, cache, tmp_path, ray_engine).equals(
        hash_with_cache(records, cache, tmp_path)
    )
