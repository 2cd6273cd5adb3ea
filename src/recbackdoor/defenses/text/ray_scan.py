"""Scan a catalogue on a cluster with Ray Data (optional extra: ``pip install 'recbackdoor[ray]'``).

A catalogue too large for one machine is a ``ray.data.Dataset``; the scanner is
applied with ``Dataset.map_batches`` and a callable class, :class:`ScannerBatch`.
Why this shape:

* **the model is loaded once per actor** — ``ScannerBatch.__init__`` runs
  ``PoisonScanner.load`` when Ray starts an actor, and every batch that actor
  receives reuses it. A plain function would reload the weights (and, for the
  ``llm`` kind, the whole LM) for every batch.
* **Ray schedules, we don't** — there is no queue, retry loop or worker pool
  here. Ray Data reads the files in parallel, streams blocks to the actor pool,
  retries failed tasks, applies back-pressure and writes the output; we only say
  how many actors, how many CPUs / GPUs each, and how many rows per batch.

The columns added are the ones ``recbackdoor scan`` writes (DESIGN.md):
``poison_score`` (float in [0, 1]), ``flagged`` (score above the scanner's saved
threshold) and ``suspect`` (for flagged rows, the span that drives the score;
``""`` otherwise). Every input row and column is kept unchanged. The verdicts and
the title rules (no null, empty or over-long title) are ``recbackdoor scan``'s own
(``scan_command.judge``, ``catalogue_io``), so a cluster scan and a local scan of
the same titles agree row by row.

Ray is imported inside the functions that need it, so importing this module
(and the rest of the package) works without the extra.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from recbackdoor.defenses.text.catalogue_io import NEW_COLUMNS
from recbackdoor.defenses.text.catalogue_io.common import title_problem as file_title_problem
from recbackdoor.defenses.text.scan_command import judge
from recbackdoor.defenses.text.scanner import DEFAULT, PoisonScanner
from recbackdoor.errors import UserError

if TYPE_CHECKING:  # pragma: no cover - typing only
    import ray.data

ADDED_COLUMNS = NEW_COLUMNS  # poison_score, flagged, suspect: the columns ``recbackdoor scan`` adds
RAY_EXTRA_HINT = "needs the optional extra: pip install 'recbackdoor[ray]'"

# file-name endings -> format; compressed CSV / JSON lines are read by Ray (pyarrow) as well
_FORMATS: dict[str, str] = {
    ".parquet": "parquet", ".pq": "parquet",
    ".csv": "csv", ".csv.gz": "csv", ".csv.bz2": "csv", ".csv.zst": "csv",
    ".jsonl": "json", ".json": "json", ".ndjson": "json",
    ".jsonl.gz": "json", ".json.gz": "json", ".jsonl.zst": "json", ".json.zst": "json",
}


def _require_ray(what: str) -> Any:
    """Import Ray on first use; a checkout without the extra gets a one-line UserError."""
    try:
        import ray
        import ray.data  # noqa: F401  (Ray Data is a separate sub-package of the ``ray[data]`` extra)
    except ImportError as exc:
        raise UserError(f"{what} {RAY_EXTRA_HINT} ({exc})") from None
    return ray


class ScannerBatch:
    """Callable class for ``Dataset.map_batches(ScannerBatch, batch_format="pandas", ...)``.

    Ray constructs one instance per actor (``fn_constructor_kwargs`` are passed to
    ``__init__``), so the scanner is loaded once per actor and then scores every
    batch routed to that actor. It can be used in-process as well:
    ``ScannerBatch(model="default", column="title")(frame)``.

    Args:
        model: a saved scanner folder, or ``"default"`` for the one the package ships.
            On a cluster the folder must be readable at the same path on every node.
        column: the column holding the item titles.
        scanner: an already-built :class:`PoisonScanner` to use instead of loading
            ``model`` (tests and in-process use; on a cluster it is pickled to every actor).
    """

    def __init__(self, model: str | Path = DEFAULT, column: str = "title",
                 scanner: PoisonScanner | None = None) -> None:
        self.column = column
        self.scanner = scanner if scanner is not None else PoisonScanner.load(model)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Return ``batch`` (not modified) with ``poison_score``, ``flagged`` and ``suspect`` appended.

        The verdicts come from :func:`~recbackdoor.defenses.text.scan_command.judge`, the
        function ``recbackdoor scan`` uses, so a cluster scan and a local scan agree row by row.
        """
        check_columns(batch.columns, self.column)
        titles = batch[self.column].tolist()
        for offset, title in enumerate(titles):
            problem = title_problem(title)
            if problem is not None:
                raise UserError(f"column {self.column!r}: {problem} in the row {_short(batch.iloc[offset].to_dict())}; "
                                "fix or drop it before scanning")
        verdicts = judge(self.scanner, titles, f"column {self.column!r}")
        return batch.assign(poison_score=verdicts.scores, flagged=verdicts.flagged.astype(bool),
                            suspect=pd.Series(verdicts.suspects, index=batch.index, dtype="str"))


def title_problem(value: Any) -> str | None:
    """Why a title cell cannot be scanned, or None when it can: the rules of ``recbackdoor scan``.

    Only a missing value is named here first: pandas shows it as NaN, which is no "number" to the user.
    """
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return "null instead of a title string"
    return file_title_problem(value)


def check_columns(columns: Any, column: str) -> None:
    """The title column must exist and the added columns must not (they would be silently replaced)."""
    names = [str(c) for c in columns]
    if column not in names:
        raise UserError(f"column {column!r} not found; the catalogue has columns {names}; pass the title "
                        "column's name (--column / column=)")
    clash = [c for c in ADDED_COLUMNS if c in names]
    if clash:
        raise UserError(f"the catalogue already has column(s) {clash} (already scanned?); rename or drop them, "
                        "the scan adds them")


def scan_dataset(ds: ray.data.Dataset, model: str | Path = DEFAULT, column: str = "title", *,
                 concurrency: int | tuple[int, int] = 1, batch_size: int | None = 512,
                 num_cpus: float = 1.0, num_gpus: float = 0.0,
                 scanner: PoisonScanner | None = None) -> ray.data.Dataset:
    """Lazily add ``poison_score``, ``flagged`` and ``suspect`` to every row of ``ds``.

    Args:
        ds: the catalogue, one row per item.
        model: saved scanner folder or ``"default"``; loaded once in each actor.
        column: the title column.
        concurrency: actors in the pool: ``n`` for a fixed pool, ``(min, max)`` to let
            Ray autoscale it. Each actor holds one copy of the model.
        batch_size: rows per ``__call__``; larger batches amortise the model call,
            smaller ones bound memory (``None``: whole blocks).
        num_cpus, num_gpus: resources Ray reserves per actor (``num_gpus=1`` for the
            ``llm`` kind on a GPU cluster).
        scanner: a built scanner instead of ``model`` (see :class:`ScannerBatch`).

    Nothing runs until the dataset is consumed (``write_*``, ``to_pandas``,
    ``iter_batches``). Blocks may come back out of order unless
    ``ds.context.execution_options.preserve_order`` is set; keep an id column if
    the order matters.
    """
    ray = _require_ray("scan_dataset")
    schema = ds.schema(fetch_if_missing=False)
    if schema is not None:  # known without reading (Parquet, in-memory data): fail before any actor starts
        check_columns(schema.names, column)
    if isinstance(concurrency, tuple):
        compute = ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    else:
        compute = ray.data.ActorPoolStrategy(size=concurrency)
    return ds.map_batches(
        ScannerBatch,
        fn_constructor_kwargs={"model": model, "column": column, "scanner": scanner},
        batch_format="pandas",
        batch_size=batch_size,
        compute=compute,
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        udf_modifying_row_count=False,
    )


def file_format(uri: str, given: str | None = None) -> str:
    """``parquet``, ``csv`` or ``json`` (JSON lines) from ``given`` or from the name's extension."""
    if given is not None:
        fmt = given.lower().lstrip(".")
        fmt = {"jsonl": "json", "pq": "parquet"}.get(fmt, fmt)
        if fmt not in ("parquet", "csv", "json"):
            raise UserError(f"format {given!r}: expected parquet, csv or json (JSON lines)")
        return fmt
    name = uri.rstrip("/").lower()
    for ending, fmt in sorted(_FORMATS.items(), key=lambda kv: -len(kv[0])):
        if name.endswith(ending):
            return fmt
    raise UserError(f"{uri}: cannot tell the format from the name (expected one of "
                    f"{sorted(set(_FORMATS))}); pass input_format= / output_format= (parquet, csv or json)")


def _read(ray: Any, uri: str, fmt: str, column: str) -> ray.data.Dataset:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    readers: dict[str, Callable[..., Any]] = {
        "parquet": ray.data.read_parquet, "json": ray.data.read_json,
        # the title column is text even where every title looks like a number ("1917", "2012"); empty stays ""
        "csv": lambda path: ray.data.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types={column: pa.string()}, strings_can_be_null=False)),
    }
    try:
        return readers[fmt](uri)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise UserError(f"{uri}: cannot read as {fmt} ({str(exc).splitlines()[0]})") from None


def _write(ds: ray.data.Dataset, uri: str, fmt: str, filesystem: Any) -> None:
    if fmt == "parquet":
        ds.write_parquet(uri, filesystem=filesystem)
    elif fmt == "csv":
        ds.write_csv(uri, filesystem=filesystem)
    else:
        ds.write_json(uri, filesystem=filesystem)  # JSON lines, one object per row


def scan_files_with_ray(input_uri: str, column: str, output_uri: str, model: str | Path = DEFAULT, *,
                        input_format: str | None = None, output_format: str | None = None,
                        concurrency: int | tuple[int, int] = 1, batch_size: int | None = 512,
                        num_cpus: float = 1.0, num_gpus: float = 0.0, overwrite: bool = False,
                        scanner: PoisonScanner | None = None) -> str:
    """Read a catalogue, scan it on the Ray cluster, write it with the three added columns.

    Connecting to the cluster is the caller's business (``ray.init(address="auto")``
    on a cluster node, or nothing for a local one-machine Ray). ``input_uri`` and
    ``output_uri`` are whatever Ray Data reads and writes: local paths, ``s3://``,
    ``gs://``, ``abfs://`` ... . ``input_uri`` may be a file or a folder of files; the
    format comes from its extension, else from ``input_format``. The output is a
    *folder* of files (one or more per block, Ray's layout) in ``output_format``
    (default: the input's), rows in input order.

    No partial output: the files are written to a sibling staging folder, which
    is moved to ``output_uri`` only when every block has been written (a rename on
    a local disk; copy-then-delete on an object store). An existing ``output_uri``
    is an error unless ``overwrite=True``. The other arguments are
    :func:`scan_dataset`'s. Returns ``output_uri``.
    """
    ray = _require_ray("scan_files_with_ray")
    import pyarrow.fs as pafs

    in_fmt = file_format(input_uri, input_format)
    out_fmt = file_format(output_uri, output_format) if output_format is not None else (
        _maybe_format(output_uri) or in_fmt)
    if "://" not in output_uri:
        output_uri = str(Path(output_uri).expanduser().resolve())
    fs, out_path = pafs.FileSystem.from_uri(output_uri)
    out_path = out_path.rstrip("/")
    exists = fs.get_file_info(out_path).type != pafs.FileType.NotFound
    if exists and not overwrite:
        raise UserError(f"{output_uri}: already exists; choose a new output or pass overwrite=True")

    ds = _read(ray, input_uri, in_fmt, column)
    # this dataset's own context (a copy made by the reader): the caller's DataContext is untouched
    ds.context.execution_options.preserve_order = True
    ds.context.raise_original_map_exception = True  # our UserError, not a UserCodeException wrapping its text
    scanned = scan_dataset(ds, model, column, concurrency=concurrency, batch_size=batch_size,
                           num_cpus=num_cpus, num_gpus=num_gpus, scanner=scanner)
    staging = f"{out_path}.incomplete-{uuid.uuid4().hex[:12]}"
    try:
        _write(scanned, staging, out_fmt, fs)
    except BaseException as exc:
        _delete_quietly(fs, staging)
        user_error = _user_error_in(exc)
        if user_error is not None:
            raise UserError(f"{input_uri}: {user_error}") from None
        raise
    if fs.get_file_info(staging).type == pafs.FileType.NotFound:  # an empty catalogue writes no file
        fs.create_dir(staging)
    if exists:
        fs.delete_dir(out_path)
    try:
        fs.move(staging, out_path)
    except (OSError, NotImplementedError):  # object stores: no directory rename
        pafs.copy_files(staging, out_path, source_filesystem=fs, destination_filesystem=fs)
        fs.delete_dir(staging)
    return output_uri


def _maybe_format(uri: str) -> str | None:
    try:
        return file_format(uri)
    except UserError:
        return None


def _user_error_in(exc: BaseException) -> UserError | None:
    """Ray wraps an exception raised in an actor; find our UserError in the chain, if it is one."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = getattr(current, "cause", None)  # ray.exceptions.RayTaskError keeps the original here
        for candidate in (cause, current):  # the original first: the wrapper's own text is the remote traceback
            if isinstance(candidate, UserError):
                text = str(candidate.args[0]) if candidate.args else str(candidate)
                return UserError(text.splitlines()[0] if text else text)  # Ray appends its retry advice below
        current = current.__cause__ or current.__context__
    found = re.search(r"recbackdoor\.errors\.UserError: (.+)", str(exc))  # wrapped: only the remote traceback's text
    return UserError(found.group(1).strip()) if found else None


def _delete_quietly(fs: Any, path: str) -> None:
    try:
        fs.delete_dir(path)
    except (OSError, FileNotFoundError):
        pass


def _short(row: dict[str, Any], limit: int = 200) -> str:
    text = repr({k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()})
    return text if len(text) <= limit else text[:limit] + "...}"
