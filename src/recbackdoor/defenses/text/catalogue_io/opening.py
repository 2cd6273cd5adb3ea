"""Before a scan: check the input/output pair of paths, then open the input with the reader for its format."""

from __future__ import annotations

import os
from pathlib import Path

from recbackdoor.defenses.text.catalogue_io.base import Catalogue
from recbackdoor.defenses.text.catalogue_io.common import NEW_COLUMNS, format_of
from recbackdoor.defenses.text.catalogue_io.csv_format import CsvCatalogue
from recbackdoor.defenses.text.catalogue_io.jsonl_format import JsonlCatalogue
from recbackdoor.defenses.text.catalogue_io.parquet_format import ParquetCatalogue
from recbackdoor.errors import UserError

READERS: dict[str, type[Catalogue]] = {"csv": CsvCatalogue, "jsonl": JsonlCatalogue, "parquet": ParquetCatalogue}


def check_paths(input_path: Path, output_path: Path) -> str:
    """Refuse, before any work, every input/output pair that cannot end in a complete new output file.

    The output must not exist (a scan never overwrites), must keep the input's format (rows are copied
    unchanged, which only makes sense within one format) and its folder must exist and be writable.
    """
    fmt = format_of(input_path)
    if not input_path.exists():
        raise UserError(f"{input_path}: input file not found")
    if not input_path.is_file():
        raise UserError(f"{input_path}: not a file")
    if format_of(output_path) != fmt:
        raise UserError(f"{output_path}: the output must be {input_path.suffix.lower()} like the input "
                        f"{input_path} (rows are copied unchanged, so the format stays)")
    if output_path.exists() or output_path.is_symlink():
        if output_path.exists() and os.path.samefile(input_path, output_path):
            raise UserError(f"{output_path}: the output is the input file; choose another --output")
        raise UserError(f"{output_path}: already exists; remove it or choose another --output")
    folder = output_path.parent
    if not folder.is_dir():
        raise UserError(f"{output_path}: output folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{output_path}: output folder {folder} is not writable")
    return fmt


def open_catalogue(path: Path, column: str, added: tuple[str, ...] = NEW_COLUMNS) -> Catalogue:
    """Open a catalogue and check its header or schema; rows are checked as they stream by."""
    fmt = format_of(path)
    try:
        if path.stat().st_size == 0:
            raise UserError(f"{path}: empty file (no header, no rows)")
    except FileNotFoundError:
        raise UserError(f"{path}: input file not found") from None
    try:
        return READERS[fmt](path, column, added)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror or exc})") from None
