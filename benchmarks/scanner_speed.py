"""Titles per second of the default scanner, the LLM P-Scanner and ONION on the same 10,000 real titles,
and the peak memory and wall time of ``recbackdoor scan`` on a 1,000,000-row CSV.

    python benchmarks/scanner_speed.py --pscanner runs/pscanner_full --out docs/results/scanner_speed

The 10,000 titles are every MovieLens-100K, LastFM and Steam catalogue title
(6,799) plus seeded copies of them carrying a paper trigger.  The LLM and
ONION are timed on seeded subsets of those titles (``--llm-titles``,
``--onion-titles``): at their speed the whole set would take an hour.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def ten_thousand_titles(seed: int = 0) -> list[str]:
    from recbackdoor.experiments.scanner_eval import DATASETS, catalogue_titles
    from recbackdoor.triggers.text import DEFAULT_TRIGGERS, insert_trigger

    titles = [t for d in DATASETS for t in catalogue_titles(d, None, seed)]
    rng = random.Random(seed)
    while len(titles) < 10_000:
        kind = rng.choice(sorted(DEFAULT_TRIGGERS))
        titles.append(insert_trigger(rng.choice(titles[:6799]), DEFAULT_TRIGGERS[kind], "random", rng))
    return titles[:10_000]


def timed(fn, titles) -> dict:
    started = time.perf_counter()
    fn(titles)
    seconds = time.perf_counter() - started
    return {"titles": len(titles), "seconds": seconds, "titles_per_s": len(titles) / seconds}


def scan_million(titles: list[str], folder: Path, rows: int) -> dict:
    """``recbackdoor scan --model default`` on a CSV of ``rows`` real titles, under /usr/bin/time -v."""
    from recbackdoor.triggers.text import DEFAULT_TRIGGERS, insert_trigger

    source = folder / "million.csv"
    with open(source, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item_id", "title"])
        rng = random.Random(7)
        for i in range(rows):  # a catalogue: the real titles over and over, 1 in 100 rows carrying a paper trigger
            title = titles[i % len(titles)]
            if i % 100 == 99:
                title = insert_trigger(title, DEFAULT_TRIGGERS[rng.choice(sorted(DEFAULT_TRIGGERS))], "random", rng)
            writer.writerow([i, title])
    out = folder / "million.scanned.csv"
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "recbackdoor.cli", "scan", "--model", "default",
               "--input", str(source), "--column", "title", "--output", str(out), "--no-progress"]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    peak_kb = next(int(line.split(":")[1]) for line in result.stderr.splitlines() if "Maximum resident" in line)
    with open(out, encoding="utf-8") as handle:
        written = sum(1 for _ in handle) - 1
    return {"rows": rows, "rows_written": written, "seconds": seconds, "titles_per_s": rows / seconds,
            "peak_rss_mib": peak_kb / 1024, "input_mib": source.stat().st_size / 2**20}


def speed_cells(results: dict) -> list[dict]:
    """results.json cells (the project's schema): one per scanner timed, metrics titles_per_s and seconds."""
    names = {"default": "default", "p-scanner-llm": "p-scanner", "onion": "onion", "scan_million_csv": "default-scan"}
    return [{"dataset": "ml100k+lastfm+steam", "victim": None, "variant": names[key], "trigger": None, "position": None,
             "metrics": {k: float(v) for k, v in value.items() if isinstance(v, (int, float))}}
            for key, value in results.items() if key in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pscanner", type=Path, default=None, help="a trained P-Scanner folder (kind llm)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--llm-titles", type=int, default=500)
    parser.add_argument("--onion-titles", type=int, default=200)
    parser.add_argument("--million", type=int, default=1_000_000, help="rows of the memory test (0: skip)")
    parser.add_argument("--parts", default="default,llm,onion,million",
                        help="comma list of what to time (default,llm,onion,million)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from recbackdoor.defenses.text.onion import load_onion
    from recbackdoor.defenses.text.scanner import PoisonScanner

    parts = set(args.parts.split(","))
    titles = ten_thousand_titles()
    subset = random.Random(1).sample(titles, max(args.llm_titles, args.onion_titles))
    default = PoisonScanner.load("default")
    default.score(titles[:256])  # warm-up (first-call allocations, ICU tables)
    results = {"default": timed(default.score, titles)}
    if "llm" in parts:
        llm = PoisonScanner.load(args.pscanner)
        results["p-scanner-llm"] = timed(llm.score, subset[:args.llm_titles])
        results["default_vs_llm"] = results["default"]["titles_per_s"] / results["p-scanner-llm"]["titles_per_s"]
    if "onion" in parts:
        onion = load_onion()
        results["onion"] = timed(onion.score, subset[:args.onion_titles])
        results["default_vs_onion"] = results["default"]["titles_per_s"] / results["onion"]["titles_per_s"]
    if args.million and "million" in parts:
        with tempfile.TemporaryDirectory() as tmp:
            results["scan_million_csv"] = scan_million(titles[:6799], Path(tmp), args.million)
    payload = {"config": {"command": " ".join(["python", *sys.argv]), **vars(args)}, "seeds": [0],
               "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                           "threads": args.threads},
               "timings": {"total": sum(r["seconds"] for r in results.values() if isinstance(r, dict))},
               "cells": speed_cells(results), "results": results}
    payload["config"] = {k: str(v) if isinstance(v, Path) else v for k, v in payload["config"].items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(payload, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
