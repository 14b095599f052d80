import polars as pl
import pytest

from resources.core.ledger import Ledger
from resources.core.reasons import Reason
from resources.core.storage import stage_path
from resources.ingest.readers import ReadSpec
from resources.ingest.stage import Screening, ingest_source, policy_refusal

EXPECTED_DROPS = {
    "forum": {"malformed": 2, "empty": 1, "harmful_hash_match": 1},
    "tickets": {"malformed": 1, "encoding": 1},
    "wiki": {},
    "essays": {"encoding": 1, "outside_root": 1, "harmful_hash_match": 2},
    "scraped": {"license_disallowed": 41},
    "photos": {"unreadable": 1, "harmful_hash_match": 2},
}


def _ingest(params, source_id, ledger, run_id="run-1"):
    source = params.source(source_id)
    spec = ReadSpec(source.text_field, source.id_field, params.ingest.max_record_bytes, 40)
    out = stage_path(params.data_dir, "ingest", source_id)
    root = params.resolve(source.path)
    screening = Screening.from_config(params.screen, params.corpus())
    return ingest_source(source, root, params.policy, spec, out, ledger, run_id, screening)


@pytest.mark.parametrize("source_id", list(EXPECTED_DROPS))
def test_every_item_read_is_a_record_or_a_reasoned_drop(params, source_id):
    ledger = Ledger(params.ledger_path)
    outcome = _ingest(params, source_id, ledger)
    assert outcome.dropped == EXPECTED_DROPS[source_id]
    records = ledger.query("SELECT * FROM records WHERE source_id = ?", [source_id])
    drops = ledger.query("SELECT * FROM drops WHERE source_id = ?", [source_id])
    written = pl.read_parquet(outcome.artifact.path)
    assert outcome.read == records.height + drops.height == written.height + drops.height
    assert set(drops["reason"]) <= {str(r) for r in Reason}
    assert drops["evidence"].null_count() == 0
    assert sorted(written["record_id"]) == sorted(records["record_id"])
    counts = ledger.query("SELECT * FROM stage_counts WHERE source_id = ?", [source_id]).row(
        0, named=True
    )
    assert (counts["records_in"], counts["records_out"]) == (outcome.read, outcome.kept)
    assert ledger.verify().ok


def test_record_ids_are_content_hashes(params):
    ledger = Ledger(params.ledger_path)
    _ingest(params, "forum", ledger)
    forum = pl.read_parquet(stage_path(params.data_dir, "ingest", "forum"))
    dup = forum.filter(pl.col("source_key").is_in(["post-0003", "post-dup-exact"]))
    assert dup["record_id"].n_unique() == 1 and dup.height == 2


def test_policy_refuses_by_license_then_consent(params):
    scraped = params.source("scraped")
    assert policy_refusal(scraped, params.policy)[0] == Reason.LICENSE_DISALLOWED
    no_consent = scraped.model_copy(update={"license": "CC0-1.0"})
    assert policy_refusal(no_consent, params.policy)[0] == Reason.NO_CONSENT
    assert policy_refusal(params.source("forum"), params.policy) is None


def test_reingest_of_unchanged_source_writes_identical_output(params):
    ledger = Ledger(params.ledger_path)
    first = _ingest(params, "wiki", ledger, "run-1")
    second = _ingest(params, "wiki", ledger, "run-2")
    assert first.artifact.sha256 == second.artifact.sha256
    assert first.content_sha256 == second.content_sha256
