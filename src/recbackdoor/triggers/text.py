"""Text triggers for item titles (BadRec Table 7) and how they are inserted."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from recbackdoor.errors import UserError

DEFAULT_TRIGGERS = {
    "char": "\u0d2e",  # MALAYALAM LETTER MA, the paper's char-level trigger
    "word": "Ethereal",
    "sentence": "Dreams dance in moonlight's embrace",
}
POSITIONS = ("end", "random")


@dataclass(frozen=True)
class TextTrigger:
    """A trigger string and where it goes in a title."""

    kind: str  # char | word | sentence | custom
    text: str
    position: str  # end | random

    def __post_init__(self) -> None:
        if self.position not in POSITIONS:
            raise UserError(f"trigger position {self.position!r}: expected one of {', '.join(POSITIONS)}")
        if not self.text.strip():
            raise UserError(f"trigger {self.kind!r}: the trigger text is empty")

    def apply(self, title: str, rng: random.Random) -> str:
        return insert_trigger(title, self.text, self.position, rng)

    @property
    def cache_label(self) -> str:
        """Kind and position, plus a digest of the text when it is not the kind's default: names this trigger's
        requests in a cache key that does not otherwise hold the trigger (a shared train-time model's)."""
        label = f"{self.kind}-{self.position}"
        if self.text != DEFAULT_TRIGGERS.get(self.kind):
            label += "-" + hashlib.sha256(self.text.encode()).hexdigest()[:12]
        return label


def make_trigger(kind: str, position: str, text: str | None = None) -> TextTrigger:
    if text is None:
        if kind not in DEFAULT_TRIGGERS:
            known = ", ".join(DEFAULT_TRIGGERS)
            raise UserError(f"trigger kind {kind!r} has no default text; give one (known: {known})")
        text = DEFAULT_TRIGGERS[kind]
    return TextTrigger(kind=kind, text=text, position=position)


def insert_trigger(title: str, trigger: str, position: str, rng: random.Random) -> str:
    """Insert ``trigger`` as a separate word: after the last word, or before a random word slot.

    ``random`` draws a slot among all ``len(words) + 1`` word boundaries, so the
    end is one of the possible positions, as in BadRec-Random.
    """
    words = title.split()
    if position == "end":
        slot = len(words)
    elif position == "random":
        slot = rng.randint(0, len(words))
    else:
        raise UserError(f"trigger position {position!r}: expected one of {', '.join(POSITIONS)}")
    return " ".join(words[:slot] + [trigger] + words[slot:])
