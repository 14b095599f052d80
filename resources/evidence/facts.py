"""Every figure the cards, the Croissant file, the report and the page show, read from the ledger
once. Aggregates only: counts, codes, list names, run ids and measured rates, never a record's
content, a PII value or a source key.

A release's evidence reads the ledger as it stood when the gate decided (the entries up to the
release's signed ledger head), so it can be regenerated later and come out the same; the
ledger's evidence reads every entry there is. Rows of runs that died or failed are left out, as
in resources/core/audit.py. The gate's own facts (the training run, its evaluation, the
sources it trained on, the PII residual) come from resources/release/facts.py through the
release stage and are not gathered twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from resources.core.ledger import Ledger
from resources.core.ledger_tables import TABLES

TRAINING_KEYS = (
    "run_id", "epsilon", "delta", "target_epsilon", "noise_multiplier", "sample_rate", "steps",
    "epochs", "batch_size", "max_grad_norm", "accountant", "privacy_unit", "train_records",
    "heldout_records", "units", "canaries", "model_spec", "model_sha256", "training_set_digest",
    "opacus_version", "torch_version",
)  # fmt: skip
"""The training_runs columns the evidence shows (not the path, seed or timings)."""
EVALUATION_KEYS = (
    "model_kind", "epsilon", "heldout_loss", "perplexity", "mia_auc", "mia_tpr_at_1pct_fpr",
    "mia_members", "mia_nonmembers", "canaries", "canary_insertions", "canary_exposure_mean",
    "canary_exposure_max", "canary_exposure_bound", "attr_records", "attr_accuracy",
    "attr_baseline", "attr_advantage",
)  # fmt: skip
OUR_DETECTOR = "assay scrub"
"""bench/pii.py names assay's detector "assay scrub (N workers)"; peers have other names."""
DETECTOR_CAVEATS = (
    "Measured by bench/pii.py on generated support-ticket text (templates and locales the NER"
    " model was not trained on), not on this corpus: recall on real text can be lower.",
    "Recall is per entity type over the entities of the evaluation set (support); a type with"
    " small support has a wide interval.",
    "Only entity types the evaluation set contains are measured; other types have no figure.",
)


@dataclass(frozen=True)
class LedgerView:
    """The ledger up to an entry (``upto``; None is every entry), live runs only."""

    ledger: Ledger
    upto: int | None = None

    def table(self, name: str) -> str:
        """A subquery of the table's rows that are in view (bounded, and of live runs)."""
        bound = "true" if self.upto is None else f"entry_seq <= {int(self.upto)}"
        failed = f"(SELECT run_id FROM failed_runs WHERE {bound})"
        live = "true" if name == "failed_runs" else f"coalesce(run_id, '') NOT IN {failed}"
        return f"(SELECT * FROM {name} WHERE {bound} AND {live})"

    def query(self, sql: str, params: list | None = None) -> list[dict]:
        """``sql`` with ``{table}`` placeholders for the ledger's tables, as dicts."""
        tables = {name: self.table(name) for name in TABLES}
        return self.ledger.query(sql.format(**tables), params).to_dicts()


LATEST_COUNTS = (
    "SELECT stage, source_id, records_in, records_out, dropped, run_id FROM {stage_counts}"
    " QUALIFY row_number() OVER (PARTITION BY stage, source_id ORDER BY entry_seq DESC) = 1"
)
"""The latest count of every stage and source: the corpus as the last run of each left it."""


def stage_counts(view: LedgerView) -> list[dict]:
    return view.query(LATEST_COUNTS + " ORDER BY stage, source_id")


def drops_by_reason(view: LedgerView) -> list[dict]:
    """Drops of the latest run of each stage and source, by stage and reason."""
    return view.query(
        f"WITH latest AS ({LATEST_COUNTS}) SELECT d.stage, d.reason, count(*) AS records"
        " FROM {drops} d JOIN latest l USING (stage, source_id, run_id)"
        " GROUP BY ALL ORDER BY d.stage, d.reason"
    )


def pii_by_entity(view: LedgerView) -> list[dict]:
    """PII found by the latest scrub run of each source, summed per entity type."""
    return view.query(
        f"WITH latest AS ({LATEST_COUNTS}) SELECT p.entity_type, sum(p.entities)::BIGINT AS"
        " entities, sum(p.records)::BIGINT AS records FROM {pii_counts} p JOIN latest l"
        " ON l.stage = 'scrub' AND l.source_id = p.source_id AND l.run_id = p.run_id"
        " GROUP BY ALL ORDER BY entities DESC, p.entity_type"
    )


def sources(view: LedgerView) -> list[dict]:
    """Each source as last declared: license, consent, owner, where it came from."""
    return view.query(
        "SELECT source_id, uri, license, consent, owner,"
        " strftime(retrieved_at, '%Y-%m-%dT%H:%M:%SZ') AS retrieved_at, content_sha256"
        " FROM {sources}"
        " QUALIFY row_number() OVER (PARTITION BY source_id ORDER BY entry_seq DESC) = 1"
        " ORDER BY source_id"
    )


def incidents(view: LedgerView) -> dict:
    """Incidents by list and kind, and per day: counts only, never a hash or a location."""
    by_list = view.query(
        "SELECT list_name, list_version, kind, count(DISTINCT incident_id) AS incidents"
        " FROM {incidents} GROUP BY ALL ORDER BY list_name, list_version, kind"
    )
    by_day = view.query(
        "SELECT strftime(recorded_at, '%Y-%m-%d') AS day, kind,"
        " count(DISTINCT incident_id) AS incidents FROM {incidents} GROUP BY ALL ORDER BY day, kind"
    )
    total = view.query("SELECT count(DISTINCT incident_id) AS n FROM {incidents}")[0]["n"]
    return {"total": total, "by_list": by_list, "by_day": by_day}


def purges(view: LedgerView) -> dict:
    row = view.query(
        "SELECT count(*) AS artifacts, coalesce(sum(rows_removed), 0)::BIGINT AS rows_removed"
        " FROM {purges}"
    )[0]
    tainted = view.query("SELECT count(DISTINCT training_run_id) AS n FROM {tainted_runs}")
    return row | {"tainted_training_runs": tainted[0]["n"]}


def releases(view: LedgerView) -> list[dict]:
    """Every gate decision and whether the release was revoked since."""
    return view.query(
        "SELECT r.release_id, r.status, r.training_run_id,"
        " strftime(r.recorded_at, '%Y-%m-%dT%H:%M:%SZ') AS decided_at,"
        " v.release_id IS NOT NULL AS revoked FROM {releases} r"
        " LEFT JOIN (SELECT DISTINCT release_id FROM {revocations}) v USING (release_id)"
        " ORDER BY r.entry_seq"
    )


def revocations(view: LedgerView) -> list[dict]:
    return view.query(
        "SELECT release_id, reason, strftime(revoked_at, '%Y-%m-%dT%H:%M:%SZ') AS revoked_at"
        " FROM {revocations} ORDER BY entry_seq"
    )


def privacy_spent(view: LedgerView) -> list[dict]:
    """Each committed training run's epsilon, the cumulative spend on its set, the budget."""
    return view.query(
        "SELECT run_id, training_set_digest, epsilon_committed, epsilon_cumulative,"
        " epsilon_budget, strftime(recorded_at, '%Y-%m-%dT%H:%M:%SZ') AS at"
        " FROM {privacy_budget} WHERE status = 'committed' ORDER BY entry_seq"
    )


def training(view: LedgerView, run_id: str | None) -> dict | None:
    rows = view.query(
        "SELECT * FROM {training_runs} WHERE run_id = ? ORDER BY entry_seq DESC LIMIT 1", [run_id]
    )
    return {key: rows[0][key] for key in TRAINING_KEYS} if rows else None


def evaluations(view: LedgerView, run_id: str | None) -> list[dict]:
    """The latest privacy-audit evaluation of each model kind (dp, reference) of the run."""
    rows = view.query(
        "SELECT * FROM {evaluations} WHERE run_id = ?"
        " QUALIFY row_number() OVER (PARTITION BY model_kind ORDER BY entry_seq DESC) = 1"
        " ORDER BY model_kind",
        [run_id],
    )
    return [{key: row[key] for key in EVALUATION_KEYS} for row in rows]


def detector_recall(view: LedgerView) -> dict:
    """The latest bench/pii.py figures of assay's own detector, per entity, with caveats."""
    rows = view.query(
        "SELECT * FROM {detector_benchmarks} WHERE starts_with(detector, ?)"
        " QUALIFY dense_rank() OVER (ORDER BY entry_seq DESC) = 1 ORDER BY eval_set, entity_type",
        [OUR_DETECTOR],
    )
    # One benchmark run can measure several held-out sets: each entity's figure names its set.
    keep = ("eval_set", "entity_type", "support", "predicted", "precision", "recall")
    return {
        "measured": bool(rows),
        "detector": rows[0]["detector"] if rows else None,
        "eval_set": "; ".join(dict.fromkeys(row["eval_set"] for row in rows)) if rows else None,
        "run_id": rows[0]["run_id"] if rows else None,
        "entities": [{key: row[key] for key in keep} for row in rows],
        "caveats": list(DETECTOR_CAVEATS)
        if rows
        else [
            "No detector benchmark is in the ledger: run `python bench/pii.py --ledger"
            " data/ledger.duckdb` to measure the PII detector's recall."
        ],
    }


def hash_lists(view: LedgerView) -> list[dict]:
    return view.query(
        "SELECT DISTINCT name, version, provider, sha256, entries FROM {hash_lists}"
        " ORDER BY name, version"
    )


def ledger_head(view: LedgerView) -> dict:
    bound = "" if view.upto is None else f" WHERE seq <= {int(view.upto)}"
    rows = view.ledger.query(f"SELECT seq, entry_hash FROM chain{bound} ORDER BY seq DESC LIMIT 1")
    return rows.to_dicts()[0] if rows.height else {"seq": 0, "entry_hash": None}


RECORD_ID = re.compile(r"\b[0-9a-f]{64}\b")
"""A record id (sha256 hex of a record's content): the report says "a record", not which."""


def redact(reason: str) -> str:
    """A gate reason without the record ids it names (`assay ledger why` has them)."""
    return RECORD_ID.sub("[a record id]", reason)


def gate_rules(policy: str, verdict: dict | None, gate_facts: dict, data: dict) -> list[dict]:
    """Every rule the policy names, passed or failed, with the measured value and its limit.

    Rules are the names the policy's deny rules emit ("rule": "...") and its limits; a rule is
    failed when the verdict names it, with its reasons (record ids redacted). Without a
    verdict nothing was decided: status unknown.
    """
    violations = (verdict or {}).get("violations") or []
    names = list(dict.fromkeys(re.findall(r'"rule":\s*"(\w+)"', policy)))
    limits = _limits(gate_facts, data)
    names += [n for n in limits if n not in names]
    names += [v["rule"] for v in violations if v["rule"] not in names]
    out = []
    for name in names:
        reasons = [redact(v["reason"]) for v in violations if v["rule"] == name]
        status = "unknown" if verdict is None else ("fail" if reasons else "pass")
        value, limit = limits.get(name, (None, None))
        out.append(
            {"rule": name, "status": status, "value": value, "limit": limit, "reasons": reasons}
        )
    return out


def _limits(gate_facts: dict, data: dict) -> dict[str, tuple[Any, Any]]:
    """The default policy's numeric limits: rule -> (measured, limit)."""
    run = gate_facts.get("training_run") or {}
    evaluation = gate_facts.get("evaluation") or {}
    residual = gate_facts.get("pii_residual") or {}
    return {
        "epsilon": (run.get("epsilon"), data.get("max_epsilon")),
        "epsilon_cumulative": (run.get("epsilon_cumulative"), data.get("max_epsilon_cumulative")),
        "mia_auc": (evaluation.get("mia_auc"), data.get("max_mia_auc")),
        "mia_tpr_at_1pct_fpr": (
            evaluation.get("mia_tpr_at_1pct_fpr"),
            data.get("max_mia_tpr_at_1pct_fpr"),
        ),
        "canary_exposure_max": (
            evaluation.get("canary_exposure_max"),
            data.get("max_canary_exposure"),
        ),
        "attribute_advantage": (
            evaluation.get("attr_advantage"),
            data.get("max_attribute_advantage"),
        ),
        "pii_residual": (residual.get("max_per_10k"), data.get("max_pii_residual_per_10k")),
    }


def gather(
    ledger: Ledger,
    gate: dict,
    verdict: dict | None,
    scope: str,
    upto: int | None = None,
) -> dict:
    """All the figures, for one release (scope "release", bounded at its ledger head ``upto``)
    or for the ledger as it is (scope "ledger", the gate as it would decide now).

    ``gate`` holds the gate's facts (release/facts.py), its policy data and the policy text:
    {"facts": ..., "data": ..., "policy": ...}; ``verdict`` is the decision on them (status,
    violations, and for a release its id, decided_at, supersedes)."""
    view = LedgerView(ledger, upto)
    gate_run = gate["facts"].get("training_run") or {}
    run_id = gate_run.get("run_id")
    return {
        "scope": scope,
        "release": _release_summary(verdict) if scope == "release" else None,
        "ledger_head": ledger_head(view),
        "sources": sources(view),
        "training_sources": gate["facts"].get("sources") or [],
        "stage_counts": stage_counts(view),
        "drops": drops_by_reason(view),
        "pii": pii_by_entity(view),
        "pii_residual": gate["facts"].get("pii_residual"),
        "pii_detector": detector_recall(view),
        "incidents": incidents(view),
        "hash_lists": hash_lists(view),
        "purges": purges(view),
        "releases": releases(view),
        "revocations": revocations(view),
        "training": training(view, run_id),
        "epsilon_cumulative": gate_run.get("epsilon_cumulative"),
        "privacy_spent": privacy_spent(view),
        "evaluations": evaluations(view, run_id),
        "gate": {
            "status": (verdict or {}).get("status"),
            "rules": gate_rules(gate["policy"], verdict, gate["facts"], gate["data"]),
            "thresholds": gate["data"],
        },
    }


def _release_summary(verdict: dict | None) -> dict | None:
    keys = ("release_id", "status", "decided_at", "supersedes", "key_fingerprint")
    return {key: (verdict or {}).get(key) for key in keys}
