"""One audited training run: split, budget, DP training, a non-private reference, the audit.

``plan_run`` fixes what will be trained on (and so the training-set digest the privacy budget
is kept against) without training anything; the caller checks the budget with
``dp.check_budget`` and only then calls ``execute``.
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from resources.train.config import TrainConfig
from resources.train.dp import (
    TrainResult,
    build_items,
    build_model,
    train,
)
from resources.train.privacy_audit import (
    Canary,
    PlantedAttribute,
    attribute_inference,
    exposures,
    make_canaries,
    make_planted_attributes,
    membership_inference,
    record_losses,
)


@dataclass
class Plan:
    members: pl.DataFrame
    """The records trained on; execute drops their text once it has built their items."""
    heldout: pl.DataFrame
    """The held-out records; likewise without their text after execute."""
    digest: str
    canaries: list[Canary]
    planted: list[PlantedAttribute]


@dataclass(frozen=True)
class AuditSample:
    """What the privacy audit scores, with its own copy of the texts (record_id, text)."""

    members: pl.DataFrame
    heldout: pl.DataFrame


@dataclass(frozen=True)
class Evaluation:
    model_kind: str  # "dp" or "reference"
    heldout_loss: float
    perplexity: float
    mia_auc: float
    mia_tpr_at_1pct_fpr: float
    mia_members: int
    mia_nonmembers: int
    canary_exposure_mean: float
    canary_exposure_max: float
    canary_exposure_bound: float  # log2|R|: the exposure of a secret ranked first
    attr_records: int
    attr_accuracy: float
    attr_baseline: float
    attr_advantage: float  # attribute-inference accuracy minus the population baseline


@dataclass
class RunOutcome:
    plan: Plan
    dp: TrainResult
    reference: TrainResult | None
    evaluations: list[Evaluation]
    units: int


def training_set_digest(record_ids: Sequence[str]) -> str:
    """sha256 over the sorted, distinct record_ids trained on, one per line."""
    return hashlib.sha256("\n".join(sorted(set(record_ids))).encode("ascii")).hexdigest()


def _in_holdout(unit: str, fraction: float, seed: int) -> bool:
    h = hashlib.sha256(f"holdout:{seed}:{unit}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64 < fraction


def plan_run(records: pl.DataFrame, config: TrainConfig) -> Plan:
    """Split text records into members and held-out non-members, whole privacy units at a time."""
    if config.privacy_unit not in records.columns:
        raise ValueError(f"privacy_unit {config.privacy_unit!r} is not a column of the records")
    texts = records.filter(pl.col("kind") == "text", pl.col("text").is_not_null())
    texts = texts.unique(
        subset=["record_id", config.privacy_unit], keep="first", maintain_order=True
    )
    held = [
        _in_holdout(str(u), config.holdout_fraction, config.seed)
        for u in texts[config.privacy_unit].to_list()
    ]
    mask = pl.Series(held, dtype=pl.Boolean)
    members, heldout = texts.filter(~mask), texts.filter(mask)
    if members.height == 0 or heldout.height == 0:
        raise ValueError(
            f"need members and held-out records: {members.height} members, "
            f"{heldout.height} held out (privacy_unit={config.privacy_unit}, "
            f"holdout_fraction={config.holdout_fraction})"
        )
    canaries = make_canaries(
        config.canaries, config.canary_digits, config.canary_insertions, config.seed
    )
    planted = make_planted_attributes(
        config.attribute_records, config.attribute_insertions, config.seed
    )
    digest = training_set_digest(members["record_id"].to_list())
    return Plan(members, heldout, digest, canaries, planted)


def training_texts(plan: Plan, unit: str) -> tuple[pl.Series, pl.Series]:
    """The members' texts and units, then every canary and planted insertion's.

    Series rather than lists: at 1M records a list of Python strings was a second copy of the
    corpus in memory.
    """
    texts, units = [], []
    for i, canary in enumerate(plan.canaries):
        # each insertion is its own unit, as k independent records in the corpus would be
        for j in range(canary.insertions):
            texts.append(canary.text)
            units.append(f"canary/{i}/{j}")
    for i, planted in enumerate(plan.planted):
        for j in range(planted.insertions):
            texts.append(planted.text)
            units.append(f"attribute/{i}/{j}")
    return (
        pl.concat([plan.members["text"], pl.Series("text", texts, pl.String)]),
        pl.Series(unit, [str(u) for u in plan.members[unit].to_list()] + units, pl.String),
    )


def _subsample(values: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(values) <= n:
        return values
    return values[np.random.default_rng(seed).choice(len(values), n, replace=False)]


def audit_sample(plan: Plan, config: TrainConfig) -> AuditSample:
    """At most heldout_max_records held-out records and mia_max_records members, seeded.

    The texts are copied out, so the sample does not keep the corpus's buffers alive once the
    plan lets go of them.
    """

    def sampled(frame: pl.DataFrame, most: int) -> pl.DataFrame:
        if frame.height > most:
            frame = frame.sample(most, seed=config.seed)
        return pl.DataFrame(
            {"record_id": frame["record_id"].to_list(), "text": frame["text"].to_list()},
            schema={"record_id": pl.String(), "text": pl.String()},
        )

    return AuditSample(
        members=sampled(plan.members, config.mia_max_records),
        heldout=sampled(plan.heldout, config.heldout_max_records),
    )


def evaluate(
    kind: str, result: TrainResult, task, plan: Plan, sample: AuditSample, config: TrainConfig
) -> Evaluation:
    """Utility on the held-out records; MIA of members against them; canary exposure."""
    cap = config.max_examples_per_unit
    heldout, members = sample.heldout, sample.members
    held_losses = record_losses(
        result.model, task, heldout["text"].to_list(), cap, heldout["record_id"].to_list()
    )
    # training chose a unit's examples keyed by the unit: the same ones when a unit is a record
    member_keys = members["record_id"].to_list() if config.privacy_unit == "record_id" else None
    member_losses = record_losses(result.model, task, members["text"].to_list(), cap, member_keys)
    mia = membership_inference(
        member_losses,
        _subsample(held_losses, config.mia_max_records, config.seed),
    )
    exposures_ = exposures(result.model, task, plan.canaries, cap)
    attribute = attribute_inference(result.model, task, plan.planted, cap)
    heldout_loss = float(np.mean(held_losses))
    return Evaluation(
        model_kind=kind,
        heldout_loss=heldout_loss,
        perplexity=float(np.exp(heldout_loss)),
        mia_auc=mia.auc,
        mia_tpr_at_1pct_fpr=mia.tpr_at_1pct_fpr,
        mia_members=mia.members,
        mia_nonmembers=mia.nonmembers,
        canary_exposure_mean=float(np.mean(exposures_)) if exposures_ else float("nan"),
        canary_exposure_max=float(np.max(exposures_)) if exposures_ else float("nan"),
        canary_exposure_bound=float(np.log2(10**config.canary_digits)),
        attr_records=attribute.records,
        attr_accuracy=attribute.accuracy,
        attr_baseline=attribute.baseline,
        attr_advantage=attribute.advantage,
    )


def execute(plan: Plan, config: TrainConfig) -> RunOutcome:
    """Train with DP (and the non-private reference when configured) and audit both.

    Once the items are built, the plan's frames lose their text column: training and the audit
    read the items and the audit's own sample, and at 1M records the texts were a third of
    the stage's memory. So a plan is executed once.
    """
    torch.set_num_threads(config.threads)
    sample = audit_sample(plan, config)
    texts, units = training_texts(plan, config.privacy_unit)
    _, task = build_model(config.model, config.model_kwargs)
    items, keys = build_items(texts, units, task, config.max_examples_per_unit)
    del texts, units
    plan.members, plan.heldout = plan.members.drop("text"), plan.heldout.drop("text")
    torch.manual_seed(config.seed)  # the initial weights are part of what a seed fixes
    model, task = build_model(config.model, config.model_kwargs)
    dp = train(items, model, task, config, private=True)
    evaluations = [evaluate("dp", dp, task, plan, sample, config)]
    reference = None
    if config.reference:
        torch.manual_seed(config.seed)
        model, task = build_model(config.model, config.model_kwargs)
        reference = train(items, model, task, config, private=False)
        evaluations.append(evaluate("reference", reference, task, plan, sample, config))
    return RunOutcome(plan, dp, reference, evaluations, units=len(keys))
