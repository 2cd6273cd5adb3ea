"""Markdown tables from result cells, laid out like the papers' tables."""

from __future__ import annotations

from typing import Any

import pandas as pd

METRIC_ORDER = ["valid", "h1", "a_valid", "asr", "auc", "flip_benign", "ba", "ari", "map", "t_map",
                "delta_p", "delta_hr10", "score"]


def cells_frame(cells: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for cell in cells:
        row = {k: cell.get(k) for k in ("dataset", "victim", "variant", "trigger", "position")}
        row["rate"] = (cell.get("extra") or {}).get("rate")
        for key, value in cell["metrics"].items():
            rows.append({**row, "metric": key, "value": value})
    return pd.DataFrame(rows)


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return "/"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown_tables(cells: list[dict[str, Any]]) -> str:
    """One table per (dataset, victim): rows variant/position, columns trigger × metric."""
    frame = cells_frame(cells)
    if frame.empty:
        return "_no cells_\n"
    frame = frame.fillna({"trigger": "-", "position": "-"})
    parts = []
    for (dataset, victim), group in frame.groupby(["dataset", "victim"], sort=False):
        metrics = [m for m in METRIC_ORDER if m in set(group["metric"])]
        metrics += sorted(set(group["metric"]) - set(metrics))
        triggers = list(dict.fromkeys(group["trigger"]))
        # a variant run at several poisoning rates gets one row per rate, named by it, not one row the last
        # rate overwrites
        rates = group.dropna(subset=["rate"]).groupby("variant")["rate"].nunique()
        several = set(rates[rates > 1].index)
        group = group.assign(rate=[f"@{r:g}" if v in several else "" for v, r in zip(group["variant"], group["rate"],
                                                                                     strict=True)])
        rows = list(dict.fromkeys(zip(group["variant"], group["position"], group["rate"], strict=False)))
        header = ["method"] + [f"{t} {m}" for t in triggers for m in metrics]
        lines = [f"### {dataset} / {victim}", "", "| " + " | ".join(header) + " |",
                 "|" + "---|" * len(header)]
        index = {(r.variant, r.position, r.rate, r.trigger, r.metric): r.value for r in group.itertuples()}
        for variant, position, rate in rows:
            name = (variant if position == "-" else f"{variant}-{position}") + rate
            values = [_fmt(index.get((variant, position, rate, t, m))) for t in triggers for m in metrics]
            lines.append("| " + " | ".join([name] + values) + " |")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)
