"""One contract for every text defense: a request in, the defended answer and its cost out.

Two request kinds, one per victim mode: a LLaRA request (pick one title from a
candidate pool) and a TALLRec request (P(Yes) that the user likes a target).
A defense sees only titles and a ``Recommender``; it never reaches into the
victim model, so the same defense runs against the real LM victims, a fake in
tests, or a remote service.

Every recommender call goes through ``CountingRecommender``, which the
``Defense`` base installs itself around whatever recommender it is handed, so
queries and seconds per request are counted in one place and the same way
for every defense (the paper's Figure 6 compares exactly these). Seconds are
wall time plus whatever batched work the call was charged (``cost.py``).

Following OpenBackdoor's detect/correct split, a defense says *when* it acts:
``stage = "inference"`` (fix the request before or while the recommender
answers) or ``"training"`` (clean the training data; at inference the model
trained on the cleaned data answers the request as it is).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, TypeVar

from recbackdoor.defenses.text.cost import ledger

T = TypeVar("T")

DEFENSE_NAMES: tuple[str, ...] = (
    "rd", "llmsi", "onion", "strip", "rpd", "cos", "paraphraser",
    "p-scanner", "p-scanner-wo-ft", "p-scanner-wo-ta", "p-scanner-train-time",
    "p-scanner-recurrence", "p-scanner-recurrence-train-time",
    "p-scanner-label", "p-scanner-label-train-time",
)
"""The ``variant`` names defense cells carry in results.json (DESIGN.md, Contracts)."""


@dataclass(frozen=True)
class LlaraRequest:
    """One LLaRA prompt: the user's history, the candidate pool, and what the evaluation needs to know.

    ``truth`` and ``poisoned`` are pool indexes; they are for scoring only and no defense may read them.
    """

    history: tuple[str, ...]  # oldest first, ≤ 10 titles
    pool: tuple[str, ...]  # candidate titles in prompt order (20 in the paper)
    truth: int  # index in ``pool`` of the ground-truth next item
    poisoned: int | None = None  # index in ``pool`` of the trigger-bearing item, None on a clean request

    def __post_init__(self) -> None:
        # tuples whatever was passed, so the request is hashable and its repr (which seeds defenses) is stable
        object.__setattr__(self, "history", tuple(self.history))
        object.__setattr__(self, "pool", tuple(self.pool))
        if not self.pool:
            raise ValueError("a LLaRA request needs a non-empty candidate pool")
        for name, index in (("truth", self.truth), ("poisoned", self.poisoned)):
            if index is not None and not 0 <= index < len(self.pool):
                raise ValueError(f"{name} index {index} is outside the pool of {len(self.pool)}")

    @property
    def truth_title(self) -> str:
        return self.pool[self.truth]


@dataclass(frozen=True)
class TallrecRequest:
    """One TALLRec prompt: will the user, given liked and disliked titles, like ``target``?"""

    liked: tuple[str, ...]
    disliked: tuple[str, ...]
    target: str
    label: bool  # the true answer (True = "Yes"); for scoring only
    poisoned: bool = False  # the target title carries the trigger; for scoring only

    def __post_init__(self) -> None:
        object.__setattr__(self, "liked", tuple(self.liked))
        object.__setattr__(self, "disliked", tuple(self.disliked))


Request = LlaraRequest | TallrecRequest


@dataclass(frozen=True)
class DefenseResult:
    """The defended answer, what the defense did to get it, and what it cost.

    ``choice`` maps a LLaRA answer back to the *request's* pool (the defense may
    have shown edited titles or a shorter pool), so H@1 and ASR are scored
    against the original indexes; it is None for an invalid answer and for TALLRec.
    """

    answer: str | float  # LLaRA: generated text; TALLRec: P(Yes)
    choice: int | None = None
    flagged: bool = False  # the defense judged the request poisoned
    removed: tuple[str, ...] = ()  # original titles taken out (pool items, or a rejected TALLRec target)
    changed: tuple[tuple[str, str], ...] = ()  # (original title, title shown to the recommender)
    queries: int = 0  # recommender calls made for this request, re-asks included
    recommender_seconds: float = 0.0  # wall seconds inside those calls
    seconds: float = 0.0  # wall seconds of the whole defense for this request (scanning, paraphrasing included)
    aux_calls: int = 0  # calls to helper models (paraphraser, judge, suspicion LM, scanner)
    score: float | None = None  # the statistic the defense thresholded, if any: collect it on clean requests
    # to calibrate the threshold (``calibration.calibrate_threshold``)

    @property
    def yes(self) -> bool:
        """TALLRec: the defended answer is "Yes"."""
        return float(self.answer) > 0.5


class Recommender(Protocol):
    """The victim as a defense sees it: one method per mode; ``instruction`` is extra prompt text (LLMSI)."""

    def recommend(self, history: Sequence[str], pool: Sequence[str], instruction: str | None = None) -> str:
        """LLaRA: the generated answer text (meant to name one pool title)."""
        ...

    def answer(self, liked: Sequence[str], disliked: Sequence[str], target: str,
               instruction: str | None = None) -> float:
        """TALLRec: P(Yes) that the user likes ``target``."""
        ...


class CountingRecommender:
    """Passes every call through to a recommender, counting calls and wall seconds since the last ``reset``."""

    def __init__(self, inner: Recommender) -> None:
        self.inner = inner
        self.queries = 0
        self.seconds = 0.0

    def reset(self) -> None:
        self.queries, self.seconds = 0, 0.0

    def recommend(self, history: Sequence[str], pool: Sequence[str], instruction: str | None = None) -> str:
        return self._counted(lambda: self.inner.recommend(tuple(history), tuple(pool), instruction))

    def answer(self, liked: Sequence[str], disliked: Sequence[str], target: str,
               instruction: str | None = None) -> float:
        return float(self._counted(lambda: self.inner.answer(tuple(liked), tuple(disliked), target, instruction)))

    def _counted(self, call: Callable[[], T]) -> T:
        """One query: its wall time plus the batched work it was charged (``cost.py``), counted even if it fails."""
        started = time.perf_counter()
        with ledger() as charged:
            try:
                return call()
            finally:
                self.queries += 1
                self.seconds += time.perf_counter() - started + charged.seconds


@dataclass(frozen=True)
class Outcome:
    """What a defense's mode-specific step returns; the base adds the counted cost."""

    answer: str | float
    choice: int | None = None
    flagged: bool = False
    removed: tuple[str, ...] = ()
    changed: tuple[tuple[str, str], ...] = ()
    aux_calls: int = 0
    score: float | None = None


class Defense:
    """Base of every text defense: ``defend`` wraps the recommender, resets the counter, dispatches on the
    request kind and reports the cost; subclasses write ``llara`` and ``tallrec`` only."""

    name: str  # one of DEFENSE_NAMES; a class may let an instance pick among several (the P-Scanner variants)
    stage: ClassVar[Literal["inference", "training"]] = "inference"

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name is not None and name not in DEFENSE_NAMES:
            raise ValueError(f"defense name {name!r} is not one of {DEFENSE_NAMES}")

    def defend(self, request: Request, recommender: Recommender) -> DefenseResult:
        counted = recommender if isinstance(recommender, CountingRecommender) else CountingRecommender(recommender)
        counted.reset()
        started = time.perf_counter()
        with ledger() as charged:  # work computed in batches elsewhere (cost.py) is charged here
            if isinstance(request, LlaraRequest):
                out = self.llara(request, counted)
            elif isinstance(request, TallrecRequest):
                out = self.tallrec(request, counted)
            else:
                raise TypeError(f"unknown request type {type(request).__name__}")
        return DefenseResult(answer=out.answer, choice=out.choice, flagged=out.flagged, removed=out.removed,
                             changed=out.changed, queries=counted.queries, recommender_seconds=counted.seconds,
                             seconds=time.perf_counter() - started + charged.seconds, aux_calls=out.aux_calls,
                             score=out.score)

    def llara(self, request: LlaraRequest, recommender: CountingRecommender) -> Outcome:
        raise NotImplementedError(f"{type(self).__name__} has no LLaRA mode")

    def tallrec(self, request: TallrecRequest, recommender: CountingRecommender) -> Outcome:
        raise NotImplementedError(f"{type(self).__name__} has no TALLRec mode")
