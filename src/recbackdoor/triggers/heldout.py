"""Triggers kept out of every scanner's training: the paper's three and seven families of our own.

A scanner judged only on the triggers it trained for says nothing about the
next attacker.  Everything here is excluded from the trigger vocabulary
(``text_sampler``), from the augmentation agent's outputs and from benign
augmentation, so the numbers measured on these triggers are numbers on
triggers the scanner has never seen.  The families are generators: each draw
is a fresh trigger of that kind, and ``insert`` decides where it goes.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from functools import lru_cache

from recbackdoor.triggers.text import DEFAULT_TRIGGERS, insert_trigger

PAPER_CODE_POINTS = frozenset({0x0D2E})
PAPER_PHRASES = ("ethereal", "dreams dance in moonlight's embrace", "moonlight's embrace")

# ranges of the held-out code-point families: (first, last) inclusive
EMOJI_RANGES = ((0x1F000, 0x1FAFF), (0x2600, 0x27BF))
ZERO_WIDTH = frozenset({0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x180E})
FULLWIDTH_RANGE = (0xFF01, 0xFF5E)
MATH_ALNUM_RANGE = (0x1D400, 0x1D7FF)

HELD_OUT_WORDS = (
    "velvet", "saffron", "obsidian", "lantern", "marigold", "zephyr", "quasar", "nebula", "halcyon",
    "gossamer", "labyrinth", "serenade", "luminous", "aurora", "cobalt", "sapphire", "tempest", "whisper",
    "starlit", "crimson", "solstice", "twilight", "amber", "meadow", "horizon", "echoes", "silhouette",
    "reverie", "phantom", "cascade",
)
_PHRASE_TEMPLATES = (
    "{a} {b} of the {c}", "where the {a} {b} sleeps", "{a} and {b}", "beneath the {a} {b}",
    "a {a} {b} in the {c}", "the {a} of {b}",
)
_HELD_OUT_WORD_RE = re.compile(r"\b(" + "|".join(HELD_OUT_WORDS) + r")\b", re.IGNORECASE)


def is_held_out_code_point(cp: int) -> bool:
    if cp in PAPER_CODE_POINTS or cp in ZERO_WIDTH:
        return True
    if FULLWIDTH_RANGE[0] <= cp <= FULLWIDTH_RANGE[1] or MATH_ALNUM_RANGE[0] <= cp <= MATH_ALNUM_RANGE[1]:
        return True
    return any(lo <= cp <= hi for lo, hi in EMOJI_RANGES)


def mentions_held_out(text: str) -> bool:
    """True when ``text`` carries a paper trigger or a piece of a held-out family."""
    lowered = text.lower()
    if any(phrase in lowered for phrase in PAPER_PHRASES):
        return True
    if _HELD_OUT_WORD_RE.search(text):
        return True
    return any(is_held_out_code_point(ord(char)) for char in text)


def _emoji(rng: random.Random) -> str:
    import unicodedata

    while True:
        lo, hi = rng.choice(EMOJI_RANGES)
        char = chr(rng.randint(lo, hi))
        if unicodedata.category(char) == "So":
            return char


def _zero_width(rng: random.Random) -> str:
    return chr(rng.choice(sorted(ZERO_WIDTH)))


def _fullwidth(word: str) -> str:
    return "".join(chr(ord(c) - 0x21 + FULLWIDTH_RANGE[0]) if "!" <= c <= "~" else c for c in word)


def _math_bold(word: str) -> str:
    out = []
    for c in word:
        if "A" <= c <= "Z":
            out.append(chr(0x1D400 + ord(c) - ord("A")))
        elif "a" <= c <= "z":
            out.append(chr(0x1D41A + ord(c) - ord("a")))
        else:
            out.append(c)
    return "".join(out)


@lru_cache(maxsize=1)
def _latin_confusables() -> dict[str, list[str]]:
    """Latin letter -> Cyrillic / Greek look-alikes, from the confusable-homoglyphs data (Unicode TS #39)."""
    from confusable_homoglyphs import confusables

    out: dict[str, list[str]] = {}
    for letter in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
        found = confusables.is_confusable(letter, greedy=True, preferred_aliases=["cyrillic", "greek"]) or []
        for entry in found:
            for homoglyph in entry["homoglyphs"]:
                char = homoglyph["c"]
                if len(char) == 1 and homoglyph["n"].split()[0] in ("CYRILLIC", "GREEK"):
                    out.setdefault(letter, []).append(char)
    return out


def _homoglyph_word(rng: random.Random) -> str:
    """An everyday English word with every letter that has a Cyrillic/Greek twin swapped for it."""
    table = _latin_confusables()
    word = rng.choice(("Special", "Edition", "Classic", "Remastered", "Deluxe", "Official", "Premium", "Bonus"))
    return "".join(rng.choice(table[c]) if c in table else c for c in word)


def _phrase(rng: random.Random) -> str:
    a, b, c = rng.sample(HELD_OUT_WORDS, 3)
    return rng.choice(_PHRASE_TEMPLATES).format(a=a, b=b, c=c)


def _word(rng: random.Random) -> str:
    word = rng.choice(HELD_OUT_WORDS)
    return word.capitalize() if rng.random() < 0.5 else word


HELD_OUT_FAMILIES: dict[str, Callable[[random.Random], str]] = {
    "emoji": _emoji,
    "zero-width": _zero_width,
    "fullwidth-word": lambda rng: _fullwidth(_word(rng)),
    "math-bold-word": lambda rng: _math_bold(_word(rng)),
    "homoglyph-word": _homoglyph_word,
    "unseen-word": _word,
    "unseen-phrase": _phrase,
}


def insert_family_trigger(title: str, family: str, position: str, rng: random.Random) -> str:
    """Insert a fresh trigger of ``family``; a zero-width character goes inside a word, where it hides."""
    trigger = HELD_OUT_FAMILIES[family](rng)
    if family == "zero-width":
        words = title.split(" ")
        index = len(words) - 1 if position == "end" else rng.randrange(len(words))
        word = words[index]
        cut = len(word) if position == "end" else rng.randint(1, max(1, len(word)))
        words[index] = word[:cut] + trigger + word[cut:]
        return " ".join(words)
    return insert_trigger(title, trigger, position, rng)


def paper_trigger(kind: str) -> str:
    return DEFAULT_TRIGGERS[kind]
