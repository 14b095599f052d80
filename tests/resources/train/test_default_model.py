import torch

from resources.train.default_model import PAD, ByteTask, Task, build_byte_lm


def test_windows_cover_every_byte_once_in_order():
    task = ByteTask(context=3, window=5)
    text = "héllo, wörld!"
    windows = task.encode(text)
    targets = windows[:, 3:].reshape(-1)
    data = bytes(t for t in targets.tolist() if t != PAD)
    assert data == text.encode("utf-8")
    assert windows.shape == (3, 8)  # 15 bytes -> 3 windows of 5
    assert windows[0, :3].tolist() == [PAD] * 3  # nothing before the record's start


def test_context_of_each_window_is_the_bytes_before_it():
    task = ByteTask(context=2, window=3)
    windows = task.encode("abcdefg")
    assert bytes(windows[1, :2].tolist()) == b"bc"
    assert bytes(windows[2, :2].tolist()) == b"ef"


def test_empty_text_has_no_examples():
    assert ByteTask(4, 8).encode("").shape == (0, 12)


def test_padding_slots_and_other_items_do_not_change_an_items_loss():
    torch.manual_seed(0)
    model, task = build_byte_lm(context=4, window=8, embed_dim=4, hidden=8)
    assert isinstance(task, Task)
    one = task.encode("a short record of text")
    other = task.encode("something else entirely, longer than the first one")
    lone = torch.full((1, 4, 12), PAD)
    lone[0, : len(one)] = one
    pair = torch.full((2, 8, 12), PAD)
    pair[0, : len(one)] = one
    pair[1, : len(other)] = other
    with torch.no_grad():
        assert torch.allclose(task.loss(model, lone)[0], task.loss(model, pair)[0], atol=1e-6)


def test_untrained_loss_is_near_uniform_and_all_pad_item_is_zero():
    torch.manual_seed(0)
    model, task = build_byte_lm(context=4, window=8, embed_dim=4, hidden=8)
    batch = torch.full((2, 1, 12), PAD)
    batch[0, 0] = task.encode("abcdefgh")[0]
    with torch.no_grad():
        loss = task.loss(model, batch)
    assert abs(loss[0].item() - torch.log(torch.tensor(256.0)).item()) < 0.5
    assert loss[1].item() == 0.0
