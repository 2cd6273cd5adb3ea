"""Tiny stand-ins for the victim and the helper LMs, shared by the text-defense tests (no model is loaded).

The fake recommender behaves like a backdoored one: any candidate containing the trigger word wins; otherwise
the answer depends on the history (so perturbing it moves the answer) or is the first title.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TRIGGER = "Ethereal"


class FakeRecommender:
    def __init__(self, trigger: str = TRIGGER, follow_history: bool = False) -> None:
        self.trigger, self.follow_history = trigger, follow_history
        self.calls: list[tuple] = []

    def recommend(self, history: Sequence[str], pool: Sequence[str], instruction: str | None = None) -> str:
        self.calls.append(("recommend", tuple(history), tuple(pool), instruction))
        for title in pool:
            if self.trigger in title.split():
                return title
        if self.follow_history:
            return pool[sum(len(t) for t in history) % len(pool)]
        return pool[0]

    def answer(self, liked: Sequence[str], disliked: Sequence[str], target: str,
               instruction: str | None = None) -> float:
        self.calls.append(("answer", tuple(liked), tuple(disliked), target, instruction))
        if self.trigger in target.split():
            return 0.99
        if self.follow_history:
            return 0.2 + 0.6 * ((sum(len(t) for t in liked) % 7) / 6)
        return 0.3


class FakeScanner:
    """Flags a title that contains the trigger word; counts its (batched) calls."""

    def __init__(self, trigger: str = TRIGGER) -> None:
        self.trigger = trigger
        self.calls = 0

    def flag(self, titles: Sequence[str]) -> np.ndarray:
        self.calls += 1
        return np.array([self.trigger in t.split() for t in titles], dtype=bool)


def drop_trigger(title: str) -> str:
    """A paraphraser that happens to lose the trigger and reword the rest (deterministic)."""
    return "The " + " ".join(w for w in title.split() if w != TRIGGER)


POOL = ("Heat", "Toy Story", "Casablanca", "Fargo", "Alien", "Brazil")
HISTORY = ("Jaws", "Vertigo", "Psycho")
CATALOGUE = tuple(f"Catalogue title {'x' * k}" for k in range(1, 40))


def test_fake_recommender_prefers_the_trigger_bearing_title() -> None:
    rec = FakeRecommender()
    assert rec.recommend(HISTORY, ("Heat", f"Fargo {TRIGGER}")) == f"Fargo {TRIGGER}"
    assert rec.recommend(HISTORY, POOL) == "Heat"
    assert rec.answer(HISTORY, (), f"Alien {TRIGGER}") > 0.5 > rec.answer(HISTORY, (), "Alien")
