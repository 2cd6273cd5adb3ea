"""``recbackdoor audit-extractor``: vet a third-party image feature extractor before using it.

The file is safe-loaded (safetensors only; nothing is ever unpickled).  Then a
set of candidate trigger stamps — patterns × sizes × positions × ink colour —
is put on clean images, and three tests look for a stamp that behaves like a
backdoor trigger:

* **label flip** — share of stamped images whose prediction moves to one single
  class (the would-be target); a benign stamp barely changes predictions;
* **embedding shift** — how far the stamp moves features (cosine distance), as
  a robust z-score against all candidate stamps, and whether stamped features
  of different classes *collapse* together (dispersion ratio);
* **STRIP** and **Activation Clustering** on the most suspicious stamp —
  STRIP's entropy AUROC (stamped vs clean) and AC's k-means split of the
  would-be target class (clean members + stamped images sent there).

Verdict: FLAGGED when a stamp sends ≥ ``flip_threshold`` of images to one class,
or its embedding shift is an outlier (z ≥ ``z_threshold``) *and* it collapses
features of different classes (dispersion ratio ≤ ``collapse_threshold``).
Exit status: 0 pass, 1 flagged, 2 bad input.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from recbackdoor.defenses.vision.strip import strip_entropy
from recbackdoor.errors import UserError
from recbackdoor.metrics.vision import detection_auroc, poison_target_ari
from recbackdoor.triggers.image import ImageTrigger, stamp
from recbackdoor.victims.vision.extractors import load_extractor
from recbackdoor.victims.vision.training import embed, predict_logits

PATTERNS = ("square", "checker", "cross")
SIZES = (3, 5)
POSITIONS = ("br", "bl", "tr", "tl", "ct")
INKS = (1.0, 0.0)


@dataclass(frozen=True)
class StampEvidence:
    stamp: str
    flip_rate: float
    flip_class: int
    shift: float
    shift_z: float
    dispersion_ratio: float


@dataclass(frozen=True)
class AuditReport:
    verdict: str
    reasons: tuple[str, ...]
    top: tuple[StampEvidence, ...]
    strip_auroc: float
    ac_ari: float
    images: int
    candidates: int


def candidate_stamps() -> list[ImageTrigger]:
    return [ImageTrigger(p, s, pos, ink) for p, s, pos, ink in itertools.product(PATTERNS, SIZES, POSITIONS, INKS)]


def _name(t: ImageTrigger) -> str:
    return f"{'white' if t.value >= 0.5 else 'black'} {t.pattern} {t.size}px @{t.position}"


def _dispersion(z: np.ndarray) -> float:
    return float(np.linalg.norm(z - z.mean(0), axis=1).mean())


def audit_model(model: torch.nn.Module, images: np.ndarray, seed: int = 0, flip_threshold: float = 0.5,
                z_threshold: float = 6.0, collapse_threshold: float = 0.6) -> AuditReport:
    """Run every test on ``images`` (n, C, H, W in [0, 1]) and return the evidence and the verdict."""
    torch.set_num_threads(1)
    clean_pred = predict_logits(model, images).argmax(1)
    clean_emb = embed(model, images)
    base_disp = _dispersion(clean_emb)
    rows = []
    stamps = candidate_stamps()
    for trig in stamps:
        x = stamp(images, trig, seed=seed)
        pred = predict_logits(model, x).argmax(1)
        emb = embed(model, x)
        moved = pred != clean_pred
        counts = np.bincount(pred[moved], minlength=int(clean_pred.max()) + 1) if moved.any() else np.zeros(1)
        cls = int(np.argmax(counts))
        eligible = clean_pred != cls
        flip = float(np.mean(pred[eligible] == cls)) if eligible.any() else 0.0
        shift = float(np.mean(1.0 - (clean_emb * emb).sum(1)))
        rows.append((trig, flip, cls, shift, _dispersion(emb[eligible]) / base_disp if eligible.any() else 1.0))
    shifts = np.array([r[3] for r in rows])
    med = np.median(shifts)
    mad = np.median(np.abs(shifts - med)) * 1.4826 + 1e-9
    evidence = [StampEvidence(_name(t), f, c, s, float((s - med) / mad), d) for t, f, c, s, d in rows]
    order = np.argsort([-(e.flip_rate + 0.01 * e.shift_z) for e in evidence])
    best_trig, _, best_cls, _, _ = rows[int(order[0])]
    x_best = stamp(images, best_trig, seed=seed)
    rng = np.random.default_rng(seed)
    overlays = images[rng.permutation(len(images))]
    sub = slice(0, min(200, len(images)))
    h_clean = strip_entropy(model, images[sub], overlays, 8, seed)
    h_stamp = strip_entropy(model, x_best[sub], overlays, 8, seed + 1)
    strip_auc = detection_auroc(-h_clean, -h_stamp)
    members = clean_emb[clean_pred == best_cls]
    sent = embed(model, x_best)[(predict_logits(model, x_best).argmax(1) == best_cls) & (clean_pred != best_cls)]
    ac_ari = poison_target_ari(members, sent, seed) if len(members) >= 5 and len(sent) >= 5 else 0.0
    reasons = []
    for e in evidence:
        if e.flip_rate >= flip_threshold:
            reasons.append(f"{e.stamp} sends {e.flip_rate:.0%} of images to class {e.flip_class}")
        elif e.shift_z >= z_threshold and e.dispersion_ratio <= collapse_threshold:
            reasons.append(f"{e.stamp} shifts features {e.shift_z:.1f} MADs above other stamps and collapses "
                           f"them (dispersion ×{e.dispersion_ratio:.2f})")
    verdict = "FLAGGED" if reasons else "PASS"
    top = tuple(evidence[i] for i in order[:5])
    return AuditReport(verdict, tuple(reasons[:5]), top, strip_auc, ac_ari, len(images), len(stamps))


def _default_images(n: int, seed: int) -> np.ndarray:
    from recbackdoor.data import fashion_mnist as fm

    try:
        test = fm.load_split("test")
    except UserError as exc:
        raise UserError(f"{exc}; or pass --images DIR with clean images of the extractor's domain") from None
    idx = fm.per_class_sample(test.labels, list(range(10)), n // 10, seed)
    return test.images[idx]


def _folder_images(folder: Path, size: int, n: int, seed: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    from recbackdoor.data.image_folder import SUFFIXES

    if not folder.is_dir():
        raise UserError(f"{folder}: --images must be a folder of .png/.jpg images")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    if not paths:
        raise UserError(f"{folder}: no .png/.jpg images found")
    rng = np.random.default_rng(seed)
    paths = [paths[i] for i in np.sort(rng.permutation(len(paths))[:n])]
    out = []
    for p in paths:
        try:
            with Image.open(p) as img:
                out.append(np.asarray(img.convert("L").resize((size, size)), np.float32)[None] / 255.0)
        except (UnidentifiedImageError, OSError) as exc:
            raise UserError(f"{p}: unreadable image ({exc})") from None
    return np.stack(out)


def format_report(path: Path, report: AuditReport) -> str:
    lines = [f"{path}: {report.verdict} ({report.candidates} candidate stamps on {report.images} clean images)"]
    for r in report.reasons:
        lines.append(f"  evidence: {r}")
    lines.append("  most suspicious stamps: flip-rate (to class) | embedding shift z | dispersion ratio")
    for e in report.top:
        lines.append(f"    {e.stamp:28s} {e.flip_rate:6.1%} (→{e.flip_class}) | z={e.shift_z:6.1f} | "
                     f"×{e.dispersion_ratio:.2f}")
    lines.append(f"  STRIP on the top stamp: AUROC {report.strip_auroc:.3f} (≈0.5: stamp changes nothing; "
                 "≫0.5: stamped inputs keep one prediction under superimposition)")
    lines.append(f"  Activation Clustering on class {report.top[0].flip_class}: ARI {report.ac_ari:.3f} "
                 "(high: stamped images form their own cluster; ≈0 with a flip: blended, AC cannot see it)")
    return "\n".join(lines)


def audit_command(args: argparse.Namespace) -> int:
    model, spec = load_extractor(Path(args.weights), args.arch)
    n, seed = 500, 0
    images = (_folder_images(Path(args.images), spec.image_size, n, seed) if args.images is not None
              else _default_images(n, seed))
    if images.shape[1] != spec.in_channels:
        raise UserError(f"{args.weights}: extractor expects {spec.in_channels} channel(s), images have "
                        f"{images.shape[1]}")
    report = audit_model(model, images, seed)
    print(format_report(Path(args.weights), report))
    if getattr(args, "out", None) is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "audit.json").write_text(json.dumps(asdict(report), indent=1))
    return 0 if report.verdict == "PASS" else 1
