import hashlib
import json
import uuid
from pathlib import Path

import dagster as dg
import pytest
import skimage.data
from click.testing import CliRunner
from PIL import Image

from assets.dedup import build_dedup_asset
from assets.ingest import build_ingest_asset
from assets.screen import build_screen_asset, no_listed_content
from assets.scrub import build_scrub_asset
from pipelines.cli import cli
from pipelines.params import load_params
from pipelines.resource import AssayResource
from resources.core.ledger import Ledger
from resources.core.normalize import normalized_sha256
from resources.core.perceptual import phash
from resources.core.storage import read_stage, stage_path
from resources.ingest.readers import ReadSpec
from resources.ingest.stage import ingest_source
from resources.scrub.stage import scrub_stage
from sensors.hashlist_change import build_hashlist_sensor

DATA = Path(skimage.data.__file__).parent
LISTED_TEXT = "A stand-in for listed text: harmless, only its hash is on the list."
LATER_TEXT = "A second stand-in that passes the first screen and is listed later."
PLAIN = [f"An ordinary sentence number {i} about gardening and rain." for i in range(6)]

PARAMS = """\
paths: {{data_dir: data, ledger: data/ledger.duckdb}}
screen: {{hashlists_dir: data/hashlists}}
sources:
  - {{id: texts, path: data/raw/texts.jsonl, format: jsonl, id_field: id, {common}}}
  - {{id: images, path: data/raw/images, format: image, {common}}}
"""
COMMON = (
    "license: CC0-1.0, consent: public_domain, uri: https://example.org/x,"
    " retrieved_at: 2026-01-01T00:00:00Z, owner: test@example.org"
)


def _write_texts(path: Path, texts: list[str]) -> None:
    lines = [json.dumps({"id": f"t{i}", "text": t}) for i, t in enumerate(texts)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    raw = tmp_path / "data" / "raw"
    (raw / "images").mkdir(parents=True)
    (tmp_path / "data" / "hashlists").mkdir()
    _write_texts(raw / "texts.jsonl", [*PLAIN, LISTED_TEXT, LATER_TEXT])
    for name in ("camera.png", "coffee.png", "moon.png"):
        Image.open(DATA / name).convert("RGB").save(raw / "images" / name)
    # A resized, re-encoded copy of a listed image.
    astronaut = Image.open(DATA / "astronaut.png").convert("RGB").resize((160, 160))
    astronaut.save(raw / "images" / "astronaut-small.jpg", quality=50)
    _list(tmp_path, "demo", [(normalized_sha256(LISTED_TEXT.upper()), "sha256_text", "text")])
    _list(tmp_path, "images", [(f"{phash(Image.open(DATA / 'astronaut.png')):016x}", "phash", "a")])
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.format(common=COMMON))
    return params


def _list(root: Path, name: str, rows: list[tuple[str, str, str]]) -> Path:
    path = root / "data" / "hashlists" / f"{name}.csv"
    path.write_text("hash,type,label\n" + "".join(f"{h},{t},{n}\n" for h, t, n in rows))
    return path


def _ingest(params_path: Path, instance: dg.DagsterInstance) -> dg.AssetsDefinition:
    """Ingest, dedup and scrub every source (their assets have their own tests); returns the
    ingest asset so Dagster can resolve screen's dependencies."""
    params = load_params(params_path)
    ledger = Ledger(params.ledger_path)
    for source in params.sources:
        spec = ReadSpec(source.text_field, source.id_field)
        out = stage_path(params.data_dir, "ingest", source.id)
        root = params.resolve(source.path)
        ingest_source(source, root, params.policy, spec, out, ledger, f"ingest-{uuid.uuid4()}")
    ingest = build_ingest_asset(params)
    deduped = dg.materialize(
        [ingest, build_dedup_asset(params)],
        selection=[dg.AssetKey("dedup")],
        instance=instance,
        resources=_res(params_path),
    )
    assert deduped.success
    scrub_stage(params.data_dir, params.source_ids, params.pii, ledger, f"scrub-{uuid.uuid4()}")
    return ingest


def _res(params_path: Path) -> dict:
    return {"assay": AssayResource(params_path=str(params_path))}


def _screen(params_path: Path, ingest, instance):
    params = load_params(params_path)
    return dg.materialize(
        [
            ingest,
            *(
                build(params)
                for build in (build_dedup_asset, build_scrub_asset, build_screen_asset)
            ),
        ],
        selection=[dg.AssetKey("screen")],
        instance=instance,
        resources=_res(params_path),
    )


@pytest.fixture
def instance():
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _ledger(params_path: Path) -> Ledger:
    return Ledger(load_params(params_path).ledger_path)


def test_screen_drops_matches_and_records_incidents(project, instance):
    ingest = _ingest(project, instance)
    result = _screen(project, ingest, instance)
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"conservation": True, "no_listed_content": True}

    params = load_params(project)
    out = read_stage(params.data_dir, "screen")
    assert sorted(out["source_key"]) == sorted(
        [f"t{i}" for i in range(len(PLAIN))] + ["t7", "camera.png", "coffee.png", "moon.png"]
    )
    ledger = _ledger(project)
    drops = ledger.query("SELECT source_key, reason, evidence FROM drops WHERE stage = 'screen'")
    assert sorted(drops["source_key"]) == ["astronaut-small.jpg", "t6"]
    assert set(drops["reason"]) == {"harmful_hash_match"}
    evidence = {r["source_key"]: json.loads(r["evidence"]) for r in drops.to_dicts()}
    assert evidence["t6"]["hash_type"] == "sha256_text"
    assert evidence["astronaut-small.jpg"]["list"] == "images"
    assert evidence["astronaut-small.jpg"]["distance"] <= params.screen.phash_max_distance

    incidents = ledger.query("SELECT * FROM incidents")
    assert sorted(incidents["kind"]) == ["new", "new"]
    quarantine = ledger.query("SELECT * FROM quarantine ORDER BY source_key")
    assert quarantine["source_key"].to_list() == ["astronaut-small.jpg", "t6"]
    assert quarantine["location"][0].endswith("astronaut-small.jpg")
    assert quarantine["phash"][0] is not None and quarantine["sha256_text"][1] is not None
    lists = ledger.query("SELECT name, version, provider, sha256 FROM hash_lists ORDER BY name")
    assert lists["name"].to_list() == ["demo", "images"]
    digest = hashlib.sha256((params.data_dir / "hashlists" / "demo.csv").read_bytes()).hexdigest()
    assert lists["sha256"][0] == digest and lists["version"][0] == f"sha256:{digest[:12]}"

    # A second run reports nothing twice.
    assert _screen(project, ingest, instance).success
    assert ledger.query("SELECT count(*) AS n FROM incidents")["n"][0] == 2


def test_quarantine_and_ledger_hold_none_of_the_items_bytes(project, instance, tmp_path):
    ingest = _ingest(project, instance)
    assert _screen(project, ingest, instance).success
    ledger = _ledger(project)
    export = ledger.export(tmp_path / "export")
    runner = CliRunner()
    outcome = runner.invoke(
        cli, ["ledger", "incidents", "--params", str(project), "--export", str(tmp_path / "inc")]
    )
    assert outcome.exit_code == 0, outcome.output

    image_bytes = (tmp_path / "data" / "raw" / "images" / "astronaut-small.jpg").read_bytes()
    needles = [
        LISTED_TEXT.encode(),
        LISTED_TEXT.upper().encode(),
        normalized_text_bytes(LISTED_TEXT),
        image_bytes[len(image_bytes) // 2 : len(image_bytes) // 2 + 48],
        image_bytes[-48:],
    ]
    params = load_params(project)
    files = [
        params.ledger_path,
        params.resolve(params.screen.hash_cache),
        *export,
        tmp_path / "inc" / "incidents.json",
        tmp_path / "inc" / "incidents.csv",
    ]
    for file in files:
        content = file.read_bytes()
        assert all(n not in content for n in needles), file
    # DuckDB may compress what it stores, so ask it too: no text column holds the text.
    for table in ("quarantine", "incidents", "screen_matches", "drops", "hash_lists"):
        frame = ledger.query(f"SELECT * FROM {table}")
        dumped = frame.write_csv()
        assert LISTED_TEXT not in dumped and LISTED_TEXT.casefold() not in dumped, table
    assert ledger.query("SELECT count(*) AS n FROM quarantine")["n"][0] == 2


def normalized_text_bytes(text: str) -> bytes:
    from resources.core.normalize import normalize_text

    return normalize_text(text).encode()


def test_sensor_rescreens_and_raises_a_retroactive_incident(project, instance):
    ingest = _ingest(project, instance)
    first = _screen(project, ingest, instance)
    assert first.success
    params = load_params(project)
    ledger = _ledger(project)
    passed = ledger.query(
        "SELECT path, sha256 FROM artifacts WHERE stage = 'screen' AND source_id = 'texts'"
    ).row(0, named=True)

    # A later stage built something from that output (train has no stage here: a ledger row).
    model = {"path": "data/train/model.pt", "sha256": "ab" * 32, "size_bytes": 1, "stage": "train"}
    ledger.append("artifacts", [model], run_id="train-run")

    job = dg.define_asset_job("rescreen_job", selection=[dg.AssetKey("screen")])
    sensor = build_hashlist_sensor(job, str(project))
    tick = sensor(dg.build_sensor_context(instance=instance))
    assert tick.run_requests == []  # the lists are the ones the last screen used
    cursor = tick.cursor

    # The list grows: LATER_TEXT, which the first run passed, is now listed.
    _list(project.parent, "later", [(hashlib.md5(LATER_TEXT.encode()).hexdigest(), "md5", "l")])
    tick = sensor(dg.build_sensor_context(instance=instance, cursor=cursor))
    assert len(tick.run_requests) == 1
    assert json.loads(tick.run_requests[0].tags["assay/hashlist_changes"])["new"] == ["later.csv"]
    again = sensor(dg.build_sensor_context(instance=instance, cursor=tick.cursor))
    assert again.run_requests == []

    assert _screen(project, ingest, instance).success
    retro = ledger.query("SELECT * FROM incidents WHERE kind = 'retroactive'")
    assert retro.height == 1
    row = retro.row(0, named=True)
    assert row["list_name"] == "later" and row["hash_type"] == "md5"
    assert row["sources"] == "texts" and row["occurrences"] == 1
    assert json.loads(row["affected_artifacts"]) == [
        {
            "path": passed["path"],
            "sha256": passed["sha256"],
            "stage": "screen",
            "run_id": first.run_id,
        },
        {**{k: model[k] for k in ("path", "sha256", "stage")}, "run_id": "train-run"},
    ]
    out = read_stage(params.data_dir, "screen")
    assert "t7" not in out["source_key"].to_list()


def test_a_record_only_an_earlier_output_holds_is_still_rescreened(project, instance):
    ingest = _ingest(project, instance)
    assert _screen(project, ingest, instance).success
    # The source drops LATER_TEXT; then a list names it. It is no longer upstream, but an
    # earlier output held it, so it is a retroactive incident all the same.
    _write_texts(project.parent / "data" / "raw" / "texts.jsonl", [*PLAIN, LISTED_TEXT])
    ingest = _ingest(project, instance)
    _list(project.parent, "later", [(normalized_sha256(LATER_TEXT), "sha256_text", "l")])
    assert _screen(project, ingest, instance).success
    retro = _ledger(project).query("SELECT * FROM incidents WHERE kind = 'retroactive'")
    assert retro["list_name"].to_list() == ["later"]
    assert len(json.loads(retro["affected_artifacts"][0])) == 1


def test_blocking_check_fails_when_the_output_holds_a_listed_record(project, instance):
    ingest = _ingest(project, instance)
    assert _screen(project, ingest, instance).success
    params = load_params(project)
    assert no_listed_content(params, ["texts", "images"]).passed
    _list(project.parent, "sneaky", [(normalized_sha256(PLAIN[0]), "sha256_text", "s")])
    check = no_listed_content(params, ["texts", "images"])
    assert not check.passed
    assert check.metadata["matches"].value == 1


def test_an_image_that_cannot_be_read_at_screen_is_dropped_not_passed(project, instance):
    ingest = _ingest(project, instance)
    images = project.parent / "data" / "raw" / "images"
    (images / "coffee.png").write_bytes(b"not an image")
    # Decodable, but not what ingest saw: held back; and if what is there now is listed, it
    # is a harmful match like any other.
    Image.open(DATA / "camera.png").save(images / "moon.png")
    Image.open(DATA / "astronaut.png").save(images / "camera.png")
    result = _screen(project, ingest, instance)
    assert result.success
    drops = _ledger(project).query("SELECT source_key, reason FROM drops WHERE stage = 'screen'")
    assert sorted(drops.rows()) == [
        ("astronaut-small.jpg", "harmful_hash_match"),
        ("camera.png", "harmful_hash_match"),
        ("coffee.png", "unreadable"),
        ("moon.png", "content_changed"),
        ("t6", "harmful_hash_match"),
    ]


def test_incidents_command_prints_one_json_document(project, instance):
    ingest = _ingest(project, instance)
    assert _screen(project, ingest, instance).success
    outcome = CliRunner().invoke(cli, ["ledger", "incidents", "--params", str(project), "--json"])
    assert outcome.exit_code == 0, outcome.output
    report = json.loads(outcome.output)
    assert report["counts"]["incidents"] == 2
    assert report["counts"]["by_kind"] == {"new": 2}
    assert {i["hash_type"] for i in report["incidents"]} == {"sha256_text", "phash"}
    assert "source_key" not in report["incidents"][0]
    assert sorted(lst["name"] for lst in report["lists"]) == ["demo", "images"]


def test_sensor_first_tick_without_any_screen_requests_nothing(project, instance):
    job = dg.define_asset_job("rescreen_job", selection=[dg.AssetKey("screen")])
    tick = build_hashlist_sensor(job, str(project))(dg.build_sensor_context(instance=instance))
    assert tick.run_requests == []
    assert set(json.loads(tick.cursor)) == {"demo.csv", "images.csv"}


def test_a_listed_text_that_scrub_rewrote_still_matches_its_original_hash(project, instance):
    original = "Write to jane.doe@example.com for the listed stand-in text."
    texts = project.parent / "data" / "raw" / "texts.jsonl"
    texts.write_text(texts.read_text() + json.dumps({"id": "pii", "text": original}) + "\n")
    _list(project.parent, "raw", [(hashlib.md5(original.encode()).hexdigest(), "md5", "r")])
    ingest = _ingest(project, instance)
    scrubbed = read_stage(load_params(project).data_dir, "scrub")
    assert original not in scrubbed["text"].to_list()  # scrub did rewrite it
    assert _screen(project, ingest, instance).success
    drops = _ledger(project).query("SELECT source_key, evidence FROM drops WHERE stage = 'screen'")
    found = {r["source_key"]: json.loads(r["evidence"]) for r in drops.to_dicts()}
    assert found["pii"]["list"] == "raw" and found["pii"]["hash_type"] == "md5"
