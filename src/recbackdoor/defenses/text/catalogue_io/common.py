"""Shared pieces of the catalogue readers and writers: limits, batches, one-line errors, checks and the output file.

Limits: a title may hold at most ``MAX_TITLE_CHARS`` characters (the scanner's input; longer text is
not a title), and one CSV record or JSONL line at most ``MAX_ROW_BYTES`` bytes, so a giant cell is
refused after reading that much, never loaded whole.  A batch holds about ``MAX_BATCH_BYTES`` at most.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from recbackdoor.errors import UserError

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".parquet": "parquet"}
NEW_COLUMNS = ("poison_score", "flagged", "suspect")
RECURRENCE_COLUMN = "recurring_span"  # added after NEW_COLUMNS by ``scan --recurrence`` only
MAX_TITLE_CHARS = 10_000
MAX_ROW_BYTES = 1 << 20
MAX_BATCH_BYTES = 64 << 20
BOM = b"\xef\xbb\xbf"


# --------------------------------------------------------------------------- batches and verdicts


@dataclass(frozen=True)
class Batch:
    """Consecutive rows: their titles for the scanner and the untouched records for the writer."""

    first_row: int  # 1-based data row of the first record
    titles: list[str]
    records: Any  # list[list[str]] (CSV), list[str] of JSON object text (JSONL), pa.RecordBatch (Parquet)


@dataclass(frozen=True)
class Verdicts:
    """What the scan adds to each row of a batch, in row order."""

    scores: np.ndarray  # float32 in [0, 1]
    flagged: np.ndarray  # bool
    suspects: list[str]  # "" for rows that are not flagged
    recurring: list[str] | None = None  # ``scan --recurrence``: the recurring span each row carries, "" if none


def batched(records: Iterator[tuple[str, Any, int]], batch_size: int) -> Iterator[Batch]:
    """Group (title, record, bytes) into batches of at most ``batch_size`` rows and about MAX_BATCH_BYTES."""
    first, titles, kept, size = 1, [], [], 0
    for title, record, nbytes in records:
        titles.append(title)
        kept.append(record)
        size += nbytes
        if len(titles) >= batch_size or size >= MAX_BATCH_BYTES:
            yield Batch(first, titles, kept)
            first, titles, kept, size = first + len(titles), [], [], 0
    if titles:
        yield Batch(first, titles, kept)


def score_text(score: float) -> str:
    """Shortest text that reads back as the same float32, e.g. ``0.9`` rather than ``0.8999999761581421``."""
    return str(np.float32(score))


def verdict_texts(verdicts: Verdicts) -> Iterator[tuple[str, ...]]:
    """Each row's score, ``true``/``false``, suspect span (and recurring span, when computed) as text, in row
    order."""
    recurring = verdicts.recurring if verdicts.recurring is not None else [None] * len(verdicts.suspects)
    for score, flag, suspect, span in zip(verdicts.scores, verdicts.flagged, verdicts.suspects, recurring,
                                          strict=True):
        texts = (score_text(score), "true" if flag else "false", suspect)
        yield texts if span is None else (*texts, span)


# --------------------------------------------------------------------------- one-line errors and checks


def locate(path: Path, row: int | None = None, line: int | None = None, field: str | None = None) -> str:
    """``file: row R (line L), field 'F'`` with the parts that are known, for one-line errors."""
    where = f"row {row}" if row is not None else ""
    if line is not None:
        where = f"{where} (line {line})" if where else f"line {line}"
    if field is not None:
        where = f"{where}, field {field!r}" if where else f"field {field!r}"
    return f"{path}: {where}" if where else str(path)


def fail(path: Path, message: str, row: int | None = None, line: int | None = None,
         field: str | None = None) -> UserError:
    return UserError(f"{locate(path, row, line, field)}: {message}")


def kind(value: object) -> str:
    """JSON's name for a value's type, which is what a user sees in their file."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {dict: "object", list: "array"}.get(type(value), type(value).__name__)


def title_problem(value: object) -> str | None:
    """Why a title cell cannot be scanned, or None when it can."""
    if not isinstance(value, str):
        return f"{kind(value)} instead of a title string"
    if not value.strip():
        return "empty title"
    if len(value) > MAX_TITLE_CHARS:
        return f"title has {len(value):,} characters; at most {MAX_TITLE_CHARS:,} are allowed"
    return None


def checked_title(path: Path, value: Any, row: int | None = None, line: int | None = None,
                  field: str | None = None) -> Any:
    """``value`` when it is a title the scanner can take, else the one-line error of ``title_problem``."""
    if problem := title_problem(value):
        raise fail(path, problem, row, line, field)
    return value


def check_new_columns(path: Path, names: list[str], row: int | None = None, line: int | None = None,
                      added: tuple[str, ...] = NEW_COLUMNS) -> None:
    """Refuse input that already has an output column: writing it twice would make the output ambiguous."""
    for name in added:
        if name in names:
            raise fail(path, f"the input already has a column {name!r} (already scanned?); rename or drop it",
                       row, line)


def too_long(what: str, hint: str = "") -> str:
    """The message for a record or line cut off at MAX_ROW_BYTES."""
    return (f"{what} is longer than {MAX_ROW_BYTES:,} bytes (a cell far over "
            f"{MAX_TITLE_CHARS:,} characters{hint}?)")


def strip_bom(data: bytes) -> tuple[bool, bytes]:
    """Whether the first line starts with a UTF-8 byte order mark, and the line without it."""
    if data.startswith(BOM):
        return True, data[len(BOM):]
    return False, data


def decode_line(data: bytes, error: Callable[[str, str], UserError]) -> str:
    """One line as text; an undecodable byte raises ``error(message, text before that byte)``."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = (f"byte 0x{data[exc.start]:02x} at byte {exc.start + 1} of the line is not valid UTF-8 "
                   "(save the file as UTF-8)")
        raise error(message, data[:exc.start].decode("utf-8", "replace")) from None


# --------------------------------------------------------------------------- format and the atomic output


def format_of(path: Path) -> str:
    """The catalogue format named by the file's extension (case-insensitive)."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(FORMATS)
        raise UserError(f"{path}: unknown catalogue format {path.suffix or '(no extension)'!r}; use one of {known}")
    return fmt


@contextmanager
def atomic_output(path: Path) -> Iterator[BinaryIO]:
    """A binary handle on a hidden temporary file beside ``path``, renamed to ``path`` only on success.

    On any error (or Ctrl-C) the temporary file is removed, so the output path holds either nothing
    or a complete file.  The file is synced before the rename so a crash cannot leave a short file.
    """
    temp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        handle = open(temp, "xb")
    except OSError as exc:
        raise UserError(f"{path}: cannot create a file in {path.parent} ({exc.strerror or exc})") from None
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            raise UserError(f"{path}: appeared while scanning; not overwritten (the result was discarded)")
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
