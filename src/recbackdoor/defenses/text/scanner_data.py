"""Synthetic training examples for a poison scanner (eq. 6): benign titles with and without triggers.

Each example draws l ~ U{0,1,2} (eq. 4): l = 0 leaves the title benign
(label 'No'); otherwise a trigger is inserted (label 'Yes'), written by the
augmentation agent with probability ``agent_share`` (the curriculum's r) and
taken raw from the vocabulary sampler otherwise.  Benign augmentation is
applied before insertion, so a script change or a missing year is never by
itself a sign of poison.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from recbackdoor.data.benign_titles import augment_benign
from recbackdoor.data.text_datasets import load_netflix_titles
from recbackdoor.triggers.heldout import mentions_held_out
from recbackdoor.triggers.text import POSITIONS, insert_trigger
from recbackdoor.triggers.text_sampler import InitialTrigger, InitialTriggerSampler


@dataclass(frozen=True)
class TitleSplit:
    """Netflix titles cut three ways: train the scanner, calibrate its threshold, validate its rounds."""

    train: tuple[str, ...]
    calibration: tuple[str, ...]
    validation: tuple[str, ...]


def netflix_split(seed: int = 0, calibration: int = 1500, validation: int = 1000) -> TitleSplit:
    """Netflix titles minus any that mention a held-out trigger, so no test trigger is ever trained on."""
    titles = sorted({t for t in load_netflix_titles() if not mentions_held_out(t)})
    random.Random(seed).shuffle(titles)
    cal, val = titles[:calibration], titles[calibration:calibration + validation]
    return TitleSplit(train=tuple(titles[calibration + validation:]), calibration=tuple(cal), validation=tuple(val))


@dataclass(frozen=True)
class ScanExample:
    title: str
    label: int  # 1: carries an inserted trigger ('Yes'), 0: benign ('No')
    trigger: str
    source: str  # benign | initial | agent | a held-out family | a paper trigger kind


@dataclass(frozen=True)
class AgentTrigger:
    """An initial trigger and the agent's rewrite of it (eq. 5)."""

    initial: InitialTrigger
    text: str


def poison_title(title: str, trigger: str, rng: random.Random) -> str:
    """Insert at the end or a random word slot (BadRec's positions); a short trigger is sometimes glued on."""
    if len(trigger) <= 2 and rng.random() < 0.15:
        cut = rng.randint(0, len(title))
        return title[:cut] + trigger + title[cut:]
    return insert_trigger(title, trigger, rng.choice(POSITIONS), rng)


class ExampleStream:
    """Endless seeded stream of scanner examples over a benign title list."""

    def __init__(self, titles: Sequence[str], sampler: InitialTriggerSampler, seed: int,
                 agent_pool: Sequence[AgentTrigger] = (), augmentation: int = 1) -> None:
        self.titles = tuple(titles)
        self.augmentation = augmentation  # benign_titles.augment_benign's version
        self.sampler = sampler
        self.rng = random.Random(seed)
        self.set_agent_pool(agent_pool)

    def set_agent_pool(self, pool: Sequence[AgentTrigger]) -> None:
        self.agent_by_level = {level: [t for t in pool if t.initial.level == level] for level in (1, 2)}

    def example(self, agent_share: float) -> ScanExample:
        rng = self.rng
        title = augment_benign(rng.choice(self.titles), rng, self.augmentation)
        initial = self.sampler.sample(rng)
        if not initial.poisoned:
            return ScanExample(title, 0, "", "benign")
        pool = self.agent_by_level.get(initial.level) or []
        if pool and rng.random() < agent_share:
            trigger, source = rng.choice(pool).text, "agent"
        else:
            trigger, source = initial.text, "initial"
        return ScanExample(poison_title(title, trigger, rng), 1, trigger, source)

    def batch(self, size: int, agent_share: float) -> list[ScanExample]:
        return [self.example(agent_share) for _ in range(size)]
