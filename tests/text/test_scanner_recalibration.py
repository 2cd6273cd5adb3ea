"""`recbackdoor calibrate-scanner`: the default scanner re-thresholded on a real catalogue's titles."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from recbackdoor import cli
from recbackdoor.defenses.text.calibration import calibrate_threshold
from recbackdoor.defenses.text.recalibration import MIN_TITLES, recalibrate
from recbackdoor.defenses.text.scanner import PoisonScanner
from recbackdoor.errors import UserError


@pytest.fixture(scope="module")
def steam_titles(data_root) -> list[str]:
    from recbackdoor.data.text_datasets import load_dataset

    return sorted(load_dataset("steam").titles.values())[:600]


def _write(path: Path, titles: list[str]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("app_id", "name"), *((i, t) for i, t in enumerate(titles))])
    return path


def test_calibrate_scanner_sets_the_threshold_on_the_given_titles(tmp_path, steam_titles):
    source = _write(tmp_path / "games.csv", steam_titles + steam_titles[:50])  # repeats count once
    out = tmp_path / "games_scanner"
    code = cli.main(["calibrate-scanner", "--model", "default", "--input", str(source), "--column", "name",
                     "--out", str(out), "--fpr", "0.02", "--no-progress"])
    assert code == 0
    shipped, local = PoisonScanner.load("default"), PoisonScanner.load(out)
    scores = shipped.score(steam_titles)
    np.testing.assert_array_equal(local.score(steam_titles), scores)  # same model, only the threshold moved
    assert local.threshold == calibrate_threshold(scores, 0.02)
    assert np.mean(scores > local.threshold) <= 0.02
    record = json.loads((out / "scanner.json").read_text())["recalibrations"][-1]
    assert record["previous_threshold"] == shipped.threshold
    assert record["titles"] == len(steam_titles) and record["rows"] == len(steam_titles) + 50
    assert len(record["input_sha256"]) == 64 and record["target_fpr"] == 0.02
    assert not list(tmp_path.glob(".*partial"))


def test_calibrate_scanner_refuses_too_few_titles_and_an_existing_folder(tmp_path, steam_titles, capsys):
    few = _write(tmp_path / "few.csv", steam_titles[:MIN_TITLES - 1])
    with pytest.raises(UserError, match=f"at least {MIN_TITLES} distinct titles"):
        recalibrate("default", few, "name", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".*partial"))
    taken = tmp_path / "taken"
    taken.mkdir()
    code = cli.main(["calibrate-scanner", "--model", "default", "--input", str(few), "--column", "name",
                     "--out", str(taken), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "already exists" in err and "\n" not in err and list(taken.iterdir()) == []
    code = cli.main(["calibrate-scanner", "--model", "default", "--input", str(few), "--column", "title",
                     "--out", str(tmp_path / "o2"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no column 'title'" in err and not (tmp_path / "o2").exists()


def test_calibrate_scanner_on_default_v1_writes_the_student_alone(tmp_path, steam_titles):
    """'default-v1' shares the package folder with the fused default: its copy must be the student, not the fusion."""
    source = _write(tmp_path / "games.csv", steam_titles)
    out = tmp_path / "v1_scanner"
    assert cli.main(["calibrate-scanner", "--model", "default-v1", "--input", str(source), "--column", "name",
                     "--out", str(out), "--no-progress"]) == 0
    meta = json.loads((out / "scanner.json").read_text())
    assert meta["kind"] == "student" and not (out / "unicode_channel.safetensors").exists()
    v1, local = PoisonScanner.load("default-v1"), PoisonScanner.load(out)
    np.testing.assert_array_equal(local.score(steam_titles[:50]), v1.score(steam_titles[:50]))
    assert meta["recalibrations"][-1]["previous_threshold"] == v1.threshold
