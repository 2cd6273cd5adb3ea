"""Scanner evaluation on real catalogues it never trained on: the paper's triggers and held-out families.

For each of MovieLens-100K, LastFM and Steam: every catalogue title clean (or
a seeded sample of them), and the same titles carrying each paper trigger at
the end and at a random word position, and each held-out trigger family.
Reported per set: AUROC (clean vs the same titles triggered), TPR at the
scanner's saved threshold, and FPR on the clean titles beside it.
"""

from __future__ import annotations

import json
import platform
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from recbackdoor.data.text_datasets import load_dataset
from recbackdoor.defenses.text.scanner import PoisonScanner
from recbackdoor.metrics.scanner import rate_above
from recbackdoor.separation import auroc
from recbackdoor.triggers.heldout import HELD_OUT_FAMILIES, insert_family_trigger
from recbackdoor.triggers.text import DEFAULT_TRIGGERS, POSITIONS, insert_trigger

DATASETS = ("ml100k", "lastfm", "steam")


def catalogue_titles(dataset: str, sample: int | None, seed: int) -> list[str]:
    titles = sorted(load_dataset(dataset).titles.values())
    if sample is not None and sample < len(titles):
        titles = random.Random(f"{seed}:{dataset}").sample(titles, sample)
    return titles


def triggered(titles: Sequence[str], trigger: str, position: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [insert_trigger(t, trigger, position, rng) for t in titles]


def evaluate_scanner(scanner: PoisonScanner, variant: str, datasets: Sequence[str] = DATASETS,
                     sample: int | None = None, families: bool = True, family_sample: int | None = None,
                     seed: int = 0, examples: int = 3) -> list[dict]:
    """One results.json cell per (dataset, trigger, position), plus each dataset's clean-FPR cell."""
    cells = []
    for dataset in datasets:
        titles = catalogue_titles(dataset, sample, seed)
        clean = scanner.score(titles)
        fpr = rate_above(clean, scanner.threshold)
        cells.append({"dataset": dataset, "victim": None, "variant": variant, "trigger": None, "position": None,
                      "metrics": {"fpr": fpr, "titles": len(titles)},
                      "false_positives": [t for t, s in zip(titles, clean, strict=True)
                                          if s > scanner.threshold][:examples * 4]})
        for kind, text in DEFAULT_TRIGGERS.items():
            for position in POSITIONS:
                bad = triggered(titles, text, position, seed)
                cells.append(_cell(scanner, dataset, variant, kind, position, clean, bad, fpr, examples, False))
        if not families:
            continue
        fam_titles = titles if family_sample is None else titles[:family_sample]
        fam_clean = clean[:len(fam_titles)]
        for family in HELD_OUT_FAMILIES:
            for position in POSITIONS:
                rng = random.Random(f"{seed}:{family}:{position}")
                bad = [insert_family_trigger(t, family, position, rng) for t in fam_titles]
                cells.append(_cell(scanner, dataset, variant, family, position, fam_clean, bad, fpr, examples, True))
    return cells


def _cell(scanner, dataset, variant, trigger, position, clean, bad, fpr, examples, heldout) -> dict:
    scores = scanner.score(bad)
    flagged = [t for t, s in zip(bad, scores, strict=True) if s > scanner.threshold]
    return {"dataset": dataset, "victim": None, "variant": variant, "trigger": trigger, "position": position,
            "heldout": heldout,
            "metrics": {"auroc": auroc(clean, scores), "tpr": rate_above(scores, scanner.threshold), "fpr": fpr,
                        "titles": len(bad)},
            "examples": [{"title": t, "suspect": scanner.suspect(t)} for t in flagged[:examples]],
            "missed": [t for t, s in zip(bad, scores, strict=True) if s <= scanner.threshold][:examples]}


def write_results(cells: list[dict], out: Path, config: dict, seconds: float) -> Path:
    import recbackdoor

    out.mkdir(parents=True, exist_ok=True)
    payload = {"config": config, "seeds": [config.get("seed", 0)],
               "versions": {"recbackdoor": recbackdoor.__version__, "python": platform.python_version()},
               "machine": {"cpu": platform.processor() or platform.machine()},
               "timings": {"total": seconds}, "cells": cells}
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(payload, indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(out / "results.json")
    return out / "results.json"


def summary_table(cells: list[dict]) -> str:
    """Markdown: one row per (dataset, trigger), End and Random side by side."""
    rows = ["| dataset | trigger | AUROC end | TPR end | AUROC random | TPR random | clean FPR |", "|---" * 7 + "|"]
    index = {(c["dataset"], c["trigger"], c["position"]): c["metrics"] for c in cells}
    for (dataset, trigger, position), m in index.items():
        if trigger is None or position != "end":
            continue
        r = index.get((dataset, trigger, "random"), {})
        rows.append(f"| {dataset} | {trigger} | {m['auroc']:.4f} | {m['tpr']:.3f} | {r.get('auroc', np.nan):.4f} | "
                    f"{r.get('tpr', np.nan):.3f} | {m['fpr']:.3f} |")
    return "\n".join(rows)


def run_evaluation(model: str, variant: str, out: Path, sample: int | None, families: bool,
                   family_sample: int | None, seed: int, examples: int = 3) -> Path:
    started = time.time()
    scanner = PoisonScanner.load(model)
    cells = evaluate_scanner(scanner, variant, sample=sample, families=families, family_sample=family_sample,
                             seed=seed, examples=examples)
    config = {"model": str(model), "variant": variant, "sample": sample, "families": families,
              "family_sample": family_sample, "seed": seed, "examples": examples, "threshold": scanner.threshold,
              "scanner": {k: v for k, v in scanner.meta.items() if k not in ("rounds",)}}
    path = write_results(cells, out, config, time.time() - started)
    (out / "tables.md").write_text(summary_table(cells) + "\n", encoding="utf-8")
    return path
