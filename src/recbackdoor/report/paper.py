"""Paper-vs-ours tables: the papers' numbers (``paper_numbers.json``) beside the matching result cells.

Why the numbers are data and not code: each one is a transcription that a
reader must be able to check against its table, row and column (and, for the
text paper, the line of the extracted paper text), and a correction should be
a one-line data edit.  ``match`` in each row says which results.json cells
measure the same thing; when our setting differs (MovieLens-100K for ML1M,
Fashion-MNIST for the Amazon photos), the table's ``note`` says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from recbackdoor.report.results_io import Run


@dataclass(frozen=True)
class CompareRow:
    """One line of a comparison table: the paper's cell for one dataset, or one of our cells."""

    label: str
    sources: tuple[tuple[str, str | None], ...]  # (name, page anchor of the run or None)
    detail: str
    values: tuple[str, ...]
    is_paper: bool


@dataclass(frozen=True)
class CompareTable:
    """A paper table (or two merged ones) with our matching cells listed under each paper row group."""

    anchor: str
    title: str
    caption: str
    note: str
    paper_title: str
    columns: tuple[str, ...]
    rows: tuple[CompareRow, ...]
    ours: int


@cache
def paper_numbers() -> dict[str, Any]:
    """The transcribed tables shipped with the package."""
    text = resources.files("recbackdoor.report").joinpath("paper_numbers.json").read_text(encoding="utf-8")
    return json.loads(text)


def fmt(value: float | None, std: float | None = None) -> str:
    """A fraction with 4 decimals, ``± std`` where the cell has several seeds; '/' where there is no value."""
    if value is None:
        return "/"
    text = f"{value:.4f}"
    return text if std is None else f"{text} ± {std:.4f}"


def matches(cell: dict[str, Any], match: dict[str, Any]) -> bool:
    """Whether a results.json cell is one the paper row compares with.

    A list means any of its values; under ``extra`` a ``null`` means the key must be absent (e.g.
    ``study: null`` keeps ablation cells out of a main-table comparison).
    """
    for key, want in match.items():
        if key == "extra":
            extra = cell.get("extra") or {}
            if any(extra.get(k) != w for k, w in want.items()):
                return False
        elif isinstance(want, list):
            if cell.get(key) not in want:
                return False
        elif cell.get(key) != want:
            return False
    return True


def _detail(run: Run, cell: dict[str, Any]) -> str:
    extra = cell.get("extra") or {}
    parts = [str(cell.get("dataset")), str(cell.get("victim"))]
    if isinstance(extra.get("rate"), int | float):
        parts.append(f"PR {extra['rate']:g}")
    per_seed = extra.get("per_seed")
    if cell.get("metrics_std"):
        count = len(next(iter(per_seed.values()))) if isinstance(per_seed, dict) and per_seed else len(run.seeds)
        parts.append(f"{count} seeds")
    return " · ".join(parts)


def compare_tables(runs: list[Run], anchors: dict[str, str]) -> list[CompareTable]:
    """Every transcribed table, each paper row group followed by our cells that match it."""
    data = paper_numbers()
    tables = []
    for spec in data["tables"]:
        metrics = list(spec["columns"])
        percent = set(spec.get("percent_metrics", []))
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in spec["rows"]:
            groups.setdefault(row["label"], []).append(row)
        rows: list[CompareRow] = []
        ours = 0
        for label, paper_rows in groups.items():
            for row in paper_rows:
                values = tuple(fmt(None if row["values"].get(m) is None
                                   else row["values"][m] / (100.0 if m in percent else 1.0)) for m in metrics)
                where = f"{row['table']}" + (f", line {row['line']}" if "line" in row else "")
                rows.append(CompareRow(label, ((f"paper · {row['paper_dataset']}", None),), where, values, True))
            # identical cells (a merged run and the per-process runs it was merged from) share one line
            found: dict[tuple[str, tuple[str, ...]], list[tuple[str, str | None]]] = {}
            for run in runs:
                for cell in run.cells:
                    if not matches(cell, paper_rows[0]["match"]) or not any(m in cell["metrics"] for m in metrics):
                        continue
                    std = cell.get("metrics_std") or {}
                    values = tuple(fmt(cell["metrics"].get(m), std.get(m)) for m in metrics)
                    found.setdefault((_detail(run, cell), values), []).append((run.name, anchors.get(run.name)))
                    ours += 1
            rows += [CompareRow(label, tuple(sources), detail, values, False)
                     for (detail, values), sources in found.items()]
        paper = data["papers"][spec["paper"]]
        tables.append(CompareTable(
            anchor=f"paper-{spec['id']}", title=f"{_short(spec['paper'])} {spec['table']}",
            caption=spec["caption"], note=spec.get("note", ""), paper_title=paper["title"],
            columns=tuple(spec["columns"][m] for m in metrics), rows=tuple(rows), ours=ours))
    return tables


def _short(paper: str) -> str:
    return {"badrec": "BadRec / P-Scanner", "badembnets": "BadEmbNets"}.get(paper, paper)
