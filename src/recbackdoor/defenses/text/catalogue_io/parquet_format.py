"""Parquet catalogues: read in record batches with Arrow types and schema metadata kept, written back the same way."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from recbackdoor.defenses.text.catalogue_io.base import Catalogue, Writer
from recbackdoor.defenses.text.catalogue_io.common import (
    RECURRENCE_COLUMN,
    Batch,
    Verdicts,
    check_new_columns,
    checked_title,
    fail,
)
from recbackdoor.errors import UserError


def _is_text(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return _is_text(kind.value_type)
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)


class ParquetCatalogue(Catalogue):
    """A Parquet file read in record batches; columns keep their Arrow types and the schema its metadata."""

    def _setup(self, column: str) -> None:
        try:
            self._file = pq.ParquetFile(self._handle)
        except (pa.ArrowException, OSError) as exc:
            raise fail(self.path, f"not a readable Parquet file, truncated or corrupt? ({exc})") from None
        self.schema = self._file.schema_arrow
        self.total_rows = self._file.metadata.num_rows
        self._title = self._title_index(column)

    def _title_index(self, column: str) -> int:
        names = self.schema.names
        check_new_columns(self.path, names, added=self.added)
        if column not in names:
            raise fail(self.path, f"no column {column!r} (columns: {', '.join(names)})")
        kind = self.schema.field(column).type
        if not _is_text(kind):
            raise fail(self.path, f"holds {kind} values in every row, expected strings", field=column)
        return names.index(column)

    def _titles(self, batch: pa.RecordBatch, first_row: int) -> list[str]:
        values = batch.column(self._title)
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        titles = values.to_pylist()
        for offset, title in enumerate(titles):
            checked_title(self.path, title, first_row + offset, field=self.schema.names[self._title])
        return titles

    def batches(self, batch_size: int) -> Iterator[Batch]:
        row = 1
        stream = self._file.iter_batches(batch_size=batch_size)
        while True:
            try:
                batch = next(stream)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise fail(self.path, f"cannot read rows from here on, corrupt file? ({exc})", row) from None
            yield Batch(row, self._titles(batch, row), batch)
            row += batch.num_rows

    def writer(self, handle: BinaryIO, output: Path) -> Writer:
        return ParquetWriter(handle, output, self.schema, RECURRENCE_COLUMN in self.added)


class ParquetWriter(Writer):
    """The input schema (metadata included) plus ``poison_score: float``, ``flagged: bool``, ``suspect: string``."""

    def __init__(self, handle: BinaryIO, output: Path, schema: pa.Schema, recurrence: bool = False) -> None:
        super().__init__(output)
        added = [pa.field("poison_score", pa.float32()), pa.field("flagged", pa.bool_()),
                 pa.field("suspect", pa.string())] + ([pa.field(RECURRENCE_COLUMN, pa.string())] if recurrence else [])
        self.schema = pa.schema([*schema, *added], metadata=schema.metadata)
        try:
            self._parquet = pq.ParquetWriter(handle, self.schema)
        except (OSError, pa.ArrowException) as exc:
            raise UserError(f"{output}: cannot write this schema as Parquet ({exc})") from None

    def _write(self, batch: Batch, verdicts: Verdicts) -> None:
        arrays = [*batch.records.columns, pa.array(verdicts.scores, pa.float32()),
                  pa.array(verdicts.flagged, pa.bool_()), pa.array(verdicts.suspects, pa.string())]
        if verdicts.recurring is not None:
            arrays.append(pa.array(verdicts.recurring, pa.string()))
        self._parquet.write_batch(pa.RecordBatch.from_arrays(arrays, schema=self.schema))

    def close(self) -> None:
        self._parquet.close()
