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

A user slot (not LLaRA's either; CoLLM-style) adds SASRec's user state, the
vector whose dot product with an item embedding is SASRec's score, on the
prompt's last token, where the answer's query is formed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

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
                  slot: str = "marker", user_row: int | None = None) -> HybridPrompt:
    """Tokenise the hybrid prompt piece by piece so every slot's position is known exactly.

    ``encode(text, bos)`` returns token ids (``bos``: this is the prompt's start),
    e.g. :meth:`SplitLM.encode`.  ``slot``: "marker" (LLaRA's " [ID]" after each
    title) or "title" (no marker; the slot is the title's last token).  ``user_row``:
    the projector-table row holding this prompt's user state, slotted on the last token.
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
    slot_items = index(items)
    if user_row is not None:
        slots.append(len(tokens) - 1)
        slot_items.append(user_row)
    return HybridPrompt(tokens, tuple(slots), tuple(slot_items))


@torch.no_grad()
def user_state_rows(model: SASRec, samples: Sequence[LlaraSample], index: ItemIndex) -> torch.Tensor:
    """SASRec's user state for each sample's history, set to the item rows' mean length.

    The projector is shared with the item rows; SASRec's user states come out of a LayerNorm and are
    several times longer than its item embeddings, so they would saturate it. A user state's length
    only scales all of its scores alike, so its direction (which ranks the items) is all that is kept.
    """
    states = model.user_states(left_pad([index(s.history) for s in samples], model.settings.max_len))
    length = model.item_table()[1:].norm(dim=1).mean()
    return states / states.norm(dim=1, keepdim=True).clamp_min(1e-8) * length
