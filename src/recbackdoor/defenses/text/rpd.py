"""RPD: paraphrase one item at a time and watch whether the recommendation moves.

A trigger is fragile text: paraphrasing the poisoned title erases it, so the
backdoored answer changes, while paraphrasing a benign title leaves a model
that follows the history where it was. LLaRA: the request is asked once, then
once per pool item with only that item's title paraphrased (``scope="all"``,
1 + pool queries), or only the recommended item's (``scope="answer"``, 2
queries); every item whose paraphrase changes the recommended item (compared
by original pool index, so naming the paraphrased title of the same item is
no change) is flagged, removed, and the pool asked once more.

TALLRec: the drop P(Yes | target) − P(Yes | paraphrased target) is the score;
above ``threshold`` the target is rejected ("No"). The paper's threshold, 150,
has no meaning for a probability drop: calibrate this one on clean requests
(``calibration.calibrate_threshold``). The paraphraser is injected and must be
deterministic (seed it) so a rerun gives the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from recbackdoor.defenses.text.contract import (
    CountingRecommender,
    Defense,
    LlaraRequest,
    Outcome,
    TallrecRequest,
)
from recbackdoor.defenses.text.pool_view import PoolView

Paraphraser = Callable[[str], str]


class RPD(Defense):
    name = "rpd"

    def __init__(self, paraphrase: Paraphraser, threshold: float = 0.5,
                 scope: Literal["all", "answer"] = "all") -> None:
        if scope not in ("all", "answer"):
            raise ValueError(f"scope must be 'all' or 'answer', got {scope!r}")
        self.paraphrase, self.threshold, self.scope = paraphrase, threshold, scope

    def llara(self, request: LlaraRequest, recommender: CountingRecommender) -> Outcome:
        view = PoolView.of(request)
        answer, choice = view.ask(recommender, request.history)
        if self.scope == "all":
            probes = list(range(len(request.pool)))
        else:
            probes = [] if choice is None else [choice]
        flagged = []
        for item in probes:
            _, moved = view.replaced(item, self.paraphrase(request.pool[item])).ask(recommender, request.history)
            if moved != choice:
                flagged.append(item)
        if flagged:
            view = view.without(flagged)
            answer, choice = view.ask(recommender, request.history)
        return Outcome(answer, choice, bool(flagged), removed=view.removed_titles(), aux_calls=len(probes),
                       score=float(len(flagged)))

    def tallrec(self, request: TallrecRequest, recommender: CountingRecommender) -> Outcome:
        p = recommender.answer(request.liked, request.disliked, request.target)
        p_para = recommender.answer(request.liked, request.disliked, self.paraphrase(request.target))
        drop = p - p_para
        if drop > self.threshold:
            return Outcome(0.0, flagged=True, removed=(request.target,), aux_calls=1, score=drop)
        return Outcome(p, aux_calls=1, score=drop)
