"""What the catalogue-level recurrence test and the training data's label test add to the train-time scanner
filter, per rung-1 cell.

For each (dataset, trigger, position) of the rung-1 defense configs it rebuilds the poisoned training set exactly as
the defense run does (same split, same fake users), scans every distinct title with the shipped scanner, and counts
the training samples (benign / fake) the filter would drop: by the scanner's flags alone (the committed
``p-scanner-train-time`` row), with every title that carries a span the recurrence test finds, and with every title
that carries a span the label test (``label_test.py``) finds. No recommender is trained; a few seconds per cell after
the data load.

    RECBACKDOOR_DATA=... python benchmarks/recurrence_filter.py --out docs/results/recurrence_filter
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import recbackdoor.experiments.defense_experiment  # noqa: F401  (registers the "defense" experiment)
from recbackdoor.cache import StageCache
from recbackdoor.defenses.text.label_test import training_spans
from recbackdoor.defenses.text.recurrence import FlagsWithRecurrence, catalogue_flagger
from recbackdoor.defenses.text.requests import sample_titles
from recbackdoor.defenses.text.scanner import PoisonScanner
from recbackdoor.experiments.badrec_engine import BadRecEngine, Variant
from recbackdoor.experiments.config import load_config
from recbackdoor.experiments.context import RunContext
from recbackdoor.experiments.registry import config_model
from recbackdoor.triggers.text import make_trigger


def cells_of(config: Path, scanner: PoisonScanner, scratch: Path) -> list[dict]:
    cfg = load_config(config, [], config_model)
    ctx = RunContext(out_dir=scratch, cache=StageCache(scratch / "cache"))
    engine = BadRecEngine(cfg, ctx, cfg.datasets[0], cfg.seeds[0])
    out = []
    for kind in ("benign", "char", "word", "sentence"):
        for position in ("end",) if kind == "benign" else ("end", "random"):
            fakes = [] if kind == "benign" else engine._fakes(  # the defense run's own fake users
                Variant("badrec", make_trigger(kind, position, None), cfg.attack.rates[0]))
            per_sample = [set(sample_titles(s, engine.data)) for s in list(engine.split.train) + fakes]
            distinct = list(dict.fromkeys(t for titles in per_sample for t in titles))
            started = time.perf_counter()
            flagger = catalogue_flagger(scanner, distinct)  # what p-scanner-recurrence-train-time runs
            seconds = time.perf_counter() - started
            flagged = {t for t, f in zip(distinct, flagger.base.flag(distinct), strict=True) if f}
            carried = {t for t, f in zip(distinct, flagger.flag(distinct), strict=True) if f}
            label_spans = training_spans(list(engine.split.train) + fakes, engine.data)
            labelled = {t for t, f in zip(distinct, FlagsWithRecurrence(flagger.base, label_spans).flag(distinct),
                                           strict=True) if f}
            n_benign = len(engine.split.train)

            def dropped(bad: set[str], samples: list[set[str]]) -> int:
                return sum(bool(bad & titles) for titles in samples)

            out.append({
                "dataset": cfg.datasets[0], "trigger": kind, "position": None if kind == "benign" else position,
                "n_benign": n_benign, "n_fake": len(fakes), "distinct_titles": len(distinct),
                "scanner": {"dropped_benign": dropped(flagged, per_sample[:n_benign]),
                            "dropped_fake": dropped(flagged, per_sample[n_benign:])},
                "with_recurrence": {"dropped_benign": dropped(carried, per_sample[:n_benign]),
                                    "dropped_fake": dropped(carried, per_sample[n_benign:])},
                "with_label_test": {"dropped_benign": dropped(labelled, per_sample[:n_benign]),
                                    "dropped_fake": dropped(labelled, per_sample[n_benign:])},
                "spans": [vars(r) for r in flagger.recurring], "label_spans": label_spans, "seconds": seconds})
            print(json.dumps(out[-1], ensure_ascii=False), flush=True)
    return out


def table(cells: list[dict]) -> str:
    rows = ["| dataset | cell | fakes dropped: scanner | + recurrence | + label test | benign dropped: scanner | "
            "+ recurrence | + label test | recurring spans (carriers, of them elevated) | label-test spans |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for c in cells:
        name = "benign" if c["position"] is None else f"{c['trigger']}-{c['position']}"
        spans = ", ".join(f"{s['span']!r} ({s['titles']}, {s['elevated']})" for s in c["spans"]) or "—"
        labels = ", ".join(repr(s) for s in c["label_spans"]) or "—"
        rows.append(f"| {c['dataset']} | {name} | {c['scanner']['dropped_fake']} / {c['n_fake']} | "
                    f"{c['with_recurrence']['dropped_fake']} / {c['n_fake']} | "
                    f"{c['with_label_test']['dropped_fake']} / {c['n_fake']} | {c['scanner']['dropped_benign']} / "
                    f"{c['n_benign']} | {c['with_recurrence']['dropped_benign']} / {c['n_benign']} | "
                    f"{c['with_label_test']['dropped_benign']} / {c['n_benign']} | {spans} | {labels} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--datasets", default="ml100k,lastfm,steam")
    args = parser.parse_args()
    scanner = PoisonScanner.load("default")
    started = time.perf_counter()
    cells = []
    with tempfile.TemporaryDirectory() as scratch:  # the engine's run context wants somewhere to write
        for dataset in args.datasets.split(","):
            cells += cells_of(Path(f"configs/small/defense_tallrec_{dataset}.toml"), scanner, Path(scratch))
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"command": "python benchmarks/recurrence_filter.py --out " + str(args.out),
              "scanner": "default", "threshold": scanner.threshold, "seconds": time.perf_counter() - started,
              "cells": cells}
    tmp = args.out / "filter_counts.json.tmp"
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    tmp.rename(args.out / "filter_counts.json")  # not a results.json: no cells of the results schema
    (args.out / "table.md").write_text(table(cells))
    print(table(cells))


if __name__ == "__main__":
    main()
