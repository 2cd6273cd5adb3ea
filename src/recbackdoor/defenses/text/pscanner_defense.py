"""P-Scanner at inference (eq. 9): drop the flagged candidates, then ask the recommender once.

The scanner reads titles only and never queries the recommender, which is why
the paper's Figure 6 shows P-Scanner with no extra queries: the one query
here is the recommendation itself. A catalogue changes far less often than
requests arrive, so flags can be computed once per title (``FlagLookup``) and
each request costs a dictionary lookup. TALLRec: a flagged target is
rejected — answered "No" (P(Yes) = 0) — with no query at all.

One class serves the paper's three inference variants — ``p-scanner``,
``p-scanner-wo-ft`` (an untuned general LM as scanner), ``p-scanner-wo-ta``
(trained without the augmentation agent) — which differ only in the scanner
handed in; the name says which cell it fills.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from recbackdoor.defenses.text.contract import (
    CountingRecommender,
    Defense,
    LlaraRequest,
    Outcome,
    TallrecRequest,
)
from recbackdoor.defenses.text.pool_view import PoolView

VARIANTS = ("p-scanner", "p-scanner-wo-ft", "p-scanner-wo-ta", "p-scanner-recurrence", "p-scanner-label")


class Flagger(Protocol):
    """What the defense needs of a scanner: ``PoisonScanner.flag`` (score above its saved threshold)."""

    def flag(self, titles: Sequence[str]) -> np.ndarray: ...


class FlagLookup:
    """Flags computed ahead of time, one per catalogue title; a title not in the table goes to ``fallback``
    (a live scanner) or is an error that names it, so an unscanned title is never silently let through."""

    def __init__(self, flags: Mapping[str, bool], fallback: Flagger | None = None) -> None:
        self.flags = dict(flags)
        self.fallback = fallback

    @classmethod
    def precompute(cls, scanner: Flagger, titles: Sequence[str], keep_scanner: bool = True) -> FlagLookup:
        """Scan every distinct title once, in one batched call."""
        distinct = list(dict.fromkeys(titles))
        flags = np.asarray(scanner.flag(distinct), dtype=bool) if distinct else np.zeros(0, dtype=bool)
        return cls(dict(zip(distinct, flags.tolist(), strict=True)), scanner if keep_scanner else None)

    def flag(self, titles: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in titles if t not in self.flags))
        if missing:
            if self.fallback is None:
                raise KeyError(f"title {missing[0]!r} has no precomputed flag and no scanner to fall back on")
            found = np.asarray(self.fallback.flag(missing), dtype=bool)
            self.flags.update(zip(missing, found.tolist(), strict=True))
        return np.array([self.flags[t] for t in titles], dtype=bool)


class PScannerDefense(Defense):
    name = "p-scanner"

    def __init__(self, scanner: Flagger, name: str = "p-scanner") -> None:
        if name not in VARIANTS:
            raise ValueError(f"P-Scanner variant {name!r} is not one of {VARIANTS}")
        self.scanner, self.name = scanner, name

    def llara(self, request: LlaraRequest, recommender: CountingRecommender) -> Outcome:
        flags = np.asarray(self.scanner.flag(request.pool), dtype=bool)
        view = PoolView.of(request).without(np.flatnonzero(flags).tolist())
        if not view.titles:  # every candidate flagged: nothing left to recommend, so nothing is asked
            return Outcome("", None, flagged=True, removed=view.removed_titles(), aux_calls=1)
        answer, choice = view.ask(recommender, request.history)
        return Outcome(answer, choice, flagged=bool(flags.any()), removed=view.removed_titles(), aux_calls=1)

    def tallrec(self, request: TallrecRequest, recommender: CountingRecommender) -> Outcome:
        if bool(np.asarray(self.scanner.flag([request.target]), dtype=bool)[0]):
            return Outcome(0.0, flagged=True, removed=(request.target,), aux_calls=1)
        return Outcome(recommender.answer(request.liked, request.disliked, request.target), aux_calls=1)
