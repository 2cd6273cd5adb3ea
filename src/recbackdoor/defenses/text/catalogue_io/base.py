"""The base classes of the catalogue readers and writers: open and close files, turn write errors into one line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import pyarrow as pa

from recbackdoor.defenses.text.catalogue_io.common import NEW_COLUMNS, Batch, Verdicts
from recbackdoor.errors import UserError


class Catalogue:
    """Base for the readers: an open input file, closed by ``with`` even when the scan fails."""

    total_rows: int | None = None

    def __init__(self, path: Path, column: str, added: tuple[str, ...] = NEW_COLUMNS) -> None:
        self.path = path
        self.added = added  # the columns the scan appends: none may already be in the input
        self._handle: BinaryIO = open(path, "rb")
        try:
            self._setup(column)
        except BaseException:
            self.close()  # a header or schema error must not leak the open file
            raise

    def _setup(self, column: str) -> None:
        """Read and check the header or schema, so a bad column fails before any output is created."""

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> Catalogue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batches(self, batch_size: int) -> Iterator[Batch]:
        raise NotImplementedError

    def writer(self, handle: BinaryIO, output: Path) -> Writer:
        raise NotImplementedError


class Writer:
    """Base for the writers; ``with`` closes on success and closes quietly on failure (the file is discarded)."""

    def __init__(self, output: Path) -> None:
        self.output = output

    def write(self, batch: Batch, verdicts: Verdicts) -> None:
        try:
            self._write(batch, verdicts)
        except (OSError, pa.ArrowException) as exc:
            raise UserError(f"{self.output}: cannot write ({exc})") from None

    def _write(self, batch: Batch, verdicts: Verdicts) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Finish the file (flush buffers, write a footer); the handle itself belongs to atomic_output."""

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            try:
                self.close()
            except (OSError, pa.ArrowException) as error:
                raise UserError(f"{self.output}: cannot write ({error})") from None
            return
        try:
            self.close()
        except Exception:  # the original error is the one to report; the file is removed anyway
            pass
