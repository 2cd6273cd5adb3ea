"""CSV catalogues: read record by record with every cell kept as the exact string, written back with the verdicts."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from recbackdoor.defenses.text.catalogue_io.base import Catalogue, Writer
from recbackdoor.defenses.text.catalogue_io.common import (
    MAX_ROW_BYTES,
    MAX_TITLE_CHARS,
    NEW_COLUMNS,
    Batch,
    Verdicts,
    batched,
    check_new_columns,
    checked_title,
    decode_line,
    fail,
    strip_bom,
    too_long,
    verdict_texts,
)
from recbackdoor.errors import UserError


def _csv_field_index(text: str) -> int:
    """Index of the field still open at the end of a (partial) CSV record: commas outside quotes.

    Splitting on '"' leaves the unquoted stretches at even positions; a doubled quote inside a quoted
    cell yields an empty odd stretch, so it needs no special case.
    """
    return sum(part.count(",") for part in text.split('"')[::2])


class CsvCatalogue(Catalogue):
    """A CSV file read record by record; every cell stays the exact string the file holds.

    Physical lines are read as bytes and decoded one at a time (so an undecodable byte is pinned to its
    line, and a line is never read past MAX_ROW_BYTES), then handed to ``csv.reader`` in strict mode
    (so bad quoting is an error, not a silently merged row).  Blank lines are skipped, as
    ``csv.DictReader`` does.
    """

    def _setup(self, column: str) -> None:
        self.bom = False
        self.lineterminator = "\r\n"
        self._line = 0  # physical lines read so far
        self._record: list[str] = []  # decoded lines of the record being parsed
        self._record_bytes = 0
        self._record_line = 1
        self._rows = 0
        self.header: list[str] | None = None
        self._reader = csv.reader(self._lines(), strict=True)
        self.header = self._read_header()
        self._title = self._title_index(column)

    def _where(self, field: str | None = None, line: int | None = None) -> dict[str, Any]:
        if self.header is None:
            return {"line": line or self._record_line}
        return {"row": self._rows + 1, "line": line or self._record_line, "field": field}

    def _field_at_end(self, tail: str) -> str | None:
        """Name of the column the cut-off record was in, for errors found in the middle of a record."""
        if self.header is None:
            return None
        index = _csv_field_index("".join(self._record) + tail)
        return self.header[index] if index < len(self.header) else f"#{index + 1} (beyond the header)"

    def _lines(self) -> Iterator[str]:
        while data := self._handle.readline(MAX_ROW_BYTES + 1 - self._record_bytes):
            self._line += 1
            if self._line == 1:
                data = self._first_line(data)
            self._record_bytes += len(data)
            if self._record_bytes > MAX_ROW_BYTES:
                field = self._field_at_end(data.decode("utf-8", "replace"))
                raise fail(self.path, too_long("record", ", or an unclosed quote"), **self._where(field))
            text = decode_line(data, self._undecodable)
            self._record.append(text)
            yield text

    def _first_line(self, data: bytes) -> bytes:
        """Drop a UTF-8 byte order mark (written back on output) and learn the line ending to reuse."""
        self.bom, data = strip_bom(data)
        self.lineterminator = "\r\n" if data.endswith(b"\r\n") else "\n"
        return data

    def _undecodable(self, message: str, before: str) -> UserError:
        return fail(self.path, message, **self._where(self._field_at_end(before), line=self._line))

    def _next_record(self) -> list[str] | None:
        """The next non-blank record, or None at the end of the file."""
        while True:
            self._record, self._record_bytes, self._record_line = [], 0, self._line + 1
            try:
                cells = next(self._reader)
            except StopIteration:
                return None
            except csv.Error as exc:
                raise fail(self.path, self._csv_problem(exc),
                           **self._where(self._field_at_end(""), line=self._line)) from None
            if cells:
                return cells

    @staticmethod
    def _csv_problem(exc: csv.Error) -> str:
        if "field larger than field limit" in str(exc):  # the csv module's own cap, checked before ours
            return (f"cell has more than {csv.field_size_limit():,} characters "
                    f"(a title may have at most {MAX_TITLE_CHARS:,})")
        return f"malformed CSV ({exc})"

    def _read_header(self) -> list[str]:
        header = self._next_record()
        if header is None:
            raise fail(self.path, "no header row (the file holds only blank lines)")
        check_new_columns(self.path, header, line=self._record_line, added=self.added)
        return header

    def _title_index(self, column: str) -> int:
        assert self.header is not None
        count = self.header.count(column)
        if count == 0:
            raise fail(self.path, f"no column {column!r} in the header (columns: {', '.join(self.header)})",
                       line=1)
        if count > 1:
            raise fail(self.path, f"column {column!r} appears {count} times in the header", line=1)
        return self.header.index(column)

    def _records(self) -> Iterator[tuple[str, list[str], int]]:
        assert self.header is not None
        while (cells := self._next_record()) is not None:
            if len(cells) != len(self.header):
                raise fail(self.path, f"{len(cells)} fields, but the header has {len(self.header)} columns",
                           row=self._rows + 1, line=self._record_line)
            title = checked_title(self.path, cells[self._title], **self._where(self.header[self._title]))
            self._rows += 1
            yield title, cells, self._record_bytes

    def batches(self, batch_size: int) -> Iterator[Batch]:
        return batched(self._records(), batch_size)

    def writer(self, handle: BinaryIO, output: Path) -> Writer:
        assert self.header is not None
        return CsvWriter(handle, output, self.header, self.lineterminator, self.bom, self.added)


class CsvWriter(Writer):
    """Same header plus the new columns; same line ending and byte order mark as the input.

    Cells are re-quoted by ``csv.writer`` (minimal quoting), so the bytes of a row may differ from the
    input (e.g. a needlessly quoted cell loses its quotes) while every value reads back identical.
    """

    def __init__(self, handle: BinaryIO, output: Path, header: list[str], lineterminator: str, bom: bool,
                 added: tuple[str, ...] = NEW_COLUMNS) -> None:
        super().__init__(output)
        self._text = io.TextIOWrapper(handle, encoding="utf-8", newline="", write_through=False)
        if bom:
            self._text.write("\ufeff")
        self._csv = csv.writer(self._text, lineterminator=lineterminator)
        self._csv.writerow([*header, *added])

    def _write(self, batch: Batch, verdicts: Verdicts) -> None:
        self._csv.writerows([*cells, *texts] for cells, texts in zip(batch.records, verdict_texts(verdicts),
                                                                      strict=True))

    def close(self) -> None:
        self._text.flush()
        self._text.detach()  # leave the binary handle open for atomic_output to sync and close
