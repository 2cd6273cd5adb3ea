"""What an extractor audit found, and the report of it as text, JSON, PNG and HTML.

:mod:`recbackdoor.defenses.vision.audit` runs the tests and decides; this
module only holds their evidence and shows it, so that the searches and the
verdict read without the rendering around them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from recbackdoor.defenses.vision.inversion import apply_trigger


@dataclass(frozen=True)
class StampEvidence:
    stamp: str
    flip_rate: float
    flip_class: int
    shift: float
    shift_z: float
    dispersion_ratio: float


@dataclass(frozen=True)
class TriggerEvidence:
    """The recovered trigger and what the existing tests say about it."""

    source: str             # "class inversion" | "embedding inversion"
    target: int | None      # the class it sends images to (needs the head)
    region: int             # the k-means cluster of clean features where stamped images land
    region_share: float     # share of stamped images that land there
    region_class: int | None  # the class most clean members of that region are predicted as (needs the head)
    size: float             # mask L1 / image area: how much of a clean image it needs
    pixels: float           # the same in pixels
    flip_rate: float | None  # share of other-class images sent to ``target``
    similarity: float       # mean pairwise cosine of stamped features (from the clean mean)
    strip_auroc: float | None
    ac_ari: float | None


@dataclass(frozen=True)
class AuditReport:
    verdict: str
    reasons: tuple[str, ...]
    top: tuple[StampEvidence, ...]
    strip_auroc: float
    ac_ari: float
    images: int
    candidates: int
    decided_by: tuple[str, ...] = ()
    statistics: dict[str, float | None] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    fpr: float = 0.0
    recovered: TriggerEvidence | None = None
    class_sizes: dict[str, float] = field(default_factory=dict)  # every searched class's mask size, by class id
    pictures: tuple[tuple[str, np.ndarray, np.ndarray], ...] = ()  # (title, mask, pattern) per inversion
    example: np.ndarray | None = None  # one clean image, for the picture


def report_dict(report: AuditReport) -> dict:
    """JSON-ready view of a report; the recovered mask as a nested list (for the chosen trigger)."""
    out = asdict(report)
    out.pop("pictures")
    out.pop("example")
    chosen = report.recovered.source if report.recovered is not None else None
    masks = {title: m for title, m, _ in report.pictures}
    pick = next((m for t, m in masks.items() if chosen and t.startswith(chosen)), None)
    out["recovered_mask"] = None if pick is None else np.round(pick, 3).tolist()
    out["recovered_target"] = None if report.recovered is None else report.recovered.target
    return out


def save_picture(report: AuditReport, path: Path) -> None:
    """One row per inversion: the mask, what it writes, a clean image and the same image stamped."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report.pictures
    fig, axes = plt.subplots(len(rows), 4, figsize=(8, 2.2 * len(rows)), squeeze=False)
    x = report.example
    for ax_row, (title, mask, pattern) in zip(axes, rows, strict=True):
        stamped = apply_trigger(x[None], mask, pattern)[0]
        panels = [(mask, f"mask ({mask.mean():.1%})"), ((mask[None] * pattern)[0], "mask × pattern"),
                  (x[0], "clean image"), (stamped[0], "stamped")]
        for ax, (img, name) in zip(ax_row, panels, strict=True):
            ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            ax.set_title(name, fontsize=8)
            ax.axis("off")
        ax_row[0].set_ylabel(title)
        ax_row[0].text(-0.1, 0.5, title, transform=ax_row[0].transAxes, rotation=90, va="center", ha="right",
                       fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def format_report(path: Path, report: AuditReport) -> str:
    head = f"{path}: {report.verdict} ({report.candidates} candidate stamps on {report.images} clean images"
    head += ", then trigger inversion)" if report.recovered is not None else ")"
    lines = [head]
    if report.decided_by:
        lines.append(f"  decided by: {', '.join(report.decided_by)}")
    for r in report.reasons:
        lines.append(f"  evidence: {r}")
    lines.append("  stamp search — most suspicious stamps: flip-rate (to class) | embedding shift z | dispersion ratio")
    for e in report.top:
        lines.append(f"    {e.stamp:28s} {e.flip_rate:6.1%} (→{e.flip_class}) | z={e.shift_z:6.1f} | "
                     f"×{e.dispersion_ratio:.2f}")
    if report.top[0].flip_class >= 0:
        lines.append(f"  STRIP on the top stamp: AUROC {report.strip_auroc:.3f} (≈0.5: stamp changes nothing; "
                     "≫0.5: stamped inputs keep one prediction under superimposition)")
        lines.append(f"  Activation Clustering on class {report.top[0].flip_class}: ARI {report.ac_ari:.3f} "
                     "(high: stamped images form their own cluster; ≈0 with a flip: blended, AC cannot see it)")
    else:
        lines.append("  no classifier head: flip rate, STRIP and per-class inversion skipped")
    rec = report.recovered
    if rec is None:
        return "\n".join(lines)
    st, th = report.statistics, report.thresholds
    lines.append(f"  trigger inversion (thresholds from clean extractors, set for {report.fpr:.0%} false positives "
                 "per test):")
    if st.get("class_size") is not None:
        size_rule = "" if "class_z" in th else f" (flag ≤ {_pct(th['class_size'])})"
        lines.append(f"    per class (Neural Cleanse): smallest mask {_pct(st['class_size'])} → class "
                     f"{st['class_target']}{size_rule}; anomaly index "
                     f"{st['class_anomaly']:.2f} (flag ≥ {th['class_anomaly']:.2f})")
        if st.get("class_z") is not None and "class_z" in th:
            lines.append(f"    each class against clean extractors' masks for that class: class "
                         f"{st['class_z_target']} lowest at z = {st['class_z']:.1f} (flag ≤ {th['class_z']:.1f})")
    else:
        lines.append("    per class: skipped (no classifier head)")
    lines.append(f"    embedding only (DECREE): smallest collapsing mask {_pct(st['embedding_size'])} (flag ≤ "
                 f"{_pct(th['embedding_size'])}), stamped features' mean cosine {st['embedding_similarity']:.2f}")
    where = f"class {rec.target}" if rec.target is not None else "no class (head absent)"
    region = f"feature region {rec.region} ({rec.region_share:.0%} of stamped images land there"
    region += f"; its clean images are mostly class {rec.region_class})" if rec.region_class is not None else ")"
    lines.append(f"  recovered trigger ({rec.source}): {rec.pixels:.0f} px = {rec.size:.1%} of a clean image; sends "
                 f"images to {where}, {region}")
    lines.append(f"    flip rate {_pct(rec.flip_rate)} | STRIP AUROC {_num(rec.strip_auroc)} | Activation "
                 f"Clustering ARI {_num(rec.ac_ari)} | stamped features' mean cosine {rec.similarity:.2f}")
    return "\n".join(lines)


def write_html(path: Path, text: str, picture: Path | None) -> None:
    """A self-contained page: the text report and the recovered trigger's picture (inline PNG)."""
    import base64
    import html

    img = ""
    if picture is not None and picture.exists():
        data = base64.b64encode(picture.read_bytes()).decode("ascii")
        img = f'<h2>Recovered trigger</h2><img alt="recovered trigger" src="data:image/png;base64,{data}">'
    path.write_text(f"<!doctype html><meta charset='utf-8'><title>extractor audit</title>"
                    f"<h1>Extractor audit</h1><pre>{html.escape(text)}</pre>{img}\n")
