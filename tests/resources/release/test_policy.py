"""The default Rego policy on hand-made facts: each rule fails closed on a missing fact."""

import json

from resources.release.config import DEFAULT_POLICY
from resources.release.policy import evaluate, read_policy

DATA = {
    "allowed_licenses": ["CC-BY-4.0"],
    "allowed_consent": ["opt_in"],
    "max_pii_residual_per_10k": 50,
    "max_epsilon": 8,
    "max_epsilon_cumulative": 16,
    "max_mia_auc": 0.6,
    "max_mia_tpr_at_1pct_fpr": 0.05,
    "max_canary_exposure": 6,
    "max_attribute_advantage": 0.25,
}


def facts(**training_run: object) -> dict:
    run = {
        "run_id": "train-1",
        "epsilon": 4.0,
        "epsilon_cumulative": 4.0,
        "mia_auc": 0.5,
        "mia_tpr_at_1pct_fpr": 0.01,
        "canary_exposure_max": 1.0,
        "attribute_advantage": 0.0,
    }
    return {
        "sources": [],
        "incidents": [],
        "taints": [],
        "pii_residual": {"measured": True, "max_per_10k": 0.0, "source_id": "forum"},
        "ledger": {"ok": True},
        "artifacts": [],
        "training_run": run | training_run,
    }


def rules(verdict) -> list[str]:
    return [v["rule"] for v in verdict.violations]


def test_complete_facts_pass():
    verdict = evaluate(read_policy(DEFAULT_POLICY), facts(), DATA)
    assert verdict.passed, verdict.violations


def test_a_null_training_run_id_denies():
    """`not null` is false in Rego: the rule must test the id's type, not its truth."""
    verdict = evaluate(read_policy(DEFAULT_POLICY), facts(run_id=None), DATA)
    assert rules(verdict) == ["training_run"], json.dumps(verdict.violations)
