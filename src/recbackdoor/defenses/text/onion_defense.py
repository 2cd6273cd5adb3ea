"""ONION as a pool defense: delete the words whose removal makes a title much less perplexing.

Variant: by default this is ONION as Qi et al. (2021) wrote it — *delete the
suspicious words* from each candidate title and keep the item. The paper's
Appendix B.1.1 describes the item-level variant (an item whose suspicion is
high is removed from the pool); ``remove_items=True`` gives that one.

The per-title word suspicion is injected (``Onion.word_suspicion`` in
``onion.py`` gives (word, perplexity drop) per word of ``title.split()``), so
the defense is testable without an LM. The paper's threshold, 150, is a
perplexity drop under its LLaMA; under another LM calibrate it on clean
pools with ``calibration.calibrate_threshold``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from recbackdoor.defenses.text.contract import (
    CountingRecommender,
    Defense,
    LlaraRequest,
    Outcome,
    TallrecRequest,
)
from recbackdoor.defenses.text.pool_view import PoolView

WordSuspicion = Callable[[str], Sequence[tuple[str, float]]]


def strip_suspicious(title: str, suspicion: WordSuspicion, threshold: float) -> tuple[str, bool, float]:
    """The title without its words whose suspicion exceeds ``threshold``, whether any word went, and the
    title's ONION score (its largest word suspicion; 0 for a title with no words)."""
    scored = list(suspicion(title))
    words = title.split()
    if [w for w, _ in scored] != words:
        raise ValueError(f"word suspicion must score title.split() in order; got {[w for w, _ in scored]!r} "
                         f"for {title!r}")
    kept = [w for w, s in scored if s <= threshold]
    top = max((s for _, s in scored), default=0.0)
    if len(kept) == len(words):
        return title, False, top  # verbatim: an untouched title keeps its own spacing
    return " ".join(kept), True, top


class OnionDefense(Defense):
    name = "onion"

    def __init__(self, suspicion: WordSuspicion, threshold: float = 150.0, remove_items: bool = False) -> None:
        self.suspicion, self.threshold, self.remove_items = suspicion, threshold, remove_items

    def llara(self, request: LlaraRequest, recommender: CountingRecommender) -> Outcome:
        view = PoolView.of(request)
        cleaned = [strip_suspicious(t, self.suspicion, self.threshold) for t in request.pool]
        hit = [i for i, (_, suspicious, _) in enumerate(cleaned) if suspicious]
        if self.remove_items:
            view = view.without(hit)
        else:
            view = PoolView(tuple(t for t, _, _ in cleaned), view.origin, view.original)
        answer, choice = view.ask(recommender, request.history)
        return Outcome(answer, choice, flagged=bool(hit), removed=view.removed_titles(),
                       changed=view.changed_titles(), aux_calls=len(request.pool),
                       score=max(s for _, _, s in cleaned))

    def tallrec(self, request: TallrecRequest, recommender: CountingRecommender) -> Outcome:
        target, suspicious, score = strip_suspicious(request.target, self.suspicion, self.threshold)
        if suspicious and self.remove_items:  # the target is rejected: answered "No" without a query
            return Outcome(0.0, flagged=True, removed=(request.target,), aux_calls=1, score=score)
        p = recommender.answer(request.liked, request.disliked, target)
        return Outcome(p, flagged=suspicious, changed=((request.target, target),) if suspicious else (), aux_calls=1,
                       score=score)
