"""Benign titles for training a scanner, made to look like any catalogue (the split lives in ``scanner_data``).

Netflix titles are English movie titles with a year; the catalogues a scanner
guards are artist names, game names, titles in Cyrillic, Japanese or with
accents.  A scanner that saw only Netflix would learn "non-ASCII or no year =
poisoned" and flag 'Sigur Rós' and '宇多田ヒカル'.  So benign titles are also
shown transliterated whole or word by word into other scripts (ICU
transliterators), with accents, without the year, in other cases and house
styles ('3DMark', 'EU version') — all changes that *replace* or restyle
what is there, while a trigger *adds* something.  No
test catalogue (MovieLens, LastFM, Steam) is read here.

Version 2 (``StudentConfig``'s default; the shipped default scanner was trained with version 1 and is kept, see
docs/notes/pscanner.md) no longer transliterates a span with fewer than two letters:
'Cyborg 2' -> 'Cyborg ௨' is a lone foreign code point standing among Latin words, which is exactly what a
character trigger looks like, so version 1 taught "benign" for 1.6 % of such titles against the trigger's
evidence. Version 1 is kept because the committed LLM P-Scanner was trained with it.
"""

from __future__ import annotations

import random
from functools import lru_cache

# ICU transliterators from Latin into the scripts real catalogues use
SCRIPTS = ("Cyrillic", "Greek", "Katakana", "Hiragana", "Hangul", "Arabic", "Hebrew", "Devanagari", "Thai",
           "Georgian", "Armenian", "Bengali", "Tamil", "Gujarati", "Kannada")
_ACCENTS = {"a": "áàâäãå", "e": "éèêë", "i": "íìîï", "o": "óòôöõø", "u": "úùûü", "n": "ñ", "c": "ç", "y": "ÿý",
            "s": "š", "z": "ž"}


@lru_cache(maxsize=32)
def _transliterator(script: str):
    import icu

    return icu.Transliterator.createInstance(f"Latin-{script}")


def transliterate(text: str, script: str) -> str:
    return _transliterator(script).transliterate(text)


def _drop_year(title: str) -> str:
    if title.endswith(")") and "(" in title:
        head, _, year = title.rpartition("(")
        if year[:-1].isdigit():
            return head.rstrip()
    return title


def _accent(word: str, rng: random.Random) -> str:
    chars = list(word)
    spots = [i for i, c in enumerate(chars) if c.lower() in _ACCENTS]
    for i in rng.sample(spots, min(len(spots), rng.randint(1, 2))):
        accented = rng.choice(_ACCENTS[chars[i].lower()])
        chars[i] = accented.upper() if chars[i].isupper() else accented
    return "".join(chars)


def _restyle(words: list[str], rng: random.Random) -> list[str]:
    """Catalogue house styles: lower-case or upper-case words, two words run together, ':' written as ' -'."""
    out = list(words)
    roll = rng.random()
    if roll < 0.35:
        out = [w.lower() if rng.random() < 0.4 else w for w in out]
    elif roll < 0.55 and out:
        i = rng.randrange(len(out))
        out[i] = out[i].upper()
    elif roll < 0.75 and len(out) > 2:
        i = rng.randrange(len(out) - 1)
        out[i:i + 2] = [out[i] + out[i + 1][:1].upper() + out[i + 1][1:]]
    else:
        out = [w[:-1] + " -" if w.endswith(":") and len(w) > 1 else w for w in out]
    return out


def _transliterated(text: str, rng: random.Random, version: int) -> str:
    """``text`` in a random script; version 2 leaves a span of fewer than two letters as it is. The script is drawn
    either way, so version 1's draws (and titles) stay what they were."""
    script = rng.choice(SCRIPTS)
    if version >= 2 and sum(c.isalpha() for c in text) < 2:
        return text
    return transliterate(text, script)


def augment_benign(title: str, rng: random.Random, version: int = 1) -> str:
    """A benign variant of ``title``: the same words, shown the way another catalogue might write them.

    ``version`` 2 leaves a span of fewer than two letters untransliterated (see the module docstring)."""
    if rng.random() < 0.5:
        title = _drop_year(title)
    if rng.random() < 0.15:
        title = " ".join(_restyle(title.split(" "), rng))
    roll = rng.random()
    words = title.split(" ")
    if roll < 0.12:
        title = _transliterated(title, rng, version)
    elif roll < 0.20 and len(words) > 1:
        i = rng.randrange(len(words))
        words[i] = _transliterated(words[i], rng, version)
        title = " ".join(words)
    elif roll < 0.30:
        title = " ".join(_accent(w, rng) if rng.random() < 0.4 else w for w in words)
    elif roll < 0.36:
        title = title.lower() if rng.random() < 0.6 else title.upper()
    return title.strip() or title
