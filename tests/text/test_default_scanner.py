"""The scanner shipped in the package: loads offline, scans a real catalogue slice, catches the paper's triggers."""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from recbackdoor import cli
from recbackdoor.defenses.text.scanner import PoisonScanner, default_dir
from recbackdoor.triggers.text import DEFAULT_TRIGGERS


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails loudly, as it would on an offline machine."""

    def refuse(*_args, **_kwargs):
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_default_scanner_ships_with_its_recipe_threshold_and_data_hash():
    meta = json.loads((default_dir() / "scanner.json").read_text())
    assert meta["kind"] == "fused"  # the student and the Unicode channel (fused_scanner.py)
    student = json.loads((default_dir() / "student.json").read_text())  # the student's own record: 'default-v1'
    for record in (meta, student):
        assert 0 < record["threshold"] < 1 and record["target_fpr"] == 0.01
        assert record["command"].startswith("recbackdoor train-scanner")
        assert len(record["netflix_sha256"]) == 64
    size = sum(p.stat().st_size for p in default_dir().iterdir())
    assert size < 16 * 2**20  # a few MB, not a checkpoint


def test_scan_with_the_default_model_works_with_the_network_off(tmp_path: Path, no_network, data_root) -> None:
    from recbackdoor.data.text_datasets import load_ml100k

    titles = sorted(load_ml100k().titles.values())[:12]
    rows = [(i, t) for i, t in enumerate(titles)] + [(100, titles[0] + " " + DEFAULT_TRIGGERS["sentence"])]
    source = tmp_path / "items.csv"
    with open(source, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("item_id", "title"), *rows])
    out = tmp_path / "items.scanned.csv"
    code = cli.main(["scan", "--model", "default", "--input", str(source), "--column", "title",
                     "--output", str(out), "--no-progress"])
    assert code == 0
    with open(out, newline="", encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert [(int(r["item_id"]), r["title"]) for r in written] == rows
    assert written[-1]["flagged"] == "true"
    assert "Dreams" in written[-1]["suspect"] or "moonlight" in written[-1]["suspect"]
    assert sum(r["flagged"] == "true" for r in written[:-1]) <= 2  # clean MovieLens titles mostly pass


def test_default_scanner_separates_paper_triggers_on_real_titles(data_root) -> None:
    from recbackdoor.data.text_datasets import load_lastfm
    from recbackdoor.separation import auroc

    scanner = PoisonScanner.load("default")
    titles = sorted(load_lastfm().titles.values())[:300]
    clean = scanner.score(titles)
    # floors from the measured figures (docs/results.md, "Text defense"): the word trigger on artist names is
    # the known gap (AUROC 0.87 on all of LastFM), the character and the sentence are near 1
    floors = {"char": 0.95, "word": 0.8, "sentence": 0.95}
    for kind, text in DEFAULT_TRIGGERS.items():
        poisoned = scanner.score([f"{t} {text}" for t in titles])
        assert auroc(clean, poisoned) > floors[kind], kind
    assert np.mean(clean > scanner.threshold) < 0.05


def test_default_v1_threshold_holds_its_target_fpr_on_held_out_benign_titles(data_root) -> None:
    """The student's threshold was calibrated on the Netflix calibration split; checked here on the validation split
    it never saw (the fused default sets its threshold on that split: its check is on real catalogue titles,
    test_fused_scanner.py)."""
    import random

    from recbackdoor.data.benign_titles import augment_benign
    from recbackdoor.defenses.text.scanner_data import netflix_split

    scanner = PoisonScanner.load("default-v1")
    version = scanner.meta.get("config", {}).get("augmentation", 1)  # the benign titles it was calibrated on
    held_out = [augment_benign(t, random.Random(f"heldout:{i}"), version)
                for i, t in enumerate(netflix_split(0).validation)]
    fpr = float(np.mean(scanner.score(held_out) > scanner.threshold))
    assert fpr <= 0.025, fpr  # target 1 %; 1,000 titles give a standard error of about 0.3 %


@pytest.mark.slow
def test_staged_suspects_equal_exhaustive(data_root) -> None:
    """Scoring the removal candidates one word count at a time picks the span that scoring all of them picks."""
    import random

    from recbackdoor.data.text_datasets import load_ml100k
    from recbackdoor.defenses.text.scanner import _removal_candidates, _word_count
    from recbackdoor.triggers.text import insert_trigger

    scanner = PoisonScanner.load("default")
    rng = random.Random(3)
    titles = sorted(load_ml100k().titles.values())[:12]
    poisoned = [insert_trigger(t, text, position, rng) for t in titles for text in DEFAULT_TRIGGERS.values()
                for position in ("end", "random")]
    poisoned += ["Zемфира", "宇多田ヒカル Utada", "Heat (1995)"]  # legitimate Unicode, and a clean title

    per_title = [_removal_candidates(t) for t in poisoned]
    flat = scanner.score([rest for candidates in per_title for rest, _ in candidates])  # every candidate
    expected, start = [], 0
    for title, candidates in zip(poisoned, per_title, strict=True):
        scores, start = flat[start:start + len(candidates)], start + len(candidates)
        clearing = [i for i, s in enumerate(scores) if s <= scanner.threshold]
        if not candidates:
            expected.append(title)
        elif clearing:
            expected.append(candidates[min(clearing, key=lambda i: (_word_count(candidates[i][1]),
                                                                    len(candidates[i][1]), i))][1])
        else:
            near = [i for i, s in enumerate(scores) if s <= float(scores.min()) + 0.05]
            expected.append(min((candidates[i][1] for i in near), key=len))

    staged = scanner.suspects(poisoned)
    assert staged == expected
    assert sum(s in DEFAULT_TRIGGERS.values() for s in staged) > len(titles)  # most name the inserted trigger
