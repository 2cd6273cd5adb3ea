"""Run a defense over many requests with every model call computed in batches.

Defenses are written one request at a time, as a user would call them, and
their control flow depends on answers (STRIP stops when its runs agree, RPD
asks again after a paraphrase moved the answer). To batch without rewriting
them, the runner *replays* each request: a call whose answer is not stored
yet records its key and raises :class:`Pending`; once every request has
stopped at its first unknown call, each store computes its recorded keys in
one batched call, and the requests are replayed. A request needs as many
passes as it has dependent calls (STRIP: runs + 2), each pass batched across
all requests. Defenses must be deterministic given the request (they are:
``pool_view.request_rng``), so a replay takes the same path.

Every stored answer carries the seconds its batch spent on it, charged on
each use (``cost.py``), so queries and seconds per request come out as a
sequential run would report them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from typing import Generic, TypeVar

from tqdm.auto import tqdm

from recbackdoor.defenses.text.contract import Defense, DefenseResult, Request
from recbackdoor.defenses.text.cost import charge

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Pending(BaseException):
    """Raised by a call whose answer is not computed yet (a BaseException, so no ``except Exception`` in a
    defense can swallow it)."""


class BatchedCalls(Generic[K, V]):
    """One expensive function, memoised by key and computed in batches by :func:`run_batched`."""

    def __init__(self, name: str, compute: Callable[[list[K]], Sequence[V]]) -> None:
        self.name, self.compute = name, compute
        self.values: dict[K, V] = {}
        self.seconds: dict[K, float] = {}
        self.pending: dict[K, None] = {}  # insertion-ordered set: batches are reproducible
        self.calls = 0

    def __call__(self, key: K) -> V:
        if key in self.values:
            charge(self.seconds[key])
            return self.values[key]
        self.pending[key] = None
        raise Pending(self.name)

    def flush(self) -> int:
        """Compute every recorded key in one call; the number computed."""
        keys = list(self.pending)
        self.pending.clear()
        if not keys:
            return 0
        started = time.perf_counter()
        values = list(self.compute(keys))
        if len(values) != len(keys):
            raise RuntimeError(f"{self.name}: {len(keys)} keys computed into {len(values)} values")
        each = (time.perf_counter() - started) / len(keys)
        self.values.update(zip(keys, values, strict=True))
        self.seconds.update((k, each) for k in keys)
        self.calls += len(keys)
        return len(keys)


class BatchedRecommender:
    """The victim behind the defenses' ``Recommender`` protocol, its calls batched.

    ``answer_batch`` takes (liked, disliked, target, instruction) tuples and returns P(Yes); ``recommend_batch``
    takes (history, pool, instruction) tuples and returns the generated texts. A mode the victim lacks is None.
    """

    def __init__(self, answer_batch: Callable[[list[tuple]], Sequence[float]] | None = None,
                 recommend_batch: Callable[[list[tuple]], Sequence[str]] | None = None) -> None:
        self.answers = BatchedCalls("recommender (TALLRec)", answer_batch) if answer_batch else None
        self.recommendations = BatchedCalls("recommender (LLaRA)", recommend_batch) if recommend_batch else None

    def stores(self) -> list[BatchedCalls]:
        return [s for s in (self.answers, self.recommendations) if s is not None]

    def answer(self, liked: Sequence[str], disliked: Sequence[str], target: str,
               instruction: str | None = None) -> float:
        if self.answers is None:
            raise TypeError("this recommender answers LLaRA requests only")
        return float(self.answers((tuple(liked), tuple(disliked), target, instruction)))

    def recommend(self, history: Sequence[str], pool: Sequence[str], instruction: str | None = None) -> str:
        if self.recommendations is None:
            raise TypeError("this recommender answers TALLRec requests only")
        return self.recommendations((tuple(history), tuple(pool), instruction))


def run_batched(defense: Defense | None, requests: Sequence[Request], recommender: BatchedRecommender,
                helpers: Sequence[BatchedCalls] = (), desc: str = "defend") -> list[DefenseResult]:
    """Every request's ``DefenseResult``; ``defense=None`` asks the recommender undefended (one query each).

    ``helpers`` are the other batched models the defense calls (paraphraser, word suspicion, scrutineer).
    """
    from recbackdoor.defenses.text.undefended import Undefended

    chosen = defense if defense is not None else Undefended()
    stores = recommender.stores() + list(helpers)
    results: list[DefenseResult | None] = [None] * len(requests)
    todo = list(range(len(requests)))
    with tqdm(total=len(requests), desc=desc, leave=False, disable=len(requests) < 32) as bar:
        while todo:
            for i in todo:
                try:
                    results[i] = chosen.defend(requests[i], recommender)
                except Pending:
                    continue
                bar.update(1)
            todo = [i for i in todo if results[i] is None]
            if todo and sum(store.flush() for store in stores) == 0:
                raise RuntimeError(f"{desc}: requests wait on a call no store recorded")
    return results  # type: ignore[return-value]
