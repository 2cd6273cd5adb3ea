"""``recbackdoor report``: results.json files → one self-contained HTML page.

The page holds the papers' tables beside ours, every plot the results support
(inline PNG), and each run's cells with its command, machine and wall time.
Markup lives in ``templates/report.html.j2`` (Jinja2, autoescaped); this module
only shapes the data, so a change of layout never touches the numbers.  The
page is written to a temporary file and renamed into place: a failed or
interrupted build leaves no partial report behind.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recbackdoor.errors import UserError
from recbackdoor.report.figures import Figure, figures_for
from recbackdoor.report.paper import CompareTable, compare_tables, fmt
from recbackdoor.report.results_io import Run, command_line, load_runs, machine_text, wall_time
from recbackdoor.report.tables import METRIC_ORDER

KEY_COLUMNS = ("dataset", "victim", "variant", "trigger", "position")
# extra fields that tell two otherwise equal cells apart, shown in the cell tables' "setting" column
SETTING_KEYS = (("rate", "PR"), ("backbone", "backbone"), ("study", "study"), ("vbpr_dim", "dim"),
                ("size", "size"), ("attack", "attack"), ("lr", "lr"), ("epochs", "epochs"))


@dataclass(frozen=True)
class CellTable:
    """The cells of one run that share a victim and a metric set, as text ready for the template."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class RunSection:
    """Everything the page says about one results.json."""

    anchor: str
    name: str
    path: str
    command: str
    machine: str
    wall_time: str
    seeds: str
    versions: str
    timings: tuple[tuple[str, str], ...]
    cells: int
    tables: tuple[CellTable, ...]


def _anchor(name: str, taken: set[str]) -> str:
    base = "run-" + (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "results")
    anchor, k = base, 2
    while anchor in taken:
        anchor, k = f"{base}-{k}", k + 1
    taken.add(anchor)
    return anchor


def _setting(cell: dict[str, Any]) -> str:
    extra = cell.get("extra") or {}
    parts = [f"{label} {extra[key]:g}" if isinstance(extra.get(key), float) else f"{label} {extra[key]}"
             for key, label in SETTING_KEYS if extra.get(key) is not None]
    if cell.get("heldout") is True:
        parts.append("held-out family")
    return " · ".join(parts)


def _metric_order(names: set[str]) -> list[str]:
    ordered = [m for m in METRIC_ORDER if m in names]
    return ordered + sorted(names - set(ordered))


def cell_tables(run: Run) -> tuple[CellTable, ...]:
    """One table per (victim, metric set), so every column of a table is filled; mean ± std where seeded."""
    groups: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
    for cell in run.cells:
        groups.setdefault((str(cell.get("victim")), tuple(sorted(cell["metrics"]))), []).append(cell)
    tables = []
    for (victim, names), cells in groups.items():
        metrics = _metric_order(set(names))
        rows = []
        for cell in cells:
            std = cell.get("metrics_std") or {}
            keys = tuple("–" if cell.get(k) is None else str(cell.get(k)) for k in KEY_COLUMNS)
            values = tuple(fmt(cell["metrics"][m], std.get(m)) for m in metrics)
            rows.append((*keys, _setting(cell), *values))
        title = f"{victim if victim != 'None' else 'no victim (scanner)'} — {len(cells)} cell(s)"
        tables.append(CellTable(title, (*KEY_COLUMNS, "setting", *metrics), tuple(rows)))
    return tuple(tables)


def _display_path(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return path.as_posix()


def run_section(run: Run, anchor: str) -> RunSection:
    payload = run.payload
    timings = payload.get("timings") or {}
    versions = payload.get("versions") or {}
    return RunSection(
        anchor=anchor, name=run.name, path=_display_path(run.path), command=command_line(run),
        machine=machine_text(run), wall_time=wall_time(run),
        seeds=", ".join(str(s) for s in run.seeds) or "not recorded",
        versions=", ".join(f"{k} {v}" for k, v in versions.items()) if isinstance(versions, dict) else "",
        timings=tuple((str(k), f"{v:.1f} s") for k, v in timings.items() if isinstance(v, int | float)),
        cells=len(run.cells), tables=cell_tables(run))


@dataclass(frozen=True)
class Report:
    """The template's whole context."""

    title: str
    inputs: tuple[str, ...]
    cells: int
    comparisons: tuple[CompareTable, ...]
    figures: tuple[tuple[Figure, str], ...]
    runs: tuple[RunSection, ...]


def build(inputs: list[Path], title: str = "recbackdoor results") -> Report:
    """Read the inputs and shape every table and plot; raises UserError on the first bad input."""
    runs = load_runs(inputs)
    taken: set[str] = set()
    anchors = {run.name: _anchor(run.name, taken) for run in runs}
    figures = tuple((figure, anchors[run.name]) for run in runs for figure in figures_for(run))
    return Report(title=title, inputs=tuple(str(p) for p in inputs), cells=sum(len(r.cells) for r in runs),
                  comparisons=tuple(compare_tables(runs, anchors)), figures=figures,
                  runs=tuple(run_section(run, anchors[run.name]) for run in runs))


def render(report: Report) -> str:
    """The page's HTML from the packaged Jinja2 template."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("recbackdoor.report", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(report=report)


def _write_atomically(out: Path, text: str) -> None:
    """Temporary file beside ``out``, then rename: readers never see half a page, a failure leaves none."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # a page to share, not mkstemp's owner-only 0600
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_report(inputs: list[Path], out: Path, title: str = "recbackdoor results") -> Report:
    """Build and write the page atomically; nothing is written when an input is bad."""
    if out.is_dir():
        raise UserError(f"{out}: is a folder; --out needs a file name such as report.html")
    report = build(inputs, title)
    _write_atomically(out, render(report))
    return report


def report_command(args: argparse.Namespace) -> int:
    """The CLI entry: write the page, then one summary line."""
    started = time.monotonic()
    report = write_report(list(args.results), args.out, args.title)
    print(f"wrote {args.out} ({len(report.runs)} results files, {report.cells} cells, {len(report.figures)} plots, "
          f"{time.monotonic() - started:.1f} s)")
    return 0
