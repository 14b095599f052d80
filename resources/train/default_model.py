"""The default model: a byte-level next-token language model, and the task contract.

A model plugs into training through a factory ``build(**kwargs) -> (nn.Module, Task)``. The
task turns one record's text into a stack of fixed-shape examples and scores a batch of them;
training never looks inside either. The default model is a neural n-gram model (Bengio et
al., 2003) over UTF-8 bytes: the embeddings of the previous ``context`` bytes, concatenated,
go through one hidden layer to a distribution over the next byte. It is built only from
nn.Embedding and nn.Linear, whose per-sample gradients Opacus computes with one einsum each,
so DP-SGD costs little more than plain SGD on a CPU. Nothing is loaded from a hub: the
vocabulary is the 256 byte values plus one padding token.
"""

from typing import Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PAD = 256
"""Token for 'no byte here': the context before a record's start and the slots after its end."""
VOCAB_IN = 257
VOCAB_OUT = 256
TOKEN_DTYPE = torch.int16
"""Examples are stored in int16 (a byte or PAD fits): a quarter of int64's memory, which at 1M
records is most of the training set's size; the model widens them at its embedding."""


@runtime_checkable
class Task(Protocol):
    """What training and the privacy audit need from a model's task.

    - ``encode(text)`` returns a tensor of shape [n, *example_shape] (n >= 0) holding the
      record's examples; every record of a task has the same example_shape. Items are stored
      in the dtype it returns (ByteTask: int16), so the model widens what it must.
    - ``pad_value`` fills example slots that hold no example; a slot made only of pad_value
      must contribute nothing to the loss.
    - ``loss(model, batch)`` takes [B, W, *example_shape] (B items of W example slots each) and
      returns [B]: each item's mean loss in nats per predicted unit (a token for a language
      model), so that exp(loss) is a perplexity. It must be differentiable and must not mix
      items, since DP-SGD clips each item's gradient separately.
    """

    pad_value: int

    def encode(self, text: str) -> torch.Tensor: ...

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor: ...


class ByteMLP(nn.Module):
    """Next-byte distribution from the previous ``context`` bytes, for every window position."""

    def __init__(self, context: int, embed_dim: int, hidden: int) -> None:
        super().__init__()
        self.context = context
        self.embed = nn.Embedding(VOCAB_IN, embed_dim)
        self.hidden = nn.Linear(context * embed_dim, hidden)
        self.out = nn.Linear(hidden, VOCAB_OUT)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [..., context + L] -> logits [..., L, 256] for the L bytes after the context."""
        emb = self.embed(tokens.long())  # embedding before unfolding keeps Opacus' scatter small
        length = tokens.shape[-1] - self.context
        # windows[..., i, :, :] are the embeddings of the bytes i .. i+context-1
        windows = emb.unfold(-2, self.context, 1)[..., :length, :, :]
        # an explicit width, not -1: Poisson sampling can draw an empty batch
        flat = windows.transpose(-1, -2).reshape(*windows.shape[:-2], self.hidden.in_features)
        return self.out(F.gelu(self.hidden(flat)))


class ByteTask:
    """Windows of ``window`` target bytes, each preceded by its ``context`` bytes."""

    pad_value = PAD

    def __init__(self, context: int, window: int) -> None:
        self.context = context
        self.window = window

    def encode(self, text: str) -> torch.Tensor:
        # numpy reads the bytes at once: a list of ints per byte was most of encoding's time
        data = torch.from_numpy(np.frombuffer(text.encode("utf-8"), np.uint8).astype(np.int16))
        n = -(-len(data) // self.window)
        padded = torch.full((self.context + n * self.window,), PAD, dtype=TOKEN_DTYPE)
        padded[self.context : self.context + len(data)] = data
        if n == 0:
            return torch.empty((0, self.context + self.window), dtype=TOKEN_DTYPE)
        return padded.unfold(0, self.context + self.window, self.window)

    def loss(self, model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
        logits = model(batch)
        targets = batch[..., self.context :]
        nll = F.cross_entropy(
            logits.reshape(-1, VOCAB_OUT),
            targets.reshape(-1).long().clamp(max=VOCAB_OUT - 1),
            reduction="none",
        ).reshape(targets.shape)
        valid = (targets != PAD).to(nll.dtype)
        per_item = (nll * valid).flatten(1).sum(1)
        return per_item / valid.flatten(1).sum(1).clamp(min=1.0)


def build_byte_lm(
    context: int = 8, window: int = 64, embed_dim: int = 16, hidden: int = 128
) -> tuple[nn.Module, Task]:
    """The default factory (``resources.train.default_model:build_byte_lm``)."""
    return ByteMLP(context, embed_dim, hidden), ByteTask(context, window)
