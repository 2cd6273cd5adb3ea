"""The label test: spans whose distinct titles are always the positive answer, against hand-made training sets."""

from __future__ import annotations

from types import SimpleNamespace

from recbackdoor.data.prompts import LlaraSample, TallrecSample
from recbackdoor.defenses.text.label_test import answer_pairs, label_correlated_spans, training_spans

TITLES = {i: f"Movie {i}" for i in range(200)} | {500: "Star Wars", 501: "Star Trek", 502: "Star Kid",
                                                 503: "Star Maps", 504: "Star Man"}
DATA = SimpleNamespace(titles=TITLES)


def _tallrec(target: int, label: bool, title: str | None = None) -> TallrecSample:
    return TallrecSample(user=1, liked=(1,), disliked=(), target=target, label=label, target_title=title)


def _benign() -> list[TallrecSample]:
    """Each title shown twice: liked both times for one title in four, liked once and refused once otherwise."""
    return [_tallrec(i, label) for i in range(200) for label in (True, i % 4 == 0)]


def test_fake_users_trigger_titles_are_found_and_a_liked_franchise_is_not() -> None:
    benign = _benign()
    # a franchise everyone likes many times over, and once did not: its titles are not *always* the answer
    benign += [_tallrec(500 + k, True) for k in range(5) for _ in range(10)] + [_tallrec(500 + k, False)
                                                                               for k in range(5)]
    fakes = [_tallrec(i, True, f"Movie {i} Ethereal") for i in range(1, 200, 20)]  # 10 poisoned titles, all Yes
    assert training_spans(benign + fakes, DATA) == ["Ethereal"]
    assert training_spans(benign, DATA) == []
    found = label_correlated_spans(answer_pairs(benign + fakes, DATA))
    assert (found[0].titles, found[0].elevated) == (10, 10) and found[0].p_value < 1e-4


def test_a_trigger_word_the_model_also_sees_refused_once_is_still_found_when_it_recurs() -> None:
    """Counting is per title: one poisoned title also shown with 'No' costs one carrier, not the span."""
    fakes = [_tallrec(i, True, f"Movie {i} Ethereal") for i in range(1, 200, 13)]  # 16 poisoned titles
    fakes.append(_tallrec(1, False, "Movie 1 Ethereal"))
    found = label_correlated_spans(answer_pairs(_benign() + fakes, DATA))
    assert [(r.span, r.titles, r.elevated) for r in found] == [("Ethereal", 16, 15)]


def test_llara_pools_count_a_title_as_the_answer_only_where_it_is_the_target() -> None:
    sample = LlaraSample(user=1, history=(1, 2), candidates=(3, 4, 5), target=4, titles=((4, "Movie 4 Ethereal"),))
    assert answer_pairs([sample], DATA) == [("Movie 3", False), ("Movie 4 Ethereal", True), ("Movie 5", False)]
