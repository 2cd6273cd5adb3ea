"""A defended request reads exactly as the model was trained to read it (same prompt builders, titles only)."""

from __future__ import annotations

import pytest

from recbackdoor.attacks.badrec import trigger_test_llara, trigger_test_tallrec
from recbackdoor.data.prompts import build_llara, build_tallrec, llara_prompt, llara_text, tallrec_prompt, tallrec_text
from recbackdoor.defenses.text.llmsi import SAFETY_INSTRUCTION
from recbackdoor.defenses.text.requests import llara_request, sample_titles, tallrec_request
from recbackdoor.triggers.text import make_trigger


@pytest.fixture(scope="module")
def ml100k(data_root):
    from recbackdoor.data.text_datasets import load_dataset

    return load_dataset("ml100k")


def test_tallrec_request_prompt_equals_the_training_prompt_also_with_a_trigger(ml100k) -> None:
    test = build_tallrec(ml100k, 5, seed=0, n_train=4, n_valid=0, n_test=6).test
    triggered = trigger_test_tallrec(test, ml100k, make_trigger("word", "end"), seed=1)
    for sample in test + triggered:
        request = tallrec_request(sample, ml100k, poisoned=sample.target_title is not None)
        assert tallrec_text(request.liked, request.disliked, request.target, "movie") == tallrec_prompt(sample, ml100k)
    assert all(r.target.endswith("Ethereal") for r in (tallrec_request(s, ml100k) for s in triggered))


def test_llara_request_keeps_the_pool_order_truth_and_poisoned_index(ml100k) -> None:
    test = build_llara(ml100k, 5, 10, seed=0, n_train=4, n_valid=0, n_test=6).test
    for sample, item in trigger_test_llara(test, ml100k, make_trigger("char", "random"), seed=2):
        request = llara_request(sample, ml100k, item)
        assert llara_text(request.history, request.pool, "movie") == llara_prompt(sample, ml100k)
        assert request.pool[request.truth] == ml100k.titles[sample.target]
        assert request.poisoned != request.truth and request.pool[request.poisoned] != ml100k.titles[item]
        assert set(sample_titles(sample, ml100k)) == set(request.history) | set(request.pool)


def test_the_safety_instruction_opens_the_prompt_and_changes_nothing_else() -> None:
    plain = tallrec_text(["A"], [], "B", "movie")
    told = tallrec_text(["A"], [], "B", "movie", SAFETY_INSTRUCTION)
    assert told == f"{SAFETY_INSTRUCTION}\n{plain}"
    assert llara_text(["A"], ["B", "C"], "game", SAFETY_INSTRUCTION).startswith(SAFETY_INSTRUCTION + " This user")
