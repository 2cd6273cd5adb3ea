"""TALLRec mode: "will this user like X?" answered Yes / No by the LM.

P(Yes) is read from the next-token logits of the backbone's **own** tokenizer
ids for " Yes" and " No" (looked up, never hard-coded — the TALLRec code's
fixed ids break silently on another base model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from recbackdoor.attacks.badrec import poison_tallrec, trigger_test_tallrec
from recbackdoor.data.prompts import TALLREC_ANSWERS, Split, TallrecSample, build_tallrec, tallrec_prompt
from recbackdoor.errors import UserError
from recbackdoor.triggers.text import TextTrigger
from recbackdoor.victims.text.recommender import CleanAnswers, TextRecommender, TriggeredAnswers
from recbackdoor.victims.text.split_lm import Example, SplitLM
from recbackdoor.victims.text.state_store import StateStore


def answer_token_ids(tokenizer) -> tuple[int, int]:
    """Ids of the first token of " Yes" and " No"; they must differ."""
    ids = []
    for word in TALLREC_ANSWERS:
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        if not pieces:
            raise UserError(f"tokenizer maps {word!r} to no token")
        ids.append(pieces[0])
    if ids[0] == ids[1]:
        raise UserError(f"tokenizer gives ' Yes' and ' No' the same first token id {ids[0]}")
    return ids[0], ids[1]


# eq=False: a generated __eq__ would compare the P(Yes) arrays elementwise and fail; records compare by identity


@dataclass(frozen=True, eq=False)
class TallrecAnswers(CleanAnswers):
    """P(Yes) on each clean test prompt and whether the user really liked the target (the AUC's labels)."""

    p_yes: np.ndarray
    labels: list[bool]


@dataclass(frozen=True, eq=False)
class TallrecTriggeredAnswers(TriggeredAnswers):
    """P(Yes) on each triggered test prompt (the trigger in the target's title) and its true label.

    Prompt ``i`` is clean test prompt ``i`` with the trigger added, so the ASR pairs it with the clean answer
    at the same index."""

    p_yes: np.ndarray
    labels: list[bool]


class TallrecRecommender(TextRecommender):
    """TALLRec's Yes / No preference: P(Yes) per prompt, scored as AUC on clean prompts and as ASR (clean 'No'
    answers the trigger flips to 'Yes') by ``metrics/text_eval.py``."""

    def load(self, lm: SplitLM, store: StateStore) -> None:
        super().load(lm, store)
        self.yes_id, self.no_id = answer_token_ids(lm.tokenizer)

    def build_split(self, seed: int, n_train: int | None, n_test: int | None) -> Split:
        return build_tallrec(self.data, self.shape.history, seed, n_train, 0, n_test)

    def poison(self, train: list, trigger: TextTrigger, rate: float, seed: int, fake_history: str,
               fake_target: str = "uniform") -> list:
        return poison_tallrec(train, self.data, trigger, rate, self.shape.history, seed, fake_history, fake_target)

    def protocol(self) -> dict[str, Any]:
        return {"label": "MovieLens: rating >= 4 is Yes; LastFM/Steam: real next item (Yes) or a random unseen "
                         "item (No), 1/2 each",
                "auc": "ROC AUC of P(Yes) renormalised over the tokenizer's ' Yes'/' No' ids",
                "asr": "share of clean 'No' answers turned 'Yes' by the trigger in the target title; "
                       "denominator n_no"}

    def _states(self, samples: Sequence[TallrecSample], desc: str) -> list[torch.Tensor]:
        return self.store.get([self.lm.encode(tallrec_prompt(s, self.data)) for s in samples], desc=desc)

    def examples(self, samples: Sequence[TallrecSample]) -> list[Example]:
        states = self._states(samples, "frozen layers (train)")
        return [Example(st, (st.shape[0] - 1,), (self.yes_id if s.label else self.no_id,))
                for st, s in zip(states, samples, strict=True)]

    def p_yes(self, samples: Sequence[TallrecSample], batch_size: int | None = None) -> np.ndarray:
        """P(Yes) renormalised over {Yes, No}; the answer is Yes when it exceeds ½."""
        return self.p_yes_texts([tallrec_prompt(s, self.data) for s in samples], batch_size)

    def p_yes_texts(self, prompts: Sequence[str], batch_size: int | None = None,
                    desc: str = "frozen layers (eval)") -> np.ndarray:
        """P(Yes) of ready-made prompt texts (``prompts.tallrec_text``): what a defense's request asks."""
        if not prompts:
            return np.zeros(0)
        states = self.store.get([self.lm.encode(p) for p in prompts], desc=desc)
        logits = self.lm.next_token_logits(states, batch_size or self.batch_size)
        pair = logits[:, [self.yes_id, self.no_id]]
        return torch.softmax(pair, dim=1)[:, 0].numpy()

    def answer_clean(self, test: Sequence[TallrecSample]) -> TallrecAnswers:
        return TallrecAnswers(self.p_yes(test), [s.label for s in test])

    def answer_triggered(self, test: Sequence[TallrecSample], trigger: TextTrigger,
                         seed: int) -> TallrecTriggeredAnswers:
        triggered = trigger_test_tallrec(list(test), self.data, trigger, seed)
        return TallrecTriggeredAnswers(self.p_yes(triggered), [s.label for s in triggered])
