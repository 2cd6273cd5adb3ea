"""P-Scanner purification (eq. 9), the precomputed flag table, and the training-time filter."""

from __future__ import annotations

import pytest
from test_defenses_fakes import HISTORY, POOL, TRIGGER, FakeRecommender, FakeScanner

from recbackdoor.defenses.text.contract import LlaraRequest, TallrecRequest
from recbackdoor.defenses.text.pscanner_defense import FlagLookup, PScannerDefense
from recbackdoor.defenses.text.train_time_filter import TrainTimePScanner, filter_training

POISONED = LlaraRequest(HISTORY, POOL[:3] + (f"Fargo {TRIGGER}",) + POOL[4:], truth=1, poisoned=3)


def test_pscanner_removes_exactly_the_flagged_items_and_asks_once() -> None:
    rec = FakeRecommender()
    result = PScannerDefense(FakeScanner()).defend(POISONED, rec)
    assert result.removed == (f"Fargo {TRIGGER}",) and result.flagged
    assert rec.calls[0][2] == tuple(t for t in POISONED.pool if TRIGGER not in t)
    assert result.queries == 1 and result.choice == 0


def test_pscanner_leaves_a_clean_pool_alone() -> None:
    result = PScannerDefense(FakeScanner()).defend(LlaraRequest(HISTORY, POOL, truth=2), FakeRecommender())
    assert not result.flagged and result.removed == () and result.queries == 1


def test_pscanner_answers_a_flagged_tallrec_target_no_without_a_query() -> None:
    rec = FakeRecommender()
    result = PScannerDefense(FakeScanner()).defend(TallrecRequest(HISTORY, (), f"Alien {TRIGGER}", label=False), rec)
    assert result.answer == 0.0 and result.queries == 0 and rec.calls == []
    assert PScannerDefense(FakeScanner()).defend(TallrecRequest(HISTORY, (), "Alien", label=True), rec).queries == 1


def test_pscanner_asks_nothing_when_every_candidate_is_flagged() -> None:
    request = LlaraRequest(HISTORY, (f"Heat {TRIGGER}", f"Alien {TRIGGER}"), truth=0)
    result = PScannerDefense(FakeScanner()).defend(request, FakeRecommender())
    assert result.queries == 0 and result.choice is None and len(result.removed) == 2


def test_flag_lookup_answers_from_its_table_and_falls_back_once_per_new_title() -> None:
    scanner = FakeScanner()
    lookup = FlagLookup.precompute(scanner, POISONED.pool)
    assert scanner.calls == 1
    assert lookup.flag(POISONED.pool).tolist() == [False, False, False, True, False, False]
    assert scanner.calls == 1  # a pure lookup
    assert lookup.flag([f"Up {TRIGGER}", f"Up {TRIGGER}"]).tolist() == [True, True] and scanner.calls == 2
    with pytest.raises(KeyError, match="'Unseen'"):
        FlagLookup({"Heat": False}).flag(["Unseen"])


def test_pscanner_variant_names_are_checked() -> None:
    assert PScannerDefense(FakeScanner(), name="p-scanner-wo-ft").name == "p-scanner-wo-ft"
    with pytest.raises(ValueError, match="not one of"):
        PScannerDefense(FakeScanner(), name="p-scanner-train-time")


def test_train_time_filter_drops_exactly_the_examples_with_a_flagged_item() -> None:
    examples = [
        {"history": ("Heat",), "target": "Alien"},
        {"history": ("Heat", f"Fargo {TRIGGER}"), "target": "Alien"},
        {"history": ("Brazil",), "target": f"Up {TRIGGER}"},
        {"history": (), "target": "Casablanca"},
    ]
    scanner = FakeScanner()
    report = filter_training(examples, lambda e: (*e["history"], e["target"]), scanner)
    assert report.kept == (examples[0], examples[3]) and report.dropped == (examples[1], examples[2])
    assert (report.n_kept, report.n_dropped) == (2, 2)
    assert report.flagged_titles == (f"Fargo {TRIGGER}", f"Up {TRIGGER}") and scanner.calls == 1


def test_train_time_defense_answers_requests_unchanged() -> None:
    defense = TrainTimePScanner(FakeScanner())
    result = defense.defend(POISONED, FakeRecommender())
    assert defense.stage == "training" and result.choice == 3 and result.removed == () and result.queries == 1
    assert defense.filter([("Heat",)], lambda e: e).n_kept == 1
