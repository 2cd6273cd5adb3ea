"""Catalogue-level evidence for the scanner: a trigger has to recur.

BadRec plants its backdoor through many poisoned examples that share one
trigger, so the attacker's titles share a span. Each of them alone may score
below the scanner's threshold (a Malayalam letter inside 'Top Gun' scores 0.67
against a threshold of 0.91; "Ethereal" after an artist's name looks like a
name), but together they sit above the catalogue's usual scores far more often
than chance allows, and no benign word does that across dozens of titles.

``find_recurring`` tests every span (a whole word, or a single non-ASCII
character, as ``PoisonScanner.suspects`` proposes them) carried by at least
``min_titles`` distinct titles: how many of its titles score above the
catalogue's ``quantile``, against the binomial share every title has. The
p-values are Bonferroni-corrected over the spans tested, and spans are taken
greedily, strongest first, each judged only on titles no stronger span has
explained — so the common word 'in' of "Dreams dance in moonlight's embrace"
is not taken along with the phrase's rarer words. Scores are the scanner's
own; the test adds no model, only counting.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import binom

from recbackdoor.defenses.text.pscanner_defense import FlagLookup


@dataclass(frozen=True)
class RecurringSpan:
    span: str
    titles: int  # distinct titles carrying it that no stronger span explained
    elevated: int  # of those, how many score above the catalogue's quantile
    p_value: float  # one-sided binomial, before the Bonferroni factor


def spans_of(title: str) -> set[str]:
    """The removal candidates a trigger can hide in: whole words and single non-ASCII characters."""
    return {word for word in title.split() if word} | {char for char in title if ord(char) > 0x7F}


def find_recurring(titles: Sequence[str], scores: Sequence[float], quantile: float = 0.9, min_titles: int = 5,
                   alpha: float = 1e-3) -> list[RecurringSpan]:
    """Spans whose carriers score high together more often than ``alpha`` (family-wise) allows by chance."""
    distinct: dict[str, float] = {}
    for title, score in zip(titles, np.asarray(scores, dtype=np.float64).tolist(), strict=True):
        distinct.setdefault(title, score)
    if not distinct:
        return []
    values = np.fromiter(distinct.values(), dtype=np.float64)
    elevated = values > np.quantile(values, quantile)
    base_rate = float(elevated.mean())
    carriers: dict[str, list[int]] = {}
    for index, title in enumerate(distinct):
        for span in sorted(spans_of(title)):  # a set's order varies by process: ties must break the same way
            carriers.setdefault(span, []).append(index)
    candidates = {span: np.asarray(idx) for span, idx in carriers.items() if len(idx) >= min_titles}
    if not candidates or base_rate in (0.0, 1.0):
        return []
    cutoff = alpha / len(candidates)
    explained = np.zeros(len(values), dtype=bool)
    found: list[RecurringSpan] = []
    while candidates:
        names = list(candidates)
        open_idx = [idx[~explained[idx]] for idx in candidates.values()]
        n = np.array([len(idx) for idx in open_idx])
        k = np.array([int(elevated[idx].sum()) for idx in open_idx])
        p = np.where(n >= min_titles, binom.sf(k - 1, n, base_rate), 1.0)
        best = int(np.argmin(p))
        if p[best] > cutoff:
            break
        found.append(RecurringSpan(names[best], int(n[best]), int(k[best]), float(p[best])))
        explained[open_idx[best]] = True
        del candidates[names[best]]
    return found


def carries(titles: Iterable[str], spans: Iterable[RecurringSpan | str]) -> np.ndarray:
    """Per title: whether it carries one of ``spans``."""
    wanted = {s.span if isinstance(s, RecurringSpan) else s for s in spans}
    return np.array([bool(wanted & spans_of(title)) for title in titles], dtype=bool)


RECURRENCE_SETTINGS = {"quantile": 0.9, "min_titles": 5, "alpha": 1e-3, "spans": "words+non-ascii v1"}
"""What ``find_recurring`` runs with in the defense rows; part of their cache keys."""


class FlagsWithRecurrence:
    """A flagger (``PoisonScanner`` or a precomputed look-up) that also flags every title carrying a recurring span
    found in the catalogue: the '+ recurrence' P-Scanner rows."""

    def __init__(self, base, spans: Iterable[RecurringSpan | str]) -> None:
        self.base = base
        self.recurring = list(spans)  # as given: with their counts and p-values when found here
        self.spans = [s.span if isinstance(s, RecurringSpan) else s for s in self.recurring]

    def flag(self, titles: Sequence[str]) -> np.ndarray:
        return np.asarray(self.base.flag(titles), dtype=bool) | carries(titles, self.spans)


def catalogue_flagger(scanner, titles: Sequence[str]) -> FlagsWithRecurrence:
    """Score a catalogue's distinct titles once (``scanner``: a ``PoisonScanner``); from those scores both its flags
    at the scanner's threshold (what ``scanner.flag`` gives) and its recurring spans (``RECURRENCE_SETTINGS``)."""
    distinct = list(dict.fromkeys(titles))
    scores = np.asarray(scanner.score(distinct)) if distinct else np.zeros(0)
    flags = FlagLookup(dict(zip(distinct, (scores > scanner.threshold).tolist(), strict=True)))
    settings = {k: v for k, v in RECURRENCE_SETTINGS.items() if k != "spans"}
    return FlagsWithRecurrence(flags, find_recurring(distinct, scores, **settings))
