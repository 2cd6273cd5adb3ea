"""Streaming catalogue I/O for ``recbackdoor scan``: CSV, JSONL and Parquet in, the same plus three columns out.

Why streaming: a shop catalogue can hold millions of titles, so a scan runs in the memory of one batch
(at most ``batch_size`` rows and about ``MAX_BATCH_BYTES``), never of the whole file.

Why so strict: the output promises every input row and column unchanged and in order, so whatever
cannot be read exactly is refused with one line naming the file, the row and the field, and the
output is written to a temporary file that is renamed into place only when the whole scan succeeded.

Modules: ``common`` (limits, batches, error helpers, format detection, the atomic output file),
``base`` (reader and writer base classes), ``csv_format``, ``jsonl_format``, ``parquet_format`` (one
reader and writer each) and ``opening`` (path checks and the reader for a file's format).
"""

from recbackdoor.defenses.text.catalogue_io.base import Catalogue, Writer
from recbackdoor.defenses.text.catalogue_io.common import (
    FORMATS,
    MAX_BATCH_BYTES,
    MAX_ROW_BYTES,
    MAX_TITLE_CHARS,
    NEW_COLUMNS,
    RECURRENCE_COLUMN,
    Batch,
    Verdicts,
    atomic_output,
    format_of,
    locate,
)
from recbackdoor.defenses.text.catalogue_io.csv_format import CsvCatalogue
from recbackdoor.defenses.text.catalogue_io.jsonl_format import JsonlCatalogue
from recbackdoor.defenses.text.catalogue_io.opening import check_paths, open_catalogue
from recbackdoor.defenses.text.catalogue_io.parquet_format import ParquetCatalogue

__all__ = [
    "FORMATS",
    "MAX_BATCH_BYTES",
    "MAX_ROW_BYTES",
    "MAX_TITLE_CHARS",
    "NEW_COLUMNS",
    "RECURRENCE_COLUMN",
    "Batch",
    "Catalogue",
    "CsvCatalogue",
    "JsonlCatalogue",
    "ParquetCatalogue",
    "Verdicts",
    "Writer",
    "atomic_output",
    "check_paths",
    "format_of",
    "locate",
    "open_catalogue",
]
