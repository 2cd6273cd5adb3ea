"""No defense: the request as it is, one recommender query — the BadRec and Benign rows of the tables, measured
through the same contract (and the same cost accounting) as every defense."""

from __future__ import annotations

from recbackdoor.defenses.text.contract import CountingRecommender, Defense, LlaraRequest, Outcome, TallrecRequest
from recbackdoor.defenses.text.pool_view import PoolView


class Undefended(Defense):
    def llara(self, request: LlaraRequest, recommender: CountingRecommender) -> Outcome:
        answer, choice = PoolView.of(request).ask(recommender, request.history)
        return Outcome(answer, choice)

    def tallrec(self, request: TallrecRequest, recommender: CountingRecommender) -> Outcome:
        return Outcome(recommender.answer(request.liked, request.disliked, request.target))
