"""The defense contract: requests, the counting wrapper, pool views, the registry."""

from __future__ import annotations

import pytest
from test_defenses_fakes import HISTORY, POOL, TRIGGER, FakeRecommender, FakeScanner

from recbackdoor.defenses.text.contract import (
    DEFENSE_NAMES,
    CountingRecommender,
    Defense,
    LlaraRequest,
    TallrecRequest,
)
from recbackdoor.defenses.text.cos import ChainOfScrutiny
from recbackdoor.defenses.text.defense_registry import DEFENSES, make_defense
from recbackdoor.defenses.text.pool_view import PoolView


class Rejecting:
    """A scrutineer that finds every answer inconsistent."""

    def reason(self, context: str, answer: str) -> str:
        return f"{answer} because of its title"

    def judge(self, context: str, answer: str, reasoning: str) -> bool:
        return False


def test_llara_request_rejects_indexes_outside_the_pool() -> None:
    with pytest.raises(ValueError, match="poisoned index 9"):
        LlaraRequest(HISTORY, POOL, truth=0, poisoned=9)
    assert LlaraRequest(HISTORY, POOL, truth=2).truth_title == "Casablanca"


def test_counter_counts_every_call_including_re_asks() -> None:
    request = LlaraRequest(HISTORY, POOL, truth=1)
    result = ChainOfScrutiny(Rejecting()).defend(request, FakeRecommender())
    assert result.flagged and result.removed == ("Heat",)
    assert result.queries == 2  # the first answer and the re-ask without it
    assert result.choice == 1 and result.answer == "Toy Story"


def test_counter_resets_per_request_even_when_the_wrapper_is_reused() -> None:
    counted = CountingRecommender(FakeRecommender())
    defense = ChainOfScrutiny(Rejecting())
    first = defense.defend(LlaraRequest(HISTORY, POOL, truth=0), counted)
    second = defense.defend(TallrecRequest(HISTORY, (), "Alien", label=False), counted)
    assert (first.queries, second.queries) == (2, 1)  # a TALLRec "No" is not scrutinised
    assert counted.queries == 1


def test_counted_seconds_cover_only_recommender_calls() -> None:
    counted = CountingRecommender(FakeRecommender())
    counted.recommend(HISTORY, POOL)
    counted.answer(HISTORY, (), "Alien")
    assert counted.queries == 2 and counted.seconds >= 0.0
    result = make_defense("llmsi").defend(LlaraRequest(HISTORY, POOL, truth=0), counted)
    assert 0.0 <= result.recommender_seconds <= result.seconds


def test_pool_view_maps_an_answer_back_to_the_original_index() -> None:
    view = PoolView.of(LlaraRequest(HISTORY, POOL, truth=0)).without([0, 2])
    assert view.titles == ("Toy Story", "Fargo", "Alien", "Brazil")
    assert view.resolve("Alien") == 4
    assert view.resolve("something else") is None
    assert view.removed_titles() == ("Heat", "Casablanca")
    edited = view.replaced(1, "Fargo!")
    assert edited.resolve("Fargo!") == 3 and edited.changed_titles() == (("Fargo", "Fargo!"),)


def test_a_defense_with_an_unknown_variant_name_is_refused() -> None:
    with pytest.raises(ValueError, match="not one of"):
        type("Bad", (Defense,), {"name": "my-defense"})


def test_registry_lists_every_results_json_name_and_builds_them() -> None:
    assert tuple(DEFENSES) == DEFENSE_NAMES
    scanner = FakeScanner()
    assert make_defense("p-scanner-wo-ta", scanner=scanner).name == "p-scanner-wo-ta"
    assert make_defense("p-scanner-train-time", scanner=scanner).stage == "training"
    assert make_defense("rd", chars=3, seed=1).stage == "inference"
    with pytest.raises(ValueError, match="did you mean 'strip'"):
        make_defense("stirp")
    with pytest.raises(TypeError):
        make_defense("rd", char=3)  # a misspelt setting is an error, not ignored


def test_tallrec_result_reads_yes_above_one_half() -> None:
    result = make_defense("llmsi").defend(TallrecRequest(HISTORY, (), f"Alien {TRIGGER}", label=False),
                                          FakeRecommender())
    assert result.yes and result.queries == 1 and result.choice is None


def test_requests_store_tuples_so_seeded_defenses_see_the_same_request() -> None:
    as_list = LlaraRequest(list(HISTORY), list(POOL), truth=0)
    assert as_list == LlaraRequest(HISTORY, POOL, truth=0) and isinstance(as_list.pool, tuple)
    assert TallrecRequest(["Heat"], [], "Alien", label=True).liked == ("Heat",)
