"""The source-change sensor, ticked with dg.build_sensor_context against a copy of the sample
(conftest's `project` and `params` fixtures)."""

import json
import os
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import build_defs
from pipelines.params import Params
from resources.core.storage import file_sha256
from resources.ingest.files import content_digest, list_files

Tick = Callable[[str | None], tuple[list[dg.RunRequest], str]]


@pytest.fixture
def tick(project: Path) -> Tick:
    """Evaluate the wired sensor once with a cursor: (run requests, new cursor)."""
    # Partitioned run requests are resolved against the repository, so the context needs it.
    repo = build_defs(project).get_repository_def()
    sensor = repo.get_sensor_def("source_change_sensor")
    assert sensor.job_name == "ingest_job"

    def evaluate(cursor: str | None) -> tuple[list[dg.RunRequest], str]:
        data = sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor, repository_def=repo))
        return list(data.run_requests or []), data.cursor

    return evaluate


def by_partition(requests: list[dg.RunRequest]) -> dict[str, dg.RunRequest]:
    keys = [r.partition_key for r in requests]
    assert len(keys) == len(set(keys)), f"a partition was requested twice: {keys}"
    return {r.partition_key: r for r in requests}


def source_hash(params: Params, source_id: str) -> str:
    """The content hash the ingest engine records for a source (an independent computation)."""
    source = params.source(source_id)
    files, _ = list_files(params.resolve(source.path), source.format, source.glob)
    return content_digest({f.name: file_sha256(f.path) for f in files})


def settled(tick: Tick) -> str:
    """The cursor after a first tick (which requests everything)."""
    _, cursor = tick(None)
    return cursor


def bump_mtime(path: Path) -> None:
    """Move the mtime forward so the change is visible even on a coarse-mtime filesystem."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def test_first_tick_requests_every_source(tick, params):
    requests, cursor = tick(None)
    got = by_partition(requests)
    assert sorted(got) == sorted(params.source_ids)
    for source_id, request in got.items():
        assert request.run_key.startswith(f"{source_id}:{source_hash(params, source_id)}:")
        counts = json.loads(request.tags["assay/changes"])
        assert counts["new"] > 0 and counts["changed"] == counts["removed"] == 0
    assert sorted(json.loads(cursor)) == sorted(params.source_ids)


def test_unchanged_second_tick_requests_nothing(tick):
    cursor = settled(tick)
    requests, again = tick(cursor)
    assert requests == []
    assert json.loads(again) == json.loads(cursor)


def test_touched_but_identical_file_requests_nothing(tick, params):
    cursor = settled(tick)
    bump_mtime(params.resolve("data/raw/forum.jsonl"))
    requests, _ = tick(cursor)
    assert requests == []


def test_changed_file_requests_only_its_source(tick, params):
    cursor = settled(tick)
    path = params.resolve("data/raw/forum.jsonl")
    old_hash = source_hash(params, "forum")
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps({"id": "post-new", "text": "A post that arrived later."}) + "\n")
    requests, cursor = tick(cursor)
    got = by_partition(requests)
    assert list(got) == ["forum"]
    new_hash = source_hash(params, "forum")
    assert new_hash != old_hash
    assert got["forum"].run_key.startswith(f"forum:{new_hash}:")
    assert json.loads(got["forum"].tags["assay/changes"]) == {"new": 0, "removed": 0, "changed": 1}
    assert tick(cursor)[0] == []


def test_same_size_rewrite_is_seen(tick, params):
    cursor = settled(tick)
    path = params.resolve("data/raw/tickets.csv")
    data = path.read_bytes()
    index = data.rindex(b"a")
    path.write_bytes(data[:index] + b"b" + data[index + 1 :])
    bump_mtime(path)
    got = by_partition(tick(cursor)[0])
    assert list(got) == ["tickets"]
    assert got["tickets"].run_key.startswith(f"tickets:{source_hash(params, 'tickets')}:")


def add_essay(params) -> None:
    (params.resolve("data/raw/essays") / "essay-new.txt").write_text("A brand new essay.\n")


def remove_photo(params) -> None:
    (params.resolve("data/raw/photos") / "photo-03.png").unlink()


@pytest.mark.parametrize(
    ("change", "source_id", "counts"),
    [
        (add_essay, "essays", {"new": 1, "removed": 0, "changed": 0}),
        (remove_photo, "photos", {"new": 0, "removed": 1, "changed": 0}),
    ],
)
def test_a_new_or_removed_file_requests_only_its_source(tick, params, change, source_id, counts):
    cursor = settled(tick)
    change(params)
    got = by_partition(tick(cursor)[0])
    assert list(got) == [source_id]
    assert got[source_id].run_key.startswith(f"{source_id}:{source_hash(params, source_id)}:")
    assert json.loads(got[source_id].tags["assay/changes"]) == counts


def test_missing_source_path_does_not_crash_the_sensor(tick, params):
    cursor = settled(tick)
    wiki = params.resolve("data/raw/wiki.parquet")
    parked = wiki.with_name("wiki.parquet.away")
    wiki.rename(parked)
    (params.resolve("data/raw/essays") / "essay-new.txt").write_text("Another new essay.\n")
    requests, cursor = tick(cursor)
    # The other sources are still watched; the missing one is not requested (its run would fail).
    assert list(by_partition(requests)) == ["essays"]
    assert "wiki" not in json.loads(cursor)
    parked.rename(wiki)
    got = by_partition(tick(cursor)[0])
    assert list(got) == ["wiki"]
    assert got["wiki"].run_key.startswith(f"wiki:{source_hash(params, 'wiki')}:")


def test_a_revert_to_earlier_content_is_requested_again(tick, params):
    cursor = settled(tick)
    path = params.resolve(params.source("forum").path)
    original = path.read_bytes()
    path.write_bytes(original + b'{"id": "extra", "text": "one more post"}\n')
    bump_mtime(path)
    first, cursor = tick(cursor)
    path.write_bytes(original)
    bump_mtime(path)
    second, _ = tick(cursor)
    keys = [by_partition(r)["forum"].run_key for r in (first, second)]
    assert keys[0] != keys[1]
    assert keys[1].startswith(f"forum:{source_hash(params, 'forum')}:")


def test_first_tick_skips_sources_the_ledger_saw_with_this_content(tick, params):
    from tests.conftest import ingest_all

    ingest_all(params)
    path = params.resolve(params.source("wiki").path)
    path.write_bytes(path.read_bytes() + b"\0")
    requests, _ = tick(None)
    assert list(by_partition(requests)) == ["wiki"]
