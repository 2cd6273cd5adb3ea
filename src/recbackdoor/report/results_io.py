"""Finding, reading and checking the ``results.json`` files a report is built from.

Why a module of its own: the report must build from committed result files
alone, and a bad argument (a missing path, a file that is not JSON, a cell
without metrics) has to stop the command with one line that names the file and
the field, before anything is drawn or written.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recbackdoor.errors import UserError

RESULTS_NAME = "results.json"


@dataclass(frozen=True)
class Run:
    """One results.json: its place, a short name for the page and the parsed payload."""

    name: str
    path: Path
    payload: dict[str, Any]

    @property
    def cells(self) -> list[dict[str, Any]]:
        return self.payload["cells"]

    @property
    def seeds(self) -> list[Any]:
        seeds = self.payload.get("seeds")
        return list(seeds) if isinstance(seeds, list) else []


def find_results(inputs: Sequence[Path]) -> list[tuple[Path, str]]:
    """Every results.json named or lying (at any depth) under a named folder, with its display name.

    The name is the file's folder relative to the folder given on the command line (the folder's own
    name when the file lies directly in it), so runs nested under ``per_dataset_runs/`` stay apart.
    """
    found: dict[Path, str] = {}
    for given in inputs:
        if not given.exists():
            raise UserError(f"{given}: no such file or folder")
        if given.is_dir():
            files = sorted(given.rglob(RESULTS_NAME))
            if not files:
                raise UserError(f"{given}: no {RESULTS_NAME} in this folder or below it")
            for file in files:
                relative = file.parent.relative_to(given).as_posix()
                found.setdefault(file.resolve(), given.resolve().name if relative == "." else relative)
        else:
            found.setdefault(given.resolve(), given.resolve().parent.name)
    return [(path, name) for path, name in found.items()]


def load_runs(inputs: Sequence[Path]) -> list[Run]:
    """Read and check every results file; the first problem found is raised as a one-line UserError."""
    runs = []
    names: set[str] = set()
    for path, name in find_results(inputs):
        unique, k = name, 2
        while unique in names:  # two arguments can yield the same folder name
            unique, k = f"{name} ({k})", k + 1
        names.add(unique)
        runs.append(Run(unique, path, _read(path)))
    return runs


def _read(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from None
    if not isinstance(payload, dict):
        raise UserError(f"{path}: expected a JSON object with a 'cells' list, found {type(payload).__name__}")
    cells = payload.get("cells")
    if not isinstance(cells, list):
        raise UserError(f"{path}: field 'cells' is missing or not a list")
    for index, cell in enumerate(cells):
        _check_cell(path, index, cell)
    return payload


def _check_cell(path: Path, index: int, cell: Any) -> None:
    where = f"{path}: cells[{index}]"
    if not isinstance(cell, dict):
        raise UserError(f"{where}: expected an object, found {type(cell).__name__}")
    for key in ("dataset", "variant"):
        if not isinstance(cell.get(key), str):
            raise UserError(f"{where}.{key}: missing or not a string")
    for key in ("metrics", "metrics_std"):
        values = cell.get(key, {} if key == "metrics_std" else None)
        if not isinstance(values, dict):
            raise UserError(f"{where}.{key}: missing or not an object")
        for metric, value in values.items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise UserError(f"{where}.{key}.{metric}: expected a finite number, found {value!r}")
    if not isinstance(cell.get("extra", {}), dict):
        raise UserError(f"{where}.extra: not an object")


def command_line(run: Run) -> str:
    """The command that produced the run, as far as the file records it.

    ``recbackdoor run`` files carry the config file, ``--set`` overrides and ``--only`` filters;
    ``eval-scanner`` files carry their options in ``config``; a file may also carry ``command`` itself.
    """
    payload = run.payload
    recorded = payload.get("command")
    if isinstance(recorded, list):
        return shlex.join(str(part) for part in recorded)
    if isinstance(recorded, str) and recorded:
        return recorded
    if isinstance(payload.get("config_file"), str):
        parts = ["recbackdoor", "run", payload["config_file"]]
        for item in payload.get("overrides") or []:
            parts += ["--set", str(item)]
        only = payload.get("only") or {}
        for key, value in (only.items() if isinstance(only, dict) else []):
            parts += ["--only", f"{key}={value}"]
        return shlex.join(parts)
    config = payload.get("config") or {}
    if isinstance(config, dict) and "model" in config and all(c.get("victim") is None for c in run.cells):
        parts = ["recbackdoor", "eval-scanner", "--model", str(config["model"]),
                 "--variant", str(config.get("variant", "p-scanner"))]
        for key, flag in (("sample", "--sample"), ("family_sample", "--family-sample"), ("seed", "--seed"),
                          ("examples", "--examples")):
            if config.get(key) is not None:
                parts += [flag, str(config[key])]
        if config.get("families") is False:
            parts.append("--no-families")
        return shlex.join(parts)
    return "(not recorded in the file)"


def wall_time(run: Run) -> str:
    """``timings.total`` written for a person (e.g. ``23 min 23 s``); stage times are listed elsewhere."""
    total = (run.payload.get("timings") or {}).get("total")
    if not isinstance(total, int | float):
        return "not recorded"
    seconds = round(float(total))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{float(total):.1f} s"


def machine_text(run: Run) -> str:
    """The machine record as ``key: value`` pairs, in the file's order."""
    machine = run.payload.get("machine")
    if not isinstance(machine, dict) or not machine:
        return "not recorded"
    return ", ".join(f"{key}: {value}" for key, value in machine.items())
