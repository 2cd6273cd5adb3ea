"""One table and one figure per dataset from the committed rung-1 TALLRec defense cells (issue 24).

Each cell runs on its own (``recbackdoor run configs/small/defense_tallrec_<dataset>.toml --only trigger=T
--only position=P``, about an hour on one core) and its results.json is committed under
``docs/results/defense_tallrec_<dataset>_rung1_<trigger>_<position>/``; this script reads them all and writes
``summary.md`` (every defense × every cell as ASR / Score, with the issue's tallies) and the Fig. 5 / 7 plots
over all cells of a dataset.  Seconds: reads JSON only.

  python benchmarks/defense_rung1_summary.py --out docs/results/defense_tallrec_rung1_summary
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from recbackdoor.report.defense_tables import _save, rates_figure, summary_tables

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results"


def load_cells(results: Path = RESULTS) -> list[dict]:
    cells = []
    for path in sorted(results.glob("defense_tallrec_*_rung1_*/results.json")):
        cells += json.loads(path.read_text())["cells"]
    return cells


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    cells = load_cells()
    args.out.mkdir(parents=True, exist_ok=True)
    text = summary_tables(cells)
    (args.out / "summary.md").write_text("# Rung-1 TALLRec defense cells\n\n" + text)
    for dataset in dict.fromkeys(c["dataset"] for c in cells):
        fig = rates_figure(cells, dataset, "tallrec")
        if fig is not None:
            _save(fig, args.out / f"defense_tallrec_{dataset}.png")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
