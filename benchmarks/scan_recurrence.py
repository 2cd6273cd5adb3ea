"""``recbackdoor scan --recurrence`` on real catalogues with planted triggers: what the catalogue-level test adds.

For each text dataset's real item catalogue (MovieLens-100K movies, LastFM artists, Steam games) and each of the
paper's three test triggers at the end or at a random word position, the trigger is planted in 1 % of the items
(at least 10; seeded), the catalogue is written as CSV and scanned through ``scan_file`` (the CLI's own path) with
the shipped scanner, once per catalogue. Counted: planted items caught by the per-title verdict (``flagged``) and
by ``flagged`` or ``recurring_span``; benign items flagged, and benign items that only carry a recurring span
(the test's extra false alarms); the spans found; wall seconds of the two-pass scan.

    RECBACKDOOR_DATA=... python benchmarks/scan_recurrence.py --out docs/results/scan_recurrence
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import resource
import sys
import tempfile
from pathlib import Path

from recbackdoor.data.text_datasets import load_lastfm, load_ml100k, load_steam
from recbackdoor.defenses.text.scan_command import scan_file
from recbackdoor.defenses.text.scanner import PoisonScanner
from recbackdoor.triggers.text import DEFAULT_TRIGGERS, insert_trigger

LOADERS = {"ml100k": load_ml100k, "lastfm": load_lastfm, "steam": load_steam}


def planted_catalogue(titles: list[str], kind: str, position: str, seed: int) -> tuple[list[str], set[int]]:
    rng = random.Random(f"{seed}-{kind}-{position}")
    n = max(10, round(0.01 * len(titles)))
    rows = sorted(rng.sample(range(len(titles)), n))
    out = list(titles)
    for i in rows:
        out[i] = insert_trigger(out[i], DEFAULT_TRIGGERS[kind], position, rng)
    return out, set(rows)


def run_one(scanner: PoisonScanner, dataset: str, titles: list[str], kind: str, position: str, seed: int,
            scratch: Path) -> dict:
    catalogue, planted = planted_catalogue(titles, kind, position, seed)
    src, dst = scratch / f"{dataset}-{kind}-{position}.csv", scratch / f"{dataset}-{kind}-{position}.out.csv"
    with src.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["title"], *[[t] for t in catalogue]])
    summary = scan_file(scanner, src, "title", dst, progress=False, recurrence=True)
    with dst.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    flagged = {i for i, r in enumerate(rows) if r["flagged"] == "true"}
    carrying = {i for i, r in enumerate(rows) if r["recurring_span"]}
    benign = set(range(len(rows))) - planted
    return {"dataset": dataset, "trigger": kind, "position": position, "items": len(rows), "planted": len(planted),
            "caught_flagged": len(planted & flagged), "caught_with_recurrence": len(planted & (flagged | carrying)),
            "benign_flagged": len(benign & flagged), "benign_recurring_only": len((benign & carrying) - flagged),
            "spans": [{"span": s.span, "titles": s.titles, "elevated": s.elevated, "p_value": s.p_value}
                      for s in summary.recurring], "seconds": summary.seconds}


def table(rows: list[dict]) -> str:
    lines = ["| dataset | trigger | items | planted | caught: flagged | caught: + recurrence | benign flagged | "
             "benign: recurrence only | spans found | s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        spans = ", ".join(repr(s["span"]) for s in r["spans"][:4]) + (" …" if len(r["spans"]) > 4 else "")
        lines.append(f"| {r['dataset']} | {r['trigger']}-{r['position']} | {r['items']:,} | {r['planted']} | "
                     f"{r['caught_flagged']} | {r['caught_with_recurrence']} | {r['benign_flagged']} | "
                     f"{r['benign_recurring_only']} | {spans or '—'} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--datasets", default="ml100k,lastfm,steam")
    args = parser.parse_args(argv)
    scanner = PoisonScanner.load("default")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for dataset in args.datasets.split(","):
            titles = list(LOADERS[dataset]().titles.values())
            for kind in ("char", "word", "sentence"):
                for position in ("end", "random"):
                    rows.append(run_one(scanner, dataset, titles, kind, position, args.seed, Path(scratch)))
                    print(table(rows[-1:]).splitlines()[-1], flush=True)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.mkdir(parents=True, exist_ok=True)
    # not a results.json: its rows are not cells of the results schema (the HTML report reads every results.json)
    (args.out / "scan_counts.json").write_text(json.dumps({"rows": rows, "seed": args.seed, "peak_rss_mib": peak_mib},
                                                      indent=1) + "\n")
    (args.out / "table.md").write_text(table(rows) + f"\nPeak RSS of the whole run: {peak_mib:.0f} MiB.\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
