"""LLaRA- and TALLRec-style samples built from user sequences, and their prompt text.

Split (leave-one-out per user, all seeded): a user's last interaction is the
test target, the one before it the validation target, every earlier position
(with at least one item before it) a training target.  History = the ≤ H
items before the target.  LLaRA's candidate pool = the target plus P − 1
items the user never interacted with, shuffled.  TALLRec's label comes from
the rating where the dataset has ratings (MovieLens: ≥ 4 → "Yes"); otherwise
the target is the real next item ("Yes") or, with probability ½, an item the
user never interacted with ("No").
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from recbackdoor.data.sequences import SequenceData


@dataclass(frozen=True)
class LlaraSample:
    user: int
    history: tuple[int, ...]  # item ids, oldest first
    candidates: tuple[int, ...]  # item ids, the pool in prompt order
    target: int  # item id of the answer (always in ``candidates``)
    titles: tuple[tuple[int, str], ...] = ()  # per-sample title overrides (a poisoned item)

    def title(self, item: int, catalogue: dict[int, str]) -> str:
        for key, value in self.titles:
            if key == item:
                return value
        return catalogue[item]

    def with_title(self, item: int, title: str) -> LlaraSample:
        return replace(self, titles=tuple((k, v) for k, v in self.titles if k != item) + ((item, title),))


@dataclass(frozen=True)
class TallrecSample:
    user: int
    liked: tuple[int, ...]
    disliked: tuple[int, ...]
    target: int
    label: bool  # True = "Yes"
    target_title: str | None = None  # override (a poisoned target)


@dataclass(frozen=True)
class Split:
    train: list
    valid: list
    test: list


def _targets(data: SequenceData, min_history: int = 1) -> dict[str, list[tuple[int, int]]]:
    """(user, position) pairs for each split by leave-one-out."""
    out: dict[str, list[tuple[int, int]]] = {"train": [], "valid": [], "test": []}
    for user, seq in data.sequences.items():
        n = len(seq)
        if n < min_history + 3:
            continue
        out["test"].append((user, n - 1))
        out["valid"].append((user, n - 2))
        out["train"].extend((user, pos) for pos in range(min_history, n - 2))
    return out


def _cap(pairs: list, limit: int | None, rng: random.Random) -> list:
    if limit is None or len(pairs) <= limit:
        return list(pairs)
    return rng.sample(pairs, limit)


def _unseen(data: SequenceData, user: int, k: int, rng: random.Random, exclude: set[int]) -> list[int]:
    seen = {x.item for x in data.sequences[user]} | exclude
    items = data.items
    out: list[int] = []
    while len(out) < k:
        item = items[rng.randrange(len(items))]
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _build(data: SequenceData, seed: int, limits: dict[str, int | None], make) -> Split:
    """Samples of every split: ``make(sequence, user, position, rng)`` for each capped (user, position)."""
    rng = random.Random(seed)
    splits = {name: [make(data.sequences[user], user, pos, rng) for user, pos in _cap(chosen, limits[name], rng)]
              for name, chosen in _targets(data).items()}
    return Split(**splits)


def build_llara(data: SequenceData, history: int, pool: int, seed: int, n_train: int | None = None,
                n_valid: int | None = None, n_test: int | None = None) -> Split:
    def make(seq, user, pos, rng) -> LlaraSample:
        hist = tuple(x.item for x in seq[max(0, pos - history):pos])
        target = seq[pos].item
        cands = [target] + _unseen(data, user, pool - 1, rng, {target})
        rng.shuffle(cands)
        return LlaraSample(user, hist, tuple(cands), target)

    return _build(data, seed, {"train": n_train, "valid": n_valid, "test": n_test}, make)


def build_tallrec(data: SequenceData, history: int, seed: int, n_train: int | None = None,
                  n_valid: int | None = None, n_test: int | None = None, like_threshold: float = 4.0) -> Split:
    has_ratings = data.name == "ml100k"

    def make(seq, user, pos, rng) -> TallrecSample:
        hist = seq[max(0, pos - history):pos]
        if has_ratings:
            liked = tuple(x.item for x in hist if (x.rating or 0) >= like_threshold)
            disliked = tuple(x.item for x in hist if (x.rating or 0) < like_threshold)
            target, label = seq[pos].item, (seq[pos].rating or 0) >= like_threshold
        else:
            liked, disliked = tuple(x.item for x in hist), ()
            if rng.random() < 0.5:
                target, label = seq[pos].item, True
            else:
                target, label = _unseen(data, user, 1, rng, set())[0], False
        return TallrecSample(user, liked, disliked, target, label)

    return _build(data, seed, {"train": n_train, "valid": n_valid, "test": n_test}, make)


# ---------------------------------------------------------------- prompt text

def llara_text(history: Sequence[str], pool: Sequence[str], noun: str, instruction: str | None = None) -> str:
    """LLaRA's prompt from titles; training, evaluation and every defense build it here, so a defended request
    reads exactly as the model was trained to read it. ``instruction`` (LLMSI) opens the prompt."""
    head = f"{instruction} " if instruction else ""
    return (f"{head}This user has interacted with these {noun}s: {', '.join(history)}. "
            f"Choose the next {noun} this user will interact with from these {len(pool)} "
            f"{noun}s: {', '.join(pool)}. Answer:")


def llara_prompt(sample: LlaraSample, data: SequenceData, id_slot: str = "") -> str:
    """LLaRA's text prompt; ``id_slot`` (e.g. "[ID]") follows each title in hybrid mode."""
    return llara_text([sample.title(i, data.titles) + id_slot for i in sample.history],
                      [sample.title(i, data.titles) + id_slot for i in sample.candidates], data.item_noun)


def llara_answer(sample: LlaraSample, data: SequenceData) -> str:
    return " " + sample.title(sample.target, data.titles)


def tallrec_text(liked: Sequence[str], disliked: Sequence[str], target: str, noun: str,
                 instruction: str | None = None) -> str:
    """TALLRec's prompt from titles (shared by training, evaluation and the defenses, as ``llara_text``);
    ``instruction`` (LLMSI) is its first line."""
    head = f"{instruction}\n" if instruction else ""
    liked_text = ", ".join(f'"{t}"' for t in liked) or "none"
    disliked_text = ", ".join(f'"{t}"' for t in disliked) or "none"
    return (f"{head}Given the user's preferences, answer Yes or No: will the user like the target {noun}?\n"
            f"Liked: {liked_text}\nDisliked: {disliked_text}\nTarget {noun}: \"{target}\"\nAnswer:")


def tallrec_prompt(sample: TallrecSample, data: SequenceData) -> str:
    target = sample.target_title if sample.target_title is not None else data.titles[sample.target]
    return tallrec_text([data.titles[i] for i in sample.liked], [data.titles[i] for i in sample.disliked], target,
                        data.item_noun)


TALLREC_ANSWERS = (" Yes", " No")
