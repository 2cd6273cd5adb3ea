"""What Unicode itself says about a title: scripts, categories and ICU's spoof checks (UTS #39).

None of this is a verdict — 'KoЯn' mixes Latin and Cyrillic, '宇多田ヒカル'
mixes three Japanese scripts, 'Sigur Rós' has an accent, and all are real
names — so these are features a trained model weighs, never rules.  Every
code point is kept as it is: nothing is normalised away before it is looked at.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import numpy as np

CODE_POINT_BUCKETS = 8192
_DIRECT = 1024  # code points below this (ASCII, Latin-1, Latin Extended, IPA, Greek...) keep their own id
CATEGORIES = ("Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf",
              "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co", "Cn")
_CATEGORY_ID = {c: i for i, c in enumerate(CATEGORIES)}
_YEAR = re.compile(r"\(\d{4}\)$")
# ICU USpoofChecks bits, in the order of the feature vector
_SPOOF_BITS = (1, 2, 4, 16, 32, 128, 256)
N_EVIDENCE = 16 + len(_SPOOF_BITS)


@lru_cache(maxsize=1)
def _icu():
    import icu

    return icu


@lru_cache(maxsize=1 << 16)
def char_info(char: str) -> tuple[int, int, int]:
    """(code-point bucket, ICU script code, general category id) of one character."""
    cp = ord(char)
    bucket = cp if cp < _DIRECT else _DIRECT + (cp * 2654435761) % (CODE_POINT_BUCKETS - _DIRECT)
    script = _icu().Script.getScript(cp).getScriptCode()
    return bucket, min(script, 255), _CATEGORY_ID.get(unicodedata.category(char), 0)


@lru_cache(maxsize=1)
def _spoof_checker():
    icu = _icu()
    checker = icu.SpoofChecker()
    checker.setChecks(icu.USpoofChecks.ALL_CHECKS)
    return checker


def neutral_scripts() -> tuple[int, int]:
    """ICU's Common and Inherited script codes: characters (digits, punctuation, combining marks) shared by scripts."""
    icu = _icu()
    return (icu.UScriptCode.COMMON, icu.UScriptCode.INHERITED)


def title_evidence(title: str) -> np.ndarray:
    """A fixed-length vector of script, category and spoof-check evidence for one title."""
    neutral = neutral_scripts()
    infos = [char_info(c) for c in title]
    scripts = [s for _, s, _ in infos if s not in neutral]
    counts: dict[int, int] = {}
    for s in scripts:
        counts[s] = counts.get(s, 0) + 1
    majority = max(counts.values()) if counts else 0
    categories = [CATEGORIES[k] for _, _, k in infos]
    words = title.split()
    mixed_words = 0
    lone_foreign = 0
    for word in words:
        word_scripts = {char_info(c)[1] for c in word} - set(neutral)
        mixed_words += len(word_scripts) > 1
        if len(word) == 1 and ord(word) > 0x7F:
            lone_foreign += 1
    spoof = _spoof_checker().check(title) if title else 0
    n = max(len(title), 1)
    features = [
        len(title) / 64, len(words) / 16, sum(ord(c) > 0x7F for c in title) / n, len(counts) / 4,
        majority / max(len(scripts), 1), (len(scripts) - majority) / 4, categories.count("Cf") / 4,
        categories.count("So") / 4, (categories.count("Mn") + categories.count("Me")) / 8,
        float(mixed_words > 0), mixed_words / 4, float(bool(_YEAR.search(title))), lone_foreign / 2,
        sum(c[0] == "L" for c in categories) / n, sum(c[0] == "P" for c in categories) / n,
        float(len(counts) == 1 and majority > 0 and len(scripts) == majority),
    ]
    features += [float(bool(spoof & bit)) for bit in _SPOOF_BITS]
    return np.asarray(features, dtype=np.float32)


def char_arrays(title: str, max_chars: int) -> tuple[list[int], list[int], list[int]]:
    infos = [char_info(c) for c in title[:max_chars]]
    return [b for b, _, _ in infos], [s for _, s, _ in infos], [k for _, _, k in infos]
