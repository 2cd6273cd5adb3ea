"""``recbackdoor audit-extractor``: vet a third-party image feature extractor before using it.

The file is safe-loaded (safetensors only; nothing is ever unpickled).  Two searches for a trigger follow:

1. **Stamp search** (fast first pass): 60 candidate stamps — square / checker /
   cross × 3 / 5 px × four corners and the centre × white / black — on clean
   images.  A stamp is flagged when it sends ≥ ``flip_threshold`` of images to one
   class, or when its embedding shift is an outlier (z ≥ ``z_threshold``) *and* it
   collapses features of different classes (dispersion ratio ≤ ``collapse_threshold``).
2. **Trigger inversion** (:mod:`recbackdoor.defenses.vision.inversion`): the
   attacker picks the trigger, so the audit searches for it — per class with the
   classifier head (Neural Cleanse), and on the features alone (DECREE; the only
   search when the head is absent or untrusted).  Mask sizes are judged against
   clean reference extractors (:mod:`recbackdoor.defenses.vision.calibration`).

The recovered trigger (the one that decided, else the most suspicious one) is
then put through the label-flip, STRIP and Activation Clustering tests, and
its mask and a stamped image are drawn (``--out``: ``trigger.png`` beside
``audit.txt``, ``audit.json`` and ``audit.html``).  The verdict is FLAGGED when
any test flags, and the report names the tests that decided (the evidence
types and their rendering: :mod:`recbackdoor.defenses.vision.audit_report`).
Exit status: 0 pass, 1 flagged, 2 bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from recbackdoor.defenses.vision.audit_report import (
    AuditReport,
    StampEvidence,
    TriggerEvidence,
    format_report,
    report_dict,
    save_picture,
    write_html,
)
from recbackdoor.defenses.vision.calibration import Calibration
from recbackdoor.defenses.vision.inversion import (
    InversionSettings,
    RecoveredTrigger,
    collapse_similarity,
    invert_classes,
    invert_embedding,
)
from recbackdoor.defenses.vision.strip import strip_entropy
from recbackdoor.errors import UserError
from recbackdoor.separation import auroc, two_cluster_ari
from recbackdoor.triggers.image import ImageTrigger, stamp
from recbackdoor.victims.vision.extractors import load_extractor
from recbackdoor.victims.vision.training import embed, predict_logits

PATTERNS = ("square", "checker", "cross")
SIZES = (3, 5)
POSITIONS = ("br", "bl", "tr", "tl", "ct")
INKS = (1.0, 0.0)


def candidate_stamps() -> list[ImageTrigger]:
    return [ImageTrigger(p, s, pos, ink) for p, s, pos, ink in itertools.product(PATTERNS, SIZES, POSITIONS, INKS)]


def _name(t: ImageTrigger) -> str:
    return f"{'white' if t.value >= 0.5 else 'black'} {t.pattern} {t.size}px @{t.position}"


def _dispersion(z: np.ndarray) -> float:
    return float(np.linalg.norm(z - z.mean(0), axis=1).mean())


def has_head(model: torch.nn.Module) -> bool:
    """False when the classifier head was removed (``model.head = None``): embedding-only audit."""
    return getattr(model, "head", None) is not None


@torch.no_grad()
def _predict_and_embed(model: torch.nn.Module, images: np.ndarray, batch: int = 512) -> tuple[np.ndarray | None,
                                                                                                   np.ndarray]:
    """Predicted classes (None without a head) and L2-normalised features, from one forward pass."""
    model.eval()
    preds, embs = [], []
    for i in range(0, len(images), batch):
        f = model.features(torch.from_numpy(np.ascontiguousarray(images[i:i + batch])))
        embs.append(torch.nn.functional.normalize(f, dim=1))
        if has_head(model):
            preds.append(model.head(f).argmax(1))
    return (torch.cat(preds).numpy() if preds else None), torch.cat(embs).numpy()


def _stamp_search(model, images, clean_emb, clean_pred, seed):
    base_disp = _dispersion(clean_emb)
    rows = []
    stamps = candidate_stamps()
    head = clean_pred is not None
    for trig in stamps:
        x = stamp(images, trig, seed=seed)
        pred, emb = _predict_and_embed(model, x)
        if head:
            moved = pred != clean_pred
            counts = np.bincount(pred[moved], minlength=int(clean_pred.max()) + 1) if moved.any() else np.zeros(1)
            cls = int(np.argmax(counts))
            eligible = clean_pred != cls
            flip = float(np.mean(pred[eligible] == cls)) if eligible.any() else 0.0
        else:
            cls, flip, eligible = -1, 0.0, np.ones(len(images), bool)
        shift = float(np.mean(1.0 - (clean_emb * emb).sum(1)))
        rows.append((trig, flip, cls, shift, _dispersion(emb[eligible]) / base_disp if eligible.any() else 1.0))
    shifts = np.array([r[3] for r in rows])
    med = np.median(shifts)
    mad = np.median(np.abs(shifts - med)) * 1.4826 + 1e-9
    evidence = [StampEvidence(_name(t), f, c, s, float((s - med) / mad), d) for t, f, c, s, d in rows]
    return rows, evidence, len(stamps)


def _strip_ac(model, images, x_stamped, clean_emb, members_mask, sent_mask, seed):
    """STRIP AUROC (stamped vs clean; needs the head, else None) and AC's ARI on members ∪ sent."""
    strip_auc = None
    if has_head(model):
        rng = np.random.default_rng(seed)
        overlays = images[rng.permutation(len(images))]
        sub = slice(0, min(200, len(images)))
        h_clean = strip_entropy(model, images[sub], overlays, 8, seed)
        h_stamp = strip_entropy(model, x_stamped[sub], overlays, 8, seed + 1)
        strip_auc = auroc(-h_clean, -h_stamp)
    members = clean_emb[members_mask]
    sent = embed(model, x_stamped)[sent_mask]
    ac = two_cluster_ari(members, sent, seed) if len(members) >= 5 and len(sent) >= 5 else 0.0
    return strip_auc, ac


def _recovered_evidence(model, images, trig: RecoveredTrigger, source: str, clean_emb, clean_pred, regions,
                        center, seed) -> TriggerEvidence:
    x = trig.apply(images)
    emb = embed(model, x)
    landed = regions.predict(emb.astype(regions.cluster_centers_.dtype))
    clean_region = regions.labels_
    region = int(np.bincount(landed).argmax())
    region_class = target = flip = None
    if clean_pred is not None:
        pred = predict_logits(model, x).argmax(1)
        in_region = clean_pred[clean_region == region]
        region_class = int(np.bincount(in_region).argmax()) if len(in_region) else None
        target = trig.target if trig.target is not None else int(np.bincount(pred).argmax())
        eligible = clean_pred != target
        flip = float(np.mean(pred[eligible] == target)) if eligible.any() else 0.0
        members, sent = clean_pred == target, (pred == target) & eligible
    else:
        members, sent = clean_region == region, (landed == region) & (clean_region != region)
    strip_auc, ac = _strip_ac(model, images, x, clean_emb, members, sent, seed)
    h, w = trig.mask.shape
    return TriggerEvidence(source, target, region, float(np.mean(landed == region)), region_class, trig.size,
                           trig.size * h * w, flip, collapse_similarity(model, x, center), strip_auc, ac)


def audit_model(model: torch.nn.Module, images: np.ndarray, seed: int = 0, flip_threshold: float = 0.5,
                z_threshold: float = 6.0, collapse_threshold: float = 0.6, arch: str | None = None,
                calibration: Calibration | None = None, settings: InversionSettings | None = None,
                invert: bool = True, invert_images: int = 200, progress: bool = False) -> AuditReport:
    """Run every test on ``images`` (n, C, H, W in [0, 1]) and return the evidence and the verdict.

    A model whose ``head`` is None is audited on its features alone (no flip rate, no STRIP, no
    per-class inversion).  ``arch`` picks the clean references of the calibration (default: the shipped
    file); ``invert=False`` runs the stamp search only.
    """
    from sklearn.cluster import KMeans

    torch.set_num_threads(1)
    head = has_head(model)
    clean_pred = predict_logits(model, images).argmax(1) if head else None
    clean_emb = embed(model, images)
    rows, evidence, n_stamps = _stamp_search(model, images, clean_emb, clean_pred, seed)
    order = np.argsort([-(e.flip_rate + 0.01 * e.shift_z) for e in evidence])
    best_trig, _, best_cls, _, _ = rows[int(order[0])]
    x_best = stamp(images, best_trig, seed=seed)
    if head:
        best_pred = predict_logits(model, x_best).argmax(1)
        strip_auc, ac_ari = _strip_ac(model, images, x_best, clean_emb, clean_pred == best_cls,
                                      (best_pred == best_cls) & (clean_pred != best_cls), seed)
    else:
        strip_auc, ac_ari = float("nan"), 0.0
    reasons, decided = [], []
    for e in evidence:
        if e.flip_rate >= flip_threshold:
            reasons.append(f"{e.stamp} sends {e.flip_rate:.0%} of images to class {e.flip_class}")
        elif e.shift_z >= z_threshold and e.dispersion_ratio <= collapse_threshold:
            reasons.append(f"{e.stamp} shifts features {e.shift_z:.1f} MADs above other stamps and collapses "
                           f"them (dispersion ×{e.dispersion_ratio:.2f})")
    reasons = reasons[:5]
    if reasons:
        decided.append("stamp search")
    top = tuple(evidence[i] for i in order[:5])
    common = dict(top=top, strip_auroc=float(strip_auc), ac_ari=float(ac_ari), images=len(images),
                  candidates=n_stamps)
    if not invert:
        return AuditReport("FLAGGED" if reasons else "PASS", tuple(reasons), decided_by=tuple(decided), **common)

    calibration = calibration or Calibration.load()
    thr = calibration.for_arch(arch)
    # the thresholds hold for the search that produced them: run the calibration's settings unless told otherwise
    settings = settings or _settings_of(calibration, seed)
    rng = np.random.default_rng(seed)
    sub = images[np.sort(rng.permutation(len(images))[:invert_images])]
    h, w = images.shape[2:]
    bar = tqdm(total=settings.steps * (2 if head else 1), desc="trigger inversion", unit="step",
               disable=not progress, file=sys.stderr, leave=False)
    try:
        classes = invert_classes(model, sub, settings, bar.update) if head else None
        emb_trig = invert_embedding(model, sub, settings, bar.update)
    finally:
        bar.close()
    center = torch.from_numpy(embed(model, images, normalize=False).mean(0))
    stats: dict[str, float | None] = {"class_size": None, "class_anomaly": None, "class_target": None,
                                      "embedding_size": emb_trig.size, "embedding_similarity": emb_trig.success}
    pictures = []
    chosen: tuple[RecoveredTrigger, str] | None = None
    if classes is not None:
        sus = classes.triggers[classes.suspect]
        stats |= {"class_size": sus.size, "class_anomaly": classes.anomaly[classes.suspect],
                  "class_target": sus.target, "class_success": sus.success}
    class_sizes = {} if classes is None else {str(t.target): t.size for t in classes.triggers}
    lowest = thr.lowest_class_z(class_sizes)
    if lowest is not None:
        stats |= {"class_z": lowest[1], "class_z_target": int(lowest[0])}
    flags, flagging = thr.flags(stats, class_sizes), thr.deciding_inversions(stats, class_sizes)
    if classes is not None:
        # the trigger to show: the per-class outlier when that test flags, else the smallest mask
        shown = next(t for t in classes.triggers if str(t.target) == lowest[0]) if flags["class_z"] else sus
        pictures.append((f"class inversion → class {shown.target}", shown.mask, shown.pattern))
        why = []
        if flags["class_z"]:
            why.append(f"class {shown.target} needs a mask of {shown.size:.1%} of the image, {-lowest[1]:.1f} "
                       f"standard deviations below what clean {arch or 'reference'} extractors need for that class "
                       f"(flag at {-thr.class_z:.1f})")
        if flags["class_size"]:
            why.append(f"a mask of {sus.size:.1%} of the image ({sus.size * h * w:.0f} px) sends {sus.success:.0%} "
                       f"of other images to class {sus.target}; clean {arch or 'reference'} extractors need "
                       f"> {thr.class_size:.1%}")
        if flags["class_anomaly"]:
            why.append(f"class {sus.target}'s mask is an outlier among the classes' masks (anomaly index "
                       f"{classes.anomaly[classes.suspect]:.1f} ≥ {thr.class_anomaly:.1f})")
        if "class inversion" in flagging:
            decided.append("class inversion")
            reasons += [f"class inversion: {r}" for r in why]
            chosen = (shown, "class inversion")
    pictures.append(("embedding inversion (no labels)", emb_trig.mask, emb_trig.pattern))
    if "embedding inversion" in flagging:
        decided.append("embedding inversion")
        reasons.append(f"embedding inversion: a mask of {emb_trig.size:.1%} of the image ({emb_trig.size * h * w:.0f} "
                       f"px) collapses stamped features (mean cosine {emb_trig.success:.2f}); clean "
                       f"{arch or 'reference'} extractors need > {thr.embedding_size:.1%}")
        chosen = chosen or (emb_trig, "embedding inversion")
    if chosen is None:  # nothing flagged: still show the most suspicious recovered trigger
        chosen = (classes.triggers[classes.suspect], "class inversion") if classes is not None \
            else (emb_trig, "embedding inversion")
    regions = KMeans(min(10, len(images)), n_init=4, random_state=seed).fit(clean_emb)
    recovered = _recovered_evidence(model, images, chosen[0], chosen[1], clean_emb, clean_pred, regions, center,
                                    seed)
    thresholds = {"class_size": thr.class_size, "class_anomaly": thr.class_anomaly,
                  "embedding_size": thr.embedding_size, **({"class_z": thr.class_z} if thr.per_class else {})}
    return AuditReport("FLAGGED" if decided else "PASS", tuple(reasons), decided_by=tuple(decided),
                       statistics=stats, thresholds=thresholds, fpr=calibration.fpr, recovered=recovered,
                       class_sizes=class_sizes,
                       pictures=tuple(pictures), example=images[0], **common)


def _settings_of(calibration: Calibration, seed: int) -> InversionSettings:
    known = {f.name for f in dataclasses.fields(InversionSettings)}
    given = {k: v for k, v in calibration.settings.items() if k in known and k != "seed"}
    return InversionSettings(**given, seed=seed)


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


def audit_command(args: argparse.Namespace) -> int:
    model, spec = load_extractor(Path(args.weights), args.arch)
    n, seed = 500, 0
    images = (_folder_images(Path(args.images), spec.image_size, n, seed) if args.images is not None
              else _default_images(n, seed))
    if images.shape[1] != spec.in_channels:
        raise UserError(f"{args.weights}: extractor expects {spec.in_channels} channel(s), images have "
                        f"{images.shape[1]}")
    if getattr(args, "no_head", False):
        model.head = None
    calibration = Calibration.load(getattr(args, "calibration", None))
    start = time.perf_counter()
    report = audit_model(model, images, seed, arch=spec.arch, calibration=calibration,
                         invert=not getattr(args, "no_inversion", False),
                         progress=not getattr(args, "no_progress", False))
    text = format_report(Path(args.weights), report) + f"\n  audit time {time.perf_counter() - start:.0f} s"
    print(text)
    if getattr(args, "out", None) is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "audit.txt").write_text(text + "\n")
        (out / "audit.json").write_text(json.dumps(report_dict(report), indent=1, default=float))
        picture = None
        if report.pictures:
            picture = out / "trigger.png"
            save_picture(report, picture)
        write_html(out / "audit.html", text, picture)
    return 0 if report.verdict == "PASS" else 1
