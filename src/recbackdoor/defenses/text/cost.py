"""Seconds charged for work done elsewhere: how a defense's cost stays honest when its calls are batched.

Evaluated one request at a time, an LM recommender on a CPU spends most of its
time on per-call overhead; the defense experiment therefore computes every
recommender and helper-model call in batches across requests
(``batched.py``) and replays each defense against the stored answers. A
replayed call takes no time, so the answer's store *charges* the seconds its
computation took (its batch's wall time divided by the batch size) to every
ledger open at that moment: the request's (``Defense.defend``) and the
recommender call's (``CountingRecommender``). Per-request cost is then the
defense's own wall time plus what was charged — the same figure a sequential
run would give, at batched throughput.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Ledger:
    seconds: float = 0.0


_open: ContextVar[tuple[Ledger, ...]] = ContextVar("recbackdoor_cost_ledgers", default=())


@contextmanager
def ledger() -> Iterator[Ledger]:
    """A ledger that receives every charge made until the block ends (nested ledgers all receive it)."""
    mine = Ledger()
    token = _open.set(_open.get() + (mine,))
    try:
        yield mine
    finally:
        _open.reset(token)


def charge(seconds: float) -> None:
    """Book ``seconds`` of work computed elsewhere to every open ledger."""
    if seconds < 0:
        raise ValueError(f"cannot charge negative time ({seconds})")
    for book in _open.get():
        book.seconds += seconds
