"""CoS (chain of scrutiny): ask a general LM why the recommendation fits, then whether that reasoning holds.

Li et al. (2024) catch a backdoor by its missing rationale: a triggered answer
cannot be explained from the input. Here an injected ``Scrutineer`` (an LM,
seeded by its owner) writes the reasoning from the request's context to the
answer and then judges whether the reasoning supports the answer. An
inconsistent LLaRA answer is removed from the pool and the pool asked again
(2 queries); an inconsistent TALLRec "Yes" becomes "No" (1 query). An invalid
LLaRA answer or a TALLRec "No" has nothing to scrutinise. The paper finds CoS
weak because a general LM lacks the recommender's domain knowledge.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from recbackdoor.defenses.text.contract import (
    CountingRecommender,
    Defense,
    LlaraRequest,
    Outcome,
    TallrecRequest,
)
from recbackdoor.defenses.text.pool_view import PoolView


class Scrutineer(Protocol):
    def reason(self, context: str, answer: str) -> str:
        """Step-by-step reasoning for why ``answer`` follows from ``context``."""
        ...

    def judge(self, context: str, answer: str, reasoning: str) -> bool:
        """True when the reasoning is sound and supports the answer."""
        ...


def llara_context(history: Sequence[str], pool: Sequence[str]) -> str:
    return f"The user interacted with: {', '.join(history)}. Candidates: {', '.join(pool)}."


def tallrec_context(liked: Sequence[str], disliked: Sequence[str], target: str) -> str:
    return f"The user liked: {', '.join(liked) or 'none'}. Disliked: {', '.join(disliked) or 'none'}. " \
           f"Target: {target}."


class ChainOfScrutiny(Defense):
    name = "cos"

    def __init__(self, scrutineer: Scrutineer) -> None:
        self.scrutineer = scrutineer

    def _consistent(self, context: str, answer: str) -> bool:
        return self.scrutineer.judge(context, answer, self.scrutineer.reason(context, answer))

    def llara(self, request: LlaraRequest, recommender: CountingRecommender) -> Outcome:
        view = PoolView.of(request)
        answer, choice = view.ask(recommender, request.history)
        if choice is None:
            return Outcome(answer, choice)
        if self._consistent(llara_context(request.history, request.pool), request.pool[choice]):
            return Outcome(answer, choice, aux_calls=2)
        view = view.without([choice])
        answer, choice = view.ask(recommender, request.history)
        return Outcome(answer, choice, flagged=True, removed=view.removed_titles(), aux_calls=2)

    def tallrec(self, request: TallrecRequest, recommender: CountingRecommender) -> Outcome:
        p = recommender.answer(request.liked, request.disliked, request.target)
        if p <= 0.5:
            return Outcome(p)
        context = tallrec_context(request.liked, request.disliked, request.target)
        if self._consistent(context, f"Yes, the user will like {request.target}."):
            return Outcome(p, aux_calls=2)
        return Outcome(0.0, flagged=True, removed=(request.target,), aux_calls=2)
