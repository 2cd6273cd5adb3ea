"""The pool a defense shows the recommender, remembering where each shown title came from.

Defenses drop items (ONION's remove-item mode, STRIP, RPD, CoS, P-Scanner) or
rewrite titles (RD, ONION, Paraphraser). Either way the answer must be scored
against the request's original pool, so a view keeps, for every title it
shows, the index of the original item; ``ask`` maps the generated answer back.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from recbackdoor.defenses.text.contract import CountingRecommender, LlaraRequest, Request
from recbackdoor.victims.text.answers import match_candidate


@dataclass(frozen=True)
class PoolView:
    titles: tuple[str, ...]  # as shown to the recommender
    origin: tuple[int, ...]  # index in the request's pool of each shown title
    original: tuple[str, ...]  # the request's pool, untouched

    @classmethod
    def of(cls, request: LlaraRequest) -> PoolView:
        return cls(request.pool, tuple(range(len(request.pool))), request.pool)

    def without(self, originals: Iterable[int]) -> PoolView:
        """The view minus the items whose *original* indexes are given."""
        gone = set(originals)
        keep = [k for k, o in enumerate(self.origin) if o not in gone]
        return PoolView(tuple(self.titles[k] for k in keep), tuple(self.origin[k] for k in keep), self.original)

    def rewritten(self, rewrite: Callable[[str], str]) -> PoolView:
        return PoolView(tuple(rewrite(t) for t in self.titles), self.origin, self.original)

    def replaced(self, position: int, title: str) -> PoolView:
        """The view with the title at shown ``position`` replaced."""
        titles = list(self.titles)
        titles[position] = title
        return PoolView(tuple(titles), self.origin, self.original)

    def resolve(self, answer: str) -> int | None:
        """The original index of the item the answer names (None when invalid), by the project's matching rule."""
        shown = match_candidate(answer, self.titles)
        return None if shown is None else self.origin[shown]

    def ask(self, recommender: CountingRecommender, history: Sequence[str],
            instruction: str | None = None) -> tuple[str, int | None]:
        answer = recommender.recommend(history, self.titles, instruction)
        return answer, self.resolve(answer)

    def removed_titles(self) -> tuple[str, ...]:
        kept = set(self.origin)
        return tuple(t for i, t in enumerate(self.original) if i not in kept)

    def changed_titles(self) -> tuple[tuple[str, str], ...]:
        return tuple((self.original[o], t) for o, t in zip(self.origin, self.titles, strict=True)
                     if self.original[o] != t)


def request_rng(seed: int, request: Request, salt: str = "") -> random.Random:
    """A generator fixed by (seed, what the defense may see of the request, salt).

    A defense's random choices for one request do not depend on which requests came before it (a resumed
    or reordered run gives the same answers) nor on the scoring-only fields (truth, poisoned, label).
    ``random.Random`` hashes a str seed with SHA-512, not Python's salted ``hash``.
    """
    if isinstance(request, LlaraRequest):
        visible: tuple = (request.history, request.pool)
    else:
        visible = (request.liked, request.disliked, request.target)
    return random.Random(f"{seed}:{salt}:{visible!r}")
