"""Benchmark of known-harmful hash screening (not a test).

Part 1, robustness: real photographs that ship inside scikit-image (skimage/data, no download)
are listed by phash and by dhash; each is then altered (resize to 25%, JPEG quality 30,
brightness +20%, mirror, 90-degree rotation, 5% crop, caption bar), written to disk, and
screened through the same engine the pipeline uses. Recall is the share of altered copies
that match their own entry; a false positive is a match to any other image's entry, or any
match of an unlisted image.

Part 2, why the orientations are hashed on the query side: how far a hash-only guess of the
mirrored phash (flip the odd-frequency bits) lands from the real one.

Part 3, scale: 1M records (8 orientation hashes each, synthetic) against a 1M-entry phash list
and 1M records' sha256 against a 1M-entry sha256 list, through Screener.match; the linear scan
baseline runs on a subset, side by side, and the ratio is printed.

Part 4, the door: records/s of ingest (resources.ingest.stage.ingest_source, reading, ledger
and Parquet included) with the door screening every item against a list, side by side with
the same ingest whose door lets everything through unhashed (a stand-in used only here), for a
JSONL source of short texts and a folder of photographs (JPEG/PNG copies of the skimage
photos). The list holds --door-entries sha256, sha256_text and phash entries.

Run: nice -n 10 .venv/bin/python bench/screen.py [--records N] [--entries N]
     nice -n 10 .venv/bin/python bench/screen.py --door-only [--door-texts N --door-images N]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import skimage.data
from PIL import Image, ImageDraw, ImageEnhance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resources.core.corpus import Corpus, Policy, Source
from resources.core.hamming import linear_scan
from resources.core.ledger import Ledger
from resources.core.perceptual import phash
from resources.core.records import DROP_SCHEMA
from resources.ingest.readers import ReadSpec
from resources.ingest.stage import Screening, ingest_source
from resources.screen.config import ScreenConfig
from resources.screen.door import Door, Screened
from resources.screen.hashlists import DHASH, PHASH, SHA256, HashList, load_lists
from resources.screen.incidents import INCIDENT_SCHEMA
from resources.screen.matching import HASH_SCHEMA, MATCH_SCHEMA, Screener, hash_records

MAX_DISTANCE = ScreenConfig().max_distance


DATA = Path(os.path.dirname(skimage.data.__file__))
# Every photograph in the package. Left out: the synthetic images (chessboard, color, horse,
# logo, phantom), motorcycle_right (the other half of a stereo pair: the same scene from a few
# centimetres away, a true near-duplicate of motorcycle_left) and lfw_subset (25x25 thumbnails,
# used below as unlisted distractors).
PHOTOS = [
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "clock_motion.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "microaneurysms.png",
    "moon.png",
    "motorcycle_left.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
    "text.png",
]
# Quadrants add distinct images. retina's are not used: its four corners (black surround,
# curved rim of the fundus) are near-mirror images of one another, so a mirror-tolerant
# match between them is correct, not a false positive.
NO_QUADRANTS = {"retina.jpg"}
MIN_QUADRANT_SOURCE = 300


def photographs() -> list[tuple[str, Image.Image]]:
    items = []
    for name in PHOTOS:
        image = Image.open(DATA / name).convert("RGB")
        items.append((name, image))
        width, height = image.size
        if name in NO_QUADRANTS or min(width, height) < MIN_QUADRANT_SOURCE:
            continue
        half_w, half_h = width // 2, height // 2
        for i, (x, y) in enumerate([(0, 0), (half_w, 0), (0, half_h), (half_w, half_h)]):
            items.append((f"{name}#q{i}", image.crop((x, y, x + half_w, y + half_h))))
    return items


def distractors() -> list[tuple[str, Image.Image]]:
    faces = np.load(DATA / "lfw_subset.npy")
    images = [
        (f"lfw#{i}", Image.fromarray((f * 255).astype(np.uint8))) for i, f in enumerate(faces)
    ]
    for name in [
        "chessboard_RGB.png",
        "color.png",
        "horse.png",
        "logo.png",
        "phantom.png",
    ]:
        images.append((name, Image.open(DATA / name).convert("RGB")))
    return images


def _jpeg(image: Image.Image, quality: int = 30) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _resize(image: Image.Image) -> Image.Image:
    size = (max(1, round(image.width * 0.25)), max(1, round(image.height * 0.25)))
    return image.resize(size, Image.Resampling.BICUBIC)


def _crop5(image: Image.Image) -> Image.Image:
    # 5% of each dimension cut away, half from each edge.
    dx, dy = round(image.width * 0.025), round(image.height * 0.025)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


def _caption(image: Image.Image) -> Image.Image:
    # A meme-style bar over the bottom 12% with white text on black.
    out = image.copy()
    draw = ImageDraw.Draw(out)
    bar = max(8, round(out.height * 0.12))
    draw.rectangle((0, out.height - bar, out.width, out.height), fill=(0, 0, 0))
    draw.text((4, out.height - bar + 2), "when the caption says it all", fill=(255, 255, 255))
    return out


TRANSFORMS = {
    "resize 25%": _resize,
    "JPEG q30": _jpeg,
    "brightness +20%": lambda im: ImageEnhance.Brightness(im).enhance(1.2),
    "mirror": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "rotate 90": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "crop 5%": _crop5,
    "caption bar": _caption,
}
TARGETED = {"resize 25%", "JPEG q30", "brightness +20%", "mirror", "rotate 90"}


def _records(paths: list[Path], keys: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "record_id": keys,
            "source_id": "bench",
            "source_key": keys,
            "kind": "image",
            "text": [None] * len(keys),
            "image_path": [str(p) for p in paths],
        },
        schema_overrides={"text": pl.String()},
    )


def robustness() -> None:
    items = photographs()
    names = [name for name, _ in items]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lists = root / "lists"
        lists.mkdir()
        originals = []
        for i, (_, image) in enumerate(items):
            originals.append(root / f"orig{i}.png")
            image.save(originals[-1])
        listed = hash_records(_records(originals, names), verify_ids=False)
        for hash_type in (PHASH, DHASH):
            rows = [f"{h},{hash_type},{n}" for h, n in zip(listed[hash_type], names, strict=True)]
            (lists / f"photos_{hash_type}.csv").write_text("hash,type,label\n" + "\n".join(rows))
        screener = Screener(load_lists(lists))
        thresholds = ", ".join(f"{t} <= {d}" for t, d in MAX_DISTANCE.items())
        print(f"robustness: {len(items)} distinct photographs from skimage.data")
        print(f"  ({len(PHOTOS)} whole, the rest quadrants); thresholds {thresholds} bits;")
        for hash_type in (PHASH, DHASH):
            nearest = _nearest_distinct(listed, hash_type)
            print(f"  nearest two distinct photographs, any orientation: {hash_type} d = {nearest}")
        gated = screener.low_information.height
        print(f"  {gated} dhash entries too uniform to match (gated; they count as dhash misses)")
        header = f"  {'transform':16s} {'phash recall':>12s} {'FP':>3s} {'dhash recall':>12s}"
        print(header + f" {'FP':>3s} {'either':>7s} {'max d(phash)':>12s}")
        dhash_seen = []
        for label, transform in TRANSFORMS.items():
            paths = []
            for i, (_, image) in enumerate(items):
                altered = transform(image)
                suffix = ".jpg" if label == "JPEG q30" else ".png"
                paths.append(root / f"t{i}{suffix}")
                if suffix == ".jpg":
                    altered.save(paths[-1], quality=30)
                else:
                    altered.save(paths[-1])
            keys = [f"q:{n}" for n in names]
            matches = screener.match(hash_records(_records(paths, keys), verify_ids=False))
            own = matches.filter(("q:" + pl.col("entry_label")) == pl.col("record_id"))
            wrong = matches.filter(("q:" + pl.col("entry_label")) != pl.col("record_id"))
            found = {
                t: set(own.filter(pl.col("hash_type") == t)["record_id"]) for t in (PHASH, DHASH)
            }
            false = {t: wrong.filter(pl.col("hash_type") == t).height for t in (PHASH, DHASH)}
            either = len(found[PHASH] | found[DHASH]) / len(items)
            if label in TARGETED:
                dhash_seen.append(matches.filter(pl.col("hash_type") == DHASH))
            own_p = own.filter(pl.col("hash_type") == PHASH)["distance"]
            worst = "-" if own_p.is_empty() else str(own_p.max())
            print(
                f"  {label:16s} {len(found[PHASH]) / len(items):12.3f} {false[PHASH]:3d}"
                f" {len(found[DHASH]) / len(items):12.3f} {false[DHASH]:3d} {either:7.3f}"
                f" {worst:>12s}" + ("" if label in TARGETED else "   (no target)")
            )
        unlisted = distractors()
        paths = []
        for i, (_, image) in enumerate(unlisted):
            paths.append(root / f"u{i}.png")
            image.save(paths[-1])
        matches = screener.match(
            hash_records(_records(paths, [n for n, _ in unlisted]), verify_ids=False)
        )
        per_type = {t: matches.filter(pl.col("hash_type") == t).height for t in (PHASH, DHASH)}
        print(
            f"  unlisted distinct images: {len(unlisted)} (200 lfw faces, 5 synthetic);"
            f" false positives phash {per_type[PHASH]}, dhash {per_type[DHASH]}"
        )
        if matches.height:
            print(matches.select("hash_type", "record_id", "entry_label", "distance"))
        _dhash_sweep(dhash_seen, matches.filter(pl.col("hash_type") == DHASH), len(items))


def _dhash_sweep(seen: list[pl.DataFrame], unlisted: pl.DataFrame, items: int) -> None:
    # Matches at the default threshold include their distance, so lower thresholds are a filter.
    print("  dhash threshold sweep (targeted transforms; entries past the uniformity gate):")
    for limit in range(MAX_DISTANCE[DHASH] - 2, MAX_DISTANCE[DHASH] + 1):
        recalls, false = [], 0
        for frame in seen:
            kept = frame.filter(pl.col("distance") <= limit)
            is_own = ("q:" + pl.col("entry_label")) == pl.col("record_id")
            recalls.append(kept.filter(is_own)["record_id"].n_unique() / items)
            false += kept.filter(~is_own).height
        false += unlisted.filter(pl.col("distance") <= limit).height
        print(f"    d <= {limit}: worst recall {min(recalls):.3f}, false positives {false}")


def _nearest_distinct(hashes: pl.DataFrame, hash_type: str) -> int:
    """The smallest distance between two different photographs (one of them turned)."""
    plain = hashes[hash_type].str.to_integer(base=16, dtype=pl.UInt64).to_numpy()
    oriented = np.array(hashes[f"{hash_type}_oriented"].to_list(), dtype=np.uint64)
    distances = np.bitwise_count(oriented[:, :, None] ^ plain[None, None, :]).min(axis=1)
    np.fill_diagonal(distances, 64)
    return int(distances.min())


def _odd_columns_mask() -> int:
    bits = [(col % 2 == 1) for row in range(8) for col in range(8)]
    return int("".join("1" if b else "0" for b in bits), 2)


def mirror_guess() -> None:
    mask = _odd_columns_mask()
    distances = []
    for name in PHOTOS:
        image = Image.open(DATA / name)
        truth = phash(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
        distances.append(((phash(image) ^ mask) ^ truth).bit_count())
    print(
        "hash-only mirror guess (flip odd-frequency bits) vs real phash of the mirror:"
        f" mean {np.mean(distances):.1f} bits, max {max(distances)} over {len(PHOTOS)} photos"
        " (query-side orientations: 0 bits by construction, see the mirror row above)"
    )


def _random_hex(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, np.iinfo(np.uint64).max, n, dtype=np.uint64, endpoint=True)


def _hex_series(values: np.ndarray) -> pl.Series:
    return pl.Series([f"{int(v):016x}" for v in values])


def scale(records: int, entries: int, subset: int, seed: int = 7) -> None:
    rng = np.random.default_rng(seed)
    listed = _random_hex(rng, entries)
    planted = min(1000, records)
    oriented = _random_hex(rng, records * 8).reshape(records, 8)
    # Plant real matches: one random orientation of each planted record is a listed hash with
    # up to max_distance bits flipped.
    limit = MAX_DISTANCE[PHASH]
    for r in range(planted):
        value = int(listed[rng.integers(entries)])
        for bit in rng.choice(64, rng.integers(0, limit + 1), replace=False):
            value ^= 1 << int(bit)
        oriented[r, rng.integers(8)] = value
    sha_listed = [
        f"{int(a):016x}{int(b):016x}" * 2 for a, b in zip(listed, listed[::-1], strict=True)
    ]
    sha_records = sha_listed[:planted] + [
        f"{int(a):016x}" * 4 for a in _random_hex(rng, records - planted)
    ]
    entries_frame = pl.DataFrame(
        {
            "hash": pl.concat([_hex_series(listed), pl.Series(sha_listed)]),
            "type": [PHASH] * entries + [SHA256] * entries,
            "label": [None] * (2 * entries),
            "line": np.arange(2 * entries) + 2,
        },
        schema_overrides={"label": pl.String()},
    )
    hash_list = HashList("synthetic", "1", "bench", "0" * 64, "-", entries_frame)
    hashes = pl.DataFrame(
        {
            "record_id": [f"r{i}" for i in range(records)],
            "source_id": "bench",
            "source_key": [f"r{i}" for i in range(records)],
            SHA256: sha_records,
            "phash_oriented": pl.Series(oriented.tolist(), dtype=pl.List(pl.UInt64())),
        }
    ).with_columns(
        *[pl.lit(None, dtype=pl.String()).alias(c) for c in ("md5", "sha256_text", DHASH)],
        pl.lit(None, dtype=pl.List(pl.UInt64())).alias("dhash_oriented"),
    )
    with _clock() as build:
        screener = Screener([hash_list])
    screener.match(hashes.head(10))  # compile once, outside the timing
    with _clock() as run:
        matches = screener.match(hashes)
    by_type = matches.group_by("hash_type").len().sort("hash_type")
    found_planted = matches.filter(
        (pl.col("hash_type") == PHASH)
        & pl.col("record_id").is_in([f"r{i}" for i in range(planted)])
    )["record_id"].n_unique()
    print(
        f"scale: {records:,} records x 8 orientations against {entries:,} phash entries"
        f" (d <= {limit}) and {entries:,} sha256 entries, through Screener.match"
    )
    print(f"  index build {build}; screen {run}; {run.cpu / records * 1e6:.1f} us CPU per record")
    print(
        f"  matches by type: {dict(zip(by_type['hash_type'], by_type['len'], strict=True))};"
        f" planted phash matches found {found_planted}/{planted}"
    )
    # Side by side on the same random sample of records (as many planted ones, proportionally,
    # as in the whole set): the index, and a compiled linear scan over every entry.
    index, _ = screener.perceptual[PHASH]
    sample = rng.choice(records, size=min(subset, records), replace=False)
    queries = oriented[sample].reshape(-1)
    with _clock() as fast_clock:
        fast = index.query(queries)
    with _clock() as slow_clock:
        slow = linear_scan(queries, listed, limit)
    same = set(zip(fast[0].tolist(), fast[1].tolist(), strict=True)) == set(
        zip(slow[0].tolist(), slow[1].tolist(), strict=True)
    )
    ratio = slow_clock.cpu / fast_clock.cpu
    print(
        f"  sample of {len(sample):,} records ({len(queries):,} queries, {len(fast[0])} matches):"
        f" multi-index {fast_clock}, linear scan {slow_clock}; ratio {ratio:.0f}x (CPU),"
        f" same pairs: {same}"
    )
    print(
        f"  linear scan extrapolated to {records:,} records:"
        f" {slow_clock.cpu / len(sample) * records:,.0f} s CPU vs multi-index {run.cpu:.1f} s CPU"
    )


class _Clock:
    """Wall and CPU seconds of a block; CPU is the fair figure on a shared machine."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __str__(self) -> str:
        return f"{self.cpu:.2f} s CPU ({self.wall:.2f} s wall)"


@contextmanager
def _clock():
    clock = _Clock()
    wall, cpu = time.perf_counter(), time.process_time()
    yield clock
    clock.wall, clock.cpu = time.perf_counter() - wall, time.process_time() - cpu


class _OpenDoor(Door):
    """The baseline: a door that passes every record without hashing or matching it."""

    def screen(self, records: pl.DataFrame, known_ids: set[str]) -> Screened:
        string = pl.String()
        return Screened(
            passed=[True] * records.height,
            hashes=pl.DataFrame(schema=HASH_SCHEMA),
            matches=pl.DataFrame(schema=MATCH_SCHEMA),
            drops=pl.DataFrame(schema=DROP_SCHEMA),
            quarantine=pl.DataFrame(schema={"source_id": string, "source_key": string}),
            incidents=pl.DataFrame(schema=INCIDENT_SCHEMA),
        )


def _door_corpus(root: Path, texts: int, images: int, entries: int) -> Corpus:
    rng = np.random.default_rng(11)
    words = np.array(
        [
            "the",
            "of",
            "and",
            "to",
            "river",
            "stone",
            "cloud",
            "paper",
            "seven",
            "quiet",
            "ledger",
            "hash",
        ]
    )
    with (root / "texts.jsonl").open("w") as f:
        for i in range(texts):
            text = " ".join(rng.choice(words, rng.integers(8, 40)))
            f.write(json.dumps({"id": f"t{i}", "text": f"{i} {text}"}) + "\n")
    folder = root / "photos"
    folder.mkdir()
    photos = [image for _, image in photographs()]
    for i in range(images):
        image = photos[i % len(photos)]
        scale = 0.5 + 0.5 * (i // len(photos) % 2)
        image = image.resize((max(8, int(image.width * scale)), max(8, int(image.height * scale))))
        fmt = "JPEG" if i % 2 else "PNG"
        image.save(folder / f"p{i}.{fmt.lower()}", fmt, **({"quality": 80} if i % 2 else {}))
    lists = root / "lists"
    lists.mkdir()
    with (lists / "bench.csv").open("w") as f:
        f.write("hash,type\n")
        for hash_type in ("sha256", "sha256_text"):
            f.writelines(f"{rng.bytes(32).hex()},{hash_type}\n" for _ in range(entries))
        f.writelines(f"{int(v):016x},phash\n" for v in _random_hex(rng, entries))
    sources = tuple(
        Source(
            id=name,
            path=path,
            format=fmt,
            text_field="text",
            id_field="id" if fmt == "jsonl" else None,
            license="CC0-1.0",
            consent="public_domain",
            uri=f"file:///{name}",
            retrieved_at=datetime(2026, 1, 1, tzinfo=UTC),
            owner="bench@example.org",
        )
        for name, path, fmt in (("texts", "texts.jsonl", "jsonl"), ("photos", "photos", "image"))
    )
    return Corpus(root, root / "data", sources, Policy())


def _ingest_rate(corpus: Corpus, source: Source, screening: Screening) -> tuple[int, float]:
    if corpus.data_dir.exists():
        shutil.rmtree(corpus.data_dir)
    ledger = Ledger(corpus.data_dir / "ledger.duckdb")
    spec = ReadSpec(source.text_field, source.id_field, 10_000_000, 10_000)
    start = time.perf_counter()
    outcome = ingest_source(
        source,
        corpus.resolve(source.path),
        corpus.policy,
        spec,
        corpus.output("ingest", source.id),
        ledger,
        "bench",
        screening,
    )
    return outcome.read, time.perf_counter() - start


def door(texts: int, images: int, entries: int) -> None:
    print(f"\n== the door: ingest records/s, list of {3 * entries:,} entries ==")
    config = ScreenConfig(hashlists_dir="lists", hash_cache="data/cache/hashes.parquet")
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        corpus = _door_corpus(Path(tmp), texts, images, entries)
        start = time.perf_counter()
        screening = Screening.from_config(config, corpus)
        print(f"  lists loaded and indexed in {time.perf_counter() - start:.2f} s (once per run)")
        d = screening.door
        unscreened = Screening(_OpenDoor(d.lists, d.screener, d.base_dir), screening.cache_path)
        print(
            f"  {'source':<8}{'records':>9}{'screened r/s':>14}{'unscreened r/s':>16}{'ratio':>8}"
        )
        for source in corpus.sources:
            n, with_door = _ingest_rate(corpus, source, screening)
            _, without = _ingest_rate(corpus, source, unscreened)
            print(
                f"  {source.id:<8}{n:>9,}{n / with_door:>14,.0f}{n / without:>16,.0f}"
                f"{with_door / without:>7.2f}x"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--subset", type=int, default=1_000)
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--door-only", action="store_true")
    parser.add_argument("--door-texts", type=int, default=50_000)
    parser.add_argument("--door-images", type=int, default=200)
    parser.add_argument("--door-entries", type=int, default=100_000)
    args = parser.parse_args()
    door(args.door_texts, args.door_images, args.door_entries)
    if args.door_only:
        return
    robustness()
    mirror_guess()
    if not args.skip_scale:
        scale(args.records, args.entries, args.subset)


if __name__ == "__main__":
    main()
