"""The catalogue-level recurrence test: a trigger shared by many modestly suspicious titles is found; benign words
and a phrase trigger's common words are not."""

import random

import numpy as np

from recbackdoor.defenses.text.recurrence import carries, find_recurring, spans_of


def _catalogue(seed: int = 0) -> tuple[list[str], list[float]]:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(300)]
    titles = [" ".join(rng.sample(words, 3)) + f" ({1950 + i % 50})" for i in range(600)]
    return titles, [rng.random() * 0.5 for _ in titles]  # benign scores, no word favoured


def test_a_span_whose_carriers_score_high_together_is_found_though_none_is_flagged():
    titles, scores = _catalogue()
    rng = random.Random(1)
    for i in range(30):  # the trigger inside 30 unrelated titles, each scoring below any 0.9 threshold
        words = titles[i].split(" ")
        words.insert(rng.randrange(len(words)), "\u0d2e")
        titles[i], scores[i] = " ".join(words), 0.6 + 0.2 * rng.random()
    found = find_recurring(titles, scores)
    assert [r.span for r in found] == ["\u0d2e"]
    assert found[0].titles == 30 and found[0].elevated == 30
    assert carries(titles, found).tolist() == [i < 30 for i in range(len(titles))]


def test_benign_catalogue_and_a_few_carriers_give_nothing():
    titles, scores = _catalogue()
    assert find_recurring(titles, scores) == []
    titles[:3] = [t + " Zap" for t in titles[:3]]  # three carriers: below min_titles
    scores[:3] = [0.99, 0.99, 0.99]
    assert find_recurring(titles, scores) == []


def test_a_phrase_takes_its_rare_word_not_the_common_one():
    titles, scores = _catalogue()
    for i in range(40, 80):  # 'in' is also in 40 benign titles with ordinary scores
        titles[i] = titles[i].replace(" (", " in (", 1)
    for i in range(30):
        titles[i] = f"{titles[i]} Dreams dance in moonlight"
        scores[i] = 0.95
    found = [r.span for r in find_recurring(titles, scores)]
    assert found and found[0] in {"Dreams", "dance", "moonlight"}
    assert "in" not in found
    assert carries(["a in b"], found).tolist() == [False]


def test_spans_are_whole_words_and_single_non_ascii_characters():
    assert spans_of("Top\u0d2e Gun (1986)") == {"Top\u0d2e", "Gun", "(1986)", "\u0d2e"}
    assert spans_of("") == set()
    assert find_recurring([], np.zeros(0)) == []


def test_a_span_that_rides_along_is_dropped_and_the_cause_is_still_found() -> None:
    """'Deluxe' and 'Saga' share their ten titles and tie on the counts; only taking 'Saga' out brings the scores
    down, so the removal check rejects 'Deluxe' (tried first: ties break by span order) and takes 'Saga'."""
    from recbackdoor.defenses.text.recurrence import SpanIndex, removal_check

    def score(titles):
        return np.array([0.8 if "Saga" in t.split() else 0.1 + 0.001 * (sum(map(ord, t)) % 200) for t in titles])

    titles = [f"Saga {i} Deluxe" for i in range(10)] + [f"Movie {i}" for i in range(90)]
    index = SpanIndex()
    for title, value in zip(titles, score(titles), strict=True):
        index.add(title, float(value))
    assert [r.span for r in index.recurring()] == ["Deluxe"]  # without the check the tie goes to 'Deluxe'
    high = [t for t, v in zip(titles, score(titles), strict=True) if v > index.quantile_of(0.9)]
    assert [r.span for r in index.recurring(confirm=removal_check(high, score))] == ["Saga"]
