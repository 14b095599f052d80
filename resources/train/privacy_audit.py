"""Privacy audit of a trained model: membership inference and canary exposure.

- Loss-threshold membership inference (Yeom et al., 2018): the attacker guesses "member" when
  a record's loss is below a threshold. Over all thresholds this gives an ROC curve of
  members (training records) against non-members (held-out records from the same corpus);
  we report its AUC and the TPR at 1% FPR (Carlini et al., 2022, "Membership Inference
  Attacks From First Principles", argue the low-FPR regime is what matters).
- Canary exposure (Carlini et al., 2019, "The Secret Sharer"): random secrets drawn from a
  space R (a template with d random digits) are inserted k times into the training data; the
  exposure of a secret is log2|R| - log2(rank), its rank among all |R| candidates ordered by
  the model's loss. Exposure near 0 means the model prefers the secret no more than chance;
  log2|R| means it ranks the secret first.
- Attribute inference (Yeom et al., 2018, "attribute inference"; Jayaraman & Evans, 2022): planted
  records "<subject>'s blood type is <value>" carry a secret attribute drawn at random from a
  small set. The attacker knows the rest of the record and picks the value the model gives the
  lowest loss. Its accuracy is compared with the population baseline, the best guess without the
  model (the most frequent value among the planted records); the advantage is the difference.
"""

import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from resources.train.default_model import Task
from resources.train.dp import select_examples

CANARY_TEMPLATE = "my secret number is {} and nobody knows it"
ATTRIBUTE_TEMPLATE = "patient {}'s blood type is {}"
ATTRIBUTE_VALUES = ("A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-")


@dataclass(frozen=True)
class Canary:
    secret: str
    digits: int
    insertions: int

    @property
    def text(self) -> str:
        return CANARY_TEMPLATE.format(self.secret)


@dataclass(frozen=True)
class PlantedAttribute:
    """A planted record: a subject, and the secret value trained on."""

    subject: str
    secret: str
    insertions: int

    @property
    def text(self) -> str:
        return ATTRIBUTE_TEMPLATE.format(self.subject, self.secret)


@dataclass(frozen=True)
class AttributeResult:
    records: int
    accuracy: float
    baseline: float
    advantage: float


@dataclass(frozen=True)
class MembershipResult:
    auc: float
    tpr_at_1pct_fpr: float
    members: int
    nonmembers: int


@torch.no_grad()
def record_losses(
    model: nn.Module,
    task: Task,
    texts: Sequence[str],
    max_examples: int,
    keys: Sequence[str] | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Each text's loss (task.loss) over the same capped examples training would use."""
    model.eval()
    keys = [str(i) for i in range(len(texts))] if keys is None else keys
    out = np.empty(len(texts), dtype=np.float64)
    for start in range(0, len(texts), batch_size):
        chunk = [  # encoded a batch at a time: memory holds one batch, not every text's
            select_examples(task.encode(texts[i]), max_examples, keys[i])
            for i in range(start, min(start + batch_size, len(texts)))
        ]
        width = max(1, max(len(e) for e in chunk))
        example = next((e for e in chunk if len(e)), None)
        if example is None:
            out[start : start + len(chunk)] = 0.0
            continue
        shape = (len(chunk), width, *example.shape[1:])
        batch = torch.full(shape, task.pad_value, dtype=example.dtype)
        for j, e in enumerate(chunk):
            batch[j, : len(e)] = e
        out[start : start + len(chunk)] = task.loss(model, batch).double().numpy()
    return out


def roc_auc(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> float:
    """P(score of a random member > score of a random non-member), ties counted half."""
    scores = np.concatenate([member_scores, nonmember_scores])
    order = scores.argsort(kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties (Mann-Whitney U)
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    m, n = len(member_scores), len(nonmember_scores)
    u = ranks[:m].sum() - m * (m + 1) / 2
    return float(u / (m * n))


def tpr_at_fpr(member_scores: np.ndarray, nonmember_scores: np.ndarray, fpr: float) -> float:
    """Largest fraction of members flagged by a threshold that flags at most fpr of non-members."""
    allowed = int(np.floor(fpr * len(nonmember_scores)))
    ranked = np.sort(nonmember_scores)[::-1]
    # flag scores strictly above the (allowed+1)-th highest non-member score
    threshold = ranked[allowed] if allowed < len(ranked) else -np.inf
    return float(np.mean(member_scores > threshold))


def membership_inference(
    member_losses: np.ndarray, nonmember_losses: np.ndarray
) -> MembershipResult:
    """Loss-threshold attack: a lower loss is evidence of membership."""
    if len(member_losses) == 0 or len(nonmember_losses) == 0:
        raise ValueError("membership inference needs members and non-members")
    members, nonmembers = -member_losses, -nonmember_losses
    return MembershipResult(
        auc=roc_auc(members, nonmembers),
        tpr_at_1pct_fpr=tpr_at_fpr(members, nonmembers, 0.01),
        members=len(members),
        nonmembers=len(nonmembers),
    )


def make_canaries(count: int, digits: int, insertions: int, seed: int) -> list[Canary]:
    """``count`` distinct random secrets of ``digits`` digits, each to be inserted k times."""
    space = 10**digits
    if count > space:
        raise ValueError(f"cannot draw {count} distinct secrets from {space}")
    rng = random.Random(f"canaries:{seed}")
    return [
        Canary(secret=f"{n:0{digits}d}", digits=digits, insertions=insertions)
        for n in rng.sample(range(space), count)
    ]


def exposures(
    model: nn.Module, task: Task, canaries: Sequence[Canary], max_examples: int
) -> list[float]:
    """Each canary's exposure: log2|R| - log2(rank of its secret among all of R by loss).

    R is every secret of the canaries' digit count, so one pass scores all of it for every
    canary. All candidates have the same length, so ordering by mean loss is ordering by
    total loss (log-perplexity). Ties rank the secret first, which can only overstate exposure.
    """
    if not canaries:
        return []
    digits = canaries[0].digits
    if any(c.digits != digits for c in canaries):
        raise ValueError("canaries of one audit share their digit count")
    space = 10**digits
    candidates = [CANARY_TEMPLATE.format(f"{n:0{digits}d}") for n in range(space)]
    losses = record_losses(model, task, candidates, max_examples, keys=candidates, batch_size=1024)
    out = []
    for canary in canaries:
        rank = 1 + int(np.sum(losses < losses[int(canary.secret)]))
        out.append(float(np.log2(space) - np.log2(rank)))
    return out


def make_planted_attributes(count: int, insertions: int, seed: int) -> list[PlantedAttribute]:
    """``count`` subjects, each with a secret value drawn uniformly from ATTRIBUTE_VALUES."""
    rng = random.Random(f"attributes:{seed}")
    return [
        PlantedAttribute(f"P{rng.randrange(10**6):06d}", rng.choice(ATTRIBUTE_VALUES), insertions)
        for _ in range(count)
    ]


def attribute_inference(
    model: nn.Module, task: Task, planted: Sequence[PlantedAttribute], max_examples: int
) -> AttributeResult:
    """Guess each secret as its lowest-loss value; accuracy minus the population baseline."""
    if not planted:
        return AttributeResult(0, float("nan"), float("nan"), float("nan"))
    candidates = [
        ATTRIBUTE_TEMPLATE.format(p.subject, v) for p in planted for v in ATTRIBUTE_VALUES
    ]
    losses = record_losses(model, task, candidates, max_examples, keys=candidates)
    losses = losses.reshape(len(planted), len(ATTRIBUTE_VALUES))
    guesses = [ATTRIBUTE_VALUES[i] for i in losses.argmin(axis=1)]
    accuracy = float(np.mean([g == p.secret for g, p in zip(guesses, planted, strict=True)]))
    secrets = [p.secret for p in planted]
    baseline = max(secrets.count(v) for v in set(secrets)) / len(planted)
    return AttributeResult(len(planted), accuracy, baseline, accuracy - baseline)
