"""``recbackdoor scan``: score every title of a catalogue file and write it back with the verdicts.

The scan streams: one batch of rows is read, scored, explained and written before the next is read,
so memory stays at one batch whatever the catalogue's size.  ``suspect`` (the span that drives the
score) costs many scorer calls per title, so it is computed for flagged rows only.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from recbackdoor.defenses.text.catalogue_io import Verdicts, atomic_output, check_paths, locate, open_catalogue
from recbackdoor.defenses.text.scanner import PoisonScanner
from recbackdoor.errors import UserError

DEFAULT_BATCH_SIZE = 2048


@dataclass(frozen=True)
class ScanSummary:
    """What one scan did, for the summary line and for callers that log throughput."""

    rows: int
    flagged: int
    seconds: float

    @property
    def titles_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def judge(scanner: PoisonScanner, titles: Sequence[str], where: str = "") -> Verdicts:
    """Scores, flags at the scanner's threshold, and the suspect span of each flagged title.

    A model that returns the wrong number of scores or a score outside [0, 1] is refused here, so a
    broken model can never produce a plausible-looking output file.
    """
    scores = np.asarray(scanner.score(list(titles)), dtype=np.float32).reshape(-1)
    if len(scores) != len(titles):
        raise UserError(f"{where}: the scanner returned {len(scores)} scores for {len(titles)} titles")
    bad = ~((scores >= 0) & (scores <= 1))  # also true for NaN
    if bad.any():
        offset = int(np.flatnonzero(bad)[0])
        raise UserError(f"{where}: the scanner returned score {scores[offset]} for batch row {offset + 1}, "
                        "outside [0, 1]; the model is broken")
    flagged = scores > scanner.threshold
    flagged_titles = [title for title, flag in zip(titles, flagged, strict=True) if flag]
    spans = iter(scanner.suspects(flagged_titles)) if flagged_titles else iter(())
    suspects = [next(spans) if flag else "" for flag in flagged]  # one scoring call for the whole batch's spans
    return Verdicts(scores, flagged, suspects)


@contextmanager
def _progress(total: int | None, enabled: bool) -> Iterator[tqdm]:
    """A titles/s bar on stderr (off when stderr is not a terminal); erased on error so the error line stands alone."""
    bar = tqdm(total=total, unit=" titles", unit_scale=True, disable=None if enabled else True,
               file=sys.stderr, dynamic_ncols=True)
    try:
        yield bar
    except BaseException:
        bar.leave = False
        raise
    finally:
        bar.close()


def scan_file(scanner: PoisonScanner, input_path: str | Path, column: str, output_path: str | Path,
              batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True) -> ScanSummary:
    """Write ``output_path``: every row and column of ``input_path`` plus poison_score, flagged and suspect.

    Raises UserError (one line naming file, row and field) on bad input; on any failure nothing is
    left at ``output_path``.
    """
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    input_path, output_path = Path(input_path), Path(output_path)
    check_paths(input_path, output_path)
    start = time.perf_counter()
    rows = flagged = 0
    with (open_catalogue(input_path, column) as catalogue,
          atomic_output(output_path) as handle,
          catalogue.writer(handle, output_path) as writer,
          _progress(catalogue.total_rows, progress) as bar):
        for batch in catalogue.batches(batch_size):
            verdicts = judge(scanner, batch.titles, locate(input_path, batch.first_row))
            writer.write(batch, verdicts)
            rows += len(batch.titles)
            flagged += int(verdicts.flagged.sum())
            bar.update(len(batch.titles))
    return ScanSummary(rows, flagged, time.perf_counter() - start)


def scan_command(args: argparse.Namespace) -> int:
    """The CLI entry: check paths and columns, load the model, scan, print one summary line to stderr."""
    input_path, output_path = Path(args.input), Path(args.output)
    check_paths(input_path, output_path)  # fail on bad paths before a model that may take seconds to load
    with open_catalogue(input_path, args.column):
        pass  # ... and on a missing column or an unreadable file
    scanner = PoisonScanner.load(args.model)
    summary = scan_file(scanner, input_path, args.column, output_path, args.batch_size, not args.no_progress)
    print(f"recbackdoor: scanned {summary.rows:,} titles, flagged {summary.flagged:,} in {summary.seconds:.1f} s "
          f"({summary.titles_per_second:,.0f} titles/s); wrote {output_path}", file=sys.stderr)
    return 0
