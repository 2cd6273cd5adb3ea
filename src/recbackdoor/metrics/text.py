"""Text-side metrics, one function per formula (BadRec §3.2(4), LLaRA's evaluation).

Denominators, stated because LLaRA's code leaves them implicit:
* ``valid``   = valid answers / all prompts;
* ``h1``      = correct answers / **valid** answers (LLaRA's HR@1);
* ``h1_all``  = correct answers / all prompts (reported beside it);
* ``a_valid`` = valid answers / all triggered prompts;
* ``asr``     = prompts whose answer is the poisoned item / all triggered prompts (eq. 3);
* TALLRec ``asr`` = prompts answered "Yes" with the trigger / prompts answered "No" without it.

Which pool item an answer names is read by the victim (``victims/text/answers.py``); these functions only
count the indexes it reads.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score


def valid_rate(choices: Sequence[int | None]) -> float:
    return sum(c is not None for c in choices) / len(choices) if choices else float("nan")


def hit_at_1(choices: Sequence[int | None], targets: Sequence[int]) -> float:
    """LLaRA's HR@1: correct / valid (nan when nothing is valid)."""
    valid = [(c, t) for c, t in zip(choices, targets, strict=True) if c is not None]
    return sum(c == t for c, t in valid) / len(valid) if valid else float("nan")


def hit_at_1_all(choices: Sequence[int | None], targets: Sequence[int]) -> float:
    return sum(c == t for c, t in zip(choices, targets, strict=True)) / len(choices) if choices else float("nan")


def attack_success_rate(choices: Sequence[int | None], poisoned: Sequence[int]) -> float:
    """Eq. 3: share of triggered prompts whose recommendation is the poisoned item."""
    return sum(c == p for c, p in zip(choices, poisoned, strict=True)) / len(choices) if choices else float("nan")


def auc(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """ROC AUC of P(Yes) against the true like / dislike labels."""
    labels = np.asarray(labels, dtype=bool)
    if labels.all() or (~labels).all():
        return float("nan")
    return float(roc_auc_score(labels, np.asarray(scores, dtype=float)))


def flip_rate(clean_yes: Sequence[bool], triggered_yes: Sequence[bool]) -> tuple[float, int]:
    """TALLRec ASR: share of clean 'No' answers that the trigger turns into 'Yes'; and its denominator."""
    pairs = [(c, t) for c, t in zip(clean_yes, triggered_yes, strict=True) if not c]
    if not pairs:
        return float("nan"), 0
    return sum(t for _, t in pairs) / len(pairs), len(pairs)


def defense_score(delta_asr: float, delta_h1: float) -> float:
    """Score = (max(0, ΔASR) − max(0, ΔH@1) + 1) / 2 (P-Scanner paper)."""
    return (max(0.0, delta_asr) - max(0.0, delta_h1) + 1.0) / 2.0


def most_popular_item(pool: Sequence[int], popularity: dict[int, int]) -> int:
    """The pool's most popular item; ties go to the lowest item id, so the pick does not depend on pool order."""
    return max(pool, key=lambda i: (popularity.get(i, 0), -i))


def popularity_hit_at_1(pools: Sequence[Sequence[int]], targets: Sequence[int], popularity: dict[int, int]) -> float:
    """H@1 of always answering the most popular pool item (all answers valid)."""
    hits = [most_popular_item(pool, popularity) == t for pool, t in zip(pools, targets, strict=True)]
    return sum(hits) / len(hits) if hits else float("nan")


def paired_bootstrap_interval(a: Sequence[float], b: Sequence[float], seed: int, n_boot: int = 10_000,
                              level: float = 0.95) -> tuple[float, float]:
    """Bootstrap interval of mean(a) − mean(b) where a[i] and b[i] score the same prompt.

    Resampling prompts (not each model separately) keeps the pairing, so the prompt-to-prompt spread that
    both models share cancels: the interval is narrower than two independent ones would give.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) == 0:
        raise ValueError(f"paired scores need two equal-length, non-empty 1-d sequences, got {x.shape} and {y.shape}")
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    diffs = x[idx].mean(axis=1) - y[idx].mean(axis=1)
    tail = (1.0 - level) / 2.0
    return float(np.quantile(diffs, tail)), float(np.quantile(diffs, 1.0 - tail))
