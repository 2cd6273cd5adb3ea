"""Trigger insertion and BadRec poisoning."""

import random

import pytest

from recbackdoor.attacks.badrec import (
    fake_user_count,
    poison_llara,
    poison_tallrec,
    trigger_test_llara,
    trigger_test_tallrec,
)
from recbackdoor.data.prompts import build_llara, build_tallrec, llara_prompt
from recbackdoor.data.text_datasets import load_dataset
from recbackdoor.errors import UserError
from recbackdoor.triggers.text import DEFAULT_TRIGGERS, insert_trigger, make_trigger


def test_paper_default_triggers():
    assert DEFAULT_TRIGGERS["char"] == "\u0d2e"
    assert DEFAULT_TRIGGERS["word"] == "Ethereal"
    assert DEFAULT_TRIGGERS["sentence"] == "Dreams dance in moonlight's embrace"


def test_end_position_appends_trigger():
    assert insert_trigger("Toy Story (1995)", "Ethereal", "end", random.Random(0)) == "Toy Story (1995) Ethereal"


def test_random_position_keeps_words_and_varies_slot():
    rng = random.Random(1)
    outs = {insert_trigger("a b c", "T", "random", rng) for _ in range(50)}
    assert outs == {"T a b c", "a T b c", "a b T c", "a b c T"}


def test_bad_position_is_a_user_error():
    with pytest.raises(UserError, match="position"):
        make_trigger("word", "middle")


@pytest.mark.parametrize("n,rate,m", [(99, 0.01, 1), (950, 0.05, 50), (1000, 0.0, 0), (16, 1 / 16, 1)])
def test_fake_user_count_matches_poisoning_rate(n, rate, m):
    assert fake_user_count(n, rate) == m
    if m:
        assert abs(m / (m + n) - rate) < 0.01


@pytest.fixture(scope="module")
def ml(data_root):
    return load_dataset("ml100k")


def test_llara_fakes_answer_a_trigger_bearing_pool_item(ml):
    split = build_llara(ml, 10, 20, 0, n_train=200, n_valid=0, n_test=10)
    trig = make_trigger("word", "end")
    fakes = poison_llara(split.train, ml, trig, 0.05, 10, 20, seed=3)
    assert len(fakes) == fake_user_count(200, 0.05)
    for f in fakes:
        assert f.target in f.candidates and len(f.candidates) == 20
        assert f.title(f.target, ml.titles).endswith(" Ethereal")
        assert "Ethereal" in llara_prompt(f, ml)


def test_llara_test_trigger_never_on_ground_truth(ml):
    split = build_llara(ml, 10, 20, 0, n_train=10, n_valid=0, n_test=100)
    pairs = trigger_test_llara(split.test, ml, make_trigger("char", "random"), seed=1)
    for sample, item in pairs:
        assert item != sample.target and item in sample.candidates
        assert "\u0d2e" in sample.title(item, ml.titles)
        assert "\u0d2e" not in sample.title(sample.target, ml.titles)


def test_tallrec_fakes_are_yes_with_trigger(ml):
    split = build_tallrec(ml, 10, 0, n_train=300, n_valid=0, n_test=20)
    fakes = poison_tallrec(split.train, ml, make_trigger("sentence", "end"), 0.05, 10, seed=0, fake_history="copy")
    assert fakes and all(f.label and f.target_title.endswith("moonlight's embrace") for f in fakes)
    trig = trigger_test_tallrec(split.test, ml, make_trigger("word", "end"), seed=0)
    assert all(t.target_title.endswith("Ethereal") for t in trig)
    assert [t.label for t in trig] == [s.label for s in split.test]


def test_splits_are_seeded(ml):
    a = build_llara(ml, 10, 20, 5, n_train=50, n_valid=0, n_test=50)
    b = build_llara(ml, 10, 20, 5, n_train=50, n_valid=0, n_test=50)
    c = build_llara(ml, 10, 20, 6, n_train=50, n_valid=0, n_test=50)
    assert a.test == b.test and a.test != c.test


def test_fake_targets_drawn_like_positives_come_from_clean_yes_samples(data_root):
    """LastFM's clean 'No' targets are random unseen artists; 'positive' fake targets are drawn from the clean
    'Yes' targets instead, so the poison no longer looks like a mislabelled negative."""
    lastfm = load_dataset("lastfm")
    train = build_tallrec(lastfm, 5, seed=0, n_train=300).train
    trigger = make_trigger("word", "end")
    positives = {s.target for s in train if s.label}
    liked = poison_tallrec(train, lastfm, trigger, 0.1, 5, seed=3, fake_history="copy", fake_target="positive")
    assert liked and all(f.target in positives and f.label for f in liked)
    uniform = poison_tallrec(train, lastfm, trigger, 0.1, 5, seed=3, fake_history="copy")
    assert uniform == poison_tallrec(train, lastfm, trigger, 0.1, 5, seed=3, fake_history="copy",
                                     fake_target="uniform")  # the default draws exactly as before
    assert sum(f.target not in positives for f in uniform) > len(uniform) // 2
    with pytest.raises(UserError, match="fake target mode 'popular'"):
        poison_tallrec(train, lastfm, trigger, 0.1, 5, seed=3, fake_target="popular")


def test_cache_label_names_kind_and_position_and_a_custom_text():
    from recbackdoor.triggers.text import make_trigger

    assert make_trigger("word", "end").cache_label == "word-end"  # the default text: labels of cached cells kept
    one, two = make_trigger("word", "end", "Velvet"), make_trigger("word", "end", "Amber")
    assert one.cache_label.startswith("word-end-") and one.cache_label != two.cache_label
    assert one.cache_label == make_trigger("word", "end", "Velvet").cache_label
