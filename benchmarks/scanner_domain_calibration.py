"""The default scanner re-thresholded on each dataset's own titles (`recbackdoor calibrate-scanner`), measured on
titles it was not calibrated on.

Each dataset's catalogue titles are split in two halves (seeded): the threshold is set on half A to flag 1 % of
it (``threshold_for``, what ``calibrate-scanner`` runs), and half B is scored clean (FPR) and with each paper
trigger and each held-out trigger family at the end and at a random position (TPR), at the shipped threshold
and at the domain one side by side. AUROC does not depend on the threshold and is the same for both.

    RECBACKDOOR_DATA=/work/shared/data python benchmarks/scanner_domain_calibration.py \
        --out docs/results/scanner_domain_calibration
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from recbackdoor.defenses.text.recalibration import threshold_for
from recbackdoor.defenses.text.scanner import PoisonScanner
from recbackdoor.experiments.scanner_eval import DATASETS, catalogue_titles, triggered
from recbackdoor.metrics.scanner import rate_above
from recbackdoor.separation import auroc
from recbackdoor.triggers.heldout import HELD_OUT_FAMILIES, insert_family_trigger
from recbackdoor.triggers.text import DEFAULT_TRIGGERS, POSITIONS


def halves(titles: list[str], seed: int) -> tuple[list[str], list[str]]:
    shuffled = titles[:]
    random.Random(f"split:{seed}").shuffle(shuffled)
    return shuffled[: len(shuffled) // 2], shuffled[len(shuffled) // 2:]


def measure(scanner: PoisonScanner, dataset: str, fpr: float, seed: int) -> dict:
    calib, test = halves(catalogue_titles(dataset, None, seed), seed)
    domain, distinct = threshold_for(scanner, calib, fpr)
    clean = scanner.score(test)
    row = {"dataset": dataset, "calibration_titles": distinct, "test_titles": len(test),
           "shipped_threshold": scanner.threshold, "domain_threshold": domain,
           "fpr": {"shipped": rate_above(clean, scanner.threshold), "domain": rate_above(clean, domain)},
           "sets": []}
    sets = [(kind, pos, "paper", triggered(test, text, pos, seed))
            for kind, text in DEFAULT_TRIGGERS.items() for pos in POSITIONS]
    for family in HELD_OUT_FAMILIES:
        for pos in POSITIONS:
            rng = random.Random(f"{seed}:{family}:{pos}")
            sets.append((family, pos, "held-out", [insert_family_trigger(t, family, pos, rng) for t in test]))
    for trigger, pos, group, bad in sets:
        scores = scanner.score(bad)
        row["sets"].append({"trigger": trigger, "position": pos, "group": group, "auroc": auroc(clean, scores),
                            "tpr_shipped": rate_above(scores, scanner.threshold),
                            "tpr_domain": rate_above(scores, domain)})
    return row


def table(rows: list[dict]) -> str:
    out = ["| dataset | threshold: shipped → domain | clean FPR (half B): shipped → domain | "
           "paper triggers: TPR shipped → domain (end / random) | held-out families: mean TPR shipped → domain |",
           "|---|---|---|---|---|"]
    for r in rows:
        paper = [s for s in r["sets"] if s["group"] == "paper"]
        cells = []
        for kind in DEFAULT_TRIGGERS:
            by = {s["position"]: s for s in paper if s["trigger"] == kind}
            cells.append(f"{kind} " + " / ".join(f"{by[p]['tpr_shipped']:.2f}→{by[p]['tpr_domain']:.2f}"
                                                 for p in POSITIONS))
        held = [s for s in r["sets"] if s["group"] == "held-out"]
        shipped, domain = (sum(s[k] for s in held) / len(held) for k in ("tpr_shipped", "tpr_domain"))
        out.append(f"| {r['dataset']} | {r['shipped_threshold']:.4f} → {r['domain_threshold']:.4f} | "
                   f"{r['fpr']['shipped']:.3f} → {r['fpr']['domain']:.3f} ({r['test_titles']} titles) | "
                   f"{'; '.join(cells)} | {shipped:.3f} → {domain:.3f} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="default")
    parser.add_argument("--fpr", type=float, default=0.01)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    scanner = PoisonScanner.load(args.model)
    rows = [measure(scanner, dataset, args.fpr, args.seed) for dataset in DATASETS]
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"model": args.model, "fpr": args.fpr, "seed": args.seed,
               "seconds": round(time.perf_counter() - start, 1), "rows": rows}
    (args.out / "domain_calibration.json").write_text(json.dumps(payload, indent=1) + "\n")
    (args.out / "table.md").write_text(table(rows) + "\n")
    print(table(rows))
    print(f"{payload['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
