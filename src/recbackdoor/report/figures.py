"""Every plot a results.json supports, drawn with matplotlib and inlined as base64 PNG.

Why inline PNGs: the report is one file that opens anywhere without a network
or a folder of images beside it.  Each function draws only what the cells
actually hold (a sweep of rates, per-epoch curves, t-SNE coordinates, defense
costs, scanner scores) and returns nothing when a run has no such cells, so
the page never shows an empty or made-up plot.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from recbackdoor.report.results_io import Run  # noqa: E402

Cell = dict[str, Any]


@dataclass(frozen=True)
class Figure:
    """One inline plot: what it shows, the run it comes from and the PNG as a data URI."""

    title: str
    caption: str
    run: str
    image: str


def _png(fig: plt.Figure) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _groups(cells: list[Cell], key: Callable[[Cell], Any]) -> dict[Any, list[Cell]]:
    out: dict[Any, list[Cell]] = {}
    for cell in cells:
        out.setdefault(key(cell), []).append(cell)
    return out


def asr_vs_rate(run: Run) -> list[Figure]:
    """ASR against poisoning rate, one line per trigger/position, where a run measured two rates or more."""
    figures = []
    for (dataset, victim), cells in _groups(run.cells, lambda c: (c["dataset"], c.get("victim"))).items():
        series: dict[str, list[tuple[float, float, float]]] = {}
        base: dict[str, float] = {}
        for cell in cells:
            rate, asr = (cell.get("extra") or {}).get("rate"), cell["metrics"].get("asr")
            if asr is None or not isinstance(rate, int | float):
                continue
            label = f"{cell.get('trigger')}-{cell.get('position')}"
            if cell["variant"] == "benign":
                base[label] = asr
            elif cell["variant"] == "badrec" and rate > 0:
                series.setdefault(label, []).append((rate, asr, (cell.get("metrics_std") or {}).get("asr", 0.0)))
        if not any(len({r for r, _, _ in points}) >= 2 for points in series.values()):
            continue
        fig, ax = plt.subplots(figsize=(5.6, 3.6))
        for label, points in sorted(series.items()):
            points.sort()
            line = ax.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points],
                               marker="o", capsize=3, label=label)
            if label in base:
                ax.axhline(base[label], color=line[0].get_color(), linestyle=":", linewidth=1)
        rates = sorted({p[0] for points in series.values() for p in points})
        ax.set_xscale("log")
        ax.set_xticks(rates, [f"{r:g}" for r in rates])
        ax.minorticks_off()
        ax.set(xlabel="poisoning rate PR = m / (m + n)", ylabel="ASR", ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        figures.append(Figure(f"ASR vs poisoning rate — {dataset} / {victim}",
                              "Dotted: the benign model's ASR for the same trigger (the base rate).", run.name,
                              _png(fig)))
    return figures


def finetune_curves(run: Run) -> list[Figure]:
    """BA and ASR after each epoch of fine-tuning on clean data (the fine-tuning defense)."""
    cells = [c for c in run.cells if {"ba_per_epoch", "asr_per_epoch"} <= set(c.get("extra") or {})]
    figures = []
    for backbone, group in _groups(cells, lambda c: c["extra"].get("backbone", "")).items():
        fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.4), sharex=True)
        for cell in group:
            extra = cell["extra"]
            label = f"{extra.get('attack', cell['variant'])} lr {extra.get('lr', '?')}"
            for ax, key in zip(axes, ("ba_per_epoch", "asr_per_epoch"), strict=True):
                ax.plot(range(len(extra[key])), extra[key], marker="o", label=label)
        for ax, name in zip(axes, ("BA", "ASR"), strict=True):
            ax.set(xlabel="epoch (0 = before fine-tuning)", ylabel=name, ylim=(-0.02, 1.02))
            ax.grid(alpha=0.3)
        axes[1].legend(fontsize=7)
        figures.append(Figure(f"Fine-tuning on clean data — {backbone or run.name}",
                              "Benign accuracy and attack success rate after each epoch.", run.name, _png(fig)))
    return figures


def vbpr_dimensions(run: Run) -> list[Figure]:
    """ΔHR@10 against VBPR's visual-factor length (BadEmbNets Fig. 5), where several lengths were run."""
    cells = [c for c in run.cells if c.get("victim") == "vbpr" and c["dataset"] == "fashion-mnist"
             and "vbpr_dim" in (c.get("extra") or {}) and "delta_hr10" in c["metrics"]]
    figures = []
    for backbone, group in _groups(cells, lambda c: c["extra"].get("backbone", "")).items():
        series = _groups(group, lambda c: c["variant"])
        if not any(len({c["extra"]["vbpr_dim"] for c in s}) >= 2 for s in series.values()):
            continue
        fig, ax = plt.subplots(figsize=(5.2, 3.4))
        for variant, points in series.items():
            points = sorted(points, key=lambda c: c["extra"]["vbpr_dim"])
            ax.plot([c["extra"]["vbpr_dim"] for c in points], [c["metrics"]["delta_hr10"] for c in points],
                    marker="o", label=variant)
        ax.set(xlabel="visual factors (length of θ_u)", ylabel="ΔHR@10 (target group)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        figures.append(Figure(f"VBPR visual-factor length vs ΔHR@10 — {backbone or run.name}",
                              "Shorter visual factors, larger hit-rate gain for poisoned items (paper Fig. 5).",
                              run.name, _png(fig)))
    return figures


def defense_cost(run: Run) -> list[Figure]:
    """Recommender queries and seconds per request of each defense, mean over its cells, per dataset."""
    names = ("queries_per_request", "seconds_per_request")
    cells = [c for c in run.cells if any(n in c["metrics"] for n in names)]
    if not cells:
        return []
    variants = list(dict.fromkeys(c["variant"] for c in cells))
    datasets = list(dict.fromkeys(c["dataset"] for c in cells))
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6))
    width = 0.8 / len(datasets)
    for ax, name in zip(axes, names, strict=True):
        for k, dataset in enumerate(datasets):
            heights = []
            for variant in variants:
                values = [c["metrics"][name] for c in cells
                          if c["variant"] == variant and c["dataset"] == dataset and name in c["metrics"]]
                heights.append(sum(values) / len(values) if values else 0.0)
            ax.bar([i + k * width for i in range(len(variants))], heights, width, label=dataset)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(variants))], variants, rotation=35, ha="right")
        ax.set_ylabel(name.replace("_", " "))
        ax.grid(alpha=0.3, axis="y")
    axes[0].legend(fontsize=8)
    return [Figure("Defense cost", "Recommender queries and wall seconds per request (paper Fig. 6).", run.name,
                   _png(fig))]


def defense_rates(run: Run) -> list[Figure]:
    """Utility, ASR and Score of every defense per trigger and position (paper Fig. 5 / 7)."""
    from recbackdoor.report.defense_tables import is_defense_run, rates_figure

    if not is_defense_run(run.cells):
        return []
    figures = []
    for dataset, victim in dict.fromkeys((c["dataset"], c["victim"]) for c in run.cells):
        fig = rates_figure(run.cells, dataset, victim)
        if fig is not None:
            figures.append(Figure(f"Defenses: {victim} / {dataset}", "ASR, utility (AUC or H@1) and Score of "
                                  "each defense against each poisoned model (paper Fig. 5 / 7).", run.name,
                                  _png(fig)))
    return figures


def scanner_scores(run: Run) -> list[Figure]:
    """Scanner AUROC and TPR per trigger and position for each catalogue; dashed: the clean titles' FPR."""
    cells = [c for c in run.cells if c.get("victim") is None and "auroc" in c["metrics"]]
    if not cells:
        return []
    datasets = list(dict.fromkeys(c["dataset"] for c in cells))
    fpr = {c["dataset"]: c["metrics"]["fpr"] for c in run.cells
           if c.get("victim") is None and c.get("trigger") is None and "fpr" in c["metrics"]}
    fig, axes = plt.subplots(2, len(datasets), figsize=(4.2 * len(datasets), 6.0), squeeze=False)
    for col, dataset in enumerate(datasets):
        mine = [c for c in cells if c["dataset"] == dataset]
        triggers = list(dict.fromkeys(str(c.get("trigger")) for c in mine))
        positions = list(dict.fromkeys(str(c.get("position")) for c in mine))
        width = 0.8 / len(positions)
        for row, metric in enumerate(("auroc", "tpr")):
            ax = axes[row][col]
            for k, position in enumerate(positions):
                index = {str(c.get("trigger")): c["metrics"].get(metric, 0.0) for c in mine
                         if str(c.get("position")) == position}
                ax.bar([i + k * width for i in range(len(triggers))], [index.get(t, 0.0) for t in triggers],
                       width, label=position)
            if metric == "tpr" and dataset in fpr:
                ax.axhline(fpr[dataset], color="black", linestyle="--", linewidth=1, label="clean FPR")
            ax.set_xticks([i + 0.4 - width / 2 for i in range(len(triggers))], triggers, rotation=40, ha="right",
                          fontsize=7)
            ax.set(ylim=(0, 1.02), ylabel=metric.upper(), title=dataset if row == 0 else "")
            ax.grid(alpha=0.3, axis="y")
    axes[1][0].legend(fontsize=7)
    variant = cells[0]["variant"]
    return [Figure(f"Scanner detection per trigger — {variant}",
                   "AUROC of clean vs triggered titles, and TPR at the scanner's saved threshold.", run.name,
                   _png(fig))]


def _tsne_points(value: Any) -> tuple[list[float], list[float], list[str]] | None:
    """Coordinates from ``extra.tsne``: ``{x, y, group}`` lists or ``{points: [[x, y]...], labels}``."""
    if not isinstance(value, dict):
        return None
    if "points" in value:
        points = value["points"]
        xs, ys = [p[0] for p in points], [p[1] for p in points]
    else:
        xs, ys = value.get("x"), value.get("y")
    groups = value.get("group", value.get("labels", value.get("groups")))
    if not xs or not ys or len(xs) != len(ys):
        return None
    groups = [str(g) for g in groups] if groups and len(groups) == len(xs) else ["points"] * len(xs)
    return list(xs), list(ys), groups


def tsne(run: Run) -> list[Figure]:
    """t-SNE of the extractor's features (BadEmbNets Fig. 3), for cells that carry the coordinates."""
    panels = [(c, p) for c in run.cells if (p := _tsne_points((c.get("extra") or {}).get("tsne"))) is not None]
    if not panels:
        return []
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), squeeze=False)
    for ax, (cell, (xs, ys, groups)) in zip(axes[0], panels, strict=True):
        for group in dict.fromkeys(groups):
            chosen = [i for i, g in enumerate(groups) if g == group]
            ax.scatter([xs[i] for i in chosen], [ys[i] for i in chosen], s=6, alpha=0.7, label=group)
        ax.set_title(f"{cell['variant']} ({(cell.get('extra') or {}).get('backbone', cell['dataset'])})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=7, markerscale=2)
    return [Figure("t-SNE of extractor features",
                   "Poisoned items that blend into the target class are what BadEmbNets aims for.", run.name,
                   _png(fig))]


PLOTTERS = (asr_vs_rate, finetune_curves, vbpr_dimensions, defense_rates, defense_cost, scanner_scores, tsne)


def figures_for(run: Run) -> list[Figure]:
    """Every plot the run's cells support, in a fixed order."""
    return [figure for plot in PLOTTERS for figure in plot(run)]
