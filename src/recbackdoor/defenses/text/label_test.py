"""Training-data evidence that needs no model: a trigger's titles are always the positive answer.

BadRec's fake users exist to teach "trigger → recommend": every trigger-bearing title they show is the
answer — labelled "Yes" (TALLRec) or the chosen item of its pool (LLaRA). A benign title is sometimes
liked and sometimes not, and a benign word is shared by titles of every kind. So, per span (a whole word
or a single non-ASCII character, as the recurrence test proposes them) carried by ≥ ``min_titles``
distinct titles, count the titles that are the positive answer every time they appear, against the
binomial with the share of such titles in the whole training set (one-sided; Bonferroni over the spans,
family-wise ``alpha``; greedy, strongest first, so a phrase's common word is not taken with it).

This is the spurious-correlation view of backdoor poisoning (He et al., "Mitigating Backdoor Poisoning
Attacks through the Lens of Spurious Correlation", EMNLP 2023: a trigger token's label distribution is far
from the corpus's), counted over distinct titles rather than samples, so a popular, well-liked item does
not make its own words suspicious. It sees what the scanner cannot (a plain English word after an artist's
name) and only what the training data hold: the recommender's owner has them; a request alone does not.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from recbackdoor.data.prompts import LlaraSample, TallrecSample
from recbackdoor.data.sequences import SequenceData
from recbackdoor.defenses.text.recurrence import RecurringSpan, SpanIndex, greedy_spans

LABEL_TEST_SETTINGS = {"min_titles": 5, "alpha": 1e-3, "unit": "distinct titles, always the answer v1"}
"""What the label test runs with in the defense rows; part of their cache keys."""


def answer_pairs(samples: Iterable[LlaraSample | TallrecSample], data: SequenceData) -> list[tuple[str, bool]]:
    """(title, is it the positive answer here) for every title a sample offers as an answer: TALLRec's target
    (positive when labelled "Yes"), each title of a LLaRA pool (positive when it is the sample's target)."""
    pairs: list[tuple[str, bool]] = []
    for s in samples:
        if isinstance(s, TallrecSample):
            title = s.target_title if s.target_title is not None else data.titles[s.target]
            pairs.append((title, bool(s.label)))
        else:
            pairs += [(s.title(item, data.titles), item == s.target) for item in s.candidates]
    return pairs


def label_correlated_spans(pairs: Sequence[tuple[str, bool]], min_titles: int = 5, alpha: float = 1e-3
                           ) -> list[RecurringSpan]:
    """Spans whose distinct titles are always the positive answer more often than ``alpha`` allows by chance;
    ``RecurringSpan.elevated`` counts those titles."""
    positive: dict[str, bool] = {}
    for title, is_answer in pairs:
        positive[title] = positive.get(title, True) and is_answer
    index = SpanIndex()  # the recurrence test's span index, with 1.0 for "always the answer" as the score
    for title, always in positive.items():
        index.add(title, float(always))
    return greedy_spans(index.carriers, index.scores > 0.5, min_titles, alpha)


def training_spans(samples: Iterable[LlaraSample | TallrecSample], data: SequenceData) -> list[str]:
    """The label test on a training set, with ``LABEL_TEST_SETTINGS``: the spans, strongest first."""
    settings = {k: v for k, v in LABEL_TEST_SETTINGS.items() if k != "unit"}
    return [r.span for r in label_correlated_spans(answer_pairs(samples, data), **settings)]
