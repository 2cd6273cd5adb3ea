"""Test prompts as the requests a defense sees: titles only, the scoring fields kept apart.

The experiment builds its test prompts from item ids (``data/prompts.py``);
a defense in production sees titles. Converting here keeps the defenses free
of item ids, and the prompt text a defended request produces is the one the
model was trained on (both go through ``prompts.tallrec_text`` /
``prompts.llara_text``).
"""

from __future__ import annotations

from recbackdoor.data.prompts import LlaraSample, TallrecSample
from recbackdoor.data.sequences import SequenceData
from recbackdoor.defenses.text.contract import LlaraRequest, TallrecRequest


def tallrec_request(sample: TallrecSample, data: SequenceData, poisoned: bool = False) -> TallrecRequest:
    target = sample.target_title if sample.target_title is not None else data.titles[sample.target]
    return TallrecRequest(liked=tuple(data.titles[i] for i in sample.liked),
                          disliked=tuple(data.titles[i] for i in sample.disliked), target=target,
                          label=sample.label, poisoned=poisoned)


def llara_request(sample: LlaraSample, data: SequenceData, poisoned_item: int | None = None) -> LlaraRequest:
    return LlaraRequest(history=tuple(sample.title(i, data.titles) for i in sample.history),
                        pool=tuple(sample.title(i, data.titles) for i in sample.candidates),
                        truth=sample.candidates.index(sample.target),
                        poisoned=None if poisoned_item is None else sample.candidates.index(poisoned_item))


def sample_titles(sample: LlaraSample | TallrecSample, data: SequenceData) -> tuple[str, ...]:
    """Every item title a training sample shows the model (what the train-time filter scans)."""
    if isinstance(sample, TallrecSample):
        request = tallrec_request(sample, data)
        return request.liked + request.disliked + (request.target,)
    request = llara_request(sample, data)
    return request.history + request.pool
