import math
import random

import polars as pl
import pytest
from opacus.accountants import PRVAccountant

from resources.core.records import RECORD_SCHEMA, text_record_id
from resources.train.config import TrainConfig
from resources.train.dp import build_model
from resources.train.privacy_audit import record_losses
from resources.train.training_run import execute, plan_run, training_set_digest
from tests.resources.train.test_dp import TINY, WORDS


def records(n: int, sources: int = 4, seed: int = 0) -> pl.DataFrame:
    rng = random.Random(seed)
    texts = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) + f" {i}" for i in range(n)
    ]
    return pl.DataFrame(
        {
            "record_id": [text_record_id(t) for t in texts],
            "source_id": [f"s{i % sources}" for i in range(n)],
            "source_key": [str(i) for i in range(n)],
            "kind": ["text"] * n,
            "text": texts,
            "image_path": [None] * n,
        },
        schema=RECORD_SCHEMA,
    )


def tiny_config(**overrides) -> TrainConfig:
    base = {
        "model_kwargs": TINY,
        "max_examples_per_unit": 2,
        "target_delta": 1e-3,
        "epochs": 2,
        "batch_size": 16,
        "noise_multiplier": 0.8,
        "canaries": 2,
        "canary_digits": 2,
        "canary_insertions": 2,
        "holdout_fraction": 0.25,
    }
    return TrainConfig(**(base | overrides))


def test_digest_is_over_the_set_of_record_ids():
    ids = ["b" * 64, "a" * 64, "c" * 64]
    assert training_set_digest(ids) == training_set_digest(sorted(ids) + ids[:1])
    assert training_set_digest(ids) != training_set_digest(ids[:2])


def test_plan_splits_whole_units_and_is_deterministic():
    df = records(200, sources=8)
    plan = plan_run(df, tiny_config(privacy_unit="source_id", holdout_fraction=0.3))
    member_units = set(plan.members["source_id"])
    held_units = set(plan.heldout["source_id"])
    assert member_units and held_units and not member_units & held_units
    assert plan.members.height + plan.heldout.height == 200
    again = plan_run(df, tiny_config(privacy_unit="source_id", holdout_fraction=0.3))
    assert again.digest == plan.digest == training_set_digest(plan.members["record_id"])
    assert plan_run(df.reverse(), tiny_config()).digest == plan_run(df, tiny_config()).digest


def test_plan_rejects_an_unknown_unit_and_an_empty_split():
    with pytest.raises(ValueError, match="privacy_unit"):
        plan_run(records(20), tiny_config(privacy_unit="user"))
    with pytest.raises(ValueError, match="held out"):
        plan_run(records(20), tiny_config(holdout_fraction=1e-9))


def test_execute_trains_privately_and_audits_against_a_reference():
    config = tiny_config()
    plan = plan_run(records(120), config)
    outcome = execute(plan, config)
    dp = outcome.dp
    # each canary insertion is a unit, and so is each planted attribute record (16 by default)
    assert outcome.units == plan.members.height + 2 * 2 + 16
    assert dp.sample_rate == pytest.approx(1 / math.ceil(outcome.units / 16))
    independent = PRVAccountant()
    independent.history = [(dp.noise_multiplier, dp.sample_rate, dp.steps)]
    assert dp.epsilon == independent.get_epsilon(delta=1e-3)
    assert dp.noise_multiplier == 0.8  # calibration to a target is tested in test_dp_training
    assert outcome.reference is not None and not outcome.reference.private
    kinds = [e.model_kind for e in outcome.evaluations]
    assert kinds == ["dp", "reference"]
    for ev in outcome.evaluations:
        assert ev.perplexity == pytest.approx(math.exp(ev.heldout_loss))
        assert 1.0 < ev.perplexity < 256.0
        assert 0.0 <= ev.mia_auc <= 1.0 and 0.0 <= ev.mia_tpr_at_1pct_fpr <= 1.0
        assert (ev.mia_members, ev.mia_nonmembers) == (
            plan.members.height,
            plan.heldout.height,
        )
        assert 0.0 <= ev.canary_exposure_mean <= ev.canary_exposure_max <= math.log2(100)
        assert ev.canary_exposure_bound == pytest.approx(math.log2(100))
        assert ev.attr_records == 16
        assert ev.attr_advantage == pytest.approx(ev.attr_accuracy - ev.attr_baseline)
    dp_eval, ref_eval = outcome.evaluations
    assert ref_eval.heldout_loss < dp_eval.heldout_loss  # DP costs utility


def test_a_large_heldout_is_scored_on_a_seeded_sample():
    config = tiny_config(reference=False, heldout_max_records=10)
    plan = plan_run(records(120), config)
    assert plan.heldout.height > 10
    sample = plan.heldout.sample(10, seed=config.seed)
    outcome = execute(plan, config)
    (dp_eval,) = outcome.evaluations
    # the plan let go of the texts once the items were built; the audit kept its own sample
    assert "text" not in plan.members.columns and "text" not in plan.heldout.columns
    losses = record_losses(
        outcome.dp.model,
        task_of(config),
        sample["text"].to_list(),
        2,
        sample["record_id"].to_list(),
    )
    assert dp_eval.mia_nonmembers == 10
    assert dp_eval.heldout_loss == pytest.approx(float(losses.mean()))


def task_of(config: TrainConfig):
    return build_model(config.model, config.model_kwargs)[1]
