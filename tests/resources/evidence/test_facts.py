"""The evidence's view of the ledger: bounded at an entry, failed runs left out; the gate's
rules, each passed or failed; figures as people read them."""

from resources.core.ledger import Ledger
from resources.evidence.facts import LedgerView, drops_by_reason, gate_rules, stage_counts
from resources.evidence.tables import figure


def test_a_view_stops_at_its_entry_and_leaves_failed_runs_out(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    count = {"stage": "ingest", "source_id": "s", "records_in": 3, "records_out": 2, "dropped": 1}
    drop = {"stage": "ingest", "source_id": "s", "record_id": "r", "reason": "malformed"}
    ledger.append("stage_counts", [count], "run-1")
    head = ledger.append("drops", [drop], "run-1")
    ledger.append("stage_counts", [count | {"records_in": 9, "dropped": 7}], "run-2")
    ledger.append("drops", [drop | {"reason": "encoding"}] * 7, "run-2")
    assert drops_by_reason(LedgerView(ledger, head)) == [
        {"stage": "ingest", "reason": "malformed", "records": 1}
    ]
    assert drops_by_reason(LedgerView(ledger))[0] == {
        "stage": "ingest",
        "reason": "encoding",
        "records": 7,
    }
    ledger.append("failed_runs", [{"run_id": "run-2", "job": "j", "detail": "died"}])
    assert [c["run_id"] for c in stage_counts(LedgerView(ledger))] == ["run-1"]
    assert [c["run_id"] for c in stage_counts(LedgerView(ledger, head))] == ["run-1"]


def test_every_rule_is_listed_passed_or_failed():
    policy = 'deny contains {"rule": "license", "reason": r} if { r := "x" }'
    facts = {"training_run": {"epsilon": 9.5}}
    violations = [
        {"rule": "epsilon", "reason": "epsilon 9.5 > 8"},
        {"rule": "custom", "reason": "a rule of the user's policy"},
        {
            "rule": "open_incident",
            "reason": f"open incident i1 touches training record {'ab' * 32}",
        },
    ]
    verdict = {"violations": violations}
    rules = {r["rule"]: r for r in gate_rules(policy, verdict, facts, {"max_epsilon": 8.0})}
    assert rules["license"]["status"] == "pass"
    assert rules["epsilon"] == {
        "rule": "epsilon", "status": "fail", "value": 9.5, "limit": 8.0,
        "reasons": ["epsilon 9.5 > 8"],
    }  # fmt: skip
    assert rules["custom"]["status"] == "fail"
    assert rules["open_incident"]["reasons"] == [
        "open incident i1 touches training record [a record id]"
    ]
    undecided = gate_rules(policy, None, facts, {})
    assert {r["status"] for r in undecided} == {"unknown"}


def test_figures_are_rounded_and_missing_ones_say_so():
    assert figure(0.123456) == "0.123" and figure(1234567) == "1,234,567"
    assert figure(None) == "n/a" and figure(float("nan")) == "n/a" and figure(True) == "yes"
