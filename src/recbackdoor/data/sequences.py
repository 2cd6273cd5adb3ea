"""Per-user interaction sequences with item titles, the input of every text experiment."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Interaction:
    item: int
    rating: float | None = None  # explicit rating (MovieLens) or weight where the dataset has one


@dataclass(frozen=True)
class SequenceData:
    """A dataset reduced to what text recommenders read: ordered histories and titles."""

    name: str
    titles: dict[int, str]
    sequences: dict[int, tuple[Interaction, ...]]
    order: str  # how each sequence is ordered (timestamps or file order), reported with results
    item_noun: str  # "movie", "artist", "game": used in prompts
    checksums: dict[str, str] = field(default_factory=dict)

    @property
    def items(self) -> list[int]:
        return sorted(self.titles)

    def popularity(self) -> Counter[int]:
        return Counter(x.item for seq in self.sequences.values() for x in seq)

    def stats(self) -> dict[str, int]:
        return {
            "users": len(self.sequences),
            "items": len(self.titles),
            "interactions": sum(len(s) for s in self.sequences.values()),
        }


def filter_counts(sequences: dict[int, list[Interaction]], min_user: int, min_item: int,
                  rounds: int = 10) -> dict[int, list[Interaction]]:
    """Iterative k-core-style filter so every user and item has enough interactions."""
    for _ in range(rounds):
        counts = Counter(x.item for seq in sequences.values() for x in seq)
        new = {u: [x for x in seq if counts[x.item] >= min_item] for u, seq in sequences.items()}
        new = {u: seq for u, seq in new.items() if len(seq) >= min_user}
        if new == sequences:
            break
        sequences = new
    return sequences
