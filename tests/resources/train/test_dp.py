import math
import random
import textwrap

import polars as pl
import pytest
import torch
from opacus.accountants import PRVAccountant

from resources.core.storage import file_sha256
from resources.train.config import DPConfig
from resources.train.default_model import build_byte_lm
from resources.train.dp import (
    PrivacyBudgetExceeded,
    build_items,
    build_model,
    check_budget,
    epsilon_from_history,
    load_factory,
    load_model,
    save_model,
    select_examples,
    train,
)

TINY = {"context": 4, "window": 16, "embed_dim": 8, "hidden": 32}
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "river",
    "stone",
    "cloud",
    "paper",
    "seven",
    "orange",
    "quiet",
]


def corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 12))) for _ in range(n)]


@pytest.fixture(scope="module")
def private_run():
    _, task = build_byte_lm(**TINY)
    texts = corpus(96)
    items, _ = build_items(texts, [str(i) for i in range(len(texts))], task, 4)
    model = build_byte_lm_seeded(0)
    config = DPConfig(target_epsilon=4.0, target_delta=1e-4, epochs=2, batch_size=16)
    return items, task, config, train(items, model, task, config, private=True)


def test_recorded_epsilon_equals_an_independent_prv_accountant(private_run):
    _, _, config, result = private_run
    independent = PRVAccountant()
    independent.history = [(result.noise_multiplier, result.sample_rate, result.steps)]
    assert result.epsilon == independent.get_epsilon(delta=result.delta)
    assert result.epsilon <= config.target_epsilon
    assert result.epsilon > config.target_epsilon - 0.5  # the noise was calibrated to the target
    assert epsilon_from_history(result.history, result.delta) == result.epsilon


def test_recorded_parameters_are_what_training_used(private_run):
    items, _, config, result = private_run
    batches_per_epoch = math.ceil(len(items) / config.batch_size)
    assert result.sample_rate == pytest.approx(1 / batches_per_epoch)
    assert result.steps == config.epochs * batches_per_epoch
    assert result.history == [(result.noise_multiplier, result.sample_rate, result.steps)]
    assert result.noise_multiplier > 0
    assert (result.max_grad_norm, result.accountant) == (1.0, "prv")
    assert result.opacus_version == "1.6.0"


def test_same_seeds_same_model(private_run):
    """Same initial weights, items and config (sigma fixed to the calibrated one): same bytes."""
    items, task, config, result = private_run
    fixed = config.model_copy(update={"noise_multiplier": result.noise_multiplier})
    again = train(items, build_byte_lm_seeded(0), task, fixed, private=True)
    for name, tensor in result.model.state_dict().items():
        assert torch.equal(tensor, again.model.state_dict()[name]), name
    assert again.epsilon == result.epsilon


def build_byte_lm_seeded(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_byte_lm(**TINY)[0]


def test_dp_training_learns_something(private_run):
    items, task, _, result = private_run
    untrained, _ = build_byte_lm(**TINY)
    with torch.no_grad():
        before = task.loss(untrained, items).mean().item()
        after = task.loss(result.model, items).mean().item()
    assert after < before


def test_saved_model_hash_verifies_and_reloads_identically(private_run, tmp_path):
    items, task, _, result = private_run
    path = tmp_path / "model.pt"
    digest = save_model(result.model, path, "resources.train.default_model:build_byte_lm", TINY)
    assert digest == file_sha256(path)
    loaded, loaded_task = load_model(path, expected_sha256=digest)
    with torch.no_grad():
        assert torch.equal(task.loss(result.model, items[:8]), loaded_task.loss(loaded, items[:8]))
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ValueError, match="sha256"):
        load_model(path, expected_sha256=digest)


def test_budget_refuses_a_run_that_would_exceed_it():
    check_budget(spent=4.0, planned=4.0, budget=8.0)
    with pytest.raises(PrivacyBudgetExceeded, match="refusing to train"):
        check_budget(spent=4.0, planned=4.5, budget=8.0)
    with pytest.raises(PrivacyBudgetExceeded):
        check_budget(spent=0.0, planned=10.0, budget=8.0)


def test_epsilon_from_history_composes_heterogeneous_steps():
    one = epsilon_from_history([(1.0, 0.1, 50)], 1e-5)
    two = epsilon_from_history([(1.0, 0.1, 50), (1.0, 0.1, 50)], 1e-5)
    assert two > one
    assert two == pytest.approx(epsilon_from_history([(1.0, 0.1, 100)], 1e-5), rel=0.02)


def test_items_group_records_by_unit_and_cap_each_unit():
    _, task = build_byte_lm(**TINY)
    texts = ["a" * 40, "b" * 40, "c" * 10]
    items, keys = build_items(texts, ["u1", "u1", "u2"], task, max_examples_per_unit=4)
    assert keys == ["u1", "u2"]
    assert items.shape == (2, 4, 20)  # u1: 3 + 3 windows capped at 4; u2: 1 window
    assert (items[1, 1:] == task.pad_value).all()
    again, _ = build_items(texts, ["u1", "u1", "u2"], task, max_examples_per_unit=4)
    assert torch.equal(items, again)


def test_items_from_a_series_are_those_of_a_list_and_stored_compactly():
    _, task = build_byte_lm(**TINY)
    texts = ["a" * 40, "ü" * 30, "", "c" * 10]
    units = ["u2", "u1", "u3", "u1"]
    items, keys = build_items(pl.Series(texts), pl.Series(units), task, 4)
    listed, listed_keys = build_items(texts, units, task, 4)
    assert keys == listed_keys == ["u1", "u2", "u3"]
    assert torch.equal(items, listed)
    assert items.dtype == torch.int16  # a byte or PAD: a quarter of int64's memory


def test_select_examples_is_keyed_and_keeps_order():
    examples = torch.arange(20).unsqueeze(1)
    a = select_examples(examples, 5, "k")
    assert torch.equal(a, select_examples(examples, 5, "k"))
    assert a.squeeze(1).tolist() == sorted(a.squeeze(1).tolist())
    assert len(a) == 5
    assert torch.equal(select_examples(examples[:3], 5, "k"), examples[:3])


def test_a_users_own_model_plugs_in_and_is_made_opacus_compatible(tmp_path, monkeypatch):
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent(
            """
            import torch
            from torch import nn
            from resources.train.default_model import ByteTask

            class Normed(nn.Module):
                # BatchNorm is not DP-compatible: ModuleValidator.fix must replace it
                def __init__(self, context):
                    super().__init__()
                    self.context = context
                    self.embed = nn.Embedding(257, 4)
                    self.norm = nn.BatchNorm1d(4)
                    self.out = nn.Linear(4 * context, 256)

                def forward(self, tokens):
                    emb = self.embed(tokens.long())  # ByteTask's tokens are int16
                    b, w, t, c = emb.shape
                    normed = self.norm(emb.reshape(b, w * t, c).transpose(1, 2))
                    emb = normed.transpose(1, 2).reshape(b, w, t, c)
                    length = tokens.shape[-1] - self.context
                    win = emb.unfold(-2, self.context, 1)[..., :length, :, :]
                    flat = win.transpose(-1, -2).reshape(*win.shape[:-2], -1)
                    return self.out(flat)

            def build(context=2, window=8):
                return Normed(context), ByteTask(context, window)

            def not_a_model():
                return 1, 2
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model, task = build_model("my_models:build", {"context": 2})
    items, _ = build_items(corpus(24), [str(i) for i in range(24)], task, 2)
    config = DPConfig(target_delta=1e-3, epochs=1, batch_size=8, noise_multiplier=1.0)
    result = train(items, model, task, config, private=True)
    assert result.noise_multiplier == 1.0
    assert result.epsilon == epsilon_from_history([(1.0, 1 / 3, 3)], 1e-3)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in result.model.modules())
    path = tmp_path / "m.pt"
    digest = save_model(result.model, path, "my_models:build", {"context": 2})
    loaded, _ = load_model(path, digest)
    assert loaded.state_dict().keys() == result.model.state_dict().keys()
    with pytest.raises(TypeError, match="Task"):
        build_model("my_models:not_a_model")
    with pytest.raises(ValueError, match="module:callable"):
        load_factory("my_models.build")


def spy_batch_sizes(task) -> list[int]:
    """Make task.loss record the size of every batch it is called on."""
    sizes: list[int] = []
    loss = task.loss

    def spy(model, batch):
        sizes.append(len(batch))
        return loss(model, batch)

    task.loss = spy
    return sizes


def test_poisson_sampling_draws_empty_batches_and_they_still_count_as_steps():
    model, task = build_byte_lm(**TINY)
    items, _ = build_items(["abc def", "ghi jkl", "mno pqr"], ["a", "b", "c"], task, 2)
    sizes = spy_batch_sizes(task)
    config = DPConfig(batch_size=1, epochs=4, noise_multiplier=1.0, target_delta=1e-2)
    result = train(items, model, task, config, private=True)
    assert 0 in sizes and max(sizes) > 1  # batch sizes vary: Poisson, not fixed
    assert result.steps == 12 == len(sizes)
    assert result.epsilon == epsilon_from_history([(1.0, 1 / 3, 12)], 1e-2)


def test_batch_memory_manager_splits_logical_batches_without_extra_privacy_steps():
    model, task = build_byte_lm(**TINY)
    texts = corpus(24)
    items, _ = build_items(texts, [str(i) for i in range(24)], task, 2)
    sizes = spy_batch_sizes(task)
    config = DPConfig(
        batch_size=8, max_physical_batch_size=3, epochs=2, noise_multiplier=1.0, target_delta=1e-3
    )
    result = train(items, model, task, config, private=True)
    assert max(sizes) <= 3 and len(sizes) > 6  # physical batches
    assert result.steps == 6  # logical steps: what the accountant counts
    assert result.history == [(1.0, 1 / 3, 6)]


def test_the_same_weights_save_to_the_same_bytes_under_any_name(tmp_path):
    model = build_byte_lm_seeded(0)
    spec = "resources.train.default_model:build_byte_lm"
    first = save_model(model, tmp_path / "a" / "model.pt", spec, TINY)
    second = save_model(model, tmp_path / "b" / "other-name.pt", spec, TINY)
    assert first == second
    loaded, _ = load_model(tmp_path / "b" / "other-name.pt", expected_sha256=first)
    assert loaded.state_dict().keys() == model.state_dict().keys()


def test_max_steps_stops_at_a_logical_step_and_calibrates_the_noise_for_it():
    _, task = build_byte_lm(**TINY)
    items, _ = build_items(corpus(24), [str(i) for i in range(24)], task, 2)
    base = {"target_epsilon": 4.0, "target_delta": 1e-3, "batch_size": 8, "epochs": 2}
    whole = train(items, build_byte_lm_seeded(0), task, DPConfig(**base), private=True)
    sizes = spy_batch_sizes(task)
    capped_config = DPConfig(**base, max_steps=4, max_physical_batch_size=3)
    capped = train(items, build_byte_lm_seeded(0), task, capped_config, private=True)
    assert whole.steps == 6 and capped.steps == 4 and len(sizes) > 4  # physical batches
    assert capped.history == [(capped.noise_multiplier, 1 / 3, 4)]
    assert capped.noise_multiplier < whole.noise_multiplier  # fewer steps, less noise
    assert config_target_reached(capped, capped_config)


def config_target_reached(result, config: DPConfig) -> bool:
    return config.target_epsilon - 0.5 < result.epsilon <= config.target_epsilon


def test_a_cap_above_the_epochs_steps_changes_nothing_and_binds_plain_training_too():
    _, task = build_byte_lm(**TINY)
    items, _ = build_items(corpus(24), [str(i) for i in range(24)], task, 2)
    base = {"target_epsilon": 4.0, "target_delta": 1e-3, "batch_size": 8, "epochs": 2}
    whole = train(items, build_byte_lm_seeded(0), task, DPConfig(**base), private=True)
    loose = train(items, build_byte_lm_seeded(0), task, DPConfig(**base, max_steps=7), True)
    assert (loose.steps, loose.noise_multiplier, loose.epsilon) == (
        whole.steps,
        whole.noise_multiplier,
        whole.epsilon,
    )
    plain = train(items, build_byte_lm_seeded(0), task, DPConfig(**base, max_steps=2), False)
    assert plain.steps == 2
