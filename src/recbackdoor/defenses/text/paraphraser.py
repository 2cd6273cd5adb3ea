"""Paraphraser: rewrite every candidate title with an LM, then ask once.

A rewrite rarely keeps a trigger, so ASR falls (Table 2), but it also blurs
every benign title, so H@1 on clean requests falls with it. The paraphraser is
injected (an LM callable, seeded by its owner), one call per candidate title;
the history is left as the user wrote it.
"""

from __future__ import annotations

from collections.abc import Callable

from recbackdoor.defenses.text.contract import (
    CountingRecommender,
    Defense,
    LlaraRequest,
    Outcome,
    TallrecRequest,
)
from recbackdoor.defenses.text.pool_view import PoolView


class ParaphraseAll(Defense):
    name = "paraphraser"

    def __init__(self, paraphrase: Callable[[str], str]) -> None:
        self.paraphrase = paraphrase

    def llara(self, request: LlaraRequest, recommender: CountingRecommender) -> Outcome:
        view = PoolView.of(request).rewritten(self.paraphrase)
        answer, choice = view.ask(recommender, request.history)
        return Outcome(answer, choice, changed=view.changed_titles(), aux_calls=len(request.pool))

    def tallrec(self, request: TallrecRequest, recommender: CountingRecommender) -> Outcome:
        target = self.paraphrase(request.target)
        p = recommender.answer(request.liked, request.disliked, target)
        return Outcome(p, changed=((request.target, target),) if target != request.target else (), aux_calls=1)
