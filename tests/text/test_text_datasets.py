"""Loaders on the real files, and missing / bad data."""

import shutil

import pytest

from recbackdoor.data.prompts import build_llara, build_tallrec
from recbackdoor.data.text_datasets import load_dataset, load_netflix_titles
from recbackdoor.errors import UserError


def test_ml100k_real_counts_and_timestamp_order(data_root):
    data = load_dataset("ml100k", min_user=1, min_item=1)
    assert data.stats() == {"users": 943, "items": 1682, "interactions": 100000}
    assert data.titles[1] == "Toy Story (1995)"
    assert "timestamp" in data.order
    assert any("Misérables" in t for t in data.titles.values())  # latin-1 decoded


def test_lastfm_and_steam_state_file_order(data_root):
    lastfm = load_dataset("lastfm", min_user=1, min_item=1)
    steam = load_dataset("steam", min_user=1, min_item=1)
    assert lastfm.stats()["users"] == 1892 and lastfm.stats()["interactions"] == 92834
    assert "file order" in lastfm.order and "file order" in steam.order
    assert steam.stats()["users"] <= 12393 and len(steam.titles) <= 5155
    assert all(t.strip() for t in steam.titles.values())


def test_netflix_titles_split_on_first_two_commas(data_root):
    titles = load_netflix_titles()
    assert len(titles) == 17770
    assert any("," in t for t in titles)


def test_titles_are_unique_so_answers_identify_items(data_root):
    data = load_dataset("ml100k")
    lowered = [t.lower() for t in data.titles.values()]
    assert len(set(lowered)) == len(lowered)


def test_llara_pools_hold_target_and_unseen_items(data_root):
    data = load_dataset("ml100k")
    split = build_llara(data, 10, 20, 0, n_train=100, n_valid=0, n_test=100)
    for s in split.test:
        assert len(s.candidates) == 20 and s.target in s.candidates and len(s.history) <= 10
        seen = {x.item for x in data.sequences[s.user]}
        assert not (set(s.candidates) - {s.target}) & seen


def test_tallrec_ml100k_labels_come_from_ratings(data_root):
    data = load_dataset("ml100k")
    split = build_tallrec(data, 10, 0, n_train=0, n_valid=0, n_test=None)
    for s in split.test[:50]:
        rating = data.sequences[s.user][-1].rating
        assert s.label == (rating >= 4)


def test_missing_data_names_files_and_source(tmp_path):
    with pytest.raises(UserError) as err:
        load_dataset("ml100k", root=tmp_path)
    msg = str(err.value)
    assert "ml-100k/u.data" in msg and str(tmp_path) in msg and "grouplens" in msg and "\n" not in msg


def test_malformed_row_names_file_row_and_field(tmp_path, data_root):
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    shutil.copy(data_root / "ml-100k" / "u.item", folder / "u.item")
    (folder / "u.data").write_text("1\t1\t5\t881250949\n2\tx\t3\t881250950\n")
    with pytest.raises(UserError, match=r"u.data: row 2: field 'item id'"):
        load_dataset("ml100k", root=tmp_path)


def test_shuffle_order_is_a_seeded_permutation_per_user(data_root):
    from recbackdoor.data.text_datasets import reorder

    data = load_dataset("lastfm")
    a, b, c = reorder(data, "shuffle", 0), reorder(data, "shuffle", 0), reorder(data, "shuffle", 1)
    user = next(iter(data.sequences))
    assert sorted(x.item for x in a.sequences[user]) == sorted(x.item for x in data.sequences[user])
    assert a.sequences == b.sequences and a.sequences != c.sequences
    assert "shuffle" in a.order and reorder(data, "native") is data
    with pytest.raises(UserError, match="order"):
        reorder(data, "by-time")


def test_shuffle_untimed_leaves_movielens_timestamps_and_shuffles_file_order(data_root):
    from recbackdoor.data.text_datasets import reorder

    movielens, lastfm = load_dataset("ml100k"), load_dataset("lastfm")
    assert reorder(movielens, "shuffle-untimed", 0) is movielens
    assert reorder(lastfm, "shuffle-untimed", 0).sequences == reorder(lastfm, "shuffle", 0).sequences
