"""Screening at the door: every altered copy of a listed item is an incident, none is written."""

import csv
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
import skimage.data
from PIL import Image

from resources.core.corpus import Corpus, Policy, Source
from resources.core.ledger import Ledger
from resources.core.normalize import normalized_sha256
from resources.core.perceptual import phash
from resources.ingest.readers import ReadSpec
from resources.ingest.stage import Screening, ingest_source
from resources.screen.config import ScreenConfig
from resources.screen.door import listed_in_output
from resources.screen.hashlists import HashListError
from resources.screen.incidents import export_incidents
from resources.screen.matching import read_hash_cache

DATA = Path(skimage.data.__file__).parent
LISTED_TEXT = "A stand-in for a listed text, known to the hotline by its normalized hash."
TEXT_COPIES = {
    "exact.txt": LISTED_TEXT,
    "spaced.txt": "  A  stand-in for a listed\ttext,\nknown to the hotline by its normalized"
    " hash. ",
    "upper.txt": LISTED_TEXT.upper(),
    "exact-again.txt": LISTED_TEXT,  # a byte-identical duplicate is reported too
    "other.txt": "An ordinary essay about rivers that no list names.",
}
IMAGE_COPIES = {
    "resized.png": lambda im: im.resize((im.width // 2, im.height // 2)),
    "jpeg.jpg": lambda im: im,
    "mirrored.png": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "rotated.png": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "original.png": lambda im: im,
    "original-again.png": lambda im: im,
}
LISTED_COPIES = len(IMAGE_COPIES) + len(TEXT_COPIES) - 1


def _source(id_: str, path: str, fmt: str) -> Source:
    return Source(
        id=id_,
        path=path,
        format=fmt,
        license="CC0-1.0",
        consent="public_domain",
        uri=f"https://example.org/{id_}",
        retrieved_at=datetime(2026, 1, 1, tzinfo=UTC),
        owner="test@example.org",
    )


def _corpus(root: Path) -> Corpus:
    camera = Image.open(DATA / "astronaut.png").convert("RGB")
    images = root / "raw" / "images"
    images.mkdir(parents=True)
    for name, change in IMAGE_COPIES.items():
        fmt = "JPEG" if name.endswith(".jpg") else "PNG"
        change(camera).save(images / name, fmt, **({"quality": 60} if fmt == "JPEG" else {}))
    Image.open(DATA / "coffee.png").convert("RGB").save(images / "unlisted.png")
    texts = root / "raw" / "texts"
    texts.mkdir()
    for name, text in TEXT_COPIES.items():
        (texts / name).write_text(text, encoding="utf-8")
    lists = root / "hashlists"
    lists.mkdir()
    (lists / "hotline.csv").write_text(
        "hash,type,label\n"
        f"{phash(camera):016x},phash,listed image\n"
        f"{normalized_sha256(LISTED_TEXT)},sha256_text,listed text\n"
    )
    sources = (_source("images", "raw/images", "image"), _source("texts", "raw/texts", "txt"))
    return Corpus(root, root / "data", sources, Policy())


def _ingest_all(corpus: Corpus, config: ScreenConfig, ledger: Ledger) -> dict:
    screening = Screening.from_config(config, corpus)
    outcomes = {}
    for source in corpus.sources:
        spec = ReadSpec(max_record_bytes=10_000_000, batch_rows=3)
        out = corpus.output("ingest", source.id)
        root = corpus.resolve(source.path)
        outcomes[source.id] = ingest_source(
            source, root, corpus.policy, spec, out, ledger, "run-1", screening
        )
    return outcomes


CONFIG = ScreenConfig(hashlists_dir="hashlists", hash_cache="data/cache/hashes.parquet")


def test_every_altered_copy_is_an_incident_and_none_is_written(tmp_path):
    corpus = _corpus(tmp_path)
    ledger = Ledger(tmp_path / "data" / "ledger.duckdb")
    outcomes = _ingest_all(corpus, CONFIG, ledger)

    incidents = ledger.query("SELECT source_id, source_key, hash_type, distance FROM incidents")
    reported = set(zip(incidents["source_id"], incidents["source_key"], strict=True))
    expected = {("images", n) for n in IMAGE_COPIES} | {
        ("texts", n) for n in TEXT_COPIES if n != "other.txt"
    }
    assert reported == expected
    assert incidents.height == LISTED_COPIES  # one per occurrence, duplicates included
    assert incidents.filter(pl.col("hash_type") == "phash")["distance"].max() <= 10
    assert outcomes["images"].quarantined == len(IMAGE_COPIES)
    assert outcomes["texts"].dropped == {"harmful_hash_match": len(TEXT_COPIES) - 1}

    written = pl.concat([pl.read_parquet(o.artifact.path) for o in outcomes.values()])
    assert sorted(written["source_key"]) == ["other.txt", "unlisted.png"]
    # The drops name the occurrence and the incidents, never the listed record's id.
    drops = ledger.query(
        "SELECT record_id, evidence FROM drops WHERE reason = 'harmful_hash_match'"
    )
    assert drops.height == LISTED_COPIES and drops["record_id"].null_count() == drops.height
    assert ledger.query("SELECT count(*) FROM quarantine").item() == LISTED_COPIES
    # The cache holds every record's hashes, the listed ones too (a later list may need them).
    assert read_hash_cache(corpus.resolve(CONFIG.hash_cache)).height >= 2 + 5
    matches, unhashable = listed_in_output(CONFIG, corpus, "ingest", ["images", "texts"])
    assert matches.is_empty() and unhashable == 0

    again = _ingest_all(corpus, CONFIG, ledger)
    assert sum(o.incidents for o in again.values()) == 0  # nothing reported twice
    assert ledger.verify().ok


def test_the_hotline_export_names_every_occurrence_and_holds_no_content(tmp_path):
    corpus = _corpus(tmp_path)
    ledger = Ledger(tmp_path / "data" / "ledger.duckdb")
    _ingest_all(corpus, CONFIG, ledger)
    json_path, csv_path = export_incidents(ledger, tmp_path / "export")
    with csv_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == LISTED_COPIES
    assert {r["location"].rsplit("/", 1)[-1] for r in rows if r["source_id"] == "images"} == set(
        IMAGE_COPIES
    )
    assert all(r["entry_hash"] and r["list_name"] == "hotline" for r in rows)
    report = json.loads(json_path.read_text())
    assert report["counts"]["incidents"] == LISTED_COPIES
    for text in TEXT_COPIES.values():
        assert text not in json_path.read_text() and text not in csv_path.read_text()


def test_the_check_reads_back_what_was_written(tmp_path):
    corpus = _corpus(tmp_path)
    ledger = Ledger(tmp_path / "data" / "ledger.duckdb")
    _ingest_all(corpus, CONFIG, ledger)
    # A file that slipped past (written by something else) is caught by the read-back check.
    bypass = corpus.output("ingest", "images")
    ingested = pl.read_parquet(corpus.output("ingest", "texts"))
    ingested.with_columns(pl.lit(LISTED_TEXT).alias("text")).write_parquet(bypass)
    matches, _ = listed_in_output(CONFIG, corpus, "ingest", ["images"])
    assert matches.height == 1


@pytest.mark.parametrize("folder", ["missing", "empty", "upper"])
def test_no_usable_list_stops_ingest_unless_none_is_wanted(tmp_path, folder):
    corpus = _corpus(tmp_path)
    lists = tmp_path / "hashlists"
    if folder == "missing":
        shutil.rmtree(lists)
    elif folder == "empty":
        (lists / "hotline.csv").unlink()
    else:
        (lists / "hotline.csv").rename(lists / "hotline.CSV")
    with pytest.raises(HashListError):
        Screening.from_config(CONFIG, corpus)
    if folder != "upper":
        wanted_none = CONFIG.model_copy(update={"require_lists": False})
        assert Screening.from_config(wanted_none, corpus).door.lists == []


def test_matched_source_files_can_be_moved_to_a_private_quarantine(tmp_path):
    corpus = _corpus(tmp_path)
    ledger = Ledger(tmp_path / "data" / "ledger.duckdb")
    config = CONFIG.model_copy(update={"quarantine_dir": "quarantine"})
    _ingest_all(corpus, config, ledger)
    moves = ledger.query("SELECT source_id, source_key, to_path FROM quarantine_moves")
    assert moves.height == LISTED_COPIES
    assert sorted(p.name for p in (tmp_path / "raw" / "images").iterdir()) == ["unlisted.png"]
    assert sorted(p.name for p in (tmp_path / "raw" / "texts").iterdir()) == ["other.txt"]
    for folder in (tmp_path / "quarantine", tmp_path / "quarantine" / "images"):
        assert os.stat(folder).st_mode & 0o777 == 0o700
    assert all(Path(p).is_file() for p in moves["to_path"])
