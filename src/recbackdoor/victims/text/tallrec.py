"""TALLRec mode: "will this user like X?" answered Yes / No by the LM.

P(Yes) is read from the next-token logits of the backbone's **own** tokenizer
ids for " Yes" and " No" (looked up, never hard-coded — the TALLRec code's
fixed ids break silently on another base model).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from recbackdoor.data.prompts import TALLREC_ANSWERS, TallrecSample, tallrec_prompt
from recbackdoor.data.sequences import SequenceData
from recbackdoor.errors import UserError
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


class TallrecRecommender:
    def __init__(self, lm: SplitLM, data: SequenceData, store: StateStore) -> None:
        self.lm, self.data, self.store = lm, data, store
        self.yes_id, self.no_id = answer_token_ids(lm.tokenizer)

    def _states(self, samples: Sequence[TallrecSample], desc: str) -> list[torch.Tensor]:
        return self.store.get([self.lm.encode(tallrec_prompt(s, self.data)) for s in samples], desc=desc)

    def examples(self, samples: Sequence[TallrecSample]) -> list[Example]:
        states = self._states(samples, "frozen layers (train)")
        return [Example(st, (st.shape[0] - 1,), (self.yes_id if s.label else self.no_id,))
                for st, s in zip(states, samples, strict=True)]

    def p_yes(self, samples: Sequence[TallrecSample], batch_size: int = 32) -> np.ndarray:
        """P(Yes) renormalised over {Yes, No}; the answer is Yes when it exceeds ½."""
        logits = self.lm.next_token_logits(self._states(samples, "frozen layers (eval)"), batch_size)
        pair = logits[:, [self.yes_id, self.no_id]]
        return torch.softmax(pair, dim=1)[:, 0].numpy()
