"""STRIP's entropy and RPD's paraphrase probes, and threshold calibration."""

from __future__ import annotations

import math
import random

import pytest
from test_defenses_fakes import CATALOGUE, HISTORY, POOL, TRIGGER, FakeRecommender, drop_trigger

from recbackdoor.defenses.text.calibration import calibrate_threshold
from recbackdoor.defenses.text.contract import LlaraRequest, TallrecRequest
from recbackdoor.defenses.text.rpd import RPD
from recbackdoor.defenses.text.strip_defense import StripDefense, answer_entropy, mean_binary_entropy

POISONED = LlaraRequest(HISTORY, POOL[:3] + (f"Fargo {TRIGGER}",) + POOL[4:], truth=1, poisoned=3)
CLEAN = LlaraRequest(HISTORY, POOL, truth=1)


def test_answer_entropy_is_zero_for_one_winner_and_one_when_all_differ() -> None:
    assert answer_entropy([3] * 10) == 0.0
    assert answer_entropy(list(range(10))) == pytest.approx(1.0)
    assert answer_entropy([1, 1, 2, 2]) == pytest.approx(math.log(2) / math.log(4))
    assert mean_binary_entropy([0.5, 0.5]) == pytest.approx(1.0) and mean_binary_entropy([1.0, 0.0]) == 0.0


def test_strip_entropy_is_low_when_one_item_wins_every_perturbed_history() -> None:
    rec = FakeRecommender(follow_history=True)
    result = StripDefense(CATALOGUE, runs=10).defend(POISONED, rec)
    assert result.score == 0.0 and result.flagged
    assert result.removed == (f"Fargo {TRIGGER}",) and result.choice != 3
    assert result.queries == 11 and TRIGGER not in " ".join(rec.calls[-1][2])  # the re-ask lacks the item
    assert rec.calls[-1][1] == HISTORY  # and uses the real history


def test_strip_entropy_is_high_when_answers_follow_the_history() -> None:
    result = StripDefense(CATALOGUE, runs=10).defend(CLEAN, FakeRecommender(follow_history=True))
    assert result.score > 0.4 and not result.flagged and result.removed == () and result.queries == 11


def test_strip_perturbs_a_share_of_the_history_with_catalogue_titles_seeded() -> None:
    strip = StripDefense(CATALOGUE, share=0.5)
    first = strip.perturb(HISTORY, random.Random(0), set())
    assert first == strip.perturb(HISTORY, random.Random(0), set())
    assert sum(a != b for a, b in zip(first, HISTORY, strict=True)) == 2  # ceil(0.5 * 3)
    assert all(t in CATALOGUE for t in first if t not in HISTORY)


def test_strip_tallrec_rejects_a_confident_yes_that_ignores_the_history() -> None:
    strip = StripDefense(CATALOGUE, runs=6)
    flagged = strip.defend(TallrecRequest(HISTORY, ("Heat",), f"Alien {TRIGGER}", label=False),
                           FakeRecommender(follow_history=True))
    assert flagged.flagged and flagged.answer == 0.0 and flagged.queries == 6
    clean = strip.defend(TallrecRequest(HISTORY, ("Heat",), "Alien", label=True), FakeRecommender(follow_history=True))
    assert not clean.flagged and clean.queries == 7


def test_rpd_flags_the_item_whose_paraphrase_changes_the_answer() -> None:
    rec = FakeRecommender()
    result = RPD(drop_trigger).defend(POISONED, rec)
    assert result.flagged and result.removed == (f"Fargo {TRIGGER}",) and result.score == 1.0
    assert result.queries == 1 + len(POOL) + 1 and result.choice == 0


def test_rpd_flags_nothing_when_no_paraphrase_moves_the_answer() -> None:
    result = RPD(drop_trigger).defend(CLEAN, FakeRecommender())
    assert not result.flagged and result.removed == () and result.queries == 1 + len(POOL)


def test_rpd_answer_scope_probes_only_the_recommended_item() -> None:
    result = RPD(drop_trigger, scope="answer").defend(POISONED, FakeRecommender())
    assert result.removed == (f"Fargo {TRIGGER}",) and result.queries == 3


def test_rpd_tallrec_rejects_a_target_whose_paraphrase_drops_p_yes() -> None:
    result = RPD(drop_trigger, threshold=0.5).defend(TallrecRequest(HISTORY, (), f"Alien {TRIGGER}", label=False),
                                                     FakeRecommender())
    assert result.answer == 0.0 and result.score == pytest.approx(0.69) and result.queries == 2


def test_calibrated_threshold_flags_at_most_the_budget_of_clean_scores() -> None:
    clean = [float(x) for x in range(100)]
    high = calibrate_threshold(clean, 0.05)
    assert sum(s > high for s in clean) == 5
    low = calibrate_threshold(clean, 0.05, low_flags=True)
    assert sum(s < low for s in clean) == 5
    assert sum(s > calibrate_threshold([1.0] * 10, 0.1) for s in [1.0] * 10) == 0  # ties never flag
