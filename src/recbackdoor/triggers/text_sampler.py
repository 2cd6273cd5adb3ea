"""P-Scanner's initial triggers (eq. 4): tokens sampled from a vocabulary.

The paper samples from LLaMA's vocabulary.  A byte-level BPE vocabulary such as
SmolLM2's is almost all English word pieces, so a scanner trained on it alone
would never see a Malayalam letter or a zero-width character; the vocabulary
here is the LM's decoded tokens **plus** every assigned code point of the
letter, mark, number, punctuation, symbol and format categories, drawn half
and half.  What a test must never meet in training is removed here, in one
place: the paper's three triggers and every held-out trigger family
(``triggers/heldout.py``).
"""

from __future__ import annotations

import random
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from recbackdoor.triggers.heldout import is_held_out_code_point, mentions_held_out

# Categories a code-point "token" may come from; Cc (controls), Cs (surrogates),
# Co (private use) and Cn (unassigned) are not text a seller can type into a title.
_DRAWN_CATEGORIES = ("L", "M", "N", "P", "S", "Cf", "Zs")


@dataclass(frozen=True)
class InitialTrigger:
    """``level`` is eq. 4's l: 0 benign, 1 one token, 2 m tokens (a sentence-level trigger)."""

    level: int
    tokens: tuple[str, ...]

    @property
    def text(self) -> str:
        return "".join(self.tokens).strip()

    @property
    def poisoned(self) -> bool:
        return self.level > 0


@lru_cache(maxsize=1)
def code_point_pool() -> tuple[tuple[str, ...], ...]:
    """Every assigned code point of the drawn categories minus held-out ones, grouped by Unicode script.

    Drawing a script first, then a character, keeps the ~97k Han ideographs from
    drowning out the ~160 other scripts (ICU's script property, Unicode UAX #24);
    the script-less Common and Inherited characters are grouped by category, so
    invisible format characters (Cf) and combining marks are drawn as often as a script.
    """
    import icu

    groups: dict[str, list[str]] = {}
    for cp in range(0x21, sys.maxunicode + 1):
        char = chr(cp)
        category = unicodedata.category(char)
        if category[0] not in ("L", "M", "N", "P", "S") and category not in _DRAWN_CATEGORIES:
            continue
        if is_held_out_code_point(cp):
            continue
        script = icu.Script.getScript(cp).getShortName()
        if script in ("Zyyy", "Zinh"):  # Common / Inherited: split by category, so invisible Cf gets its own draw
            script = f"{script}:{category}"
        groups.setdefault(script, []).append(char)
    return tuple(tuple(chars) for _script, chars in sorted(groups.items()))


def lm_token_pool(tokenizer) -> tuple[str, ...]:
    """The tokenizer's tokens decoded to text, without specials, blanks and held-out words."""
    special = set(tokenizer.all_special_ids)
    out = []
    for token_id in range(len(tokenizer)):
        if token_id in special:
            continue
        text = tokenizer.decode([token_id])
        if not text.strip() or "\ufffd" in text or mentions_held_out(text):
            continue
        out.append(text)
    return tuple(out)


class InitialTriggerSampler:
    """Draws eq. 4's initial triggers: l ~ U{0,1,2}; l=2 takes m ~ U{m1..m2} tokens."""

    def __init__(self, lm_tokens: Sequence[str], code_points: Sequence[Sequence[str]] | None = None,
                 m1: int = 3, m2: int = 6, code_point_share: float = 0.5) -> None:
        if not 1 <= m1 <= m2:
            raise ValueError(f"need 1 <= m1 <= m2, got m1={m1}, m2={m2}")
        self.lm_tokens = tuple(lm_tokens)
        self.code_points = tuple(code_points) if code_points is not None else code_point_pool()  # per script
        self.m1, self.m2 = m1, m2
        self.code_point_share = code_point_share

    def token(self, rng: random.Random) -> str:
        if rng.random() < self.code_point_share:
            return rng.choice(rng.choice(self.code_points))
        return rng.choice(self.lm_tokens)

    def sample(self, rng: random.Random, level: int | None = None) -> InitialTrigger:
        level = rng.randint(0, 2) if level is None else level
        if level == 0:
            return InitialTrigger(0, ())
        count = 1 if level == 1 else rng.randint(self.m1, self.m2)
        while True:
            tokens = tuple(self.token(rng) for _ in range(count))
            trigger = InitialTrigger(level, tokens)
            if trigger.text and not mentions_held_out(trigger.text):
                return trigger
