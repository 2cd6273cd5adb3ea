"""What an experiment gets from the runner: cache, cell filter, timers, output."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recbackdoor.cache import StageCache
from recbackdoor.experiments.results import CELL_KEYS, Cell


@dataclass
class RunContext:
    out_dir: Path
    cache: StageCache
    only: dict[str, str] = field(default_factory=dict)
    cells: list[Cell] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    data_checksums: dict[str, str] = field(default_factory=dict)

    def wants(self, **cell_keys: Any) -> bool:
        """True when a cell with these keys passes ``--only`` (missing keys pass)."""
        for key, wanted in self.only.items():
            if key in cell_keys and str(cell_keys[key]) != wanted:
                return False
        return True

    def add_cell(self, cell: Cell) -> None:
        self.cells.append(cell)

    @contextmanager
    def timer(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - start


def parse_only(items: list[str]) -> dict[str, str]:
    from recbackdoor.errors import UserError

    only: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"--only {item!r}: expected KEY=VALUE with KEY in {', '.join(CELL_KEYS)}")
        key, value = item.split("=", 1)
        if key not in CELL_KEYS:
            raise UserError(f"--only {item!r}: unknown key {key!r}; valid keys: {', '.join(CELL_KEYS)}")
        only[key] = value
    return only
