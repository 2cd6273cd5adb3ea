"""Result cells, ``results.json`` and ``tables.md`` (schema in DESIGN.md)."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Hashable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CELL_KEYS = ("dataset", "victim", "variant", "trigger", "position")


@dataclass(frozen=True)
class Cell:
    """One measured configuration: a row of a paper table."""

    dataset: str
    victim: str
    variant: str
    trigger: str | None
    position: str | None
    metrics: dict[str, float]
    metrics_std: dict[str, float] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if data["metrics_std"] is None:
            del data["metrics_std"]
        if not data["extra"]:
            del data["extra"]
        for key, value in data["metrics"].items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"metric {key} is {value}: a metric must be a real number")
        return data


def mean_over_seeds(cells: list[Cell]) -> Cell:
    """Combine one cell measured under several seeds: mean + ``metrics_std``."""
    if len(cells) == 1:
        return cells[0]
    import numpy as np

    keys = sorted(set.intersection(*(set(c.metrics) for c in cells)))
    means = {k: float(np.mean([c.metrics[k] for c in cells])) for k in keys}
    stds = {k: float(np.std([c.metrics[k] for c in cells])) for k in keys}
    first = cells[0]
    per_seed = {k: [float(c.metrics[k]) for c in cells] for k in keys}  # so a reader can check the spread
    return Cell(first.dataset, first.victim, first.variant, first.trigger, first.position, means, stds,
                {**first.extra, "per_seed": per_seed})


def merge_seeds(cells: Iterable[Cell], identity: Callable[[Cell], Hashable]) -> list[Cell]:
    """One cell per ``identity`` (the cell's configuration without its seed), averaged over its seeds by
    :func:`mean_over_seeds`; groups keep the order of their first cell."""
    groups: dict[Hashable, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(identity(cell), []).append(cell)
    return [mean_over_seeds(group) for group in groups.values()]


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file + rename: never a half-written output."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_results(out_dir: Path, payload: dict[str, Any]) -> Path:
    path = out_dir / "results.json"
    atomic_write_text(path, json.dumps(payload, indent=1, ensure_ascii=False, default=str) + "\n")
    return path


def load_results(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))
