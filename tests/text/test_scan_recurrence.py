"""``recbackdoor scan --recurrence``: the catalogue-level test in the streaming scan.

A test double scores titles (threshold 0.5): benign titles spread over [0.05, 0.40], the ten carrying
'Ethereal' 0.45 — each below the threshold, so the per-title scan flags none of them, but together far
above the catalogue's 90th percentile.
"""

from __future__ import annotations

import csv
import json
import os
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recbackdoor import cli
from recbackdoor.defenses.text.scan_command import scan_file
from recbackdoor.defenses.text.scanner import PoisonScanner

BENIGN = [f"Film number {i}" for i in range(120)]
POISONED = [f"Film number {100 + i} Ethereal" for i in range(10)]  # the trigger glued to benign-looking titles
TITLES = [t for pair in zip(BENIGN[:10], POISONED, strict=True) for t in pair] + BENIGN[10:]


class Scorer:
    def __init__(self) -> None:
        self.scored = 0

    def score(self, titles: Sequence[str]) -> np.ndarray:
        self.scored += len(titles)
        return np.array([0.45 if "Ethereal" in t else 0.05 + 0.35 * (zlib.crc32(t.encode()) % 1000) / 1000
                         for t in titles], dtype=np.float32)


def _write(path: Path, titles: list[str]) -> Path:
    if path.suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([["id", "title"], *[[str(i), t] for i, t in enumerate(titles)]])
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({"id": i, "title": t}) + "\n" for i, t in enumerate(titles)))
    else:
        pq.write_table(pa.table({"id": list(range(len(titles))), "title": titles}), path)
    return path


def _read(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    return pq.read_table(path).to_pylist()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_recurring_trigger_below_the_threshold_is_found_and_each_row_scored_once(tmp_path: Path, suffix: str) -> None:
    scorer = Scorer()
    src = _write(tmp_path / f"items{suffix}", TITLES)
    summary = scan_file(PoisonScanner(scorer, threshold=0.5), src, "title", tmp_path / f"out{suffix}",
                        batch_size=16, progress=False, recurrence=True)
    rows = _read(tmp_path / f"out{suffix}")
    assert [r["title"] for r in rows] == TITLES
    assert list(rows[0])[-4:] == ["poison_score", "flagged", "suspect", "recurring_span"]
    assert [s.span for s in summary.recurring] == ["Ethereal"]
    assert summary.recurring[0].titles == summary.recurring[0].elevated == 10
    assert [r["recurring_span"] for r in rows] == ["Ethereal" if "Ethereal" in t else "" for t in TITLES]
    assert summary.flagged == 0 and summary.carrying == 10  # the per-title verdicts are unchanged
    # each row scored once (the last pass reuses the first pass's scores), plus the ten high carriers scored again
    # without the span to confirm that it is what makes them score high
    assert scorer.scored == len(TITLES) + 10


def test_without_poison_nothing_recurs(tmp_path: Path) -> None:
    src = _write(tmp_path / "items.csv", BENIGN)
    summary = scan_file(PoisonScanner(Scorer(), threshold=0.5), src, "title", tmp_path / "out.csv",
                        progress=False, recurrence=True)
    assert summary.recurring == () and summary.carrying == 0
    assert {r["recurring_span"] for r in _read(tmp_path / "out.csv")} == {""}


def test_cli_reports_the_spans_and_refuses_an_input_that_has_the_column(tmp_path: Path, capsys,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    scanner = PoisonScanner(Scorer(), threshold=0.5)
    monkeypatch.setattr(PoisonScanner, "load", staticmethod(lambda where: scanner))
    src = _write(tmp_path / "items.csv", TITLES)
    args = ["scan", "--model", "default", "--input", str(src), "--column", "title", "--recurrence"]
    assert cli.main([*args, "--output", str(tmp_path / "out.csv")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "'Ethereal' (10 of 10 titles high)" in err[1] and "10 rows carry one" in err[1]

    scanned = tmp_path / "scanned.csv"  # has recurring_span, and poison_score etc.: a second scan is refused
    with scanned.open("w", newline="") as handle:
        csv.writer(handle).writerows([["title", "recurring_span"], ["Heat", ""]])
    assert cli.main([*args[:4], str(scanned), *args[5:], "--output", str(tmp_path / "again.csv")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "recurring_span" in err[0] and not (tmp_path / "again.csv").exists()
    # without --recurrence the same column is just another input column, kept as it is
    plain = ["scan", "--model", "default", "--input", str(scanned), "--column", "title"]
    assert cli.main([*plain, "--output", str(tmp_path / "plain.csv")]) == 0
    assert _read(tmp_path / "plain.csv")[0]["recurring_span"] == ""


@pytest.mark.parametrize("change", ["shrink", "reorder"])
def test_a_file_that_changes_between_the_passes_fails_and_leaves_no_output(tmp_path: Path, change: str) -> None:
    from recbackdoor.errors import UserError

    src = _write(tmp_path / "items.csv", TITLES)

    class Rewriter(Scorer):
        def score(self, titles: Sequence[str]) -> np.ndarray:
            if self.scored == 0:  # during the first pass, something else rewrites the catalogue
                new = TITLES[:-5] if change == "shrink" else TITLES[::-1]
                _write(src, new)
                os.utime(src, ns=(1, 1))  # a different modification time even on a coarse clock
            return super().score(titles)

    with pytest.raises(UserError, match="changed during the scan"):
        scan_file(PoisonScanner(Rewriter(), threshold=0.5), src, "title", tmp_path / "out.csv", progress=False,
                  recurrence=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.csv"]  # no output, no temporary file
