"""Markdown tables of scanner evaluations (``recbackdoor eval-scanner`` results.json files).

    recbackdoor tables docs/results/scanner_default docs/results/scanner_p-scanner ...

The first run is the main scanner; the paper-trigger table puts the second beside it.
"""

from __future__ import annotations

import numpy as np

PAPER_TRIGGERS = ("char", "word", "sentence")


def _index(cells: list[dict]) -> dict:
    return {(c["dataset"], c["trigger"], c["position"]): c["metrics"] for c in cells}


def _variant(cells: list[dict]) -> str:
    return cells[0]["variant"]


def paper_trigger_table(main: list[dict], other: list[dict] | None = None) -> str:
    a, b = _index(main), _index(other or [])
    head = f"| dataset | trigger | position | {_variant(main)} AUROC | TPR |"
    if other:
        head += f" {_variant(other)} AUROC | TPR |"
    rows = [head, "|---" * (head.count("|") - 1) + "|"]
    for dataset in sorted({k[0] for k in a}, key=["ml100k", "lastfm", "steam"].index):
        for trigger in PAPER_TRIGGERS:
            for position in ("end", "random"):
                m = a[(dataset, trigger, position)]
                row = f"| {dataset} | {trigger} | {position} | {m['auroc']:.4f} | {m['tpr']:.3f} |"
                if other and (dataset, trigger, position) in b:
                    n = b[(dataset, trigger, position)]
                    row += f" {n['auroc']:.4f} | {n['tpr']:.3f} |"
                rows.append(row)
        clean = a[(dataset, None, None)]
        fpr = f"| {dataset} | clean titles: FPR | | {clean['fpr']:.3f} ({clean['titles']} titles) | |"
        if other and (dataset, None, None) in b:
            clean_b = b[(dataset, None, None)]
            fpr += f" {clean_b['fpr']:.3f} ({clean_b['titles']} titles) | |"
        rows.append(fpr)
    return "\n".join(rows)


def family_table(cells: list[dict]) -> str:
    index = _index(cells)
    datasets = sorted({c["dataset"] for c in cells}, key=["ml100k", "lastfm", "steam"].index)
    families = [c["trigger"] for c in cells if c.get("heldout") and c["position"] == "end" and
                c["dataset"] == datasets[0]]
    head = "| held-out family | " + " | ".join(f"{d} TPR end / random" for d in datasets) + " | mean AUROC |"
    rows = [head, "|---" * (len(datasets) + 2) + "|"]
    for family in families:
        cells_fam = [index[(d, family, p)] for d in datasets for p in ("end", "random")]
        parts = [f"{index[(d, family, 'end')]['tpr']:.3f} / {index[(d, family, 'random')]['tpr']:.3f}"
                 for d in datasets]
        rows.append(f"| {family} | " + " | ".join(parts) + f" | {np.mean([c['auroc'] for c in cells_fam]):.3f} |")
    fprs = " | ".join(f"FPR {index[(d, None, None)]['fpr']:.3f}" for d in datasets)
    rows.append(f"| clean titles | {fprs} | |")
    return "\n".join(rows)


def ablation_table(runs: list[list[dict]]) -> str:
    rows = ["| scanner | titles per set | mean AUROC (18 sets) | min AUROC | mean TPR | word-trigger TPR | max FPR |",
            "|---|---|---|---|---|---|---|"]
    for cells in runs:
        paper = [c for c in cells if c["trigger"] in PAPER_TRIGGERS]
        clean = [c for c in cells if c["trigger"] is None]
        word = [c["metrics"]["tpr"] for c in paper if c["trigger"] == "word"]
        rows.append(f"| {_variant(cells)} | {clean[0]['metrics']['titles']} | "
                    f"{np.mean([c['metrics']['auroc'] for c in paper]):.4f} | "
                    f"{min(c['metrics']['auroc'] for c in paper):.4f} | "
                    f"{np.mean([c['metrics']['tpr'] for c in paper]):.3f} | {np.mean(word):.3f} | "
                    f"{max(c['metrics']['fpr'] for c in clean):.3f} |")
    return "\n".join(rows)
