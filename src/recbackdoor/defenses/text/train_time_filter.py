"""P-Scanner at training time: drop every training example that mentions a flagged title.

BadRec poisons through fake users whose targets carry the trigger; a scanner
that flags those titles before fine-tuning keeps the backdoor from being
learnt at all (OpenBackdoor's "correct the data" stage). The victim is then
trained on ``kept`` and, at inference, answers requests unchanged — which is
all ``TrainTimePScanner.defend`` does (one query, nothing removed). Each
distinct title is scanned once, in one batched call, however many examples
share it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

from recbackdoor.defenses.text.contract import (
    CountingRecommender,
    Defense,
    LlaraRequest,
    Outcome,
    TallrecRequest,
)
from recbackdoor.defenses.text.pool_view import PoolView
from recbackdoor.defenses.text.pscanner_defense import Flagger

E = TypeVar("E")
TRAIN_TIME_VARIANTS = ("p-scanner-train-time", "p-scanner-recurrence-train-time", "p-scanner-label-train-time")


@dataclass(frozen=True)
class FilterReport(Generic[E]):
    kept: tuple[E, ...]
    dropped: tuple[E, ...]
    flagged_titles: tuple[str, ...]  # distinct flagged titles, in first-seen order

    @property
    def n_kept(self) -> int:
        return len(self.kept)

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)


def filter_training(examples: Sequence[E], titles_of: Callable[[E], Sequence[str]],
                    scanner: Flagger) -> FilterReport[E]:
    """Split ``examples`` into those whose titles (``titles_of``: every item title the example shows the model —
    history, pool, target) are all unflagged, and the rest; order is kept in both."""
    per_example = [tuple(titles_of(e)) for e in examples]
    distinct = list(dict.fromkeys(t for titles in per_example for t in titles))
    flags = np.asarray(scanner.flag(distinct), dtype=bool) if distinct else np.zeros(0, dtype=bool)
    flagged = {t for t, f in zip(distinct, flags.tolist(), strict=True) if f}
    kept, dropped = [], []
    for example, titles in zip(examples, per_example, strict=True):
        (dropped if flagged.intersection(titles) else kept).append(example)
    return FilterReport(tuple(kept), tuple(dropped), tuple(t for t in distinct if t in flagged))


class TrainTimePScanner(Defense):
    """The ``p-scanner-train-time`` cell: filter the training data, then recommend as usual."""

    name = "p-scanner-train-time"
    stage = "training"

    def __init__(self, scanner: Flagger, name: str = "p-scanner-train-time") -> None:
        if name not in TRAIN_TIME_VARIANTS:
            raise ValueError(f"train-time variant {name!r} is not one of {TRAIN_TIME_VARIANTS}")
        self.scanner, self.name = scanner, name

    def filter(self, examples: Sequence[E], titles_of: Callable[[E], Sequence[str]]) -> FilterReport[E]:
        return filter_training(examples, titles_of, self.scanner)

    def llara(self, request: LlaraRequest, recommender: CountingRecommender) -> Outcome:
        answer, choice = PoolView.of(request).ask(recommender, request.history)
        return Outcome(answer, choice)

    def tallrec(self, request: TallrecRequest, recommender: CountingRecommender) -> Outcome:
        return Outcome(recommender.answer(request.liked, request.disliked, request.target))
