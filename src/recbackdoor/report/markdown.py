"""Paper-shaped Markdown tables of any results, behind ``recbackdoor tables``.

Each experiment writes its own ``tables.md`` when it runs; this rebuilds them
from committed results.json files alone, and puts runs side by side that ran
separately (both vision backbones in one Table 2; a scanner beside its
ablations), which no single run can do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from recbackdoor.report.defense_tables import defense_tables, is_defense_run
from recbackdoor.report.results_io import Run, load_runs
from recbackdoor.report.scanner_tables import ablation_table, family_table, paper_trigger_table
from recbackdoor.report.tables import markdown_tables
from recbackdoor.report.text_plots import asr_vs_rate
from recbackdoor.report.vision_tables import tables as vision_tables

RunKind = Literal["vision", "scanner", "defense", "badrec"]


def run_kind(run: Run) -> RunKind:
    """Which tables a run supports, read from what it recorded (scanner evaluations name no experiment)."""
    config = run.payload.get("config", {})
    if config.get("experiment") == "badembnets":
        return "vision"
    if "scanner" in config and "experiment" not in config:
        return "scanner"
    return "defense" if is_defense_run(run.cells) else "badrec"


def tables_text(runs: list[Run]) -> str:
    """The Markdown of every run given, grouped by kind; scanner runs in the order given (first = main)."""
    by_kind: dict[RunKind, list[Run]] = {}
    for run in runs:
        by_kind.setdefault(run_kind(run), []).append(run)
    parts: list[str] = []
    if vision := by_kind.get("vision"):
        parts.append(vision_tables({run.payload["config"]["extractor"]["arch"]: run.payload for run in vision}))
    if scanners := by_kind.get("scanner"):
        cells = [run.cells for run in scanners]
        parts.append(paper_trigger_table(cells[0], cells[1] if len(cells) > 1 else None))
        if any(c.get("heldout") for c in cells[0]):
            parts.append(family_table(cells[0]))
        parts.append(ablation_table(cells))
    for run in by_kind.get("defense", []):
        parts.append(f"## {run.name}\n\n" + defense_tables(run.cells))
    for run in by_kind.get("badrec", []):
        parts.append(f"## {run.name}\n\n" + markdown_tables(run.cells))
    return "\n\n".join(p.rstrip("\n") for p in parts) + "\n"


def tables_command(inputs: list[Path], asr_plot: Path | None, title: str | None) -> int:
    runs = load_runs(inputs)
    print(tables_text(runs), end="")
    if asr_plot is not None:
        cells = [cell for run in runs if run_kind(run) == "badrec" for cell in run.cells]
        print(asr_vs_rate(cells, asr_plot, title or runs[0].payload["config"].get("name", "")))
    return 0
