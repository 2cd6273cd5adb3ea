"""Batched replay: every defense gives the same answers and counts as when run one request at a time."""

from __future__ import annotations

import numpy as np
import pytest
from test_defenses_fakes import CATALOGUE, HISTORY, POOL, TRIGGER, FakeRecommender, FakeScanner, drop_trigger

from recbackdoor.defenses.text.batched import BatchedCalls, BatchedRecommender, Pending, run_batched
from recbackdoor.defenses.text.contract import LlaraRequest, TallrecRequest
from recbackdoor.defenses.text.cost import charge, ledger
from recbackdoor.defenses.text.defense_registry import make_defense
from recbackdoor.metrics import defense as D


def batched(fake: FakeRecommender) -> tuple[BatchedRecommender, list[int]]:
    """A BatchedRecommender over the fake, recording each batch's size."""
    sizes: list[int] = []

    def answers(keys):
        sizes.append(len(keys))
        return [fake.answer(*k) for k in keys]

    def recommends(keys):
        sizes.append(len(keys))
        return [fake.recommend(*k) for k in keys]

    return BatchedRecommender(answers, recommends), sizes


def requests() -> list:
    pools = [POOL, POOL[::-1], (f"Heat {TRIGGER}",) + POOL[1:], POOL[2:] + (f"Alien {TRIGGER}",)]
    llara = [LlaraRequest(HISTORY[: 1 + k % 3], pool, truth=1) for k, pool in enumerate(pools)]
    tallrec = [TallrecRequest(HISTORY[: 1 + k % 3], (), target, label=k % 2 == 0)
               for k, target in enumerate(["Heat", f"Fargo {TRIGGER}", "Alien", "Brazil"])]
    return llara + tallrec


@pytest.mark.parametrize("name,parts", [
    ("rd", {"seed": 3}), ("llmsi", {}), ("strip", {"catalogue": CATALOGUE, "runs": 4, "seed": 1}),
    ("rpd", {"paraphrase": drop_trigger}), ("paraphraser", {"paraphrase": drop_trigger}),
    ("p-scanner", {"scanner": FakeScanner()}),
])
def test_batched_run_matches_sequential_answers_and_counts(name: str, parts: dict) -> None:
    fake = FakeRecommender(follow_history=True)
    sequential = [make_defense(name, **parts).defend(r, fake) for r in requests()]
    rec, sizes = batched(FakeRecommender(follow_history=True))
    replayed = run_batched(make_defense(name, **parts), requests(), rec)
    for one, many in zip(sequential, replayed, strict=True):
        assert (one.answer, one.choice, one.flagged, one.removed, one.queries) == \
               (many.answer, many.choice, many.flagged, many.removed, many.queries)
    assert sum(sizes) <= sum(r.queries for r in sequential)  # each distinct prompt computed once
    assert max(sizes) > 1  # and several requests shared a batch


def test_paraphrases_are_batched_and_charged() -> None:
    para = BatchedCalls("paraphraser", lambda titles: [drop_trigger(t) for t in titles])
    rec, _ = batched(FakeRecommender())
    results = run_batched(make_defense("paraphraser", paraphrase=para), requests(), rec, [para])
    assert para.calls == len({t for r in requests() for t in (r.pool if isinstance(r, LlaraRequest)
                                                              else (r.target,))})
    assert all(r.seconds >= r.recommender_seconds >= 0 for r in results)
    assert not any(TRIGGER in r.answer for r in results[:4])


def test_undefended_is_one_query_per_request() -> None:
    rec, _ = batched(FakeRecommender())
    results = run_batched(None, requests(), rec)
    assert [r.queries for r in results] == [1] * len(requests())
    assert results[2].answer == f"Heat {TRIGGER}"


def test_a_store_raises_pending_until_flushed_then_charges_its_batch_time() -> None:
    store = BatchedCalls("double", lambda keys: [2 * k for k in keys])
    with pytest.raises(Pending):
        store(3)
    assert store.flush() == 1 and store.flush() == 0
    store.seconds[3] = 0.25
    with ledger() as outer, ledger() as inner:
        assert store(3) == 6
    assert outer.seconds == inner.seconds == 0.25
    with pytest.raises(ValueError):
        charge(-1.0)


def test_a_store_that_returns_the_wrong_count_is_an_error() -> None:
    store = BatchedCalls("broken", lambda keys: [])
    store.pending[1] = None
    with pytest.raises(RuntimeError, match="1 keys computed into 0"):
        store.flush()


def test_tallrec_rates_count_only_attackable_requests() -> None:
    rates = D.tallrec_rates([True, False, True, False], [0.9, 0.2, 0.7, 0.4], [0.9, 0.8, 0.3], [False, True, True])
    assert rates["asr"] == 0.5  # of requests 1 and 2 (attackable), only 1 says Yes
    assert rates["auc"] == 1.0


def test_llara_rates_by_hand() -> None:
    rates = D.llara_rates([0, None, 2, 1], [0, 1, 1, 1], [3, 3, None, 0], [3, 2, 1, 0])
    assert rates == {"valid": 0.75, "h1": pytest.approx(2 / 3), "a_valid": 0.75, "asr": 0.5}


def test_bootstrap_se_is_zero_for_a_defense_that_changes_nothing_and_positive_otherwise() -> None:
    rng = np.random.default_rng(0)
    hits = rng.random(50) < 0.4

    def same(ci, ti):
        return 1.0, 1.0, float(hits[ci].mean()), float(hits[ci].mean())

    assert D.bootstrap_score_se(same, 50, 20, seed=0) == 0.0
    asr = rng.random(20) < 0.5

    def halves(ci, ti):
        return 1.0, float(asr[ti].mean()), float(hits[ci].mean()), float(hits[ci].mean())

    se = D.bootstrap_score_se(halves, 50, 20, seed=0)
    assert 0.5 * 0.5 * np.sqrt(0.25 / 20) < se < 0.2  # ≈ ½·sqrt(p(1−p)/n) = 0.056
