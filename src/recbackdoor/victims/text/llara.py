"""LLaRA mode: the LM names one title of a candidate pool, from text-only or hybrid prompts.

The prompt lists the user's last items and a pool (the true next item among
random unseen ones); the model generates, and the answer is the pool title its
text names.  Answers are matched as LLaRA's code matches them — valid only if
exactly one candidate title appears — with one repair recorded in the protocol
(exact match first, the longest title preferred); the verbatim substring rule
is reported beside it (``valid_llara``, ``h1_llara``).  The recommender only
answers — generations and the pool index each names (``answers.py``); the
metrics are counted from those by ``metrics/text_eval.py``.

Hybrid prompts (:class:`HybridLlaraRecommender`) add each item's SASRec
embedding in an ID slot (``victims/text/hybrid.py``) through a projector
trained with the LM, under LLaRA's text-to-hybrid curriculum.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from recbackdoor.attacks.badrec import poison_llara, trigger_test_llara
from recbackdoor.data.prompts import LlaraSample, Split, build_llara, llara_answer, llara_prompt
from recbackdoor.data.sequences import SequenceData
from recbackdoor.errors import UserError
from recbackdoor.triggers.text import TextTrigger
from recbackdoor.victims.text.answers import match_candidate, match_candidate_llara
from recbackdoor.victims.text.decoding import added_token_texts
from recbackdoor.victims.text.hybrid import HybridPrompt, ItemIndex, encode_hybrid, sasrec_choices
from recbackdoor.victims.text.recommender import (
    BaselineAnswers,
    CleanAnswers,
    PromptShape,
    TextRecommender,
    TriggeredAnswers,
)
from recbackdoor.victims.text.sasrec import SASRec, SasrecSettings
from recbackdoor.victims.text.split_lm import Example, SplitLM
from recbackdoor.victims.text.state_store import StateStore

Slots = list[tuple[tuple[int, ...], tuple[int, ...]]]  # per prompt: slot positions and the item at each


def training_popularity(data: SequenceData) -> Counter:
    """Item counts over training positions only (each user's last two interactions left out), so the
    most-popular baseline cannot see the valid or test item."""
    return Counter(x.item for seq in data.sequences.values() for x in seq[:-2])


@dataclass(frozen=True)
class LlaraAnswers(CleanAnswers):
    """The model's generation for each clean test prompt, the pool index it names by the project's rule
    (``choices``) and by LLaRA's verbatim rule (``choices_llara``) — None when invalid — and the pool index
    of each prompt's true next item."""

    generations: list[str]
    choices: list[int | None]
    choices_llara: list[int | None]
    targets: list[int]


@dataclass(frozen=True)
class LlaraTriggeredAnswers(TriggeredAnswers):
    """The model's generation for each triggered test prompt, the pool index it names (None when invalid)
    and the pool index of the item that carries the trigger (eq. 3's poisoned item)."""

    generations: list[str]
    choices: list[int | None]
    poisoned: list[int]


@dataclass(frozen=True)
class RandomPick(BaselineAnswers):
    """A uniform random pick from pools of ``pool`` titles.  Nothing is drawn: its H@1 is the expectation,
    1/pool, exactly, so the cell does not depend on a sampling seed."""

    pool: int


@dataclass(frozen=True)
class MostPopularPick(BaselineAnswers):
    """Always the pool's most popular item by ``popularity`` (training positions only): each pool (item ids)
    and its true next item, which is all the most-popular rule needs to be scored."""

    pools: list[tuple[int, ...]]
    targets: list[int]
    popularity: dict[int, int]


@dataclass(frozen=True)
class PoolPicks(BaselineAnswers):
    """A non-LM recommender's pick from each pool (pool index; all valid) and the true next item's index."""

    choices: list[int]
    targets: list[int]


class LlaraRecommender(TextRecommender):
    """LLaRA's generative recommender on text-only prompts: names a pool title, scored as Valid / H@1 on clean
    pools and A-Valid / ASR (eq. 3) on triggered ones."""

    def __init__(self, data: SequenceData, shape: PromptShape, batch_size: int = 32,
                 max_new_tokens: int = 40) -> None:
        super().__init__(data, shape, batch_size)
        self.max_new_tokens = max_new_tokens

    # ------------------------------------------------ before a model
    def build_split(self, seed: int, n_train: int | None, n_test: int | None) -> Split:
        return build_llara(self.data, self.shape.history, self.shape.pool, seed, n_train, 0, n_test)

    def poison(self, train: list, trigger: TextTrigger, rate: float, seed: int, fake_history: str,
               fake_target: str = "uniform") -> list:
        if fake_target != "uniform":
            raise UserError(f"attack.fake_target = {fake_target!r} is a TALLRec option; a LLaRA fake user's target "
                            "is a pool item, drawn uniformly")
        return poison_llara(train, self.data, trigger, rate, self.shape.history, self.shape.pool, seed, fake_history)

    def protocol(self) -> dict[str, Any]:
        return {"pool": self.shape.pool,
                "valid": "exactly one pool title named (exact match first, longest title preferred); valid_llara = "
                         "LLaRA's verbatim substring rule",
                "h1": "correct / valid answers (LLaRA); h1_all = correct / all prompts",
                "asr": "eq. 3: poisoned item returned / all triggered prompts; one random non-ground-truth pool "
                       "item carries the trigger",
                "a_valid": "valid / all triggered prompts"}

    def answer_key(self, tokenizer: Callable[[], Any]) -> dict[str, str]:
        # cells made before added tokens were decoded verbatim misread non-ASCII title tokens
        return {"answer_decoding": "added-tokens-verbatim"} if added_token_texts(tokenizer()) else {}

    def baselines(self, test: Sequence[LlaraSample]) -> list[BaselineAnswers]:
        """Random and most-popular picks on the same pools; popularity from training positions only."""
        return [RandomPick("random", self.shape.pool),
                MostPopularPick("most-popular", [s.candidates for s in test], [s.target for s in test],
                                training_popularity(self.data))]

    # ------------------------------------------------ the model
    def prompts(self, samples: Sequence[LlaraSample]) -> list[HybridPrompt]:
        """The prompts as tokens (with their ID slots in hybrid mode; none here)."""
        return [HybridPrompt(self.lm.encode(llara_prompt(s, self.data)), (), ()) for s in samples]

    def _slots(self, prompts: list[HybridPrompt], fill: bool) -> Slots | None:
        """What generation injects at the prompts' ID slots; text-only prompts have none."""
        return None

    def examples(self, samples: Sequence[LlaraSample]) -> list[Example]:
        eos = self.lm.tokenizer.eos_token_id
        prompts = self.prompts(samples)
        answers = [self.lm.encode(llara_answer(s, self.data), bos=False) + [eos] for s in samples]
        states = self.store.get([p.tokens + a for p, a in zip(prompts, answers, strict=True)],
                                desc="frozen layers (train)")
        return [Example(st, tuple(range(len(p.tokens) - 1, len(p.tokens) + len(a) - 1)), tuple(a),
                        p.slots, p.slot_items)
                for st, p, a in zip(states, prompts, answers, strict=True)]

    def answers(self, samples: Sequence[LlaraSample], desc: str,
                fill_slots: bool = True) -> tuple[list[str], list[int | None]]:
        """The loaded model's answers to ``samples`` and the pool index each names (None when invalid).

        ``fill_slots=False`` leaves a hybrid prompt's ID slots empty (same tokens), to measure what they add."""
        prompts = self.prompts(samples)
        gens = self.lm.generate([p.tokens for p in prompts], self.max_new_tokens, self.batch_size, desc=desc,
                                slots=self._slots(prompts, fill_slots))
        choices = [match_candidate(g, [s.title(i, self.data.titles) for i in s.candidates])
                   for g, s in zip(gens, samples, strict=True)]
        return gens, choices

    def generate_texts(self, prompts: Sequence[str], desc: str = "generate") -> list[str]:
        """Answers to ready-made text-only prompts (``prompts.llara_text``): what a defense's request asks."""
        if not prompts:
            return []
        return self.lm.generate([self.lm.encode(p) for p in prompts], self.max_new_tokens, self.batch_size,
                                desc=desc)

    def triggered_answers(self, test: Sequence[LlaraSample], trigger: TextTrigger, seed: int
                          ) -> tuple[list[tuple[LlaraSample, int]], list[str], list[int | None]]:
        """Eq. 3's setting: (triggered prompt, poisoned item) pairs, the generated answers, and the pool index
        each answer names (None when invalid)."""
        pairs = trigger_test_llara(list(test), self.data, trigger, seed)
        gens, choices = self.answers([s for s, _ in pairs], f"generate ({trigger.kind}-{trigger.position})")
        return pairs, gens, choices

    def answer_clean(self, test: Sequence[LlaraSample]) -> LlaraAnswers:
        gens, choices = self.answers(test, "generate (clean)")
        cands = [[s.title(i, self.data.titles) for i in s.candidates] for s in test]
        choices_llara = [match_candidate_llara(g, c) for g, c in zip(gens, cands, strict=True)]
        targets = [s.candidates.index(s.target) for s in test]
        return LlaraAnswers(gens, choices, choices_llara, targets)

    def answer_triggered(self, test: Sequence[LlaraSample], trigger: TextTrigger, seed: int) -> LlaraTriggeredAnswers:
        pairs, gens, choices = self.triggered_answers(test, trigger, seed)
        return LlaraTriggeredAnswers(gens, choices, [s.candidates.index(item) for s, item in pairs])


class HybridLlaraRecommender(LlaraRecommender):
    """LLaRA's hybrid prompt: each title's SASRec item embedding in an ID slot, through a trained projector.

    ``sasrec`` is called when the model needs it (the SASRec model is a cached stage of its own, trained on
    the benign users' training positions only, so fake users never reach it).
    """

    def __init__(self, data: SequenceData, shape: PromptShape, sasrec: Callable[[], SASRec],
                 settings: SasrecSettings, slot: str = "marker", curriculum: float = 0.5, batch_size: int = 32,
                 max_new_tokens: int = 40) -> None:
        super().__init__(data, shape, batch_size, max_new_tokens)
        self._sasrec, self.settings, self.slot, self.curriculum = sasrec, settings, slot, curriculum
        self.item_index = ItemIndex(data)

    @property
    def sasrec(self) -> SASRec:
        return self._sasrec()

    def load(self, lm: SplitLM, store: StateStore) -> None:
        super().load(lm, store)
        lm.attach_projector(self.sasrec.item_table())

    def protocol(self) -> dict[str, Any]:
        s = self.settings
        place = "' [ID]' after every title" if self.slot == "marker" else "on every title's last token (no marker)"
        return {**super().protocol(),
                "hybrid": f"ID slot {place}; SASRec ({s.layers} blocks, dim {s.dim}, {s.epochs} epochs on each "
                          "user's sequence minus its last two items) item embeddings, 2-layer MLP projector, added "
                          "at the slot where the trained top layers begin; curriculum: hybrid share ramps 0->1 "
                          f"over the first {self.curriculum:.0%} of steps; fake users are not in SASRec's "
                          "training data"}

    def baselines(self, test: Sequence[LlaraSample]) -> list[BaselineAnswers]:
        """As text-only LLaRA, plus SASRec's own pick from each pool (what the ID slots carry)."""
        picks = sasrec_choices(self.sasrec, test, self.item_index)
        return [*super().baselines(test), PoolPicks("sasrec", picks, [s.candidates.index(s.target) for s in test])]

    def prompts(self, samples: Sequence[LlaraSample]) -> list[HybridPrompt]:
        return [encode_hybrid(self.lm.encode, s, self.data, self.item_index, self.slot) for s in samples]

    def _slots(self, prompts: list[HybridPrompt], fill: bool) -> Slots | None:
        return [(p.slots, p.slot_items) for p in prompts] if fill else None
