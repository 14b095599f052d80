"""DP-SGD training with Opacus, its privacy accounting, the privacy budget, and model files.

One dataset item is one privacy unit (a record, or every record sharing a declared field such
as source_id): Opacus samples items with Poisson sampling and clips each item's gradient, so
the (epsilon, delta) guarantee holds per unit. The epsilon reported is the Opacus accountant's
value for the exact history of (noise multiplier, sample rate, steps) that training took, so
anyone can recompute it from the recorded parameters with ``epsilon_from_history``.
"""

import importlib
import io
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import opacus
import polars as pl
import torch
from opacus import PrivacyEngine
from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier
from opacus.utils.batch_memory_manager import BatchMemoryManager
from opacus.validators import ModuleValidator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from resources.core.storage import atomic_path, file_sha256
from resources.train.config import DPConfig
from resources.train.default_model import Task


class PrivacyBudgetExceeded(RuntimeError):
    """A run would spend more epsilon on a dataset than the policy's budget allows."""


@dataclass
class TrainResult:
    model: nn.Module
    private: bool
    epsilon: float | None
    delta: float | None
    noise_multiplier: float | None
    sample_rate: float
    steps: int
    max_grad_norm: float | None
    accountant: str | None
    history: list[tuple[float, float, int]] = field(default_factory=list)
    seconds: float = 0.0
    final_loss: float = float("nan")

    @property
    def opacus_version(self) -> str:
        return opacus.__version__


def load_factory(spec: str) -> Callable[..., tuple[nn.Module, Task]]:
    """Resolve "package.module:callable" to the model factory it names."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"model must be 'module:callable', got {spec!r}")
    factory = getattr(importlib.import_module(module_name), attr)
    if not callable(factory):
        raise TypeError(f"{spec} is not callable")
    return factory


def build_model(spec: str, kwargs: dict | None = None) -> tuple[nn.Module, Task]:
    model, task = load_factory(spec)(**(kwargs or {}))
    if not isinstance(model, nn.Module) or not isinstance(task, Task):
        raise TypeError(
            f"{spec} must return (torch.nn.Module, Task); see resources.train.default_model.Task"
        )
    return model, task


def select_examples(examples: torch.Tensor, cap: int, key: str) -> torch.Tensor:
    """At most ``cap`` of a unit's examples, the same ones for the same key on every run.

    Capping bounds one unit's contribution (clipping bounds its gradient, the cap its compute);
    choosing by a keyed shuffle rather than taking the first ones spreads training over whole
    documents.
    """
    if len(examples) <= cap:
        return examples
    picked = sorted(random.Random(key).sample(range(len(examples)), cap))
    return examples[picked]


def build_items(
    texts: Sequence[str], units: Sequence[str], task: Task, max_examples_per_unit: int
) -> tuple[torch.Tensor, list[str]]:
    """Group the records' examples by privacy unit: [n_units, W, *example_shape] and unit keys.

    Slots a unit does not fill hold task.pad_value and contribute nothing to its loss. Each
    unit's examples are chosen as soon as its records are encoded, so memory holds
    max_examples_per_unit slots per unit and one unit's encodings, not every record's (a 1 KB
    text encodes to 16 windows, 4 kept); W is the most any unit fills (a view, not a copy).
    texts may be a polars Series: a text becomes a Python string only while it is encoded.
    """
    if len(texts) != len(units):
        raise ValueError(f"{len(texts)} texts but {len(units)} units")
    # grouped in polars, not a dict of lists: at 1M records the dict was a quarter GB
    groups = (
        pl.DataFrame({"unit": pl.Series(units, dtype=pl.String)})
        .with_row_index("record")
        .group_by("unit")
        .agg("record")
        .sort("unit")
    )
    keys = groups["unit"].to_list()
    items: torch.Tensor | None = None
    width = 1
    for k, (key, records) in enumerate(groups.iter_rows()):
        encoded = (
            task.encode(texts[records[0]])
            if len(records) == 1
            else torch.cat([task.encode(texts[i]) for i in records])
        )
        stack = select_examples(encoded, max_examples_per_unit, key)
        if items is None:
            shape = (len(keys), max_examples_per_unit, *stack.shape[1:])
            items = torch.full(shape, task.pad_value, dtype=stack.dtype)
        items[k, : len(stack)] = stack
        width = max(width, len(stack))
    if items is None:
        raise ValueError("no records to train on")
    return items[:, :width], keys


def epsilon_from_history(
    history: Sequence[tuple[float, float, int]], delta: float, accountant: str = "prv"
) -> float:
    """Epsilon for a history of (noise multiplier, sample rate, steps), recomputed from scratch."""
    acc = create_accountant(mechanism=accountant)
    acc.history = [tuple(h) for h in history]
    return float(acc.get_epsilon(delta=delta))


def check_budget(spent: float, planned: float, budget: float) -> None:
    """Refuse a run whose planned epsilon would take the dataset's total over its budget.

    Epsilons of runs on the same dataset add up (basic sequential composition): a safe upper
    bound whatever each run did.
    """
    if spent + planned > budget + 1e-9:
        raise PrivacyBudgetExceeded(
            f"privacy budget exceeded: {spent:.4g} already spent on this training set + "
            f"{planned:.4g} planned > budget {budget:.4g}; refusing to train"
        )


def _batch_loss(task: Task, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    # sum / max(B, 1) equals the mean, and stays finite on the empty batches Poisson
    # sampling can draw (the step must still run so the accountant and the noise see it)
    per_item = task.loss(model, batch)
    return per_item.sum() / max(len(per_item), 1)


def _duration(config: DPConfig, batches_per_epoch: int) -> dict[str, int]:
    """What the noise is calibrated for: the epochs, or config.max_steps when that is fewer
    steps (Opacus' own make_private_with_epsilon calibrates for the epochs)."""
    if config.max_steps is not None and config.max_steps < config.epochs * batches_per_epoch:
        return {"steps": config.max_steps}
    return {"epochs": config.epochs}


def _accounted_steps(engine: PrivacyEngine) -> int:
    """The logical steps taken so far: BatchMemoryManager's physical batches are not steps."""
    return sum(n for _, _, n in engine.accountant.history)


def _epochs(
    loader: DataLoader, optimizer: torch.optim.Optimizer, config: DPConfig, private: bool
) -> Iterator[torch.Tensor]:
    for _ in range(config.epochs):
        yield from _physical_batches(loader, optimizer, config, private)


def _physical_batches(
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    config: DPConfig,
    private: bool,
) -> Iterator[torch.Tensor]:
    if not private:
        for (batch,) in loader:
            yield batch
        return
    with BatchMemoryManager(
        data_loader=loader,
        max_physical_batch_size=config.max_physical_batch_size,
        optimizer=optimizer,
    ) as physical:
        for (batch,) in physical:
            yield batch


def train(
    items: torch.Tensor,
    model: nn.Module,
    task: Task,
    config: DPConfig,
    private: bool = True,
) -> TrainResult:
    """Train on items [N, W, ...], with DP-SGD when ``private`` and plain Adam otherwise."""
    torch.manual_seed(config.seed)
    if private:
        model = ModuleValidator.fix(model)
        errors = ModuleValidator.validate(model, strict=False)
        if errors:
            raise ValueError(f"model is not compatible with Opacus: {errors}")
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    loader = DataLoader(
        TensorDataset(items),
        batch_size=max(1, min(config.batch_size, len(items))),
        shuffle=True,
        generator=torch.Generator().manual_seed(config.seed),
    )
    engine = None
    if private:
        with warnings.catch_warnings():
            # Opacus warns that secure_mode is off; the noise is seeded for reproducibility
            warnings.simplefilter("ignore", UserWarning)
            engine = PrivacyEngine(accountant=config.accountant)
            common = {
                "module": model,
                "optimizer": optimizer,
                "data_loader": loader,
                "max_grad_norm": config.max_grad_norm,
                "noise_generator": torch.Generator().manual_seed(config.seed + 1),
            }
            sigma = config.noise_multiplier
            if sigma is None:
                sigma = get_noise_multiplier(
                    target_epsilon=config.target_epsilon,
                    target_delta=config.target_delta,
                    sample_rate=1 / len(loader),
                    accountant=config.accountant,
                    **_duration(config, len(loader)),
                )
            model, optimizer, loader = engine.make_private(**common, noise_multiplier=sigma)
    model.train()
    steps, last = 0, float("nan")
    start = time.perf_counter()
    with warnings.catch_warnings():
        # Opacus' hooks fire on inputs that need no gradient (token ids): expected, harmless
        warnings.filterwarnings("ignore", message="Full backward hook is firing")
        for batch in _epochs(loader, optimizer, config, private):
            loss = _batch_loss(task, model, batch)
            loss.backward()
            optimizer.step()  # under BatchMemoryManager, a real step only per logical batch
            optimizer.zero_grad()
            steps += 1
            last = loss.item()
            taken = _accounted_steps(engine) if engine else steps
            if config.max_steps is not None and taken >= config.max_steps:
                break
    seconds = time.perf_counter() - start
    model.eval()
    if engine is None:
        return TrainResult(
            model=model,
            private=False,
            epsilon=None,
            delta=None,
            noise_multiplier=None,
            sample_rate=loader.batch_size / len(items),
            steps=steps,
            max_grad_norm=None,
            accountant=None,
            seconds=seconds,
            final_loss=last,
        )
    history = [(float(s), float(r), int(n)) for s, r, n in engine.accountant.history]
    return TrainResult(
        model=model._module,
        private=True,
        epsilon=float(engine.get_epsilon(config.target_delta)),
        delta=config.target_delta,
        noise_multiplier=float(optimizer.noise_multiplier),
        sample_rate=float(loader.sample_rate),
        steps=_accounted_steps(engine),
        max_grad_norm=config.max_grad_norm,
        accountant=config.accountant,
        history=history,
        seconds=seconds,
        final_loss=last,
    )


def save_model(
    model: nn.Module,
    path: Path,
    spec: str,
    kwargs: dict | None = None,
    opacus_fixed: bool = True,
) -> str:
    """Write the weights and how to rebuild the model; returns the file's sha256.

    ``opacus_fixed`` says the weights belong to ModuleValidator.fix(model), as after DP training.
    """
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    saved = {
        "model": spec,
        "model_kwargs": dict(kwargs or {}),
        "opacus_fixed": opacus_fixed,
        "state_dict": state,
    }
    # Through a buffer: saved to a file, torch names the archive's root after the file, and an
    # atomic write's temporary name would make the same weights give different bytes.
    buffer = io.BytesIO()
    torch.save(saved, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return file_sha256(path)


def load_model(path: Path, expected_sha256: str | None = None) -> tuple[nn.Module, Task]:
    """Rebuild a saved model, refusing a file whose sha256 is not the expected one."""
    if expected_sha256 is not None and file_sha256(path) != expected_sha256:
        raise ValueError(f"{path}: sha256 does not match the recorded {expected_sha256}")
    saved = torch.load(path, weights_only=True)
    model, task = build_model(saved["model"], saved["model_kwargs"])
    if saved["opacus_fixed"]:
        model = ModuleValidator.fix(model)
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model, task
