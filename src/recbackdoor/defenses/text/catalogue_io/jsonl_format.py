"""JSONL catalogues: one JSON object per line, kept as its exact text, written back with the verdict keys appended."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from recbackdoor.defenses.text.catalogue_io.base import Catalogue, Writer
from recbackdoor.defenses.text.catalogue_io.common import (
    MAX_ROW_BYTES,
    NEW_COLUMNS,
    Batch,
    Verdicts,
    batched,
    check_new_columns,
    checked_title,
    decode_line,
    fail,
    kind,
    strip_bom,
    too_long,
    verdict_texts,
)
from recbackdoor.errors import UserError


def _json_key_at_end(text: str) -> str | None:
    """The top-level key whose value is still open at the end of a JSON object cut short."""
    depth, in_string, escaped, key_next, reading_key = 0, False, False, False, False
    start, key = 0, None
    for i, char in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
                if reading_key:
                    key = text[start:i]
            continue
        if char == '"':
            in_string, start, reading_key, key_next = True, i + 1, depth == 1 and key_next, False
        elif char in "{[":
            depth += 1
            key_next = depth == 1 and char == "{"
        elif char in "}]":
            depth -= 1
        elif char == "," and depth == 1:
            key_next = True
    try:
        return json.loads(f'"{key}"') if key is not None else None
    except json.JSONDecodeError:
        return key


def _json_string(value: str) -> str:
    """A JSON string literal, readable (non-ASCII kept) unless it holds an unpaired surrogate."""
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value)
    return text


class JsonlCatalogue(Catalogue):
    """One JSON object per line; each line is kept as its exact text and the new keys are appended to it.

    Keeping the text (rather than re-serialising the parsed object) keeps key order, number spelling
    (``1.0``, ``1e3``), escapes and duplicate keys exactly as the input has them.  Blank lines are skipped.
    """

    def _setup(self, column: str) -> None:
        self.column = column
        self._line = 0
        self._rows = 0
        self._stream = self._records()
        self._first = next(self._stream)  # check the first object now, before a slow model is loaded

    def _records(self) -> Iterator[tuple[str, str, int]]:
        while data := self._handle.readline(MAX_ROW_BYTES + 1):
            self._line += 1
            if self._line == 1:
                _, data = strip_bom(data)
            if len(data) > MAX_ROW_BYTES:
                field = _json_key_at_end(data.decode("utf-8", "replace"))
                raise fail(self.path, too_long("line"), self._rows + 1, self._line, field)
            text = decode_line(data, self._undecodable).rstrip()
            if not text:
                continue
            self._rows += 1
            yield self._title(self._parse(text)), text, len(data)
        if self._rows == 0:
            raise fail(self.path, "no JSON objects (the file holds only blank lines)")

    def _undecodable(self, message: str, before: str) -> UserError:
        return fail(self.path, message, self._rows + 1, self._line, _json_key_at_end(before))

    def _parse(self, text: str) -> dict[str, Any]:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise fail(self.path, f"not valid JSON ({exc.msg} at column {exc.colno})",
                       self._rows, self._line) from None
        except RecursionError:
            raise fail(self.path, "JSON nested too deeply", self._rows, self._line) from None
        if not isinstance(value, dict):
            raise fail(self.path, f"a JSON {kind(value)}, expected an object", self._rows, self._line)
        check_new_columns(self.path, list(value), self._rows, self._line, added=self.added)
        return value

    def _title(self, record: dict[str, Any]) -> str:
        if self.column not in record:
            present = ", ".join(record) or "none"
            raise fail(self.path, f"no field {self.column!r} (fields present: {present})", self._rows, self._line)
        return checked_title(self.path, record[self.column], self._rows, self._line, self.column)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        return batched(itertools.chain([self._first], self._stream), batch_size)

    def writer(self, handle: BinaryIO, output: Path) -> Writer:
        return JsonlWriter(handle, output, self.added)


class JsonlWriter(Writer):
    """Each input line with ``"poison_score"``, ``"flagged"`` and ``"suspect"`` (and ``"recurring_span"``)
    appended inside its object."""

    def __init__(self, handle: BinaryIO, output: Path, added: tuple[str, ...] = NEW_COLUMNS) -> None:
        super().__init__(output)
        self._handle = handle
        self._keys = [json.dumps(name) for name in added]

    def _line(self, text: str, texts: tuple[str, ...]) -> str:
        body = text[:-1].rstrip()  # the object's text without its closing brace
        score, flag, *spans = texts  # suspect, then the recurring span when the scan computed it
        values = (score, flag, *map(_json_string, spans))
        added = ", ".join(f"{key}: {value}" for key, value in zip(self._keys, values, strict=True))
        return f"{body}, {added}}}\n"

    def _write(self, batch: Batch, verdicts: Verdicts) -> None:
        lines = map(self._line, batch.records, verdict_texts(verdicts))
        self._handle.write("".join(lines).encode("utf-8"))
