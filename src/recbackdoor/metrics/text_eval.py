"""The BadRec cells' metrics, counted from what a text recommender answered.

Why a module of its own: the victims (``victims/text/``) only answer — P(Yes)
per prompt, or a generation and the pool index it names — and return frozen
records; this module is where those records become the metric dicts the
engine caches and reports.  Each record type has its own formula, picked by
``functools.singledispatch`` on the type, so a new mode registers its scorer
here instead of adding a branch to the engine.

The dicts are exactly what cells have always held (cached cells are reused
as they are, so keys, key order and values must not drift): results metrics,
counts the engine moves to ``extra`` (``n_test``, ``n_no``, ``n_triggered``),
and keys starting with "_" kept for the logs, not results (TALLRec's clean
Yes answers, LLaRA's first three generations).
"""

from __future__ import annotations

from functools import singledispatch
from typing import Any

import numpy as np

from recbackdoor.metrics import text as M
from recbackdoor.victims.text.llara import (
    LlaraAnswers,
    LlaraTriggeredAnswers,
    MostPopularPick,
    PoolPicks,
    RandomPick,
)
from recbackdoor.victims.text.recommender import BaselineAnswers, CleanAnswers, TriggeredAnswers
from recbackdoor.victims.text.tallrec import TallrecAnswers, TallrecTriggeredAnswers


# ------------------------------------------------------------------ clean prompts
@singledispatch
def clean_metrics(answers: CleanAnswers) -> dict[str, Any]:
    """The metrics of a model's answers to the clean test prompts."""
    raise TypeError(f"no clean-prompt metrics for {type(answers).__name__}")


@clean_metrics.register
def _(answers: TallrecAnswers) -> dict[str, Any]:
    """AUC of P(Yes) against the labels, accuracy and Yes share at the ½ threshold; the Yes answers are kept
    ("_yes") for the logs."""
    p, labels = answers.p_yes, answers.labels
    return {"auc": M.auc(labels, p), "accuracy": float(np.mean((p > 0.5) == np.array(labels))),
            "yes_rate": float(np.mean(p > 0.5)), "n_test": len(labels), "_yes": (p > 0.5).tolist()}


@clean_metrics.register
def _(answers: LlaraAnswers) -> dict[str, Any]:
    """Valid share and H@1 by the project's answer rule and by LLaRA's verbatim one; three generations are
    kept ("_examples") for the logs."""
    choices, targets = answers.choices, answers.targets
    return {"valid": M.valid_rate(choices), "h1": M.hit_at_1(choices, targets),
            "h1_all": M.hit_at_1_all(choices, targets), "valid_llara": M.valid_rate(answers.choices_llara),
            "h1_llara": M.hit_at_1(answers.choices_llara, targets), "n_test": len(choices),
            "_examples": answers.generations[:3]}


# ------------------------------------------------------------------ triggered prompts
@singledispatch
def attack_metrics(answers: TriggeredAnswers, clean: CleanAnswers) -> dict[str, Any]:
    """The attack metrics of a model's answers to triggered test prompts; ``clean`` is the same model's
    answers to the clean ones, for a metric that pairs the two (TALLRec's ASR)."""
    raise TypeError(f"no attack metrics for {type(answers).__name__}")


@attack_metrics.register
def _(answers: TallrecTriggeredAnswers, clean: CleanAnswers) -> dict[str, Any]:
    """ASR = share of the clean 'No' answers that the trigger turns 'Yes' (triggered prompt i is clean prompt
    i plus the trigger), its denominator, and the AUC on the triggered prompts."""
    if not isinstance(clean, TallrecAnswers):
        raise TypeError(f"TALLRec attack metrics pair with TallrecAnswers, got {type(clean).__name__}")
    yes = (answers.p_yes > 0.5).tolist()
    asr, n_no = M.flip_rate((clean.p_yes > 0.5).tolist()[: len(yes)], yes)
    return {"asr": asr, "n_no": n_no, "auc_triggered": M.auc(answers.labels, answers.p_yes),
            "n_triggered": len(yes)}


@attack_metrics.register
def _(answers: LlaraTriggeredAnswers, clean: CleanAnswers) -> dict[str, Any]:
    """A-Valid and eq. 3's ASR (the poisoned item named / all triggered prompts); the clean answers are not
    needed."""
    return {"a_valid": M.valid_rate(answers.choices), "asr": M.attack_success_rate(answers.choices, answers.poisoned),
            "n_triggered": len(answers.choices)}


# ------------------------------------------------------------------ non-LM baselines
@singledispatch
def baseline_metrics(answers: BaselineAnswers) -> dict[str, float]:
    """A baseline cell's metrics: every baseline answer names a pool item, so Valid is 1."""
    raise TypeError(f"no baseline metrics for {type(answers).__name__}")


@baseline_metrics.register
def _(answers: RandomPick) -> dict[str, float]:
    return {"valid": 1.0, "h1": 1.0 / answers.pool}


@baseline_metrics.register
def _(answers: MostPopularPick) -> dict[str, float]:
    return {"valid": 1.0, "h1": M.popularity_hit_at_1(answers.pools, answers.targets, answers.popularity)}


@baseline_metrics.register
def _(answers: PoolPicks) -> dict[str, float]:
    return {"valid": 1.0, "h1": M.hit_at_1(answers.choices, answers.targets)}
