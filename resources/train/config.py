"""The train section of params.yaml: DP-SGD training on the curated corpus, and its audit."""

from typing import Literal

from pydantic import Field

from resources.core.config import Section

DEFAULT_MODEL = "resources.train.default_model:build_byte_lm"


class DPConfig(Section):
    """How DP-SGD trains: what train.dp.train reads."""

    target_epsilon: float = Field(8.0, gt=0)
    target_delta: float = Field(1e-5, gt=0, lt=1)
    max_grad_norm: float = Field(1.0, gt=0)
    epochs: int = Field(3, ge=1)
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many steps (logical batches) when the epochs would take more; the noise
    is calibrated to target_epsilon for the steps taken. A large corpus then trains on a fixed
    budget: each unit is sampled into about max_steps * batch_size / N of them."""
    batch_size: int = Field(64, ge=1)
    """Expected logical batch size in privacy units; the sample rate is about batch_size / N."""
    max_physical_batch_size: int = Field(64, ge=1)
    lr: float = Field(5e-3, gt=0)
    seed: int = 0
    accountant: Literal["prv", "rdp", "gdp"] = "prv"
    noise_multiplier: float | None = Field(None, gt=0)
    """When set, train with this sigma (make_private) and report the epsilon it gives, instead
    of calibrating sigma to target_epsilon (make_private_with_epsilon)."""


class TrainConfig(DPConfig):
    """One audited training run: what is trained on, the model, the budget, the audit."""

    upstream: str = "scrub"
    """The stage whose output is trained on."""
    model: str = Field(DEFAULT_MODEL, pattern=r"^[\w.]+:\w+$")
    """'module:callable' returning (torch.nn.Module, Task); see resources/train/default_model.py."""
    model_kwargs: dict[str, int | float | str | bool] = {}
    privacy_unit: str = "record_id"
    """The column naming whose privacy is protected: record_id, or e.g. source_id."""
    epsilon_budget: float = Field(16.0, gt=0)
    """Most epsilon any one record may have spent on it, summed over the runs that train on it."""
    holdout_fraction: float = Field(0.2, gt=0, lt=1)
    max_examples_per_unit: int = Field(4, ge=1)
    reference: bool = True
    """Also train the same model without DP (never saved) to show what DP changed."""
    canaries: int = Field(4, ge=0)
    canary_digits: int = Field(3, ge=1, le=6)
    canary_insertions: int = Field(4, ge=1)
    attribute_records: int = Field(16, ge=0)
    """Planted records with a secret attribute, for the attribute-inference audit."""
    attribute_insertions: int = Field(1, ge=1)
    heldout_max_records: int = Field(10_000, ge=10)
    """Held-out records scored for the utility figures (a sample past it): a forward pass over
    every held-out record of a large corpus, twice, cost more than training its steps."""
    mia_max_records: int = Field(2000, ge=10)
    max_mia_auc: float = Field(0.6, ge=0.5, le=1)
    """The privacy_audit check warns when the DP model's membership-inference AUC is above."""
    threads: int = Field(2, ge=1)
