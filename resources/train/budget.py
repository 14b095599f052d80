"""The privacy budget, kept per record in the ledger: what was spent, committed or refused.

Order matters: a run's training set and its planned epsilon are committed to the ledger
(training_set, privacy_budget) BEFORE training, so a crash mid-run cannot leave spent epsilon
unrecorded; a run that would take any of its records over the budget is refused, with a
'refused' row, before anything is trained. The epsilon of a run counts against every record
it trained on.
"""

from dataclasses import dataclass, field

import polars as pl

from resources.core.ledger import Ledger
from resources.train.dp import PrivacyBudgetExceeded, check_budget, epsilon_from_history
from resources.train.training_run import Plan


@dataclass(frozen=True)
class BudgetReview:
    """A run's recorded epsilon, recomputed by the accountant, and the budget it counts against."""

    epsilon: float
    epsilon_recomputed: float
    target_epsilon: float
    epsilon_cumulative: float
    epsilon_budget: float
    problems: list[str] = field(default_factory=list)


def epsilon_spent(ledger: Ledger, member_ids: list[str]) -> float:
    """The most epsilon already committed on any one of these records, summed over runs.

    Kept per record, so reusing a dataset, a subset or superset of it, or another held-out
    split of it all count against the same records' budgets.
    """
    per_record = ledger.query(
        "SELECT t.record_id, sum(b.epsilon_committed) AS spent"
        " FROM training_set t JOIN privacy_budget b"
        " ON t.run_id = b.run_id AND t.training_set_digest = b.training_set_digest"
        " WHERE t.role = 'member' AND b.status = 'committed' GROUP BY t.record_id"
    )
    if per_record.is_empty():
        return 0.0
    spent = per_record.filter(pl.col("record_id").is_in(member_ids))["spent"].max()
    return float(spent) if spent is not None else 0.0


def training_roles(plan: Plan, run_id: str) -> pl.DataFrame:
    """The training_set rows of a run: each planned record as member or heldout."""
    return pl.concat(
        [
            plan.members.select("record_id", "source_id").with_columns(role=pl.lit("member")),
            plan.heldout.select("record_id", "source_id").with_columns(role=pl.lit("heldout")),
        ]
    ).with_columns(run_id=pl.lit(run_id), training_set_digest=pl.lit(plan.digest))


def commit_budget(ledger: Ledger, plan: Plan, run_id: str, planned: float, budget: float) -> float:
    """Refuse (raise) or commit this run's planned epsilon; returns the new cumulative total.

    The training set and the commitment go in one atomic append, before any training.
    """
    spent = epsilon_spent(ledger, plan.members["record_id"].to_list())
    row = {
        "training_set_digest": plan.digest,
        "run_id": run_id,
        "members": plan.members.height,
        "epsilon_budget": budget,
    }
    try:
        check_budget(spent, planned, budget)
    except PrivacyBudgetExceeded:
        refused = {"status": "refused", "epsilon_committed": 0.0, "epsilon_cumulative": spent}
        ledger.append("privacy_budget", [row | refused])
        raise
    total = spent + planned
    committed = {"status": "committed", "epsilon_committed": planned, "epsilon_cumulative": total}
    ledger.append_many(
        [("training_set", training_roles(plan, run_id)), ("privacy_budget", [row | committed])]
    )
    return total


def run_members(ledger: Ledger, run_id: str) -> list[str]:
    """The record_ids a run trained on, as its training_set rows say."""
    return ledger.query(
        "SELECT record_id FROM training_set WHERE run_id = ? AND role = 'member'", [run_id]
    )["record_id"].to_list()


def review_budget(ledger: Ledger, training_run: dict, budget: float) -> BudgetReview:
    """Spent <= target, recomputable from the recorded parameters; cumulative <= budget.

    ``training_run`` is the run's training_runs row.
    """
    row = training_run
    recomputed = epsilon_from_history(
        [(row["noise_multiplier"], row["sample_rate"], row["steps"])],
        row["delta"],
        row["accountant"],
    )
    cumulative = epsilon_spent(ledger, run_members(ledger, row["run_id"]))
    problems = []
    if row["epsilon"] > row["target_epsilon"]:
        problems.append(f"spent {row['epsilon']:.4f} > target {row['target_epsilon']}")
    if abs(recomputed - row["epsilon"]) > 1e-9:
        problems.append(f"recorded epsilon {row['epsilon']} != recomputed {recomputed}")
    if cumulative > budget + 1e-9:
        problems.append(f"cumulative {cumulative:.4f} > budget {budget}")
    return BudgetReview(
        epsilon=row["epsilon"],
        epsilon_recomputed=recomputed,
        target_epsilon=row["target_epsilon"],
        epsilon_cumulative=cumulative,
        epsilon_budget=budget,
        problems=problems,
    )
