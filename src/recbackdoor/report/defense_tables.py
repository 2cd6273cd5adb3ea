"""The defense experiment's tables and plots in the paper's shape (Tables 2–6, Fig. 5–7, Fig. 6).

Rows in the paper's order (Benign, BadRec, the seven baselines, P-Scanner and
its ablations, then our train-time row), columns End / Random × the victim's
metrics (LLaRA: Valid, H@1, A-Valid, ASR, Score; TALLRec: AUC, ASR, Score),
one table per trigger; Score carries its bootstrap standard error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROWS = ("benign", "badrec", "rd", "llmsi", "onion", "strip", "rpd", "cos", "paraphraser", "p-scanner",
        "p-scanner-wo-ft", "p-scanner-wo-ta", "p-scanner-train-time", "p-scanner-recurrence",
        "p-scanner-recurrence-train-time", "p-scanner-label", "p-scanner-label-train-time")
LABELS = {"benign": "Benign", "badrec": "BadRec", "rd": "RD", "llmsi": "LLMSI", "onion": "ONION",
          "strip": "STRIP", "rpd": "RPD", "cos": "CoS", "paraphraser": "Paraphraser", "p-scanner": "P-Scanner",
          "p-scanner-wo-ft": "P-Scanner w/o FT", "p-scanner-wo-ta": "P-Scanner w/o TA",
          "p-scanner-train-time": "P-Scanner (train-time)", "p-scanner-recurrence": "P-Scanner + recurrence",
          "p-scanner-recurrence-train-time": "P-Scanner + recurrence (train-time)",
          "p-scanner-label": "P-Scanner + label test",
          "p-scanner-label-train-time": "P-Scanner + label test (train-time)"}
METRICS = {"llara": ("valid", "h1", "a_valid", "asr", "score"), "tallrec": ("auc", "asr", "score")}
HEADS = {"valid": "Valid", "h1": "H@1", "a_valid": "A-Valid", "asr": "ASR", "auc": "AUC", "score": "Score"}

Cell = dict[str, Any]
CELL_ORDER = tuple((t, p) for t in ("char", "word", "sentence") for p in ("end", "random"))


def _cell_order(cells: list[Cell]) -> list[tuple[str, str]]:
    """The (trigger, position) pairs of ``cells``: the paper's in its order, then any of the user's own, sorted."""
    present = {(c["trigger"], c["position"]) for c in cells}
    return [tp for tp in CELL_ORDER if tp in present] + sorted(present - set(CELL_ORDER))


def _utility(victim: str) -> str:
    return "auc" if victim == "tallrec" else "h1"


def is_defense_run(cells: list[Cell]) -> bool:
    return any(c.get("variant") in ROWS[2:] for c in cells)


def _value(cell: Cell | None, metric: str) -> str:
    if cell is None:
        return ""
    value = cell["metrics"].get(metric)
    if value is None:
        return "n/a" if metric in (cell.get("extra") or {}).get("undefined", []) else ""
    text = f"{value:.3f}"
    se = (cell.get("extra") or {}).get("score_se")
    if metric == "score" and se is not None:
        text += f" ± {se:.3f}"
    return text


def defense_tables(cells: list[Cell]) -> str:
    """Markdown: per dataset, victim and trigger, the paper's defense table; then the cost table."""
    parts = []
    index = {(c["dataset"], c["victim"], c["variant"], c["trigger"], c["position"]): c for c in cells}
    groups = list(dict.fromkeys((c["dataset"], c["victim"], c["trigger"]) for c in cells))
    for dataset, victim, trigger in groups:
        metrics = METRICS.get(victim, METRICS["llara"])
        positions = [p for p in ("end", "random")
                     if any(k[0] == dataset and k[1] == victim and k[3] == trigger and k[4] == p for k in index)]
        head = ["defense"] + [f"{p.capitalize()} {HEADS[m]}" for p in positions for m in metrics]
        lines = [f"### {dataset} / {victim} / {trigger}-level trigger", "", "| " + " | ".join(head) + " |",
                 "|" + "---|" * len(head)]
        for row in ROWS:
            found = [index.get((dataset, victim, row, trigger, p)) for p in positions]
            if not any(found):
                continue
            values = [_value(cell, m) for cell in found for m in metrics]
            lines.append("| " + " | ".join([LABELS[row]] + values) + " |")
        first = next(c for c in cells if (c["dataset"], c["victim"], c["trigger"]) == (dataset, victim, trigger))
        extra = first.get("extra") or {}
        lines.append("")
        attackable = sorted({(c.get("extra") or {}).get("n_attackable") for c in cells
                             if (c["dataset"], c["victim"], c["trigger"], c["variant"]) ==
                             (dataset, victim, trigger, "badrec")} - {None})
        lines.append(f"{extra.get('n_clean', '?')} clean and {extra.get('n_triggered', '?')} triggered requests "
                     "per cell" + (f" (ASR over the {' / '.join(map(str, attackable))} the undefended poisoned "
                                   "model answers No without the trigger)" if attackable else "")
                     + "; Score ± its paired-bootstrap standard error.")
        parts.append("\n".join(lines) + "\n")
    parts.append(cost_table(cells))
    return "\n".join(parts)


def cost_table(cells: list[Cell]) -> str:
    """Per defense: recommender queries and seconds per request, mean over its cells (Fig. 6 as numbers)."""
    lines = ["### Cost per request (mean over cells)", "",
             "| defense | recommender queries | recommender seconds | defense's own seconds | total seconds | "
             "false alarms | detections |",
             "|---|---|---|---|---|---|---|"]
    for row in ROWS:
        mine = [c for c in cells if c["variant"] == row and "queries_per_request" in c["metrics"]]
        if not mine:
            continue

        def mean(key: str, where: str = "metrics", mine=mine) -> float:
            values = [(c.get(where) or {}).get(key) for c in mine]
            values = [v for v in values if v is not None]
            return sum(values) / len(values) if values else float("nan")

        lines.append(f"| {LABELS[row]} | {mean('queries_per_request'):.2f} | "
                     f"{mean('recommender_seconds_per_request'):.3f} | {mean('overhead_seconds_per_request'):.4f} | "
                     f"{mean('seconds_per_request'):.3f} | "
                     f"{mean('false_alarms', 'extra'):.3f} | {mean('detections', 'extra'):.3f} |")
    return "\n".join(lines) + "\n"


def rates_figure(cells: list[Cell], dataset: str, victim: str) -> plt.Figure | None:
    """Fig. 5 / 7 in shape: per trigger and position, utility, ASR and Score of every row as grouped bars."""
    mine = [c for c in cells if c["dataset"] == dataset and c["victim"] == victim]
    known = _cell_order(mine)
    if not known:
        return None
    present = set(known)
    shown = ("asr", _utility(victim), "score")
    rows = [r for r in ROWS if any(c["variant"] == r for c in mine)]
    # a trigger per figure row and a position per column once there are more cells than fit in one row
    triggers = list(dict.fromkeys(t for t, _ in known))
    positions = list(dict.fromkeys(p for _, p in known))
    grid = [known] if len(known) <= 3 else [[(t, p) for p in positions] for t in triggers]
    fig, axes = plt.subplots(len(grid), len(grid[0]), figsize=(3.4 * len(grid[0]) + 1.0, 3.6 * len(grid)),
                             squeeze=False, sharey=True)
    width = 0.8 / len(shown)
    placed = [(ax, tp) for ax_row, tp_row in zip(axes, grid, strict=True) for ax, tp in zip(ax_row, tp_row,
                                                                                             strict=True)]
    for ax, tp in placed:
        if tp not in present:
            ax.axis("off")
    for ax, (trigger, position) in [(ax, tp) for ax, tp in placed if tp in present]:
        for k, metric in enumerate(shown):
            heights = []
            for row in rows:
                cell = next((c for c in mine if (c["variant"], c["trigger"], c["position"]) ==
                             (row, trigger, position)), None)
                heights.append(cell["metrics"].get(metric, 0.0) if cell else 0.0)
            ax.bar([i + k * width for i in range(len(rows))], heights, width, label=HEADS[metric])
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))], [LABELS[r] for r in rows], rotation=60,
                      ha="right", fontsize=7)
        ax.set_title(f"{trigger}, {position}", fontsize=9)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3, axis="y")
    next(ax for ax, tp in placed if tp in present).legend(fontsize=7)
    fig.suptitle(f"Defenses on {victim} / {dataset}", fontsize=10)
    fig.tight_layout()
    return fig


def cost_figure(cells: list[Cell]) -> plt.Figure | None:
    """Fig. 6 in shape: recommender queries and seconds per request of every defense (log scale)."""
    rows = [r for r in ROWS if any(c["variant"] == r and "queries_per_request" in c["metrics"] for c in cells)]
    if not rows:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.6))
    for ax, key, label in ((axes[0], "queries_per_request", "recommender queries per request"),
                           (axes[1], "seconds_per_request", "seconds per request")):
        values = []
        for row in rows:
            got = [c["metrics"][key] for c in cells if c["variant"] == row and key in c["metrics"]]
            values.append(sum(got) / len(got))
        ax.bar(range(len(rows)), [max(v, 1e-4) for v in values], color="tab:gray")
        ax.set_xticks(range(len(rows)), [LABELS[r] for r in rows], rotation=60, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig


def _save(fig: plt.Figure, path: Path) -> None:
    """Through a temporary file and a rename: never a half-written PNG."""
    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def save_defense_figures(cells: list[Cell], out_dir: Path) -> list[str]:
    """Write the rate and cost figures of a defense run beside its results.json; the names written."""
    figures = [(f"defense_{victim}_{dataset}.png", rates_figure(cells, dataset, victim))
               for dataset, victim in dict.fromkeys((c["dataset"], c["victim"]) for c in cells)]
    figures.append(("defense_cost.png", cost_figure(cells)))
    written = []
    for name, fig in figures:
        if fig is not None:
            _save(fig, out_dir / name)
            written.append(name)
    return written


EIGHT = ("rd", "llmsi", "onion", "strip", "rpd", "cos", "paraphraser", "p-scanner")
SCANNER_TARGET = {"asr": 0.05, "score": 0.95}  # the bar for P-Scanner in every cell


def summary_tables(cells: list[Cell]) -> str:
    """Markdown: per dataset and victim, every defense × every (trigger, position) cell as ``ASR / Score`` in one
    table, then the tallies the issue asks about (P-Scanner's target, best Score of the eight defenses, ablations
    below the full scanner), so many one-cell runs read as one table."""
    parts = []
    for dataset, victim in dict.fromkeys((c["dataset"], c["victim"]) for c in cells):
        mine = {(c["variant"], c["trigger"], c["position"]): c for c in cells
                if (c["dataset"], c["victim"]) == (dataset, victim)}
        order = _cell_order(list(mine.values()))
        utility = _utility(victim)
        head = ["defense"] + [f"{t}-{p}" for t, p in order]
        lines = [f"### {dataset} / {victim}: ASR / Score per cell", "", "| " + " | ".join(head) + " |",
                 "|" + "---|" * len(head)]
        for row in ROWS:
            got = [mine.get((row, *tp)) for tp in order]
            if not any(got):
                continue
            values = ["" if c is None else f"{_rate(c, 'asr')} / {_rate(c, 'score')}" for c in got]
            lines.append("| " + " | ".join([LABELS[row]] + values) + " |")
        poisoned = [mine.get(("badrec", *tp)) for tp in order]
        benign = next((mine[("benign", *tp)] for tp in order if ("benign", *tp) in mine), None)
        lines += ["", f"Poisoned model's {HEADS[utility]}: " + ", ".join(
            f"{t}-{p} {_rate(c, utility)}" for (t, p), c in zip(order, poisoned, strict=True) if c)
            + (f"; benign {_rate(benign, utility)}" if benign is not None else "") + ".", ""]
        lines += _tallies(mine, order)
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def _rate(cell: Cell, metric: str) -> str:
    value = cell["metrics"].get(metric)
    return "—" if value is None else f"{value:.3f}"


def _tallies(mine: dict, order: list[tuple[str, str]]) -> list[str]:
    def met(row: str, tp: tuple[str, str]) -> bool | None:
        c = mine.get((row, *tp))
        if c is None or c["metrics"].get("score") is None or c["metrics"].get("asr") is None:
            return None
        return c["metrics"]["asr"] <= SCANNER_TARGET["asr"] and c["metrics"]["score"] >= SCANNER_TARGET["score"]

    def best(tp: tuple[str, str]) -> bool | None:
        scores = {r: mine[(r, *tp)]["metrics"].get("score") for r in EIGHT if (r, *tp) in mine}
        if scores.get("p-scanner") is None:
            return None
        return scores["p-scanner"] >= max(v for v in scores.values() if v is not None)

    def within_se(tp: tuple[str, str]) -> bool | None:
        """Best, or behind the best by less than one standard error of the two Scores' difference (their bootstrap
        SEs combined as if independent): a gap the requests cannot resolve is not a loss."""
        cells = {r: mine[(r, *tp)] for r in EIGHT if (r, *tp) in mine and mine[(r, *tp)]["metrics"].get("score")
                 is not None}
        if "p-scanner" not in cells:
            return None
        top = max(cells, key=lambda r: cells[r]["metrics"]["score"])
        gap = cells[top]["metrics"]["score"] - cells["p-scanner"]["metrics"]["score"]
        se = [cells[r].get("extra", {}).get("score_se") or 0.0 for r in (top, "p-scanner")]
        return gap <= (se[0] ** 2 + se[1] ** 2) ** 0.5

    def mean_score(row: str) -> float | None:
        got = [mine[(row, *tp)]["metrics"].get("score") for tp in order if (row, *tp) in mine]
        got = [g for g in got if g is not None]
        return sum(got) / len(got) if got else None

    out = []
    for label, test in (("P-Scanner: ASR ≤ 0.05 and Score ≥ 0.95", lambda tp: met("p-scanner", tp)),
                        ("P-Scanner + recurrence: same target", lambda tp: met("p-scanner-recurrence", tp)),
                        ("P-Scanner + label test: same target", lambda tp: met("p-scanner-label", tp)),
                        ("P-Scanner: best Score of the eight defenses (ties count)", best),
                        ("P-Scanner: best, or behind the best by less than one SE of the difference", within_se)):
        got = {tp: test(tp) for tp in order}
        known = [tp for tp, v in got.items() if v is not None]
        missed = [f"{t}-{p}" for t, p in known if not got[(t, p)]]
        out.append(f"- {label}: {sum(bool(got[tp]) for tp in known)} / {len(known)}"
                   + (f" (missed: {', '.join(missed)})" if missed else ""))
    full = mean_score("p-scanner")
    for row in ("p-scanner-wo-ft", "p-scanner-wo-ta"):
        m = mean_score(row)
        if full is not None and m is not None:
            out.append(f"- {LABELS[row]}: mean Score {m:.3f} against the full scanner's {full:.3f}")
    return out
