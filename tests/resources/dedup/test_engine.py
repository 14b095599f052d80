import json
from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from PIL import Image
from skimage import data

from resources.core.normalize import normalized_sha256
from resources.core.records import IMAGE, RECORD_SCHEMA, TEXT, record_id, text_record_id
from resources.dedup.audit import kept_duplicates
from resources.dedup.config import DedupConfig, MinHashConfig
from resources.dedup.engine import deduplicate
from resources.dedup.minhash import exact_jaccard, shingle_hashes
from resources.dedup.survivors import survivor_rank

VOCAB = [f"tok{i}" for i in range(5000)]
LICENSED = ("CC0-1.0", "opt_in")
UNLICENSED = ("LicenseRef-Unknown", "none")


def doc(seed: int, n: int = 100) -> list[str]:
    return list(np.random.default_rng(seed).choice(VOCAB, n))


def edited(words: list[str], start: int, length: int, seed: int) -> str:
    out = list(words)
    out[start : start + length] = [f"new{seed}_{i}" for i in range(length)]
    return " ".join(out)


def jaccard(a: str, b: str) -> float:
    batch = shingle_hashes([a, b], MinHashConfig())
    return exact_jaccard(batch.of(0), batch.of(1))


def text_records(rows: list[tuple[str, str, str]]) -> pl.DataFrame:
    """rows of (source_id, source_key, text)"""
    return pl.DataFrame(
        {
            "record_id": [text_record_id(t) for _, _, t in rows],
            "source_id": [s for s, _, _ in rows],
            "source_key": [k for _, k, _ in rows],
            "kind": [TEXT] * len(rows),
            "text": [t for _, _, t in rows],
            "image_path": [None] * len(rows),
        },
        schema=RECORD_SCHEMA,
    )


def sources(spec: dict[str, tuple[tuple[str, str], str]]) -> pl.DataFrame:
    """source_id -> ((license, consent), ISO retrieved_at)"""
    return pl.DataFrame(
        {
            "source_id": list(spec),
            "license": [v[0][0] for v in spec.values()],
            "consent": [v[0][1] for v in spec.values()],
            "retrieved_at": [
                datetime.fromisoformat(v[1]).replace(tzinfo=UTC) for v in spec.values()
            ],
            "priority": [0] * len(spec),
        }
    )


def run(records: pl.DataFrame, srcs: pl.DataFrame, accepted=None, **config):
    rank = survivor_rank(records, srcs, [LICENSED[0]], [LICENSED[1]])
    return deduplicate(records, rank, accepted, DedupConfig(**config))


def evidence(result, source_key: str) -> dict:
    row = result.drops.filter(pl.col("source_key") == source_key)
    assert row.height == 1, f"{source_key} not dropped"
    return {"reason": row["reason"][0], **json.loads(row["evidence"][0])}


SRC_AB = sources({"a": (LICENSED, "2025-01-01"), "b": (LICENSED, "2025-06-01")})


def test_exact_duplicate_across_sources_is_removed():
    text = " ".join(doc(1))
    recs = text_records([("a", "a1", text), ("b", "b1", "  " + text.upper()), ("b", "b2", text)])
    result = run(recs, SRC_AB)
    assert result.kept["source_key"].to_list() == ["a1"]
    for key in ["b1", "b2"]:
        ev = evidence(result, key)
        assert ev["reason"] == "duplicate_exact"
        assert ev["duplicate_of"] == {
            "record_id": text_record_id(text),
            "source_id": "a",
            "source_key": "a1",
        }
        assert ev["method"] == "sha256_normalized_text" and ev["similarity"] == 1.0
    assert result.accepted["exact_key"].to_list() == [normalized_sha256(text)]


def test_near_duplicate_above_threshold_removed_below_kept():
    words = doc(2)
    above, below = edited(words, 40, 3, 1), edited(words, 40, 12, 2)
    j_above, j_below = jaccard(" ".join(words), above), jaccard(" ".join(words), below)
    assert j_above > 0.8 > j_below
    recs = text_records(
        [("a", "orig", " ".join(words)), ("b", "above", above), ("b", "below", below)]
    )
    result = run(recs, SRC_AB)
    assert sorted(result.kept["source_key"]) == ["below", "orig"]
    ev = evidence(result, "above")
    assert ev["reason"] == "duplicate_near"
    assert ev["duplicate_of"]["source_key"] == "orig"
    assert ev["similarity"] == pytest.approx(j_above)
    assert ev["method"] == "minhash_lsh+jaccard"


def test_estimated_verification_mode():
    words = doc(3)
    recs = text_records([("a", "orig", " ".join(words)), ("b", "copy", edited(words, 10, 1, 3))])
    result = run(recs, SRC_AB, verify="estimated")
    ev = evidence(result, "copy")
    assert ev["method"] == "minhash_lsh+estimated_jaccard" and ev["similarity"] >= 0.8


def test_survivor_by_license_consent_then_time():
    text = " ".join(doc(4))
    srcs = sources(
        {
            "early_unlicensed": (UNLICENSED, "2024-01-01"),
            "late_licensed": (LICENSED, "2026-01-01"),
            "mid_licensed": (LICENSED, "2025-01-01"),
            "no_consent": (("CC0-1.0", "none"), "2023-01-01"),
        }
    )
    recs = text_records([(s, f"{s}-1", text) for s in srcs["source_id"]])
    result = run(recs, srcs)
    assert result.kept["source_id"].to_list() == ["mid_licensed"]
    for s in ["early_unlicensed", "late_licensed", "no_consent"]:
        assert evidence(result, f"{s}-1")["duplicate_of"]["source_id"] == "mid_licensed"


def test_every_drop_names_a_kept_record_and_counts_add_up():
    rows = []
    for i in range(30):
        words = doc(100 + i)
        rows.append(("a", f"a{i}", " ".join(words)))
        if i % 3 == 0:
            rows.append(("b", f"b{i}", edited(words, 50, 2, i)))
        if i % 5 == 0:
            rows.append(("b", f"x{i}", " ".join(words)))
    recs = text_records(rows)
    result = run(recs, SRC_AB)
    assert result.kept.height + result.drops.height == recs.height
    kept_ids = set(zip(result.kept["record_id"], result.kept["source_key"], strict=True))
    for ev in result.drops["evidence"].to_list():
        target = json.loads(ev)["duplicate_of"]
        assert (target["record_id"], target["source_key"]) in kept_ids
    assert result.cluster_sizes == {2: 12, 3: 2}
    assert result.clusters == 14


def test_incremental_run_against_the_accepted_set():
    first = [(" ".join(doc(200 + i))) for i in range(10)]
    recs = text_records([("a", f"a{i}", t) for i, t in enumerate(first)])
    one = run(recs, SRC_AB)
    assert one.kept.height == 10 and one.accepted.height == 10
    accepted = one.accepted.join(
        recs.select("source_id", "source_key", "text"), on=["source_id", "source_key"]
    )

    # A later, better-licensed source repeats one accepted text and near-copies another.
    srcs = sources({"a": (UNLICENSED, "2025-01-01"), "c": (LICENSED, "2024-01-01")})
    new = text_records(
        [
            ("c", "c0", first[0]),
            ("c", "c1", edited(first[1].split(), 20, 2, 9)),
            ("c", "c2", " ".join(doc(999))),
        ]
    )
    two = run(new, srcs, accepted=accepted)
    assert two.kept["source_key"].to_list() == ["c2"]
    assert evidence(two, "c0")["duplicate_of"]["source_key"] == "a0"
    assert evidence(two, "c1")["duplicate_of"]["source_key"] == "a1"
    assert evidence(two, "c1")["reason"] == "duplicate_near"
    assert two.accepted.height == 11
    assert two.accepted.filter(pl.col("source_id") == "a").equals(one.accepted)


def image_records(tmp_path) -> pl.DataFrame:
    """Three distinct images in source a; in source b a re-saved copy and a JPEG thumbnail."""
    paths = {}
    for name in ["astronaut", "coffee", "chelsea"]:
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(getattr(data, name)()).convert("RGB").resize((200, 200)).save(paths[name])
    base = Image.open(paths["astronaut"])
    paths["resaved"] = tmp_path / "resaved.png"
    base.save(paths["resaved"], compress_level=9)
    paths["thumb"] = tmp_path / "thumb.jpg"
    base.resize((90, 90)).save(paths["thumb"], quality=55)
    names = list(paths)
    return pl.DataFrame(
        {
            "record_id": [record_id(IMAGE, paths[n].read_bytes()) for n in names],
            "source_id": ["a", "a", "a", "b", "b"],
            "source_key": names,
            "kind": [IMAGE] * 5,
            "text": [None] * 5,
            "image_path": [str(paths[n]) for n in names],
        },
        schema=RECORD_SCHEMA,
    )


def test_images_exact_and_resized_removed_distinct_kept(tmp_path):
    result = run(image_records(tmp_path), SRC_AB)
    assert sorted(result.kept["source_key"]) == ["astronaut", "chelsea", "coffee"]
    resaved, thumb = evidence(result, "resaved"), evidence(result, "thumb")
    assert resaved["reason"] == "duplicate_exact" and resaved["method"] == "sha256_pixels"
    assert thumb["reason"] == "duplicate_near" and thumb["method"] == "phash_hamming"
    assert thumb["hamming"] <= 6 and resaved["duplicate_of"]["source_key"] == "astronaut"
    assert result.accepted.filter(pl.col("kind") == IMAGE)["phash"].null_count() == 0


def test_image_keys_on_ray_decide_what_the_step_process_decides(tmp_path, ray_engine):
    recs = image_records(tmp_path)
    rank = survivor_rank(recs, SRC_AB, [LICENSED[0]], [LICENSED[1]])
    here = deduplicate(recs, rank, None, DedupConfig())
    # batch_size 2: three tasks, so the order of results across tasks is tested too.
    on_ray = deduplicate(recs, rank, None, DedupConfig(batch_size=2), ray_engine)
    for frame in ("kept", "drops", "accepted"):
        assert getattr(on_ray, frame).equals(getattr(here, frame)), frame


def test_audit_finds_nothing_after_dedup_and_finds_planted_pairs():
    rows = []
    for i in range(20):
        words = doc(300 + i)
        rows += [("a", f"a{i}", " ".join(words)), ("b", f"b{i}", edited(words, 30, 2, i))]
    recs = text_records(rows)
    result = run(recs, SRC_AB)
    kept = result.accepted.join(
        recs.select("source_id", "source_key", "text"), on=["source_id", "source_key"]
    )
    config = DedupConfig()
    assert kept_duplicates(kept, config, sample_size=50).is_empty()

    everything = run(recs, SRC_AB, threshold=0.99)
    assert everything.kept.height == 40
    all_kept = everything.accepted.join(
        recs.select("source_id", "source_key", "text"), on=["source_id", "source_key"]
    )
    violations = kept_duplicates(all_kept, config, sample_size=40)
    assert violations.height == 20
    assert (violations["similarity"] >= 0.8).all()


def test_among_equal_provenance_the_larger_image_survives(tmp_path):
    big, small = tmp_path / "z-original.png", tmp_path / "a-thumb.jpg"
    img = Image.fromarray(data.chelsea()).convert("RGB").resize((180, 120))
    img.save(big)
    img.resize((60, 40)).save(small, quality=60)
    recs = pl.DataFrame(
        {
            "record_id": [record_id(IMAGE, p.read_bytes()) for p in (small, big)],
            "source_id": ["a", "a"],
            "source_key": [small.name, big.name],
            "kind": [IMAGE, IMAGE],
            "text": [None, None],
            "image_path": [str(small), str(big)],
        },
        schema=RECORD_SCHEMA,
    )
    result = run(recs, SRC_AB)
    assert result.kept["source_key"].to_list() == [big.name]
    assert evidence(result, small.name)["duplicate_of"]["source_key"] == big.name


def test_audit_compares_images_by_phash_distance():
    kept = pl.DataFrame(
        {
            "record_id": ["a", "b", "c"],
            "source_id": ["s"] * 3,
            "source_key": ["a", "b", "c"],
            "kind": [IMAGE] * 3,
            "exact_key": ["1", "2", "3"],
            "signature": [None] * 3,
            "phash": [0b1111, 0b0111, 2**64 - 1],
            "text": [None] * 3,
        },
        schema_overrides={"phash": pl.UInt64, "signature": pl.Binary, "text": pl.String},
    )
    violations = kept_duplicates(kept, DedupConfig(image_max_distance=2), sample_size=3)
    assert violations.select("record_id", "other_record_id").rows() == [("a", "b")]
    assert violations["similarity"].to_list() == [63 / 64]
