import json
import re
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from pipelines.definitions import build_defs
from pipelines.params import load_params
from resources.core.ledger import Ledger
from resources.scrub.config import ScrubConfig
from resources.scrub.detection import Scrubber
from tests.assets import markdown
from tests.conftest import copy_project, ingest_all

EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
SYSTEM_ID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32,128}"
)


def _project(tmp_path: Path, pii: dict | None = None) -> Path:
    params_path = copy_project(tmp_path)
    if pii is not None:
        raw = yaml.safe_load(params_path.read_text())
        raw["pii"] = pii
        params_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    ingest_all(load_params(params_path))
    return params_path


def _run_scrub(params_path: Path) -> dg.ExecuteInProcessResult:
    defs = build_defs(params_path)
    return defs.resolve_job_def("curate_job").execute_in_process(
        instance=dg.DagsterInstance.get(),
        asset_selection=[dg.AssetKey("dedup"), dg.AssetKey("scrub")],
        raise_on_error=False,
    )


@pytest.fixture(scope="module")
def scrubbed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dg.ExecuteInProcessResult]:
    root = tmp_path_factory.mktemp("scrub")
    home = root / ".dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_HOME", str(home))
        params_path = _project(root)
        return params_path, _run_scrub(params_path)


def test_scrub_materializes_with_passing_checks(scrubbed):
    _, result = scrubbed
    assert result.success
    checks = {
        c.check_name: c
        for c in result.get_asset_check_evaluations()
        if c.asset_key == dg.AssetKey("scrub")
    }
    assert set(checks) == {"conservation", "pii_residual"}
    assert all(c.passed for c in checks.values())
    assert checks["pii_residual"].metadata["residual_per_10k_docs"].value == 0
    meta = result.asset_materializations_for_node("scrub")[0].metadata
    found = markdown.counts(meta["entities_by_type"])
    assert {"EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "PERSON"} <= set(found)


def test_output_holds_no_email_or_ssn_the_input_held(scrubbed):
    params_path, _ = scrubbed
    data = load_params(params_path).data_dir
    before = pl.read_parquet(data / "ingest" / "tickets.parquet")["text"].str.join(" ").item()
    after = pl.read_parquet(data / "scrub" / "tickets.parquet")["text"].str.join(" ").item()
    assert EMAIL.search(before) and SSN.search(before)
    assert not EMAIL.search(after) and not SSN.search(after)
    assert "<EMAIL_ADDRESS>" in after and "<US_SSN>" in after


def test_ledger_has_counts_per_source_type_and_record(scrubbed):
    params_path, _ = scrubbed
    ledger = Ledger(load_params(params_path).ledger_path)
    counts = ledger.query("SELECT * FROM pii_counts")
    assert counts.filter(pl.col("source_id") == "tickets")["entities"].sum() > 0
    per_record = ledger.query("SELECT * FROM pii_record_counts")
    assert per_record["entities"].sum() == counts["entities"].sum()
    for row in per_record.head(20).to_dicts():
        assert sum(json.loads(row["counts"]).values()) == row["entities"]
    stage = ledger.query("SELECT * FROM stage_counts WHERE stage = 'scrub'")
    assert (stage["records_in"] == stage["records_out"] + stage["dropped"]).all()
    assert ledger.verify().ok


ASSAY_MADE = ("uri", "owner", "path", "public_key", "signature", "key_fingerprint")
"""String columns the corpus never fills: params.yaml's own facts and the signing key's."""


def test_no_value_reaches_the_ledger(scrubbed):
    params_path, _ = scrubbed
    params = load_params(params_path)
    before = pl.read_parquet(params.data_dir / "ingest" / "tickets.parquet")["text"]
    planted = {m for t in before for m in EMAIL.findall(t) + SSN.findall(t)}
    assert planted
    # Byte level: not one detected value appears anywhere in the DuckDB file.
    blob = params.ledger_path.read_bytes()
    assert not [v for v in planted if v.encode() in blob]
    # Analyzer level: every string cell of every table scanned by the scrubber finds nothing.
    detector = Scrubber(ScrubConfig()).detector
    ledger = Ledger(params.ledger_path)
    tables = ledger.query("SELECT table_name FROM information_schema.tables")["table_name"]
    assert {"pii_counts", "pii_record_counts", "drops"} <= set(tables)
    for table in tables:
        frame = ledger.query(f"SELECT * FROM {table}")
        for column, dtype in frame.schema.items():
            if dtype != pl.String or column in ASSAY_MADE:
                continue  # params' own URIs and owners, and assay's key material: not corpus PII
            for cell in frame[column].drop_nulls().unique():
                if SYSTEM_ID.fullmatch(cell):
                    continue  # run UUIDs and hex digests: made by assay, not read from the corpus
                found = detector.detect(cell)
                if column == "source_key":  # a web source's keys are its page URLs, by design
                    found = [s for s in found if s.entity_type != "URL"]
                assert not found, (table, column)


def test_records_over_the_limit_are_dropped_with_counts_as_evidence(tmp_path, dagster_home):
    params_path = _project(tmp_path, {"max_entities_per_doc": 1})
    result = _run_scrub(params_path)
    assert result.success
    ledger = Ledger(load_params(params_path).ledger_path)
    drops = ledger.query("SELECT * FROM drops WHERE stage = 'scrub'")
    assert drops.height > 0 and set(drops["reason"]) == {"pii_over_limit"}
    evidence = json.loads(drops["evidence"][0])
    assert evidence["limit"] == 1 and evidence["entities"] > 1
    assert sum(evidence["counts"].values()) == evidence["entities"]
    flagged = ledger.query("SELECT count(*) AS n FROM pii_record_counts WHERE dropped")
    assert flagged["n"].item() == drops.height


def test_residual_check_blocks_when_pii_survives(tmp_path, dagster_home):
    # Masking one character leaves an email that the re-scan still reads as an email.
    leaky = {"chars_to_mask": 1, "kind": "mask"}
    params_path = _project(
        tmp_path, {"operators": {"EMAIL_ADDRESS": leaky}, "max_residual_per_10k": 0}
    )
    result = _run_scrub(params_path)
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "pii_residual")
    assert not check.passed
    assert markdown.counts(check.metadata["residual_by_type"])["EMAIL_ADDRESS"] > 0
