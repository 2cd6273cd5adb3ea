"""``recbackdoor scan``: rows kept unchanged and in order, verdict columns added, one-line errors, no partial output.

A deterministic test double stands in for the model (score 0.9 for a title with a non-ASCII character
or the word 'Trigger', else 0.1; threshold 0.5), so these tests check the I/O and the command, not a model.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recbackdoor import cli
from recbackdoor.defenses.text.catalogue_io import MAX_ROW_BYTES, open_catalogue
from recbackdoor.defenses.text.scan_command import ScanSummary, scan_file
from recbackdoor.defenses.text.scanner import PoisonScanner

TITLES = [
    "Toy Story (1995)",
    "Crouching Tiger, Hidden Dragon",  # comma
    'The "Best" Movie',  # quotes
    "Line one\nline two",  # newline inside a quoted CSV cell
    "Sigur Rós – Takk",  # non-ASCII: flagged by the double
    "宇多田ヒカル",  # CJK: flagged by the double
    "Trigger Happy",  # the double's trigger word
    "  padded title  ",  # surrounding spaces are kept
]


class FakeScorer:
    """Deterministic stand-in for a model; records the size of every call."""

    def __init__(self, fail_on_call: int | None = None, error: BaseException | None = None) -> None:
        self.calls: list[int] = []
        self.fail_on_call, self.error = fail_on_call, error

    def score(self, titles: Sequence[str]) -> np.ndarray:
        self.calls.append(len(titles))
        if self.fail_on_call is not None and len(self.calls) >= self.fail_on_call:
            raise self.error or RuntimeError("scorer failed")
        return np.array([0.9 if (not t.isascii() or "Trigger" in t) else 0.1 for t in titles], dtype=np.float32)


def _scanner(scorer: FakeScorer | None = None) -> PoisonScanner:
    return PoisonScanner(scorer or FakeScorer(), threshold=0.5, meta={"kind": "test-double"})


def _expected(title: str) -> tuple[float, bool, str]:
    scanner = _scanner()
    flagged = bool(scanner.flag([title])[0])
    return float(scanner.score([title])[0]), flagged, scanner.suspect(title) if flagged else ""


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def _write_jsonl(path: Path, objects: list[object]) -> Path:
    path.write_text("".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in objects), encoding="utf-8")
    return path


def _cli(monkeypatch: pytest.MonkeyPatch, scorer: FakeScorer | None, *args: str | Path) -> int:
    scanner = _scanner(scorer)
    monkeypatch.setattr(PoisonScanner, "load", staticmethod(lambda where: scanner))
    return cli.main(["scan", "--model", "default", *map(str, args)])


# --------------------------------------------------------------------------- round trips


def test_csv_keeps_every_row_and_column_in_order_and_adds_verdicts(tmp_path: Path) -> None:
    rows = [[f"{i:03d}", title, "" if i % 2 else "x,y"] for i, title in enumerate(TITLES)]
    src = _write_csv(tmp_path / "items.csv", ["id", "title", "note"], rows)
    summary = scan_file(_scanner(), src, "title", tmp_path / "out.csv", batch_size=3, progress=False)

    with (tmp_path / "out.csv").open(newline="", encoding="utf-8") as handle:
        header, *out = list(csv.reader(handle))
    assert header == ["id", "title", "note", "poison_score", "flagged", "suspect"]
    assert [row[:3] for row in out] == rows  # values round-trip exactly, leading zeros and empty cells included
    for row in out:
        score, flagged, suspect = _expected(row[1])
        assert (float(row[3]), row[4], row[5]) == (pytest.approx(score), "true" if flagged else "false", suspect)
    assert summary.rows == len(TITLES) and summary.flagged == 3
    assert out[4][3] == "0.9" and out[0][3] == "0.1"  # shortest float32 text, not 0.8999999761581421


def test_csv_keeps_byte_order_mark_and_line_ending(tmp_path: Path) -> None:
    src = tmp_path / "items.csv"
    src.write_bytes("\ufeffid,title\n1,Heat\n2,Trigger Warning\n".encode())
    scan_file(_scanner(), src, "title", tmp_path / "out.csv", progress=False)
    data = (tmp_path / "out.csv").read_bytes()
    assert data.startswith(b"\xef\xbb\xbfid,title,poison_score,flagged,suspect\n")
    assert b"\r\n" not in data
    assert data.decode("utf-8-sig").splitlines()[2] == "2,Trigger Warning,0.9,true,Trigger"


def test_jsonl_keeps_each_object_text_and_key_order_and_appends_keys(tmp_path: Path) -> None:
    lines = [json.dumps({"id": i, "title": t, "price": 1.0, "tags": ["a", {"b": None}]}, ensure_ascii=i % 2 == 0)
             for i, t in enumerate(TITLES)]
    src = tmp_path / "items.jsonl"
    src.write_text("\n".join(lines) + "\n\n", encoding="utf-8")  # a trailing blank line is not a row
    summary = scan_file(_scanner(), src, "title", tmp_path / "out.jsonl", batch_size=3, progress=False)

    out = (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(out) == len(lines) == summary.rows
    for original, written in zip(lines, out, strict=True):
        assert written.startswith(original[:-1] + ", ")  # the input text itself, e.g. 1.0 stays 1.0
        obj = json.loads(written)
        assert list(obj) == ["id", "title", "price", "tags", "poison_score", "flagged", "suspect"]
        score, flagged, suspect = _expected(obj["title"])
        assert (obj["poison_score"], obj["flagged"], obj["suspect"]) == (pytest.approx(score), flagged, suspect)


def test_parquet_keeps_schema_rows_and_metadata_and_adds_typed_fields(tmp_path: Path) -> None:
    table = pa.table({"id": pa.array(range(len(TITLES)), pa.int32()), "title": TITLES,
                      "tags": [[i, i + 1] for i in range(len(TITLES))]}).replace_schema_metadata({"owner": "shop"})
    pq.write_table(table, tmp_path / "items.parquet", row_group_size=5)
    summary = scan_file(_scanner(), tmp_path / "items.parquet", "title", tmp_path / "out.parquet", batch_size=3,
                        progress=False)

    out = pq.read_table(tmp_path / "out.parquet")
    assert out.schema.names == ["id", "title", "tags", "poison_score", "flagged", "suspect"]
    assert out.schema.metadata == {b"owner": b"shop"}
    assert out.select(["id", "title", "tags"]).equals(table)
    assert out.schema.field("poison_score").type == pa.float32() and out.schema.field("flagged").type == pa.bool_()
    expected = [_expected(t) for t in TITLES]
    assert out.column("flagged").to_pylist() == [e[1] for e in expected]
    assert out.column("suspect").to_pylist() == [e[2] for e in expected]
    assert out.column("poison_score").to_pylist() == pytest.approx([e[0] for e in expected])
    assert summary == ScanSummary(len(TITLES), 3, summary.seconds)


def test_scorer_never_receives_more_than_batch_size_titles(tmp_path: Path) -> None:
    src = _write_csv(tmp_path / "items.csv", ["title"], [[f"Movie {i}"] for i in range(10)])
    scorer = FakeScorer()
    scan_file(_scanner(scorer), src, "title", tmp_path / "out.csv", batch_size=4, progress=False)
    assert scorer.calls == [4, 4, 2]  # nothing flagged, so no suspect calls: one call per batch


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_readers_yield_bounded_batches_with_their_first_row(tmp_path: Path, suffix: str) -> None:
    titles = [f"Movie {i}" for i in range(7)]
    path = tmp_path / f"items{suffix}"
    if suffix == ".csv":
        _write_csv(path, ["title"], [[t] for t in titles])
    elif suffix == ".jsonl":
        _write_jsonl(path, [{"title": t} for t in titles])
    else:
        pq.write_table(pa.table({"title": titles}), path)
    with open_catalogue(path, "title") as catalogue:
        batches = list(catalogue.batches(3))
    assert [b.first_row for b in batches] == [1, 4, 7]
    assert [t for b in batches for t in b.titles] == titles


def test_cli_prints_one_summary_line_and_exits_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    src = _write_csv(tmp_path / "items.csv", ["title"], [[t] for t in TITLES])
    code = _cli(monkeypatch, None, "--input", src, "--column", "title", "--output", tmp_path / "out.csv")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 0 and len(err) == 1
    assert f"scanned {len(TITLES)} titles, flagged 3" in err[0] and "titles/s" in err[0] and "out.csv" in err[0]


def test_scan_help_names_formats_columns_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cli.main(["scan", "--help"])
    text = capsys.readouterr().out
    assert stop.value.code == 0
    for word in (".csv", ".jsonl", ".parquet", "poison_score", "flagged", "suspect", "exit codes", "--batch-size"):
        assert word in text


# --------------------------------------------------------------------------- bad input: exit 2, one line, no output


def _csv_missing_column(d: Path) -> tuple[Path, str]:
    return _write_csv(d / "items.csv", ["id", "name"], [["1", "Heat"]]), "title"


def _csv_undecodable_bytes(d: Path) -> tuple[Path, str]:
    path = d / "items.csv"
    path.write_bytes(b"id,title\n1,Heat\n2,Caf\xe9\n")  # Latin-1, not UTF-8
    return path, "title"


def _csv_empty_file(d: Path) -> tuple[Path, str]:
    path = d / "items.csv"
    path.write_bytes(b"")
    return path, "title"


def _csv_wrong_field_count(d: Path) -> tuple[Path, str]:
    path = d / "items.csv"
    path.write_text("id,title\n1,Heat,extra\n")
    return path, "title"


def _csv_empty_title(d: Path) -> tuple[Path, str]:
    return _write_csv(d / "items.csv", ["id", "title"], [["1", "Heat"], ["2", "  "]]), "title"


def _csv_unclosed_quote(d: Path) -> tuple[Path, str]:
    path = d / "items.csv"
    path.write_text('id,title\n1,"Heat\n')
    return path, "title"


def _csv_long_title(d: Path) -> tuple[Path, str]:
    return _write_csv(d / "items.csv", ["id", "title"], [["1", "x" * 20_001]]), "title"


def _csv_one_megabyte_title(d: Path) -> tuple[Path, str]:
    return _write_csv(d / "items.csv", ["id", "title"], [["1", "x" * 1_000_000]]), "title"


def _csv_cell_over_row_limit(d: Path) -> tuple[Path, str]:
    return _write_csv(d / "items.csv", ["id", "title", "blurb"], [["1", "Heat", "y" * (2 * MAX_ROW_BYTES)]]), "title"


def _jsonl_null_title(d: Path) -> tuple[Path, str]:
    return _write_jsonl(d / "items.jsonl", [{"title": "Heat"}, {"title": None}]), "title"


def _jsonl_number_title(d: Path) -> tuple[Path, str]:
    return _write_jsonl(d / "items.jsonl", [{"title": "Heat"}, {"title": 1995}]), "title"


def _jsonl_missing_key(d: Path) -> tuple[Path, str]:
    return _write_jsonl(d / "items.jsonl", [{"title": "Heat"}, {"id": 2, "name": "Alien"}]), "title"


def _jsonl_invalid_line(d: Path) -> tuple[Path, str]:
    path = d / "items.jsonl"
    path.write_text('{"title": "Heat"}\n{"title": "Alien",}\n')
    return path, "title"


def _jsonl_not_an_object(d: Path) -> tuple[Path, str]:
    return _write_jsonl(d / "items.jsonl", [{"title": "Heat"}, ["Alien"]]), "title"


def _jsonl_one_mebibyte_title(d: Path) -> tuple[Path, str]:
    return _write_jsonl(d / "items.jsonl", [{"id": 1, "title": "x" * MAX_ROW_BYTES, "year": 1}]), "title"


def _parquet_number_title(d: Path) -> tuple[Path, str]:
    path = d / "items.parquet"
    pq.write_table(pa.table({"title": [1995, 1996]}), path)
    return path, "title"


def _parquet_null_title(d: Path) -> tuple[Path, str]:
    path = d / "items.parquet"
    pq.write_table(pa.table({"title": ["Heat", "Alien", None]}), path)
    return path, "title"


def _parquet_truncated(d: Path) -> tuple[Path, str]:
    path = d / "items.parquet"
    pq.write_table(pa.table({"title": [f"Movie {i}" for i in range(100)]}), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path, "title"


def _unknown_extension(d: Path) -> tuple[Path, str]:
    path = d / "items.txt"
    path.write_text("title\nHeat\n")
    return path, "title"


BAD_INPUTS: dict[str, tuple[Callable[[Path], tuple[Path, str]], list[str]]] = {
    "csv-missing-column": (_csv_missing_column, ["no column 'title'", "columns: id, name"]),
    "csv-undecodable-bytes": (_csv_undecodable_bytes, ["row 2 (line 3), field 'title'", "0xe9", "UTF-8"]),
    "csv-empty-file": (_csv_empty_file, ["empty file"]),
    "csv-wrong-field-count": (_csv_wrong_field_count, ["row 1 (line 2)", "3 fields", "2 columns"]),
    "csv-empty-title": (_csv_empty_title, ["row 2 (line 3), field 'title'", "empty title"]),
    "csv-unclosed-quote": (_csv_unclosed_quote, ["row 1 (line 2), field 'title'", "malformed CSV"]),
    "csv-long-title": (_csv_long_title, ["row 1 (line 2), field 'title'", "20,001 characters", "at most 10,000"]),
    "csv-1mb-title": (_csv_one_megabyte_title, ["row 1 (line 2), field 'title'", "more than 131,072 characters"]),
    "csv-cell-over-row-limit": (_csv_cell_over_row_limit, ["row 1 (line 2), field 'blurb'", "longer than"]),
    "jsonl-null-title": (_jsonl_null_title, ["row 2 (line 2), field 'title'", "null"]),
    "jsonl-number-title": (_jsonl_number_title, ["row 2 (line 2), field 'title'", "number"]),
    "jsonl-missing-key": (_jsonl_missing_key, ["row 2 (line 2)", "no field 'title'", "fields present: id, name"]),
    "jsonl-invalid-line": (_jsonl_invalid_line, ["row 2 (line 2)", "not valid JSON"]),
    "jsonl-not-an-object": (_jsonl_not_an_object, ["row 2 (line 2)", "JSON array, expected an object"]),
    "jsonl-1mib-title": (_jsonl_one_mebibyte_title, ["row 1 (line 1), field 'title'", "longer than"]),
    "parquet-number-title": (_parquet_number_title, ["field 'title'", "int64"]),
    "parquet-null-title": (_parquet_null_title, ["row 3, field 'title'", "null"]),
    "parquet-truncated": (_parquet_truncated, ["truncated or corrupt"]),
    "unknown-extension": (_unknown_extension, ["'.txt'", ".csv, .jsonl, .parquet"]),
}


def _assert_one_line_error(code: int, err: str, name: str, fragments: list[str]) -> None:
    lines = err.strip().splitlines()
    assert code == 2
    assert len(lines) == 1, err
    assert lines[0].startswith("recbackdoor: error: ") and name in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_leaves_no_output(case: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    make, fragments = BAD_INPUTS[case]
    src, column = make(tmp_path)
    out = tmp_path / f"out{src.suffix}"
    code = _cli(monkeypatch, None, "--input", src, "--column", column, "--output", out)
    _assert_one_line_error(code, capsys.readouterr().err, src.name, fragments)
    assert sorted(os.listdir(tmp_path)) == [src.name]  # no output, no temporary file


def test_bad_row_after_the_first_batch_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"title": f"Movie {i}"} for i in range(10)] + [{"title": ""}]
    src = _write_jsonl(tmp_path / "items.jsonl", rows)
    code = _cli(monkeypatch, None, "--input", src, "--column", "title", "--output", tmp_path / "out.jsonl",
                "--batch-size", "2")
    _assert_one_line_error(code, capsys.readouterr().err, "items.jsonl", ["row 11 (line 11)", "empty title"])
    assert sorted(os.listdir(tmp_path)) == ["items.jsonl"]


def test_existing_output_is_refused_and_left_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    src = _write_csv(tmp_path / "items.csv", ["title"], [["Heat"]])
    out = tmp_path / "out.csv"
    out.write_text("keep me")
    code = _cli(monkeypatch, None, "--input", src, "--column", "title", "--output", out)
    _assert_one_line_error(code, capsys.readouterr().err, "out.csv", ["already exists"])
    assert out.read_text() == "keep me" and sorted(os.listdir(tmp_path)) == ["items.csv", "out.csv"]


def test_output_equal_to_input_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    src = _write_csv(tmp_path / "items.csv", ["title"], [["Heat"]])
    code = _cli(monkeypatch, None, "--input", src, "--column", "title", "--output", tmp_path / "." / "items.csv")
    _assert_one_line_error(code, capsys.readouterr().err, "items.csv", ["is the input file"])
    assert src.read_bytes() == b"title\r\nHeat\r\n"


@pytest.mark.parametrize(("output", "fragment"), [("missing/out.csv", "does not exist"),
                                                  ("out.parquet", "must be .csv like the input"),
                                                  ("out.xlsx", "unknown catalogue format")])
def test_bad_output_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str], output: str, fragment: str) -> None:
    src = _write_csv(tmp_path / "items.csv", ["title"], [["Heat"]])
    code = _cli(monkeypatch, None, "--input", src, "--column", "title", "--output", tmp_path / output)
    _assert_one_line_error(code, capsys.readouterr().err, Path(output).name, [fragment])
    assert sorted(os.listdir(tmp_path)) == ["items.csv"]


def test_unwritable_output_folder_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = _write_csv(tmp_path / "items.csv", ["title"], [["Heat"]])
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a folder the kernel refuses
            locked = Path("/sys")
        code = _cli(monkeypatch, None, "--input", src, "--column", "title", "--output", locked / "out.csv")
        _assert_one_line_error(code, capsys.readouterr().err, "out.csv", [str(locked)])
        assert not (locked / "out.csv").exists() and not [p for p in os.listdir(locked) if p.endswith(".tmp")]
    finally:
        (tmp_path / "locked").chmod(0o755)


def test_ctrl_c_during_scan_leaves_no_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    src = _write_csv(tmp_path / "items.csv", ["title"], [[f"Movie {i}"] for i in range(10)])
    scorer = FakeScorer(fail_on_call=2, error=KeyboardInterrupt())
    code = _cli(monkeypatch, scorer, "--input", src, "--column", "title", "--output", tmp_path / "out.csv",
                "--batch-size", "4")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 130 and len(err) == 1 and "nothing was written" in err[0]
    assert sorted(os.listdir(tmp_path)) == ["items.csv"]


def test_scores_outside_0_1_from_a_broken_model_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    class NanScorer(FakeScorer):
        def score(self, titles: Sequence[str]) -> np.ndarray:
            return np.full(len(titles), np.nan, dtype=np.float32)

    src = _write_csv(tmp_path / "items.csv", ["title"], [["Heat"]])
    code = _cli(monkeypatch, NanScorer(), "--input", src, "--column", "title", "--output", tmp_path / "out.csv")
    _assert_one_line_error(code, capsys.readouterr().err, "items.csv", ["row 1", "outside [0, 1]"])
    assert sorted(os.listdir(tmp_path)) == ["items.csv"]


def test_a_killed_scan_leaves_no_output_and_no_temp_file(tmp_path: Path) -> None:
    """SIGTERM (what `kill` and job schedulers send) unwinds like Ctrl-C: nothing is left behind."""
    import signal
    import subprocess
    import sys
    import time

    source = tmp_path / "big.csv"
    with open(source, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "title"])
        writer.writerows([i, f"Title {i}"] for i in range(200_000))
    out = tmp_path / "big.scanned.csv"
    script = ("import time, numpy as np, sys\n"
              "from recbackdoor import cli\n"
              "from recbackdoor.defenses.text.scanner import PoisonScanner\n"
              "class Slow:\n"
              "    def score(self, titles):\n"
              "        time.sleep(0.05)\n"
              "        return np.full(len(titles), 0.1, dtype=np.float32)\n"
              "PoisonScanner.load = classmethod(lambda cls, where: PoisonScanner(Slow(), 0.5))\n"
              f"sys.exit(cli.main(['scan', '--model', 'x', '--input', {str(source)!r}, '--column', 'title', "
              f"'--output', {str(out)!r}, '--no-progress', '--batch-size', '64']))\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.csv"]
