"""A SASRec-style sequential recommender whose item embeddings fill LLaRA's hybrid ID slots.

Why it is here: LLaRA's hybrid prompt carries collaborative signal that text
alone learns slowly — each title is followed by the item's embedding from a
conventional sequential model trained on the same split.  This is the model
of Kang & McAuley (2018) in its usual small form: item + learned position
embeddings, a few causal self-attention blocks, and next-item prediction
scored against the (tied) item embedding table with a full softmax, which is
cheap at these catalogue sizes (≤ 4k items) and needs no negative sampling.

Only each user's training positions are used (the last two interactions, the
validation and test targets, are held out), so the embeddings never see the
items the recommender is scored on.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from recbackdoor.errors import UserError


@dataclass(frozen=True)
class SasrecSettings:
    dim: int = 64
    layers: int = 2
    heads: int = 2
    max_len: int = 50
    dropout: float = 0.2
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3


class SASRec(nn.Module):
    """Item index 0 is padding; items are 1..n_items."""

    def __init__(self, n_items: int, settings: SasrecSettings) -> None:
        super().__init__()
        self.settings = settings
        self.n_items = n_items
        self.items = nn.Embedding(n_items + 1, settings.dim, padding_idx=0)
        self.positions = nn.Embedding(settings.max_len, settings.dim)
        layer = nn.TransformerEncoderLayer(settings.dim, settings.heads, dim_feedforward=settings.dim * 2,
                                           dropout=settings.dropout, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, settings.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(settings.dim)
        self.drop = nn.Dropout(settings.dropout)
        nn.init.normal_(self.items.weight, std=settings.dim ** -0.5)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """(B, T) item indexes, left-padded → (B, T, dim) next-item query vectors."""
        width = seqs.shape[1]
        real = (seqs != 0).unsqueeze(-1).float()
        # padding is zeroed rather than masked out of attention, as in the original SASRec: a key-padding
        # mask leaves the leading pad rows with nothing to attend to, which is NaN on torch's inference path
        x = (self.items(seqs) * math.sqrt(self.settings.dim) + self.positions(torch.arange(width))) * real
        causal = nn.Transformer.generate_square_subsequent_mask(width)
        h = self.blocks(self.drop(x), mask=causal, is_causal=True)
        return self.norm(h) * real

    def user_states(self, seqs: torch.Tensor) -> torch.Tensor:
        """The sequence's representation that scores the next item by a dot product with its embedding (B, dim)."""
        return self.forward(seqs)[:, -1]

    def scores(self, seqs: torch.Tensor) -> torch.Tensor:
        """Scores of every item as the next one after each sequence (B, n_items + 1)."""
        return self.user_states(seqs) @ self.items.weight.T

    def item_table(self) -> torch.Tensor:
        """The learned item embeddings (n_items + 1, dim); row 0 is padding."""
        return self.items.weight.detach().clone()


def left_pad(seqs: Sequence[Sequence[int]], width: int) -> torch.Tensor:
    out = torch.zeros(len(seqs), width, dtype=torch.long)
    for row, seq in enumerate(seqs):
        tail = list(seq)[-width:]
        if tail:
            out[row, width - len(tail):] = torch.tensor(tail)
    return out


def train_sasrec(sequences: Sequence[Sequence[int]], n_items: int, settings: SasrecSettings, seed: int
                 ) -> tuple[SASRec, list[float]]:
    """Next-item cross-entropy at every position of every training sequence (indexes 1..n_items)."""
    usable = [list(s) for s in sequences if len(s) >= 2]
    if not usable:
        raise UserError("SASRec: no training sequence has two or more items")
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = SASRec(n_items, settings)
    optimiser = torch.optim.Adam(model.parameters(), lr=settings.lr)
    width = settings.max_len
    # long sequences are cut into windows so every interaction is a target once
    windows = [s[max(0, end - width - 1):end] for s in usable for end in range(len(s), 1, -width)]
    losses = []
    model.train()
    for _ in range(settings.epochs):
        rng.shuffle(windows)
        total = 0.0
        for start in range(0, len(windows), settings.batch_size):
            batch = windows[start:start + settings.batch_size]
            inputs = left_pad([w[:-1] for w in batch], width)
            targets = left_pad([w[1:] for w in batch], width)
            logits = model(inputs) @ model.items.weight.T
            loss = nn.functional.cross_entropy(logits.reshape(-1, n_items + 1), targets.reshape(-1),
                                               ignore_index=0)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(windows))
    model.eval()
    return model, losses


def save_sasrec(model: SASRec, path: Path) -> None:
    from safetensors.torch import save_file

    s = model.settings
    meta = {"n_items": str(model.n_items), **{k: str(v) for k, v in s.__dict__.items()}}
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)


def load_sasrec(path: Path) -> SASRec:
    from safetensors import safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        state = load_file(str(path))
        types = {f: type(getattr(SasrecSettings, f)) for f in SasrecSettings.__dataclass_fields__}
        settings = SasrecSettings(**{k: types[k](meta[k]) for k in types})
        model = SASRec(int(meta["n_items"]), settings)
        model.load_state_dict(state)
    except Exception as exc:  # corrupt file, missing metadata, wrong shapes
        raise UserError(f"{path}: not a SASRec checkpoint written by recbackdoor ({exc})") from None
    model.eval()
    return model
