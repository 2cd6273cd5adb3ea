"""LLaRA's hybrid prompt: an ID slot after every title, filled with the item's SASRec embedding.

The prompt text keeps a visible marker (" [ID]") after each title so the
frozen layers read where an item ends; the marker's last token is the slot at
which :class:`~recbackdoor.victims.text.split_lm.SplitLM` adds the projected
embedding.  Items are numbered 1..N in catalogue order (0 = padding), the
numbering SASRec is trained with.

``slot="title"`` (not LLaRA's layout) drops the marker and adds the embedding
onto the title's own last token.  A model that answers by copying a title
token out of the pool (the from-scratch ``titles-copy`` backbone) then sees
the collaborative signal in the very key and value it copies from, instead of
in a neighbouring token it would first have to tie back to the title.

The projector that maps SASRec's embeddings into the LM (:class:`IdProjector`)
and the code that adds them at the slots, in training and on generation's
prompt pass (:func:`add_slot_embeddings`, :func:`slot_hook`), live here too,
so the split LM holds no hybrid-specific code beyond calling them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from recbackdoor.data.prompts import LlaraSample, llara_prompt
from recbackdoor.data.sequences import SequenceData
from recbackdoor.errors import UserError
from recbackdoor.victims.text.sasrec import SASRec, SasrecSettings, left_pad, train_sasrec

SLOT_MARKER = " [ID]"
SLOT_PLACES = ("marker", "title")


@dataclass(frozen=True)
class HybridPrompt:
    tokens: list[int]
    slots: tuple[int, ...]  # token positions of the slots, in prompt order
    slot_items: tuple[int, ...]  # SASRec item index at each slot


class ItemIndex:
    """Dataset item id ↔ SASRec index (1..N)."""

    def __init__(self, data: SequenceData) -> None:
        self.items = data.items
        self.index = {item: i + 1 for i, item in enumerate(self.items)}

    def __len__(self) -> int:
        return len(self.items)

    def __call__(self, items: Sequence[int]) -> list[int]:
        return [self.index[i] for i in items]


class IdProjector(nn.Module):
    """LLaRA's projector: a frozen item-embedding table → 2-layer MLP → the LM's hidden size.

    The output layer starts at zero so an untrained projector leaves the LM
    exactly as it was (the curriculum then lets the ID signal in gradually).
    """

    def __init__(self, table: torch.Tensor, hidden: int) -> None:
        super().__init__()
        self.register_buffer("table", table.float().clone(), persistent=False)
        self.proj = nn.Sequential(nn.Linear(table.shape[1], hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.reset(0)

    def reset(self, seed: int) -> None:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            first, last = self.proj[0], self.proj[2]
            bound = first.in_features ** -0.5
            first.weight.copy_(torch.rand(first.weight.shape, generator=gen) * 2 * bound - bound)
            first.bias.zero_()
            last.weight.zero_()
            last.bias.zero_()

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        return self.proj(self.table[items])


def add_slot_embeddings(hidden: torch.Tensor, projector: IdProjector | None,
                        slots: Sequence[tuple[Sequence[int], Sequence[int]]],
                        offsets: Sequence[int] | None = None) -> torch.Tensor:
    """``hidden`` with the projected ID embedding added at every (row, slot position); ``offsets`` shift rows
    (left padding in generation)."""
    if projector is None:
        raise UserError("hybrid prompt given to a model without an ID projector")
    rows, cols, items = [], [], []
    for row, (positions, ids) in enumerate(slots):
        shift = offsets[row] if offsets is not None else 0
        rows += [row] * len(positions)
        cols += [p + shift for p in positions]
        items += list(ids)
    if not rows:
        return hidden
    device = hidden.device
    values = projector(torch.tensor(items, device=device)).to(hidden.dtype)
    index = (torch.tensor(rows, device=device), torch.tensor(cols, device=device))
    return hidden.index_put(index, values, accumulate=True)


def slot_hook(layer: nn.Module, projector: IdProjector | None, slots: Sequence[tuple[Sequence[int], Sequence[int]]],
              offsets: Sequence[int], width: int) -> torch.utils.hooks.RemovableHandle:
    """Make ``layer`` (the first trained layer) add the ID embeddings on generation's prompt pass.

    ``width`` is the padded prompt length: later decoding steps feed one new token at a time and pass untouched.
    The caller removes the returned handle after generating.
    """

    def hook(module, args, kwargs):
        hidden = args[0] if args else kwargs["hidden_states"]
        if hidden.shape[1] != width:  # a decoding step, not the prompt pass
            return None
        hidden = add_slot_embeddings(hidden, projector, slots, offsets)
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    return layer.register_forward_pre_hook(hook, with_kwargs=True)


def training_sequences(data: SequenceData, index: ItemIndex) -> list[list[int]]:
    """Each user's sequence without its last two interactions (validation and test targets)."""
    return [index([x.item for x in seq[:-2]]) for seq in data.sequences.values()]


def fit_sasrec(data: SequenceData, settings: SasrecSettings, seed: int) -> tuple[SASRec, list[float]]:
    index = ItemIndex(data)
    return train_sasrec(training_sequences(data, index), len(index), settings, seed)


@torch.no_grad()
def sasrec_choices(model: SASRec, samples: Sequence[LlaraSample], index: ItemIndex) -> list[int]:
    """SASRec's pick from each pool (position in the pool), from the same history the LM sees."""
    scores = model.scores(left_pad([index(s.history) for s in samples], model.settings.max_len))
    return [int(torch.argmax(scores[row, index(s.candidates)])) for row, s in enumerate(samples)]


def encode_hybrid(encode, sample: LlaraSample, data: SequenceData, index: ItemIndex,
                  slot: str = "marker") -> HybridPrompt:
    """Tokenise the hybrid prompt piece by piece so every slot's position is known exactly.

    ``encode(text, bos)`` returns token ids (``bos``: this is the prompt's start),
    e.g. :meth:`SplitLM.encode`.  ``slot``: "marker" (LLaRA's " [ID]" after each
    title) or "title" (no marker; the slot is the title's last token).
    """
    if slot not in SLOT_PLACES:
        raise UserError(f"hybrid slot {slot!r}: expected one of {', '.join(SLOT_PLACES)}")
    pieces = llara_prompt(sample, data, id_slot=SLOT_MARKER).split(SLOT_MARKER)
    items = list(sample.history) + list(sample.candidates)
    if len(pieces) != len(items) + 1:
        raise UserError(f"user {sample.user}: an item title contains the hybrid slot marker {SLOT_MARKER.strip()!r}")
    marker = encode(SLOT_MARKER, False) if slot == "marker" else []
    tokens: list[int] = []
    slots = []
    for n, piece in enumerate(pieces):
        tokens += encode(piece, n == 0)
        if n < len(items):
            tokens += marker
            slots.append(len(tokens) - 1)
    return HybridPrompt(tokens, tuple(slots), tuple(index(items)))
