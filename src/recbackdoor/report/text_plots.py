"""Plots for the text side: ASR against poisoning rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def asr_vs_rate(cells: list[dict[str, Any]], out: Path, title: str) -> Path:
    """One line per trigger/position; benign base rate as a dashed line per trigger."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    series: dict[str, list[tuple[float, float]]] = {}
    base: dict[str, float] = {}
    for cell in cells:
        label = f"{cell['trigger']}-{cell['position']}"
        if "asr" not in cell["metrics"]:
            continue
        if cell["variant"] == "benign":
            base[label] = cell["metrics"]["asr"]
        else:
            series.setdefault(label, []).append((cell["extra"]["rate"], cell["metrics"]["asr"]))
    for label, points in sorted(series.items()):
        points.sort()
        line, = ax.plot([p for p, _ in points], [a for _, a in points], marker="o", label=label)
        if label in base:
            ax.axhline(base[label], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xscale("log")
    rates = sorted({p for points in series.values() for p, _ in points})
    ax.set_xticks(rates, [f"{r:g}" for r in rates])  # the rates measured, written plainly
    ax.minorticks_off()
    ax.set_xlabel("poisoning rate PR = m / (m + n)")
    ax.set_ylabel("ASR")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
