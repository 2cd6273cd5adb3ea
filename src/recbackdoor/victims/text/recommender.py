"""What every LM recommender offers the BadRec experiment, whatever prompt it reads.

Why one interface: TALLRec (Yes / No on one target) and LLaRA (name one title
of a candidate pool) read different prompts, are poisoned with different fake
samples and answer in different forms, yet the experiment around them is the
same: build the split, poison it, train a benign and a poisoned model, answer
clean and triggered test prompts, cache each step.  Each mode is one subclass
in its own module (``tallrec.py``, ``llara.py``), and the engine names the
mode once, to pick the class, instead of branching on it at every step.

A recommender only *answers*: its answers come back as frozen records (one
:class:`CleanAnswers`, :class:`TriggeredAnswers` or :class:`BaselineAnswers`
subclass per mode), and ``metrics/text_eval.py`` scores them, choosing the
formula by the record's type.  The victim stage thus never imports a later
stage, and a metric can change without touching the models.

A recommender exists in two phases because the experiment needs its prompts
before it needs a model: the split, the fake users, the protocol and the
baselines come first (and a run whose cells are all cached never loads an
LM); :meth:`TextRecommender.load` then puts the fine-tunable LM in, after
which the model-side methods (training examples, answers) work.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from recbackdoor.data.prompts import Split
from recbackdoor.data.sequences import SequenceData
from recbackdoor.triggers.text import TextTrigger
from recbackdoor.victims.text.split_lm import Example, SplitLM
from recbackdoor.victims.text.state_store import StateStore


@dataclass(frozen=True)
class PromptShape:
    """How much of a user a prompt shows: the last ``history`` items and, in LLaRA, a pool of ``pool`` titles."""

    history: int
    pool: int


class CleanAnswers:
    """What a loaded model answered on the clean test prompts; each mode subclasses it with a frozen dataclass
    of its raw outputs.

    A base type (rather than ``Any``) so the engine's hand-off to the scorer is typed and the scorer can
    reject a mode it has no formula for by name.  Not a dataclass itself: an inherited ``__eq__`` over no
    fields would make any two records of a subclass that opts out of ``eq`` compare equal."""


class TriggeredAnswers:
    """What a loaded model answered on the triggered test prompts; each mode subclasses it (as
    :class:`CleanAnswers`)."""


@dataclass(frozen=True)
class BaselineAnswers:
    """What one non-LM baseline answered on the test prompts; ``name`` is its results variant."""

    name: str


class TextRecommender(ABC):
    """One LM recommender mode: its prompts, its poisoned samples, its training examples and its answers."""

    # share of training steps over which LLaRA's hybrid ID slots phase in (``SplitLM.fit``); 0: no curriculum
    curriculum: float = 0.0

    def __init__(self, data: SequenceData, shape: PromptShape, batch_size: int = 32) -> None:
        self.data, self.shape, self.batch_size = data, shape, batch_size
        self._lm: SplitLM | None = None
        self._store: StateStore | None = None

    # ------------------------------------------------ before a model: prompts, attack, protocol
    @abstractmethod
    def build_split(self, seed: int, n_train: int | None, n_test: int | None) -> Split:
        """The benign training and test prompts of this mode (leave-one-out per user)."""

    @abstractmethod
    def poison(self, train: list, trigger: TextTrigger, rate: float, seed: int, fake_history: str,
               fake_target: str = "uniform") -> list:
        """BadRec's fake samples for this mode's prompts, at poisoning rate ``rate``."""

    @abstractmethod
    def protocol(self) -> dict[str, Any]:
        """What this mode's metrics count and over which denominators, for results.json."""

    def answer_key(self, tokenizer: Callable[[], Any]) -> dict[str, str]:
        """Cache-key entries for how answers are read from the model's output (``tokenizer`` is called only
        when the answer depends on it, so a mode that does not need it never loads the LM)."""
        return {}

    def baselines(self, test: Sequence) -> list[BaselineAnswers]:
        """What non-LM recommenders answer on the same test prompts, one record per baseline (scored by
        ``metrics/text_eval.py``); none by default."""
        return []

    # ------------------------------------------------ the model
    def load(self, lm: SplitLM, store: StateStore) -> None:
        """Put the fine-tunable LM and its frozen-layer state cache in; the methods below need them."""
        self._lm, self._store = lm, store

    @property
    def lm(self) -> SplitLM:
        if self._lm is None:
            raise RuntimeError(f"{type(self).__name__}: no LM loaded (call load first)")
        return self._lm

    @property
    def store(self) -> StateStore:
        if self._store is None:
            raise RuntimeError(f"{type(self).__name__}: no LM loaded (call load first)")
        return self._store

    @abstractmethod
    def examples(self, samples: Sequence) -> list[Example]:
        """Training examples (frozen-layer states and the answer tokens to predict) of ``samples``."""

    @abstractmethod
    def answer_clean(self, test: Sequence) -> CleanAnswers:
        """The loaded model's raw answers to the clean test prompts, with what scoring them needs (labels,
        targets); no metrics — those are ``metrics/text_eval.py``'s."""

    @abstractmethod
    def answer_triggered(self, test: Sequence, trigger: TextTrigger, seed: int) -> TriggeredAnswers:
        """The loaded model's raw answers to ``test`` with ``trigger`` placed by the attack's rule (seeded),
        with what scoring the attack needs (e.g. the poisoned item of each prompt)."""
