"""The dedup stage without Dagster: the plan, the files, the ledger rows, the audit."""

import json
from pathlib import Path

import yaml

from pipelines.params import Params, load_params
from resources.core.ledger import Ledger
from resources.core.storage import read_stage, stage_data_version, stage_path
from resources.dedup.stage import STAGE, run, settings_digest
from tests.resources.dedup.corpus import doc, ingested, source


def project(root: Path, ids: list[str], dedup: dict | None = None) -> Params:
    body = {
        "paths": {"data_dir": "data", "ledger": "data/ledger.duckdb"},
        "policy": {"allowed_licenses": ["CC0-1.0"], "allowed_consent": ["opt_in"]},
        "dedup": {"check_sample": 20, **(dedup or {})},
        "sources": [
            source(s, "CC0-1.0", "opt_in") if s != "closed" else source(s, "Other", "none")
            for s in ids
        ],
    }
    (root / "params.yaml").write_text(yaml.safe_dump(body))
    return load_params(root / "params.yaml")


def test_full_then_incremental_without_dagster(tmp_path):
    params = project(tmp_path, ["open", "closed"])
    ingested(tmp_path, "open", [("o1", doc(1)), ("o2", doc(2))])
    ingested(tmp_path, "closed", [("c1", doc(1)), ("c3", doc(3))])
    ledger = Ledger(params.ledger_path)

    first = run(params.dedup, ledger, "run-1", params.corpus())
    assert (first.mode, first.plan.process, first.plan.carried) == ("full", ["closed", "open"], [])
    assert first.records_in == 4
    assert first.removed_per_source == {"closed": {"duplicate_exact": 1}}
    assert first.violations.is_empty()
    assert first.audited == 3
    assert 0.95 <= first.recall_at_threshold <= 1.0
    assert sorted(read_stage(params.data_dir, STAGE)["source_key"]) == ["c3", "o1", "o2"]
    assert first.data_version == stage_data_version(params.data_dir, STAGE, params.source_ids)
    drop = ledger.query("SELECT source_key, evidence FROM drops WHERE run_id = 'run-1'").to_dicts()
    assert [d["source_key"] for d in drop] == ["c1"]
    assert json.loads(drop[0]["evidence"])["duplicate_of"]["source_key"] == "o1"

    params = project(tmp_path, ["open", "closed", "late"])
    ingested(tmp_path, "late", [("l2", doc(2)), ("l4", doc(4))])
    second = run(params.dedup, ledger, "run-2", params.corpus())
    assert (second.mode, second.plan.process, second.plan.carried) == (
        "incremental",
        ["late"],
        ["closed", "open"],
    )
    assert second.removed_per_source == {"late": {"duplicate_exact": 1}}
    assert second.result.accepted.height == 4
    assert second.data_version != first.data_version
    runs = ledger.query("SELECT mode, processed FROM dedup_runs ORDER BY entry_seq").to_dicts()
    assert runs == [
        {"mode": "full", "processed": "closed,open"},
        {"mode": "incremental", "processed": "late"},
    ]
    artifacts = ledger.query(
        "SELECT source_id, records FROM artifacts WHERE stage = 'dedup' AND run_id = 'run-2'"
    ).to_dicts()
    assert artifacts == [{"source_id": "late", "records": 1}]

    # A source no longer declared loses its output file.
    params = project(tmp_path, ["open", "late"])
    third = run(params.dedup, ledger, "run-3", params.corpus())
    assert third.plan.removed == ["closed"]
    assert not stage_path(params.data_dir, STAGE, "closed").exists()


def digest(params: Params) -> str:
    return settings_digest(params.dedup, params.corpus())


def test_settings_digest_tracks_what_decides_duplicates_only(tmp_path):
    base = digest(project(tmp_path, ["open"]))
    assert digest(project(tmp_path, ["open"], {"threshold": 0.9})) != base
    assert digest(project(tmp_path, ["open"], {"check_sample": 999})) == base
    assert digest(project(tmp_path, ["open"], {"incremental": False})) == base


def _near_copy(text: str) -> str:
    """One word of 80 changed: word 5-gram Jaccard about 0.88, above the 0.8 threshold."""
    words = text.split()
    words[40] = "changed"
    return " ".join(words)


def test_pairs_lsh_missed_are_found_by_the_audit_and_none_is_left_behind(tmp_path):
    from assets.dedup import _no_kept_duplicates
    from resources.dedup.audit import kept_duplicates

    # min_recall this low makes LSH miss most pairs near the threshold, as it may by design
    params = project(tmp_path, ["open"], {"min_recall": 0.05, "check_sample": 500})
    rows = [(f"o{i}", doc(i)) for i in range(30)] + [
        (f"n{i}", _near_copy(doc(i))) for i in range(30)
    ]
    ingested(tmp_path, "open", rows)
    outcome = run(params.dedup, Ledger(params.ledger_path), "run-1", params.corpus())
    assert outcome.estimate.exhaustive and outcome.estimate.with_duplicate > 0
    assert outcome.removed_by_audit == outcome.estimate.with_duplicate // 2 > 0
    assert outcome.removed_by_audit + outcome.result.verified_pairs == 30
    kept = read_stage(params.data_dir, STAGE)
    assert kept.height == 30
    kept_with_sig = outcome.result.accepted.join(kept.select("source_key", "text"), on="source_key")
    assert kept_duplicates(kept_with_sig, params.dedup, sample_size=500).is_empty()
    assert _no_kept_duplicates(outcome, 500).passed
    drops = Ledger(params.ledger_path).query(
        "SELECT evidence FROM drops WHERE evidence LIKE '%audit_exact_jaccard%'"
    )
    assert drops.height == outcome.removed_by_audit


def test_the_residual_bound_passes_a_clean_sample_and_blocks_a_dirty_one():
    from resources.dedup.audit import ResidualEstimate

    clean = ResidualEstimate(kept=10_000, sampled=500, with_duplicate=0, confidence=0.95)
    dirty = ResidualEstimate(kept=10_000, sampled=500, with_duplicate=20, confidence=0.95)
    assert clean.upper_bound < 0.01 < 0.02 < dirty.upper_bound
    assert abs(clean.upper_bound - (1 - 0.05 ** (1 / 500))) < 1e-9  # the rule of three's exact form
    assert dirty.rate == 0.04 and not dirty.exhaustive
