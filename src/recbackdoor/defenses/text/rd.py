"""RD (random deletion): delete a few random characters from every candidate title to break a trigger.

Paper (Appendix B.1.2): three characters per title. It needs no detector and
one recommender query, but it damages every benign title too, which is why
its H@1 collapses in Table 2. The candidates are edited (every LLaRA pool
title, the TALLRec target); the history is left alone, since triggers live on
the items a seller writes into the pool.
"""

from __future__ import annotations

import random

from recbackdoor.defenses.text.contract import (
    CountingRecommender,
    Defense,
    LlaraRequest,
    Outcome,
    TallrecRequest,
)
from recbackdoor.defenses.text.pool_view import PoolView, request_rng


def delete_chars(title: str, count: int, rng: random.Random) -> str:
    """``title`` without ``count`` characters at distinct random positions (a title of ≤ count characters
    becomes empty: there is nothing left to keep)."""
    if count >= len(title):
        return ""
    gone = set(rng.sample(range(len(title)), count))
    return "".join(c for i, c in enumerate(title) if i not in gone)


class RandomDeletion(Defense):
    name = "rd"

    def __init__(self, chars: int = 3, seed: int = 0) -> None:
        if chars < 0:
            raise ValueError(f"chars must be ≥ 0, got {chars}")
        self.chars, self.seed = chars, seed

    def llara(self, request: LlaraRequest, recommender: CountingRecommender) -> Outcome:
        rng = request_rng(self.seed, request, self.name)
        view = PoolView.of(request).rewritten(lambda t: delete_chars(t, self.chars, rng))
        answer, choice = view.ask(recommender, request.history)
        return Outcome(answer, choice, changed=view.changed_titles())

    def tallrec(self, request: TallrecRequest, recommender: CountingRecommender) -> Outcome:
        target = delete_chars(request.target, self.chars, request_rng(self.seed, request, self.name))
        p = recommender.answer(request.liked, request.disliked, target)
        return Outcome(p, changed=((request.target, target),) if target != request.target else ())
