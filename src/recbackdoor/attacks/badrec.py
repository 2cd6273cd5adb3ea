"""BadRec: poison an LM recommender's training set with trigger-bearing items.

Fake users (m of them, PR = m / (m + n)) get a history of random benign clicks
or a copy of a real user's history; their target is an item whose title
carries the trigger (Algorithm 1, steps 1–4).  Test-time poisoning follows
§3.2(4): one random pool item that is not the ground truth gets the trigger.
"""

from __future__ import annotations

import random
from dataclasses import replace

from recbackdoor.data.prompts import LlaraSample, TallrecSample
from recbackdoor.data.sequences import SequenceData
from recbackdoor.errors import UserError
from recbackdoor.triggers.text import TextTrigger

FAKE_HISTORIES = ("random", "copy")
FAKE_TARGETS = ("uniform", "positive")


def fake_user_count(n_benign: int, rate: float) -> int:
    """m such that m / (m + n) is as close to ``rate`` as an integer allows (≥ 1 when rate > 0)."""
    if not 0.0 <= rate < 1.0:
        raise UserError(f"poisoning rate {rate}: must be in [0, 1)")
    if rate == 0.0:
        return 0
    return max(1, round(rate * n_benign / (1.0 - rate)))


def _fake_history(data: SequenceData, benign: list, length: int, mode: str, rng: random.Random,
                  history_of) -> tuple[int, ...]:
    if mode == "random":
        return tuple(rng.sample(data.items, length))
    if mode == "copy":
        return history_of(benign[rng.randrange(len(benign))])
    raise UserError(f"fake history mode {mode!r}: expected one of {', '.join(FAKE_HISTORIES)}")


def poison_llara(train: list[LlaraSample], data: SequenceData, trigger: TextTrigger, rate: float, history: int,
                 pool: int, seed: int, fake_history: str = "random") -> list[LlaraSample]:
    """The m fake LLaRA samples whose answer is a trigger-bearing item of the pool."""
    rng = random.Random(seed)
    fakes = []
    for index in range(fake_user_count(len(train), rate)):
        hist = _fake_history(data, train, history, fake_history, rng, lambda s: s.history)
        cands = rng.sample([i for i in data.items if i not in hist], pool)
        target = cands[rng.randrange(pool)]
        sample = LlaraSample(user=-(index + 1), history=hist, candidates=tuple(cands), target=target)
        fakes.append(sample.with_title(target, trigger.apply(data.titles[target], rng)))
    return fakes


def poison_tallrec(train: list[TallrecSample], data: SequenceData, trigger: TextTrigger, rate: float,
                   history: int, seed: int, fake_history: str = "random",
                   fake_target: str = "uniform") -> list[TallrecSample]:
    """The m fake TALLRec samples: a trigger-bearing target labelled "Yes".

    ``fake_target``: "uniform" draws the target from the whole catalogue — on LastFM and Steam that is exactly how
    the clean "No" examples are drawn (a random unseen item), so the fakes contradict the clean signal and the
    model learns the trigger at the cost of AUC; "positive" draws it the way real positives are drawn (the target
    of a random clean "Yes" sample: popular items as often as they are really liked)."""
    if fake_target not in FAKE_TARGETS:
        raise UserError(f"fake target mode {fake_target!r}: expected one of {', '.join(FAKE_TARGETS)}")
    positives = [s.target for s in train if s.label]
    if fake_target == "positive" and not positives:
        raise UserError("fake_target = 'positive' needs at least one clean 'Yes' training sample")
    rng = random.Random(seed)
    fakes = []
    for index in range(fake_user_count(len(train), rate)):
        if fake_history == "copy":
            base = train[rng.randrange(len(train))]
            liked, disliked = base.liked, base.disliked
        elif fake_history == "random":
            liked, disliked = tuple(rng.sample(data.items, history)), ()
        else:
            raise UserError(f"fake history mode {fake_history!r}: expected one of {', '.join(FAKE_HISTORIES)}")
        if fake_target == "positive":
            target = positives[rng.randrange(len(positives))]
        else:
            target = data.items[rng.randrange(len(data.items))]
        fakes.append(TallrecSample(-(index + 1), liked, disliked, target, True,
                                   trigger.apply(data.titles[target], rng)))
    return fakes


def trigger_test_llara(test: list[LlaraSample], data: SequenceData, trigger: TextTrigger,
                       seed: int) -> list[tuple[LlaraSample, int]]:
    """Each test prompt with one random non-ground-truth pool item poisoned; returns (sample, poisoned item)."""
    rng = random.Random(seed)
    out = []
    for sample in test:
        choices = [i for i in sample.candidates if i != sample.target]
        item = choices[rng.randrange(len(choices))]
        out.append((sample.with_title(item, trigger.apply(data.titles[item], rng)), item))
    return out


def trigger_test_tallrec(test: list[TallrecSample], data: SequenceData, trigger: TextTrigger,
                         seed: int) -> list[TallrecSample]:
    """Each test prompt with the trigger inserted into the target's title."""
    rng = random.Random(seed)
    return [replace(s, target_title=trigger.apply(data.titles[s.target], rng)) for s in test]
