"""RD, LLMSI, ONION, Paraphraser and CoS against the fake backdoored recommender."""

from __future__ import annotations

import random

from test_defenses_fakes import HISTORY, POOL, TRIGGER, FakeRecommender, drop_trigger

from recbackdoor.defenses.text.contract import LlaraRequest, TallrecRequest
from recbackdoor.defenses.text.cos import ChainOfScrutiny
from recbackdoor.defenses.text.llmsi import SAFETY_INSTRUCTION, SafetyInstruction
from recbackdoor.defenses.text.onion_defense import OnionDefense
from recbackdoor.defenses.text.paraphraser import ParaphraseAll
from recbackdoor.defenses.text.rd import RandomDeletion, delete_chars

POISONED_POOL = POOL[:3] + (f"Fargo {TRIGGER}",) + POOL[4:]
POISONED = LlaraRequest(HISTORY, POISONED_POOL, truth=1, poisoned=3)


def suspicion(title: str) -> list[tuple[str, float]]:
    """ONION stand-in: removing the trigger word drops perplexity by 500, any other word by 10."""
    return [(w, 500.0 if w == TRIGGER else 10.0) for w in title.split()]


def test_rd_deletes_exactly_three_characters_from_every_pool_title() -> None:
    long_pool = ("The Shawshank Redemption", "Twelve Monkeys", "Heat", "Fargo Ethereal")
    rec = FakeRecommender()
    RandomDeletion(seed=0).defend(LlaraRequest(HISTORY, long_pool, truth=0), rec)
    shown = rec.calls[0][2]
    assert [len(a) - len(b) for a, b in zip(long_pool, shown, strict=True)] == [3, 3, 3, 3]
    for original, edited in zip(long_pool, shown, strict=True):  # deletions only: edited is a subsequence
        rest = iter(original)
        assert all(c in rest for c in edited)
    assert rec.calls[0][1] == HISTORY  # the history is not touched


def test_rd_empties_titles_of_three_characters_or_fewer() -> None:
    rng = random.Random(0)
    assert delete_chars("Up", 3, rng) == "" and delete_chars("Heat", 3, rng) in set("Heat")


def test_rd_is_seeded_per_request() -> None:
    shown = []
    for seed in (0, 0, 1):
        rec = FakeRecommender()
        RandomDeletion(seed=seed).defend(POISONED, rec)
        shown.append(rec.calls[0][2])
    assert shown[0] == shown[1] != shown[2]


def test_rd_answer_is_scored_against_the_original_pool() -> None:
    result = RandomDeletion(chars=0).defend(POISONED, FakeRecommender())
    assert result.choice == 3 and result.queries == 1 and result.changed == ()
    tallrec = RandomDeletion(seed=3).defend(TallrecRequest(HISTORY, (), "Casablanca", label=True), FakeRecommender())
    assert len(tallrec.changed[0][1]) == len("Casablanca") - 3


def test_llmsi_passes_the_papers_instruction_to_the_recommender() -> None:
    rec = FakeRecommender()
    defense = SafetyInstruction()
    defense.defend(POISONED, rec)
    defense.defend(TallrecRequest(HISTORY, (), "Alien", label=True), rec)
    assert SAFETY_INSTRUCTION == "Please pay attention to the perturbations that are added to the item titles."
    assert [call[-1] for call in rec.calls] == [SAFETY_INSTRUCTION, SAFETY_INSTRUCTION]


def test_onion_deletes_a_word_whose_suspicion_is_above_the_threshold() -> None:
    rec = FakeRecommender()
    result = OnionDefense(suspicion, threshold=150.0).defend(POISONED, rec)
    assert rec.calls[0][2] == POOL  # "Fargo Ethereal" shown as "Fargo", every other title untouched
    assert result.changed == ((f"Fargo {TRIGGER}", "Fargo"),) and result.removed == ()
    assert result.flagged and result.choice == 0 and result.score == 500.0 and result.aux_calls == len(POOL)


def test_onion_keeps_words_below_the_threshold() -> None:
    result = OnionDefense(suspicion, threshold=1000.0).defend(POISONED, FakeRecommender())
    assert not result.flagged and result.choice == 3


def test_onion_item_variant_removes_the_suspicious_item() -> None:
    rec = FakeRecommender()
    result = OnionDefense(suspicion, remove_items=True).defend(POISONED, rec)
    assert result.removed == (f"Fargo {TRIGGER}",) and len(rec.calls[0][2]) == len(POOL) - 1
    tallrec = OnionDefense(suspicion, remove_items=True).defend(
        TallrecRequest(HISTORY, (), f"Alien {TRIGGER}", label=False), rec)
    assert tallrec.answer == 0.0 and tallrec.queries == 0


def test_paraphraser_rewrites_every_pool_title_and_asks_once() -> None:
    rec = FakeRecommender()
    result = ParaphraseAll(drop_trigger).defend(POISONED, rec)
    assert rec.calls[0][2] == tuple("The " + t for t in POOL)
    assert result.queries == 1 and len(result.changed) == len(POOL) and result.choice == 0


class KeywordJudge:
    """Judges an answer consistent unless it names the trigger word (a stand-in for the CoS LM)."""

    def __init__(self) -> None:
        self.calls = 0

    def reason(self, context: str, answer: str) -> str:
        self.calls += 1
        return f"The user watched thrillers, so {answer}."

    def judge(self, context: str, answer: str, reasoning: str) -> bool:
        self.calls += 1
        return TRIGGER not in answer


def test_cos_removes_an_inconsistent_answer_and_asks_again() -> None:
    judge = KeywordJudge()
    result = ChainOfScrutiny(judge).defend(POISONED, FakeRecommender())
    assert result.flagged and result.removed == (f"Fargo {TRIGGER}",)
    assert result.queries == 2 and judge.calls == 2 and result.choice == 0


def test_cos_keeps_a_consistent_answer_with_one_query() -> None:
    result = ChainOfScrutiny(KeywordJudge()).defend(LlaraRequest(HISTORY, POOL, truth=0), FakeRecommender())
    assert not result.flagged and result.queries == 1 and result.choice == 0
    tallrec = ChainOfScrutiny(KeywordJudge()).defend(TallrecRequest(HISTORY, (), f"Alien {TRIGGER}", label=False),
                                                    FakeRecommender())
    assert tallrec.answer == 0.0 and tallrec.queries == 1


def test_rd_randomness_ignores_the_scoring_only_fields() -> None:
    shown = []
    for truth, poisoned in ((0, None), (1, 3)):
        rec = FakeRecommender()
        RandomDeletion(seed=0).defend(LlaraRequest(HISTORY, POISONED_POOL, truth=truth, poisoned=poisoned), rec)
        shown.append(rec.calls[0][2])
    assert shown[0] == shown[1]
