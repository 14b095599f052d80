import pytest

from resources.core.ledger import Ledger
from resources.train.budget import commit_budget, epsilon_spent, review_budget, run_members
from resources.train.dp import PrivacyBudgetExceeded, epsilon_from_history
from resources.train.training_run import plan_run
from tests.resources.train.test_training_run import records, tiny_config


def test_budget_is_kept_per_record(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    for run_id, members, status, eps in [
        ("r1", ["a", "b"], "committed", 3.0),
        ("r2", ["b", "c"], "committed", 2.0),
        ("r3", ["a"], "refused", 0.0),
    ]:
        digest = f"digest-{run_id}"
        roles = [
            {"run_id": run_id, "training_set_digest": digest, "record_id": r, "role": "member"}
            for r in members
        ]
        roles.append(
            {"run_id": run_id, "training_set_digest": digest, "record_id": "h", "role": "heldout"}
        )
        budget = {"training_set_digest": digest, "run_id": run_id, "status": status}
        ledger.append_many(
            [("training_set", roles), ("privacy_budget", [budget | {"epsilon_committed": eps}])]
        )
    assert epsilon_spent(ledger, ["a"]) == 3.0
    assert epsilon_spent(ledger, ["a", "b"]) == 5.0
    assert epsilon_spent(ledger, ["c", "d"]) == 2.0
    assert epsilon_spent(ledger, ["d", "h"]) == 0.0  # held out is not trained on


def test_commit_records_the_training_set_and_refuses_before_overspending(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    plan = plan_run(records(40), tiny_config())
    assert commit_budget(ledger, plan, "r1", planned=4.0, budget=6.0) == 4.0
    assert sorted(run_members(ledger, "r1")) == sorted(plan.members["record_id"])
    roles = ledger.query("SELECT role, count(*) AS n FROM training_set GROUP BY role ORDER BY role")
    assert roles.rows() == [("heldout", plan.heldout.height), ("member", plan.members.height)]

    with pytest.raises(PrivacyBudgetExceeded, match="refusing to train"):
        commit_budget(ledger, plan, "r2", planned=4.0, budget=6.0)
    budget = ledger.query(
        "SELECT run_id, status, members, epsilon_committed, epsilon_cumulative, epsilon_budget"
        " FROM privacy_budget ORDER BY entry_seq"
    )
    assert budget.rows() == [
        ("r1", "committed", plan.members.height, 4.0, 4.0, 6.0),
        ("r2", "refused", plan.members.height, 0.0, 4.0, 6.0),
    ]
    assert run_members(ledger, "r2") == []  # a refused run commits no training set
    assert epsilon_spent(ledger, plan.members["record_id"].to_list()) == 4.0
    assert ledger.verify().ok


def test_review_recomputes_epsilon_and_checks_the_cumulative_budget(tmp_path):
    ledger = Ledger(tmp_path / "ledger.duckdb")
    plan = plan_run(records(40), tiny_config())
    commit_budget(ledger, plan, "r1", planned=4.0, budget=6.0)
    epsilon = epsilon_from_history([(1.0, 0.1, 50)], 1e-3, "prv")
    row = {
        "run_id": "r1",
        "noise_multiplier": 1.0,
        "sample_rate": 0.1,
        "steps": 50,
        "delta": 1e-3,
        "accountant": "prv",
        "epsilon": epsilon,
        "target_epsilon": 4.0,
    }
    review = review_budget(ledger, row, budget=6.0)
    assert review.problems == [] and epsilon <= 4.0
    assert (review.epsilon, review.epsilon_recomputed) == (epsilon, epsilon)
    assert (review.target_epsilon, review.epsilon_cumulative, review.epsilon_budget) == (
        4.0,
        4.0,
        6.0,
    )

    tampered = review_budget(ledger, row | {"epsilon": epsilon / 2}, budget=3.0)
    assert [p.split()[0] for p in tampered.problems] == ["recorded", "cumulative"]
    overspent = review_budget(ledger, row | {"target_epsilon": epsilon / 2}, budget=6.0)
    assert len(overspent.problems) == 1 and overspent.problems[0].startswith("spent ")
