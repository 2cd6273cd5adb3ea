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

A span can recur among high scores without causing them: Steam's franchise
words ('Borderlands', 'Modern') and separators ('-') ride along with titles the
scanner scores high for other reasons (editions, DLC names). So a span found
is taken only when taking it out of its high-scoring carriers brings at least
half of them back to the catalogue's usual range (``removal_check``): a
trigger is what makes its titles score high, a franchise word is not.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Sequence
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


class SpanIndex:
    """The distinct titles' scores and, per span, which of them carry it, built one title at a time.

    Why incremental: ``recbackdoor scan --recurrence`` streams a catalogue of millions of rows, so the index keeps
    a hash per distinct title (not the title), a float64 score each and, per span, a uint32 array of carriers:
    memory grows with the catalogue's vocabulary and its distinct titles, about 70 bytes per title, never with a
    copy of the rows. Titles are taken in first-seen order and each title's spans in sorted order, so the spans'
    order, and with it how ties between equally strong spans break, is the same in every process.
    """

    def __init__(self) -> None:
        self._seen: dict[int, None] = {}
        self._scores = array("d")
        self._carriers: dict[str, array] = {}
        self.cutoff = float("inf")  # the catalogue's ``quantile`` score, set by ``recurring``

    def add(self, title: str, score: float) -> None:
        key = hash(title)
        if key in self._seen:
            return
        self._seen[key] = None
        index = len(self._scores)
        self._scores.append(float(score))
        for span in sorted(spans_of(title)):  # a set's order varies by process: ties must break the same way
            self._carriers.setdefault(span, array("I")).append(index)

    def __len__(self) -> int:
        return len(self._scores)

    @property
    def scores(self) -> np.ndarray:
        """The distinct titles' scores, in first-seen order."""
        return np.frombuffer(self._scores, dtype=np.float64)

    @property
    def carriers(self) -> dict[str, array]:
        """Per span, the indexes (into ``scores``) of the titles that carry it."""
        return self._carriers

    def quantile_of(self, quantile: float) -> float:
        """The score at ``quantile`` of the distinct titles (what ``recurring`` calls elevated is above it)."""
        return float(np.quantile(self.scores, quantile)) if self._scores else float("inf")

    def recurring(self, quantile: float = 0.9, min_titles: int = 5, alpha: float = 1e-3,
                  confirm: Callable[[RecurringSpan, float], bool] | None = None) -> list[RecurringSpan]:
        """Spans whose carriers score high together more often than ``alpha`` (family-wise) allows by chance.

        ``confirm(span, cutoff)``, when given, must also accept a span before it is taken; a rejected span is
        dropped without explaining its titles, so a span that shares them (the real cause) can still be taken.
        """
        if not self._scores:
            return []
        self.cutoff = self.quantile_of(quantile)
        return greedy_spans(self._carriers, self.scores > self.cutoff, min_titles, alpha,
                            None if confirm is None else (lambda span: confirm(span, self.cutoff)))


def greedy_spans(carriers: dict[str, Sequence[int]], elevated: np.ndarray, min_titles: int = 5, alpha: float = 1e-3,
                 confirm: Callable[[RecurringSpan], bool] | None = None) -> list[RecurringSpan]:
    """The spans whose carriers (title indexes) are ``elevated`` more often than chance, strongest first: one-sided
    binomial against the share of elevated titles, Bonferroni over the spans carried by ``min_titles`` or more,
    family-wise ``alpha``; each span judged only on titles no stronger span explained. Shared by the score test
    here and the label test (``label_test.py``)."""
    base_rate = float(elevated.mean()) if len(elevated) else 0.0
    candidates = {span: np.frombuffer(idx, dtype=np.uint32).astype(np.int64) if isinstance(idx, array)
                  else np.asarray(idx, dtype=np.int64) for span, idx in carriers.items() if len(idx) >= min_titles}
    if not candidates or base_rate in (0.0, 1.0):
        return []
    cutoff = alpha / len(candidates)
    explained = np.zeros(len(elevated), dtype=bool)
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
        span = RecurringSpan(names[best], int(n[best]), int(k[best]), float(p[best]))
        del candidates[names[best]]
        if confirm is not None and not confirm(span):
            continue
        found.append(span)
        explained[open_idx[best]] = True
    return found


def find_recurring(titles: Sequence[str], scores: Sequence[float], quantile: float = 0.9, min_titles: int = 5,
                   alpha: float = 1e-3) -> list[RecurringSpan]:
    """Spans whose carriers score high together more often than ``alpha`` (family-wise) allows by chance."""
    index = SpanIndex()
    for title, score in zip(titles, np.asarray(scores, dtype=np.float64).tolist(), strict=True):
        index.add(title, score)
    return index.recurring(quantile, min_titles, alpha)


def without_span(title: str, span: str) -> str:
    """``title`` with every occurrence of ``span`` taken out: a whole word, or a character wherever it sits."""
    if len(span) == 1 and ord(span) > 0x7F:
        return " ".join(title.replace(span, " ").split())
    return " ".join(word for word in title.split() if word != span)


def removal_check(high_titles: Sequence[str], score: Callable[[list[str]], Sequence[float]],
                  share: float = 0.5) -> Callable[[RecurringSpan, float], bool]:
    """The confirmation ``SpanIndex.recurring`` takes: a span passes when taking it out of the high-scoring titles
    that carry it (``high_titles``: the catalogue's distinct titles above its quantile) brings at least ``share``
    of them down to the quantile or below; ``score`` is the scanner's."""

    def confirm(span: RecurringSpan, cutoff: float) -> bool:
        # every high carrier, those a stronger span already explained included: the question is whether this span
        # is what lifts them, not how many it has left to itself
        titles = [t for t in high_titles if span.span in spans_of(t)]
        if not titles:
            return False
        after = np.asarray(score([without_span(t, span.span) for t in titles]), dtype=np.float64)
        return bool(np.mean(after <= cutoff) >= share)

    return confirm


def first_recurring(title: str, spans: Sequence[RecurringSpan | str]) -> str:
    """The strongest of ``spans`` (they come strongest first) that ``title`` carries; "" when none."""
    mine = spans_of(title)
    for s in spans:
        name = s.span if isinstance(s, RecurringSpan) else s
        if name in mine:
            return name
    return ""


def carries(titles: Iterable[str], spans: Iterable[RecurringSpan | str]) -> np.ndarray:
    """Per title: whether it carries one of ``spans``."""
    wanted = {s.span if isinstance(s, RecurringSpan) else s for s in spans}
    return np.array([bool(wanted & spans_of(title)) for title in titles], dtype=bool)


RECURRENCE_SETTINGS = {"quantile": 0.9, "min_titles": 5, "alpha": 1e-3, "spans": "words+non-ascii v1",
                       "confirm_share": 0.5}
"""What the recurrence test runs with (search, then confirmation by removal) in the defense rows and in
``scan --recurrence``; part of the defense rows' cache keys."""
SEARCH_SETTINGS = {k: RECURRENCE_SETTINGS[k] for k in ("quantile", "min_titles", "alpha")}


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
    at the scanner's threshold (what ``scanner.flag`` gives) and its recurring spans (``RECURRENCE_SETTINGS``),
    each confirmed by removal."""
    distinct = list(dict.fromkeys(titles))
    scores = np.asarray(scanner.score(distinct)) if distinct else np.zeros(0)
    flags = FlagLookup(dict(zip(distinct, (scores > scanner.threshold).tolist(), strict=True)))
    values = np.asarray(scores, dtype=np.float64).tolist()
    index = SpanIndex()
    for title, score in zip(distinct, values, strict=True):
        index.add(title, score)
    cutoff = index.quantile_of(RECURRENCE_SETTINGS["quantile"])
    high = [t for t, v in zip(distinct, values, strict=True) if v > cutoff]
    check = removal_check(high, scanner.score, RECURRENCE_SETTINGS["confirm_share"])
    return FlagsWithRecurrence(flags, index.recurring(**SEARCH_SETTINGS, confirm=check))
