"""The fused default scanner: the tail p-value by hand, the Unicode channel's island features by hand, a build
with a small channel saved and loaded, 'default-v1' as it was, and the shipped one on real titles."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest

from recbackdoor import cli
from recbackdoor.defenses.text.fused_scanner import TailCalibration
from recbackdoor.defenses.text.scanner import PoisonScanner, default_dir
from recbackdoor.defenses.text.unicode_channel import ChannelConfig, script_islands
from recbackdoor.triggers.text import DEFAULT_TRIGGERS, insert_trigger


def test_tail_p_value_matches_hand_computed_shares():
    tail = TailCalibration([0.1, 0.2, 0.2, 0.4])  # n = 4: p = (benign scores >= x) / (n + 1)
    p = tail.p_value(np.array([0.1, 0.2, 0.4, 0.3, 0.7, 1.0, 0.05, 0.0]))
    # 0.1: 4/5; 0.2: 3/5; 0.4: 1/5; 0.3: halfway 3/5 -> 1/5; 0.7: 1/5 * (1 - 0.7) / (1 - 0.4); 1.0: 0;
    # 0.05: halfway from 1 (at 0) to 4/5 (at 0.1); 0.0: 1
    np.testing.assert_allclose(p, [0.8, 0.6, 0.2, 0.4, 0.1, 0.0, 0.9, 1.0], atol=1e-12)
    grid = tail.p_value(np.linspace(0, 1, 101))
    assert (np.diff(grid) < 0).all()  # strictly decreasing: fused scores keep every title's order


def test_tail_calibration_refuses_no_scores():
    with pytest.raises(ValueError):
        TailCalibration([])


@pytest.mark.parametrize(("title", "expected"), [
    ("Toy മ Story", [0.5, 0.5, 1 / 9, 1.0]),  # one lone Malayalam letter among 8 Latin ones
    ("KoЯn", [0.5, 0.0, 1 / 4, 1.0]),  # one Cyrillic letter inside a Latin word
    ("宇多田ヒカル", [0.0, 0.0, 0.5, 1.0]),  # runs of three Han and three Katakana: no island
    ("Sigur Rós", [0.0, 0.0, 0.0, 0.0]),  # an accent is Latin
    ("(1995) !!!", [0.0, 0.0, 0.0, 0.0]),  # no script at all
])
def test_script_islands_by_hand(title, expected):
    np.testing.assert_allclose(script_islands(title), expected)


@pytest.fixture(scope="module")
def small_fused(tmp_path_factory, data_root) -> Path:
    """A fused scanner around the shipped student with a small channel (2,000 examples, 3 epochs)."""
    from recbackdoor.defenses.text.fused_training import build_fused

    out = tmp_path_factory.mktemp("fused") / "scanner"
    build_fused(default_dir(), ChannelConfig(examples=2000, epochs=3), out)
    return out


def test_fused_build_saves_loads_and_scores_identically(small_fused):
    meta = json.loads((small_fused / "scanner.json").read_text())
    assert meta["kind"] == "fused" and meta["target_fpr"] == 0.01 and meta["tail_titles"] == 1500
    student_record = json.loads((small_fused / "student.json").read_text())
    assert student_record["kind"] == "student"
    titles = ["Heat (1995)", "Toy മ Story (1995)", "Radiohead", "Dreams dance in moonlight's embrace Heat"]
    first = PoisonScanner.load(small_fused)
    second = PoisonScanner.load(small_fused)
    scores = first.score(titles)
    np.testing.assert_array_equal(scores, second.score(titles))
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_array_equal(scores[1:2], first.score(titles[1:2]))  # independent of batch composition


def test_a_fused_scanner_flags_at_most_its_budget_of_real_titles(small_fused):
    """Tails and threshold were set on Netflix titles; LastFM's artist names (accents, Cyrillic, Japanese) are
    real titles neither channel saw."""
    from recbackdoor.data.text_datasets import load_lastfm

    scanner = PoisonScanner.load(small_fused)
    titles = sorted(load_lastfm().titles.values())[:800]
    assert float(np.mean(scanner.flag(titles))) <= 0.03


def test_train_scanner_student_flag_refuses_a_folder_without_a_student(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = cli.main(["train-scanner", "--student", str(tmp_path / "empty"), "--out", str(tmp_path / "new")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "student.safetensors" in err[0]
    assert not (tmp_path / "new").exists()


def test_default_v1_is_the_first_shipped_student_with_its_own_threshold():
    v1 = PoisonScanner.load("default-v1")
    assert v1.meta["kind"] == "student"
    assert v1.threshold == pytest.approx(0.9066714644432068)
    record = json.loads((default_dir() / "student.json").read_text())
    assert v1.meta == record  # the cache keys of the defense tables made with it stay the same


def test_default_fused_scanner_on_real_titles_it_never_trained_on(data_root):
    """MovieLens titles: clean FPR within budget; a lone character at a random word position (the student alone
    passes about 4 in 10 of these at its threshold) and a zero-width character, a family kept out of training."""
    from recbackdoor.data.text_datasets import load_ml100k
    from recbackdoor.triggers.heldout import insert_family_trigger

    scanner = PoisonScanner.load("default")
    assert scanner.meta["kind"] == "fused"
    titles = sorted(load_ml100k().titles.values())
    assert float(np.mean(scanner.flag(titles))) <= 0.025
    sample = titles[:300]
    rng = random.Random(0)
    char_random = [insert_trigger(t, DEFAULT_TRIGGERS["char"], "random", rng) for t in sample]
    zero_width = [insert_family_trigger(t, "zero-width", "random", rng) for t in sample]
    assert float(np.mean(scanner.flag(char_random))) >= 0.95
    assert float(np.mean(scanner.flag(zero_width))) >= 0.95
