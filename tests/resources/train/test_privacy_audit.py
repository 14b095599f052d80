import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from resources.train.privacy_audit import (
    ATTRIBUTE_TEMPLATE,
    ATTRIBUTE_VALUES,
    CANARY_TEMPLATE,
    attribute_inference,
    exposures,
    make_canaries,
    make_planted_attributes,
    membership_inference,
    record_losses,
    roc_auc,
    tpr_at_fpr,
)

scores = st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(scores, scores)
def test_auc_is_the_pairwise_win_rate_with_ties_half(members, nonmembers):
    wins = sum(
        1.0 if m > n else 0.5 if m == n else 0.0 for m, n in itertools.product(members, nonmembers)
    )
    expected = wins / (len(members) * len(nonmembers))
    assert roc_auc(np.array(members), np.array(nonmembers)) == pytest.approx(expected)


def test_auc_extremes():
    assert roc_auc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert roc_auc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert roc_auc(np.ones(5), np.ones(7)) == 0.5


def test_tpr_at_low_fpr_allows_no_more_false_positives_than_asked():
    nonmembers = np.arange(200, dtype=float)  # 1% of 200 = 2 false positives allowed
    members = np.array([150.0, 197.5, 198.5, 300.0])
    # threshold sits at the 3rd highest non-member (197): members above it are flagged
    assert tpr_at_fpr(members, nonmembers, 0.01) == 0.75
    assert np.mean(nonmembers > 197.0) <= 0.01
    assert tpr_at_fpr(members, nonmembers[150:], 0.01) == 0.25  # 0 allowed: above max


def test_membership_inference_reads_low_loss_as_membership():
    result = membership_inference(np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0]))
    assert (result.auc, result.tpr_at_1pct_fpr) == (1.0, 1.0)
    assert (result.members, result.nonmembers) == (3, 2)
    with pytest.raises(ValueError):
        membership_inference(np.array([]), np.array([1.0]))


def test_canaries_are_distinct_seeded_secrets():
    canaries = make_canaries(5, digits=3, insertions=2, seed=7)
    assert len({c.secret for c in canaries}) == 5
    assert all(len(c.secret) == 3 and c.secret.isdigit() for c in canaries)
    assert canaries == make_canaries(5, digits=3, insertions=2, seed=7)
    assert canaries != make_canaries(5, digits=3, insertions=2, seed=8)
    assert canaries[0].text == CANARY_TEMPLATE.format(canaries[0].secret)
    with pytest.raises(ValueError):
        make_canaries(11, digits=1, insertions=1, seed=0)


class SecretTask:
    """A task whose 'model' is a table of losses indexed by the secret's digits."""

    pad_value = -1

    def encode(self, text: str) -> torch.Tensor:
        digits = "".join(ch for ch in text if ch.isdigit())
        return torch.tensor([[int(digits)]])

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return model(batch[:, 0, 0])


class Table(nn.Module):
    def __init__(self, losses: torch.Tensor) -> None:
        super().__init__()
        self.losses = losses

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        return self.losses[index]


def test_exposure_follows_the_secret_sharer_definition():
    canaries = make_canaries(2, digits=2, insertions=1, seed=0)
    losses = torch.linspace(1.0, 2.0, 100)
    first, second = int(canaries[0].secret), int(canaries[1].secret)
    losses[first] = 0.0  # ranked first of 100: exposure log2(100)
    expected_rank = int((losses < losses[second]).sum()) + 1
    result = exposures(Table(losses), SecretTask(), canaries, max_examples=1)
    assert result[0] == pytest.approx(np.log2(100))
    assert result[1] == pytest.approx(np.log2(100) - np.log2(expected_rank))
    assert (
        exposures(Table(torch.ones(100)), SecretTask(), canaries, 1)
        == [pytest.approx(np.log2(100))] * 2
    )  # ties rank the secret first: exposure is never understated


def test_record_losses_batches_consistently():
    task = SecretTask()
    model = Table(torch.arange(100, dtype=torch.float32))
    texts = [f"n {i:02d}" for i in range(37)]
    out = record_losses(model, task, texts, max_examples=1, batch_size=8)
    assert out.tolist() == list(range(37))


class AttributeTask:
    """Encodes a text as its index in a fixed list, so a Table model gives each its loss."""

    pad_value = -1

    def __init__(self, texts: list[str]) -> None:
        self.index = {t: i for i, t in enumerate(texts)}

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([[self.index[text]]])

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return model(batch[:, 0, 0])


def _attribute_world(planted, memorized: int):
    """Candidate losses where the model prefers the true value of the first ``memorized``."""
    texts = [ATTRIBUTE_TEMPLATE.format(p.subject, v) for p in planted for v in ATTRIBUTE_VALUES]
    losses = torch.ones(len(texts))
    for i, p in enumerate(planted):
        true = ATTRIBUTE_VALUES.index(p.secret)
        # the rest: the model prefers the first value, whatever the secret
        preferred = true if i < memorized else 0
        losses[i * len(ATTRIBUTE_VALUES) + preferred] = 0.0
    return Table(losses), AttributeTask(texts)


def test_attribute_inference_is_accuracy_over_the_population_baseline():
    planted = make_planted_attributes(20, insertions=1, seed=3)
    assert planted == make_planted_attributes(20, insertions=1, seed=3)
    secrets = [p.secret for p in planted]
    baseline = max(secrets.count(v) for v in set(secrets)) / 20
    first_share = secrets.count(ATTRIBUTE_VALUES[0]) / 20

    model, task = _attribute_world(planted, memorized=20)
    full = attribute_inference(model, task, planted, max_examples=1)
    assert full.accuracy == 1.0 and full.baseline == baseline
    assert full.advantage == pytest.approx(1.0 - baseline)

    model, task = _attribute_world(planted, memorized=0)
    none = attribute_inference(model, task, planted, max_examples=1)
    assert none.accuracy == pytest.approx(first_share)  # a constant guess: no better than chance
    assert none.advantage <= 0.0

    empty = attribute_inference(model, task, [], max_examples=1)
    assert empty.records == 0 and np.isnan(empty.advantage)  # not measured: the gate denies
