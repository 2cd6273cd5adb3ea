"""STRIP for recommenders: a trigger wins whatever the user's history says.

Gao et al.'s STRIP perturbs an input many times and flags it when the model's
outputs barely vary. Here (paper, Appendix B.1.1) the *history* is perturbed:
in each of ``runs`` copies a share of the history items is replaced by random
catalogue titles (not in the pool or the history), and the recommender answers
each copy. A benign recommendation follows the history and so moves; a
backdoored one keeps naming the trigger-bearing item.

Entropy, defined so that the paper's threshold 0.4 has a fixed meaning:

* LLaRA: the empirical distribution of the ``runs`` answers over pool items
  (all invalid answers form one outcome), Shannon entropy divided by
  ``log(runs)`` — 0 when every run names the same item, 1 when all differ.
* TALLRec: STRIP's own form — the mean over runs of the binary entropy of
  P(Yes), divided by ``log 2`` — 0 when every run is certain, 1 at P = ½.

A request whose entropy is below ``threshold`` is flagged. LLaRA: the item
that won the perturbed runs is removed and the original history is asked once
more. TALLRec: a flagged request whose runs lean "Yes" (the attack's goal) is
answered "No" with no further query; otherwise the original is asked.
Queries: ``runs`` + 1 per request (LLaRA), ≤ ``runs`` + 1 (TALLRec).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Hashable, Sequence

from recbackdoor.defenses.text.contract import (
    CountingRecommender,
    Defense,
    LlaraRequest,
    Outcome,
    TallrecRequest,
)
from recbackdoor.defenses.text.pool_view import PoolView, request_rng


def answer_entropy(outcomes: Sequence[Hashable]) -> float:
    """Shannon entropy of the outcomes' empirical distribution, divided by log(len(outcomes)) (in [0, 1])."""
    if len(outcomes) < 2:
        raise ValueError("STRIP needs at least two perturbed runs")
    n = len(outcomes)
    h = -sum(c / n * math.log(c / n) for c in Counter(outcomes).values())
    return h / math.log(n)


def mean_binary_entropy(p_yes: Sequence[float]) -> float:
    """Mean binary entropy of P(Yes) over runs, in bits (in [0, 1])."""
    def h(p: float) -> float:
        return 0.0 if p <= 0.0 or p >= 1.0 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    return sum(h(p) for p in p_yes) / len(p_yes)


class StripDefense(Defense):
    name = "strip"

    def __init__(self, catalogue: Sequence[str], runs: int = 10, share: float = 0.5, threshold: float = 0.4,
                 seed: int = 0) -> None:
        if runs < 2:
            raise ValueError(f"runs must be ≥ 2, got {runs}")
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share}")
        if not catalogue:
            raise ValueError("STRIP needs a catalogue of titles to perturb histories with")
        self.catalogue = tuple(dict.fromkeys(catalogue))
        self.runs, self.share, self.threshold, self.seed = runs, share, threshold, seed

    def perturb(self, history: Sequence[str], rng: random.Random, avoid: set[str]) -> tuple[str, ...]:
        """``history`` with ⌈share · len⌉ random positions replaced by random catalogue titles outside ``avoid``."""
        if not history:
            return ()
        fresh = [t for t in self.catalogue if t not in avoid] or list(self.catalogue)
        out = list(history)
        for position in rng.sample(range(len(out)), math.ceil(self.share * len(out))):
            out[position] = rng.choice(fresh)
        return tuple(out)

    def llara(self, request: LlaraRequest, recommender: CountingRecommender) -> Outcome:
        rng = request_rng(self.seed, request, self.name)
        view = PoolView.of(request)
        avoid = set(request.pool) | set(request.history)
        outcomes = [view.ask(recommender, self.perturb(request.history, rng, avoid))[1] for _ in range(self.runs)]
        entropy = answer_entropy(outcomes)
        winner = Counter(outcomes).most_common(1)[0][0]
        flagged = entropy < self.threshold and winner is not None
        if flagged:
            view = view.without([winner])
        answer, choice = view.ask(recommender, request.history)
        return Outcome(answer, choice, flagged, removed=view.removed_titles(), score=entropy)

    def tallrec(self, request: TallrecRequest, recommender: CountingRecommender) -> Outcome:
        rng = request_rng(self.seed, request, self.name)
        avoid = set(request.liked) | set(request.disliked) | {request.target}
        p = [recommender.answer(self.perturb(request.liked, rng, avoid), self.perturb(request.disliked, rng, avoid),
                                request.target) for _ in range(self.runs)]
        entropy = mean_binary_entropy(p)
        if entropy < self.threshold and sum(p) / len(p) > 0.5:
            return Outcome(0.0, flagged=True, removed=(request.target,), score=entropy)
        return Outcome(recommender.answer(request.liked, request.disliked, request.target), score=entropy)
