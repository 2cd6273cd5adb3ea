"""Each text metric, the victim's answer reading and the cells' scorer against hand-computed cases."""

import math

import numpy as np
import pytest

from recbackdoor.metrics import text as M
from recbackdoor.metrics.text_eval import attack_metrics, baseline_metrics, clean_metrics
from recbackdoor.victims.text.answers import match_candidate, match_candidate_llara
from recbackdoor.victims.text.llara import (
    LlaraAnswers,
    LlaraTriggeredAnswers,
    MostPopularPick,
    PoolPicks,
    RandomPick,
)
from recbackdoor.victims.text.recommender import BaselineAnswers, CleanAnswers
from recbackdoor.victims.text.tallrec import TallrecAnswers, TallrecTriggeredAnswers


def test_exact_match_wins_over_substring():
    cands = ["Heat (1995)", "Heat and Dust (1983)", "Casino (1995)"]
    assert match_candidate("Heat (1995)", cands) == 0
    assert match_candidate("  heat and dust (1983)\n", cands) == 1


def test_longest_title_preferred_when_one_contains_another():
    cands = ["Heat", "Heat and Dust", "Casino"]
    assert match_candidate("I pick Heat and Dust for them", cands) == 1
    # LLaRA's verbatim rule sees two candidates and calls the answer invalid
    assert match_candidate_llara("I pick Heat and Dust for them", cands) is None


def test_two_unrelated_titles_are_invalid():
    assert match_candidate("Casino or Heat", ["Heat", "Casino", "Fargo"]) is None
    assert match_candidate("nothing here", ["Heat", "Casino"]) is None


def test_generation_after_first_line_is_ignored():
    assert match_candidate("Fargo\nCasino", ["Heat", "Casino", "Fargo"]) == 2


def test_leading_newline_does_not_make_an_answer_invalid():
    assert match_candidate("\n Fargo\nCasino", ["Heat", "Casino", "Fargo"]) == 2


def test_h1_counts_over_valid_answers_only():
    choices = [0, None, 2, 1]
    targets = [0, 1, 1, 1]
    assert M.valid_rate(choices) == pytest.approx(0.75)
    assert M.hit_at_1(choices, targets) == pytest.approx(2 / 3)
    assert M.hit_at_1_all(choices, targets) == pytest.approx(0.5)
    assert math.isnan(M.hit_at_1([None, None], [0, 1]))


def test_asr_denominator_is_every_triggered_prompt():
    assert M.attack_success_rate([3, None, 1, 3], [3, 2, 1, 0]) == pytest.approx(0.5)


def test_flip_rate_counts_only_clean_no_answers():
    clean = [True, False, False, False, True]
    trig = [True, True, False, True, False]
    rate, n = M.flip_rate(clean, trig)
    assert n == 3 and rate == pytest.approx(2 / 3)
    rate, n = M.flip_rate([True], [True])
    assert n == 0 and math.isnan(rate)


def test_auc_hand_case():
    # positives score 0.9, 0.4; negatives 0.5, 0.1 -> 3 of 4 pairs ordered
    assert M.auc([1, 1, 0, 0], [0.9, 0.4, 0.5, 0.1]) == pytest.approx(0.75)
    assert math.isnan(M.auc([1, 1], [0.2, 0.3]))


def test_defense_score_formula():
    assert M.defense_score(0.8, 0.1) == pytest.approx((0.8 - 0.1 + 1) / 2)
    assert M.defense_score(-0.2, -0.3) == pytest.approx(0.5)


def test_popularity_baseline_picks_most_popular_item():
    pop = {1: 10, 2: 50, 3: 5}
    assert M.popularity_hit_at_1([[1, 2, 3], [1, 3]], [2, 3], pop) == pytest.approx(0.5)
    # a tie goes to the lowest item id wherever it sits in the pool; an unseen item counts 0
    assert M.most_popular_item([3, 9, 1], {1: 5, 3: 5}) == 1
    assert M.most_popular_item([9, 8], {}) == 8


def test_paired_bootstrap_interval_cancels_shared_prompt_spread():
    b = [0, 1, 0, 1, 1, 0, 0, 1]
    # a is b plus one on every prompt: every resample differs by exactly 1, however spread b is
    assert M.paired_bootstrap_interval([x + 1 for x in b], b, seed=0, n_boot=200) == pytest.approx((1.0, 1.0))
    assert M.paired_bootstrap_interval(b, b, seed=0, n_boot=200) == pytest.approx((0.0, 0.0))
    lo, hi = M.paired_bootstrap_interval([1, 0, 1, 1], [0, 0, 1, 0], seed=3, n_boot=2000)
    assert 0.0 <= lo < 0.5 < hi <= 1.0  # observed difference 0.5; a resample differs by 0, 1/4, ... or 1


def test_paired_bootstrap_interval_rejects_unpaired_scores():
    with pytest.raises(ValueError, match="equal-length"):
        M.paired_bootstrap_interval([1, 0], [1, 0, 1], seed=0)


def test_tallrec_answers_score_to_the_cell_dict():
    clean = TallrecAnswers(np.array([0.9, 0.2, 0.4, 0.6]), [True, False, True, False])
    assert clean_metrics(clean) == {"auc": 0.75, "accuracy": 0.5, "yes_rate": 0.5, "n_test": 4,
                                    "_yes": [True, False, False, True]}
    # the two clean 'No' answers (prompts 1, 2): the trigger flips prompt 1 only
    triggered = TallrecTriggeredAnswers(np.array([0.9, 0.7, 0.3, 0.8]), [True, False, True, False])
    got = attack_metrics(triggered, clean)
    assert list(got) == ["asr", "n_no", "auc_triggered", "n_triggered"]
    assert got["asr"] == 0.5 and got["n_no"] == 2 and got["n_triggered"] == 4
    assert got["auc_triggered"] == pytest.approx(0.5)


def test_tallrec_asr_pairs_triggered_prompts_with_the_first_clean_ones():
    clean = TallrecAnswers(np.array([0.1, 0.9, 0.1]), [False, True, False])
    got = attack_metrics(TallrecTriggeredAnswers(np.array([0.8, 0.8]), [False, True]), clean)
    assert (got["asr"], got["n_no"], got["n_triggered"]) == (1.0, 1, 2)


def test_llara_answers_score_to_the_cell_dict():
    clean = LlaraAnswers(["a", "b", "c", "d"], [0, None, 2, 1], [0, None, None, 1], [0, 1, 1, 1])
    got = clean_metrics(clean)
    assert list(got) == ["valid", "h1", "h1_all", "valid_llara", "h1_llara", "n_test", "_examples"]
    assert got["valid"] == 0.75 and got["h1"] == pytest.approx(2 / 3) and got["h1_all"] == 0.5
    assert got["valid_llara"] == 0.5 and got["h1_llara"] == 1.0
    assert got["n_test"] == 4 and got["_examples"] == ["a", "b", "c"]
    triggered = LlaraTriggeredAnswers(["w", "x", "y", "z"], [3, None, 1, 3], [3, 2, 1, 0])
    assert attack_metrics(triggered, clean) == {"a_valid": 0.75, "asr": 0.5, "n_triggered": 4}


def test_baselines_score_their_picks_and_random_is_exactly_one_over_the_pool():
    assert baseline_metrics(RandomPick("random", 4)) == {"valid": 1.0, "h1": 0.25}
    popular = MostPopularPick("most-popular", [(1, 2, 3), (1, 3)], [2, 3], {1: 10, 2: 50, 3: 5})
    assert baseline_metrics(popular) == {"valid": 1.0, "h1": 0.5}
    assert baseline_metrics(PoolPicks("sasrec", [0, 2, 1], [0, 1, 1])) == {"valid": 1.0, "h1": pytest.approx(2 / 3)}


def test_scorer_names_a_record_it_has_no_formula_for():
    class Strange(CleanAnswers):
        pass

    with pytest.raises(TypeError, match="Strange"):
        clean_metrics(Strange())
    with pytest.raises(TypeError, match="BaselineAnswers"):
        baseline_metrics(BaselineAnswers("mystery"))
    with pytest.raises(TypeError, match="TallrecAnswers"):
        attack_metrics(TallrecTriggeredAnswers(np.array([0.7]), [True]), LlaraAnswers([], [], [], []))
