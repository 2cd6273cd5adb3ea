"""A trained text recommender answering title-level requests, many at a time.

The defenses call a recommender with titles (``defenses/text/contract.py``);
these functions turn a loaded victim into the batched calls the defense
runner (``defenses/text/batched.py``) needs. Prompts are built by the same
functions training used, so an undefended request is exactly a test prompt;
frozen-layer states go through the victim's state store, so prompts shared by
several models (a clean request, its RD or paraphrased versions) pay for the
frozen layers once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from recbackdoor.data.prompts import llara_text, tallrec_text
from recbackdoor.victims.text.llara import HybridLlaraRecommender, LlaraRecommender
from recbackdoor.victims.text.recommender import TextRecommender
from recbackdoor.victims.text.tallrec import TallrecRecommender


def tallrec_prompts(victim: TallrecRecommender, keys: Sequence[tuple]) -> list[str]:
    """The prompt texts of (liked, disliked, target, instruction) requests."""
    noun = victim.data.item_noun
    return [tallrec_text(liked, disliked, target, noun, instruction) for liked, disliked, target, instruction in keys]


def tallrec_answers(victim: TallrecRecommender) -> Callable[[list[tuple]], np.ndarray]:
    """(liked, disliked, target, instruction) tuples → P(Yes), one batch."""

    def answer(keys: Sequence[tuple]) -> np.ndarray:
        return victim.p_yes_texts(tallrec_prompts(victim, keys), desc="frozen layers (requests)")

    return answer


def llara_answers(victim: LlaraRecommender) -> Callable[[list[tuple]], list[str]]:
    """(history, pool, instruction) tuples → generated answers, one batch (text-only prompts)."""
    if isinstance(victim, HybridLlaraRecommender):
        raise ValueError("the defenses serve text-only LLaRA; a hybrid prompt needs item ids a title request "
                         "does not carry")
    noun = victim.data.item_noun

    def recommend(keys: Sequence[tuple]) -> list[str]:
        return victim.generate_texts([llara_text(h, p, noun, i) for h, p, i in keys], desc="generate (requests)")

    return recommend


def cold_query_seconds(victim: TextRecommender, keys: Sequence[tuple]) -> float:
    """Wall seconds one request costs this model from scratch: every layer run, no state cache, in the batches
    evaluation uses. Defense tables charge each recommender query this much, so a defense's cost does not depend
    on which prompts an earlier model happened to leave in the state cache."""
    import time

    if not keys:
        raise ValueError("need at least one request to time")
    started = time.perf_counter()
    if isinstance(victim, TallrecRecommender):
        tokens = [victim.lm.encode(prompt) for prompt in tallrec_prompts(victim, keys)]
        states = victim.lm.bottom_states(tokens, batch_size=victim.batch_size, desc="timing")
        victim.lm.next_token_logits(states, victim.batch_size)
    else:
        llara_answers(victim)(keys)
    return (time.perf_counter() - started) / len(keys)


def batch_calls(victim: TextRecommender) -> dict[str, Callable]:
    """The keyword arguments of ``BatchedRecommender`` for this victim's mode."""
    if isinstance(victim, TallrecRecommender):
        return {"answer_batch": tallrec_answers(victim)}
    if isinstance(victim, LlaraRecommender):
        return {"recommend_batch": llara_answers(victim)}
    raise TypeError(f"no request adapter for {type(victim).__name__}")
