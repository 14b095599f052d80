import json
from pathlib import Path

import duckdb
import pytest

from pipelines.params import load_params
from resources.core.audit import why
from resources.core.ledger import Ledger
from resources.dedup.stage import run as dedup_run
from resources.ingest.stage import run as ingest_run
from resources.scrub import ner_model
from resources.scrub.keys import PREFIX, hashed_key, protect_key, protect_keys
from resources.scrub.stage import run as scrub_run
from tests.conftest import copy_project

PII_KEY = "alice.smith@example.com 123-45-6789"
DROPPED_KEY = "bob.jones@example.org"
FILE_KEY = "call 612.555.0142-Office.txt"
SECRETS = ("alice.smith", "123-45-6789", "bob.jones", "612.555.0142")


def test_a_key_holding_pii_becomes_its_keyed_hash():
    stored = protect_key(PII_KEY)
    assert stored.startswith(PREFIX) and stored == hashed_key(PII_KEY)
    assert not any(s in stored for s in SECRETS)
    assert protect_key(PII_KEY) == stored  # deterministic: why() can find it again


@pytest.mark.parametrize(
    "key",
    ["post-0003", "tickets.csv:17", "essay-04.txt", "page/History", "https://example.net/p/0"],
)
def test_a_plain_key_is_kept(key):
    assert protect_key(key) == key


def test_a_url_key_holding_an_email_is_hashed():
    assert protect_key("https://example.net/u?mail=alice.smith@example.com").startswith(PREFIX)


def test_keys_are_protected_in_a_batch_like_one_by_one():
    keys = [PII_KEY, "post-0003", "notes_for_ingrid_solvang.txt", hashed_key(PII_KEY)]
    assert protect_keys(keys) == [protect_key(k) for k in keys]
    assert protect_keys(keys)[3] == hashed_key(PII_KEY)  # an already-hashed key stays as is


@pytest.fixture(scope="module")
def pii_keyed_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample project with PII in a JSONL id, a dropped item's id and a file name, run
    through ingest, dedup and scrub."""
    root = tmp_path_factory.mktemp("pii-keys")
    params_path = copy_project(root)
    with (root / "data/raw/forum.jsonl").open("a") as f:
        f.write(json.dumps({"id": PII_KEY, "text": "A post whose id holds PII."}) + "\n")
        f.write(json.dumps({"id": DROPPED_KEY, "text": 5}) + "\n")  # malformed: dropped
    (root / "data/raw/essays" / FILE_KEY).write_text("An essay whose file name holds PII.")
    params = load_params(params_path)
    ledger = Ledger(params.ledger_path)
    corpus = params.corpus()
    for source in ("forum", "essays"):
        ingest_run(params.ingest, ledger, "keys-run", corpus, source, params.screen)
    dedup_run(params.dedup, ledger, "keys-run", corpus)
    scrub_run(params.pii, ledger, "keys-run", corpus)
    return root


def test_a_pii_key_never_reaches_the_ledger_or_any_output(pii_keyed_project):
    con = duckdb.connect(str(pii_keyed_project / "data/ledger.duckdb"), read_only=True)
    tables = [
        r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    ]
    for table in tables:
        for row in con.execute(f'SELECT * FROM "{table}"').fetchall():
            cells = " ".join(str(c) for c in row)
            assert not any(s in cells for s in SECRETS), (table, cells)
    con.close()
    outputs = [p for p in (pii_keyed_project / "data").rglob("*") if p.is_file()]
    outputs = [p for p in outputs if "raw" not in p.relative_to(pii_keyed_project).parts]
    assert any(p.suffix == ".parquet" for p in outputs)
    for path in outputs:
        data = path.read_bytes()
        assert not any(s.encode() in data for s in SECRETS), path


def test_why_finds_a_record_by_its_raw_pii_key(pii_keyed_project):
    ledger = Ledger(pii_keyed_project / "data/ledger.duckdb")
    for raw, fate in [(PII_KEY, "kept"), (DROPPED_KEY, "dropped at ingest"), (FILE_KEY, "kept")]:
        found = why(ledger, raw)
        assert len(found) == 1, raw
        assert found[0]["source_key"] == hashed_key(raw)
        assert found[0]["fate"].startswith(fate)


def test_the_scrub_stage_records_the_ner_model_it_ran(pii_keyed_project):
    ledger = Ledger(pii_keyed_project / "data/ledger.duckdb")
    rows = ledger.query("SELECT * FROM detector_models").to_dicts()
    prov = ner_model.provenance(ner_model.ensure_model())
    assert [(r["name"], r["model_sha256"], r["recipe_digest"]) for r in rows] == [
        (prov["name"], prov["model_sha256"], prov["recipe_digest"])
    ]
    assert "held out" in rows[0]["training_data"]
