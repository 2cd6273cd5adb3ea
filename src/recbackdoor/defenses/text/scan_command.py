"""``recbackdoor scan``: score every title of a catalogue file and write it back with the verdicts.

The scan streams: one batch of rows is read, scored, explained and written before the next is read,
so memory stays at one batch whatever the catalogue's size.  ``suspect`` (the span that drives the
score) costs many scorer calls per title, so it is computed for flagged rows only.

``--recurrence`` adds the catalogue-level test (``recurrence.py``): a trigger has to recur to plant a
backdoor, so a first pass scores every row and indexes which titles carry each word and non-ASCII
character; spans whose carriers score high together far more often than chance, and whose removal brings
those carriers back down, are reported, and the last pass writes each row's recurring span in
``recurring_span``.  Memory: one float per row and the span index (about 70 bytes per distinct title),
plus the distinct titles above the catalogue's 90th percentile; never the rows.
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

from recbackdoor.defenses.text.catalogue_io import (
    NEW_COLUMNS,
    RECURRENCE_COLUMN,
    Verdicts,
    atomic_output,
    check_paths,
    locate,
    open_catalogue,
)
from recbackdoor.defenses.text.recurrence import (
    RECURRENCE_SETTINGS,
    SEARCH_SETTINGS,
    RecurringSpan,
    SpanIndex,
    first_recurring,
    removal_check,
)
from recbackdoor.defenses.text.scanner import PoisonScanner
from recbackdoor.errors import UserError

DEFAULT_BATCH_SIZE = 2048


@dataclass(frozen=True)
class ScanSummary:
    """What one scan did, for the summary line and for callers that log throughput."""

    rows: int
    flagged: int
    seconds: float
    recurring: tuple[RecurringSpan, ...] = ()  # ``--recurrence``: the spans found, strongest first
    carrying: int = 0  # rows carrying one of them

    @property
    def titles_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def checked_scores(scanner: PoisonScanner, titles: Sequence[str], where: str = "") -> np.ndarray:
    """The scanner's scores of ``titles``.

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
    return scores


def judge(scanner: PoisonScanner, titles: Sequence[str], where: str = "", scores: np.ndarray | None = None
          ) -> Verdicts:
    """Scores (computed here unless given), flags at the scanner's threshold, and the suspect span of each
    flagged title."""
    if scores is None:
        scores = checked_scores(scanner, titles, where)
    flagged = scores > scanner.threshold
    flagged_titles = [title for title, flag in zip(titles, flagged, strict=True) if flag]
    spans = iter(scanner.suspects(flagged_titles)) if flagged_titles else iter(())
    suspects = [next(spans) if flag else "" for flag in flagged]  # one scoring call for the whole batch's spans
    return Verdicts(scores, flagged, suspects)


@contextmanager
def _progress(total: int | None, enabled: bool, desc: str | None = None) -> Iterator[tqdm]:
    """A titles/s bar on stderr (off when stderr is not a terminal); erased on error so the error line stands alone."""
    bar = tqdm(total=total, unit=" titles", unit_scale=True, disable=None if enabled else True,
               file=sys.stderr, dynamic_ncols=True, desc=desc)
    try:
        yield bar
    except BaseException:
        bar.leave = False
        raise
    finally:
        bar.close()


def recurring_spans(scanner: PoisonScanner, input_path: Path, column: str, batch_size: int = DEFAULT_BATCH_SIZE,
                    progress: bool = True) -> tuple[np.ndarray, list[RecurringSpan]]:
    """The first passes of ``--recurrence``: every row's score, then (a second read) the distinct titles above the
    catalogue's quantile, and the recurring spans, each confirmed by removal on those titles."""
    index, parts = SpanIndex(), []
    with (open_catalogue(input_path, column) as catalogue,
          _progress(catalogue.total_rows, progress, "scoring") as bar):
        for batch in catalogue.batches(batch_size):
            scores = checked_scores(scanner, batch.titles, locate(input_path, batch.first_row))
            parts.append(scores)
            for title, score in zip(batch.titles, scores.tolist(), strict=True):
                index.add(title, score)
            bar.update(len(batch.titles))
    row_scores = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    cutoff = index.quantile_of(SEARCH_SETTINGS["quantile"])
    high: dict[str, None] = {}  # the distinct titles above the quantile: the removal check's material
    with open_catalogue(input_path, column) as catalogue:
        for batch in catalogue.batches(batch_size):
            above = _first_pass_rows(row_scores, batch, input_path) > cutoff
            high.update((t, None) for t, h in zip(batch.titles, above, strict=True) if h)
    check = removal_check(list(high), scanner.score, RECURRENCE_SETTINGS["confirm_share"])
    return row_scores, index.recurring(**SEARCH_SETTINGS, confirm=check)


def _file_stamp(path: Path) -> tuple[int, int]:
    """Size and modification time: the passes of ``--recurrence`` must all read the same file."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _first_pass_rows(row_scores: np.ndarray, batch, input_path: Path) -> np.ndarray:
    """The first pass's scores of ``batch``'s rows; a batch past the first pass's rows means the file changed."""
    given = row_scores[batch.first_row - 1:][:len(batch.titles)]
    if len(given) != len(batch.titles):
        raise UserError(f"{locate(input_path, batch.first_row)}: the file changed during the scan (more rows than "
                        "in the first pass); scan a copy that nothing writes to")
    return given


def scan_file(scanner: PoisonScanner, input_path: str | Path, column: str, output_path: str | Path,
              batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True, recurrence: bool = False) -> ScanSummary:
    """Write ``output_path``: every row and column of ``input_path`` plus poison_score, flagged and suspect
    (and, with ``recurrence``, recurring_span: two passes over the input, each row scored once).

    Raises UserError (one line naming file, row and field) on bad input; on any failure nothing is
    left at ``output_path``.
    """
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    input_path, output_path = Path(input_path), Path(output_path)
    check_paths(input_path, output_path)
    added = (*NEW_COLUMNS, RECURRENCE_COLUMN) if recurrence else NEW_COLUMNS
    start = time.perf_counter()
    row_scores, found = None, []
    if recurrence:
        with open_catalogue(input_path, column, added):
            pass  # an input that already has a recurring_span column fails before the long first pass
        stamp = _file_stamp(input_path)
        row_scores, found = recurring_spans(scanner, input_path, column, batch_size, progress)
    rows = flagged = carrying = 0
    with (open_catalogue(input_path, column, added) as catalogue,
          atomic_output(output_path) as handle,
          catalogue.writer(handle, output_path) as writer,
          _progress(catalogue.total_rows, progress, "writing" if recurrence else None) as bar):
        for batch in catalogue.batches(batch_size):
            where = locate(input_path, batch.first_row)
            given = None if row_scores is None else _first_pass_rows(row_scores, batch, input_path)
            verdicts = judge(scanner, batch.titles, where, given)
            if recurrence:
                spans = [first_recurring(title, found) for title in batch.titles]
                verdicts = Verdicts(verdicts.scores, verdicts.flagged, verdicts.suspects, spans)
                carrying += sum(bool(span) for span in spans)
            writer.write(batch, verdicts)
            rows += len(batch.titles)
            flagged += int(verdicts.flagged.sum())
            bar.update(len(batch.titles))
        # inside the ``with``: a failure here still discards the output instead of renaming it into place
        if row_scores is not None and (rows != len(row_scores) or _file_stamp(input_path) != stamp):
            raise UserError(f"{input_path}: the file changed during the scan ({len(row_scores):,} rows in the first "
                            f"pass, {rows:,} in the last); scan a copy that nothing writes to")
    return ScanSummary(rows, flagged, time.perf_counter() - start, tuple(found), carrying)


def scan_command(args: argparse.Namespace) -> int:
    """The CLI entry: check paths and columns, load the model, scan, print one summary line to stderr."""
    input_path, output_path = Path(args.input), Path(args.output)
    check_paths(input_path, output_path)  # fail on bad paths before a model that may take seconds to load
    with open_catalogue(input_path, args.column):
        pass  # ... and on a missing column or an unreadable file
    scanner = PoisonScanner.load(args.model)
    recurrence = bool(getattr(args, "recurrence", False))
    summary = scan_file(scanner, input_path, args.column, output_path, args.batch_size, not args.no_progress,
                        recurrence)
    print(f"recbackdoor: scanned {summary.rows:,} titles, flagged {summary.flagged:,} in {summary.seconds:.1f} s "
          f"({summary.titles_per_second:,.0f} titles/s); wrote {output_path}", file=sys.stderr)
    if recurrence:
        spans = ", ".join(f"{s.span!r} ({s.elevated} of {s.titles} titles high)" for s in summary.recurring[:10])
        more = f" and {len(summary.recurring) - 10} more" if len(summary.recurring) > 10 else ""
        print(f"recbackdoor: recurring spans: {spans or 'none'}{more}; {summary.carrying:,} rows carry one "
              f"(column {RECURRENCE_COLUMN})", file=sys.stderr)
    return 0
