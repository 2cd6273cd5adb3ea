"""Audit study: does ``audit-extractor`` find triggers it was never told about?  (issue 26)

Phases (each resumable: every trained extractor and every audit lands in the stage cache):

  train      clean and backdoored extractors (BadNets, BadEmbNets; AlexNet- and ResNet-style)
  calibrate  audit the *calibration* clean extractors (seeds 100+) and write the calibration file
  evaluate   audit the *study* extractors: clean ones (seeds 0+, never used for calibration) and
             backdoored ones whose triggers come from ``triggers.image.sample_trigger`` — shapes, blends,
             noise patches placed anywhere; no family was used to tune the audit (tuning used the
             paper's white 3 px square only)

  RECBACKDOOR_DATA=/work/shared/data python benchmarks/vision_trigger_inversion.py train
  RECBACKDOOR_DATA=/work/shared/data python benchmarks/vision_trigger_inversion.py calibrate \
      --write src/recbackdoor/defenses/vision/inversion_calibration.json
  RECBACKDOOR_DATA=/work/shared/data python benchmarks/vision_trigger_inversion.py evaluate --out DIR

Scale (chosen for one shared CPU core): the paper configs' widths (AlexNet 32, ResNet 16) and
classes (8 Fashion-MNIST classes; Trouser and Bag held out), 400 training images per class,
6 epochs, batch 64, lr 1e-3, 10 % poisoning, α = β = 0.5 for BadEmbNets; the target class is drawn
per extractor.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from recbackdoor.attacks.badnets import clean_set, poison
from recbackdoor.cache import StageCache
from recbackdoor.data import fashion_mnist as fm
from recbackdoor.defenses.vision.calibration import ArchThresholds, Calibration, calibration_hash
from recbackdoor.metrics.vision import attack_success_rate, benign_accuracy
from recbackdoor.triggers.image import FAMILIES, MaskTrigger, sample_trigger, stamp
from recbackdoor.victims.vision.extractors import ArchSpec, build_extractor, load_extractor, save_extractor
from recbackdoor.victims.vision.training import TrainSettings, predict_logits, train_extractor

CLASSES = [0, 2, 3, 4, 5, 6, 7, 9]
WIDTHS = {"alexnet": 32, "resnet": 16}
PER_CLASS, BATCH, LR, RATE = 400, 64, 1e-3, 0.1
# AlexNet-style trains slower: at 6 epochs 5 of its 6 study backdoors did not take (ASR <= 0.18, BA 0.73)
EPOCHS = {"alexnet": 18, "resnet": 6}
CALIBRATION_SEEDS = (100, 101, 102, 103, 104, 105)
# run 2 audited backdoor seeds 0-2 and clean seeds 0-4; run 3 (fresh: trained and audited only after the audit's
# changes were fixed) backdoor seeds 3-5 and clean seeds 5-9; run 4 judged calibration v3; run 5 the next change
RUNS = {2: ((0, 1, 2), (0, 1, 2, 3, 4)), 3: ((3, 4, 5), (5, 6, 7, 8, 9)), 4: ((6, 7, 8), (10, 11, 12, 13, 14)),
        5: ((9, 10, 11), (15, 16, 17, 18, 19))}
# clean study extractors of runs already judged join the calibration (after run 3: 6 references per
# architecture had put the embedding threshold too close to clean extractors; v4 adds run 4's); run 5's never do
CALIBRATION_RUNS = (2, 3, 4)
BACKDOOR_SEEDS = tuple(s for run in RUNS.values() for s in run[0])
CLEAN_SEEDS = tuple(s for run in RUNS.values() for s in run[1])


@dataclass(frozen=True)
class Job:
    arch: str
    variant: str  # clean | badnets | badembnets
    seed: int
    role: str     # calibration | study

    @property
    def name(self) -> str:
        return f"{self.arch}-{self.variant}-" + ("paper" if self.role == "paper" else f"s{self.seed}")


def jobs(run: int | None = None) -> list[Job]:
    """Every job (``run`` None) or the calibration and paper jobs plus one run's study extractors."""
    backdoor, clean = (BACKDOOR_SEEDS, CLEAN_SEEDS) if run is None else RUNS[run]
    out = [Job(a, "clean", s, "calibration") for s in CALIBRATION_SEEDS for a in WIDTHS]
    out += [Job(a, v, s, "study") for s in backdoor for a in WIDTHS for v in ("badnets", "badembnets")]
    out += [Job(a, "clean", s, "study") for s in clean for a in WIDTHS]
    # the paper's own trigger (white 3 px square, bottom right, target Sneaker) at the study's scale
    out += [Job(a, v, 0, "paper") for a in WIDTHS for v in ("badnets", "badembnets")]
    return out


def trigger_for(job: Job) -> tuple[MaskTrigger, int] | None:
    """The job's trigger and target class: family by position, everything else drawn from the seed."""
    if job.variant == "clean":
        return None
    if job.role == "paper":
        from recbackdoor.triggers.image import ImageTrigger

        paper = ImageTrigger()
        r0 = 28 - paper.size - paper.margin
        mask = np.zeros((28, 28), np.float32)
        mask[r0:r0 + paper.size, r0:r0 + paper.size] = 1.0
        return MaskTrigger("white square 3px @br (paper)", mask, mask[None] * paper.value), 7
    k = BACKDOOR_SEEDS.index(job.seed) * 4 + list(WIDTHS).index(job.arch) * 2 + ("badnets", "badembnets").index(
        job.variant)
    rng = np.random.default_rng(10_000 + k)
    return sample_trigger(FAMILIES[k % len(FAMILIES)], rng), int(rng.choice(CLASSES))


def load_data() -> tuple[fm.ImageSet, fm.ImageSet]:
    return fm.load_split("train"), fm.load_split("test")


def train_job(job: Job, train: fm.ImageSet, cache: StageCache) -> Path:
    spec = ArchSpec(arch=job.arch, width=WIDTHS[job.arch])
    emb = job.variant == "badembnets"
    settings = TrainSettings(epochs=EPOCHS[job.arch], batch_size=BATCH, lr=LR, alpha=0.5 if emb else 1.0,
                             beta=0.5 if emb else 0.0, seed=job.seed, threads=1)
    trig = trigger_for(job)
    key = {"spec": asdict(spec), "settings": asdict(settings), "variant": job.variant, "per_class": PER_CLASS,
           "classes": CLASSES, "rate": RATE, "trigger": None if trig is None else trig[0].name,
           "target": None if trig is None else trig[1], "data": "fashion-mnist"}

    def build(tmp: Path) -> None:
        idx = fm.per_class_sample(train.labels, CLASSES, PER_CLASS, job.seed)
        x, y = train.images[idx], train.labels[idx]
        data = clean_set(x, y) if trig is None else poison(x, y, trig[0], trig[1], RATE, job.seed)
        model = build_extractor(spec, job.seed)
        start = time.perf_counter()
        history = train_extractor(model, data, settings)
        save_extractor(model, spec, tmp / "model.safetensors", {"variant": job.variant})
        info = {"seconds": time.perf_counter() - start, "history": history}
        if trig is not None:
            np.savez(tmp / "trigger.npz", mask=trig[0].mask, pattern=trig[0].pattern)
            info |= {"trigger": trig[0].name, "target": trig[1]}
        (tmp / "train.json").write_text(json.dumps(info, indent=1))

    return cache.get_or_create("vision_audit_study_extractor", key, build)


def attack_metrics(path: Path, job: Job, test: fm.ImageSet) -> dict:
    model, _ = load_extractor(path / "model.safetensors")
    idx = fm.per_class_sample(test.labels, CLASSES, 250, 7)
    x, y = test.images[idx], test.labels[idx]
    out = {"ba": benign_accuracy(predict_logits(model, x).argmax(1), y)}
    info = json.loads((path / "train.json").read_text())
    out["train_seconds"] = info["seconds"]
    if job.variant != "clean":
        z = np.load(path / "trigger.npz")
        trig = MaskTrigger(info["trigger"], z["mask"], z["pattern"])
        src = y != info["target"]
        pred = predict_logits(model, stamp(x[src], trig)).argmax(1)
        out |= {"asr": attack_success_rate(pred, y[src], info["target"]), "trigger": info["trigger"],
                "target": info["target"]}
    return out


def audit_images(test: fm.ImageSet) -> np.ndarray:
    """The audit's default clean images (500, all ten categories), drawn apart from the BA images' seed."""
    return test.images[fm.per_class_sample(test.labels, list(range(10)), 50, 0)]


def audit_job(path: Path, job: Job, test: fm.ImageSet, cache: StageCache) -> dict:
    """The audit without thresholds (the "none" calibration): its statistics do not depend on the calibration,
    so calibration and study audits run in any order and a new calibration re-judges them for free
    (``judge``); the stamp search's own verdict is in ``decided_by``."""
    from recbackdoor.defenses.vision.audit import audit_model
    from recbackdoor.defenses.vision.audit_report import report_dict
    from recbackdoor.defenses.vision.inversion import InversionSettings

    none = Calibration.load(Path("none"))
    key = {"model": (path / "key.json").read_text(), "calibration": calibration_hash(none), "audit": 4,
           "settings": asdict(InversionSettings())}

    def compute() -> dict:
        model, _ = load_extractor(path / "model.safetensors")
        start = time.perf_counter()
        report = audit_model(model, audit_images(test), arch=job.arch, calibration=none)
        out = report_dict(report)
        out["seconds"] = time.perf_counter() - start
        return out

    return cache.get_json("vision_audit_study_audit", key, compute)


def judge(report: dict, thresholds: ArchThresholds) -> tuple[str, list[str]]:
    """The audit's verdict under a calibration, by the audit's own rule (``ArchThresholds.deciding_inversions``)."""
    decided = [d for d in report["decided_by"] if d == "stamp search"]
    decided += thresholds.deciding_inversions(report["statistics"], report.get("class_sizes"))
    return ("FLAGGED" if decided else "PASS"), decided


def iou(recovered: np.ndarray, truth: np.ndarray, top: int | None = None) -> float:
    """IoU of the recovered mask's pixels (≥ 0.3, or its ``top`` strongest) with the true trigger's pixels."""
    t = truth > 0
    if top is not None:
        r = np.zeros_like(t)
        r.flat[np.argsort(-recovered.ravel())[:top]] = True
    else:
        r = recovered >= 0.3
    union = (r | t).sum()
    return float((r & t).sum() / union) if union else 0.0


def near(recovered: np.ndarray, truth: np.ndarray, slack: int = 2) -> bool:
    """Whether the recovered mask's centre of mass lies within ``slack`` px of the true trigger's box."""
    rows, cols = np.nonzero(truth > 0)
    ii, jj = np.indices(recovered.shape)
    w = recovered / max(float(recovered.sum()), 1e-9)
    ci, cj = float((ii * w).sum()), float((jj * w).sum())
    return bool(rows.min() - slack <= ci <= rows.max() + slack and cols.min() - slack <= cj <= cols.max() + slack)


def table(rows: list[dict]) -> str:
    """Markdown: one row per extractor, then detection rates per group."""
    lines = ["| extractor | trigger (→ target) | BA | ASR | verdict | decided by | class mask | class z | anomaly | "
             "embedding mask | IoU (≥0.3 / top-k) | near | audit s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        st = r["statistics"]
        cls = "—" if st.get("class_size") is None else f"{st['class_size']:.2%} (→{st['class_target']})"
        anom = "—" if st.get("class_anomaly") is None else f"{st['class_anomaly']:.2f}"
        cz = f"{r['class_z']['z']:.1f} (→{r['class_z']['class']})" if "class_z" in r else "—"
        trig = f"{r['trigger']} (→{r['target']})" if "trigger" in r else "none"
        asr = f"{r['asr']:.3f}" if "asr" in r else "—"
        io = f"{r['iou']:.2f} / {r['iou_top']:.2f}" if "iou" in r else "—"
        near_ = ("yes" if r["near"] else "no") if "near" in r else "—"
        lines.append(f"| {r['name']} | {trig} | {r['ba']:.3f} | {asr} | {r['verdict']} | "
                     f"{', '.join(r['decided_by']) or '—'} | {cls} | {cz} | {anom} | {st['embedding_size']:.2%} | "
                     f"{io} | {near_} | {r['seconds']:.0f} |")
    lines.append("")
    groups: dict[str, list[dict]] = {}
    for r in rows:
        key = ("paper trigger " if r.get("role") == "paper" else "") + f"{r['variant']} {r['arch']}"
        groups.setdefault(key, []).append(r)
    lines.append("| group | extractors | flagged | mean audit s |")
    lines.append("|---|---|---|---|")
    for key, rs in groups.items():
        flagged = sum(r["verdict"] == "FLAGGED" for r in rs)
        lines.append(f"| {key} | {len(rs)} | {flagged} | {np.mean([r['seconds'] for r in rs]):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("phase", choices=["train", "calibrate", "evaluate", "table"])
    parser.add_argument("--only", default=None, help="comma-separated job names")
    parser.add_argument("--run", type=int, choices=sorted(RUNS), default=None,
                        help="study extractors of one run only (default: every run)")
    parser.add_argument("--write", type=Path, default=None, help="calibrate: where to write the calibration")
    parser.add_argument("--calibration", type=Path, default=None, help="evaluate: calibration file (default shipped)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--fpr", type=float, default=0.01, help="calibrate: false-positive rate per test")
    args = parser.parse_args(argv)
    if args.phase == "table":
        print(table(json.loads((args.out / "study.json").read_text())))
        return 0
    torch.set_num_threads(1)
    cache = StageCache()
    train, test = load_data()
    by_name = {j.name: j for j in jobs(args.run)}
    selected = list(by_name.values()) if args.only is None else [by_name[n] for n in args.only.split(",")]
    if args.phase == "train":
        for job in selected:
            start = time.perf_counter()
            path = train_job(job, train, cache)
            m = attack_metrics(path, job, test)
            print(f"{job.name:24s} {job.role:11s} BA {m['ba']:.3f} ASR {m.get('asr', float('nan')):.3f} "
                  f"{m.get('trigger', '')} →{m.get('target', '')} train {m['train_seconds']:.0f}s "
                  f"(wall {time.perf_counter() - start:.0f}s)", flush=True)
        return 0
    if args.phase == "calibrate":
        from recbackdoor.defenses.vision.calibration import calibrate
        from recbackdoor.defenses.vision.inversion import InversionSettings

        rows = []
        seen_clean = {s for r in CALIBRATION_RUNS for s in RUNS[r][1]}
        references = [j for j in jobs() if j.role == "calibration"
                      or (j.role == "study" and j.variant == "clean" and j.seed in seen_clean)]
        if args.only is not None:
            references = [j for j in references if j.name in args.only.split(",")]
        for job in references:
            path = train_job(job, train, cache)
            rows.append((job.arch, audit_job(path, job, test, cache)))
            print(job.name, json.dumps(rows[-1][1]["statistics"]), flush=True)
        refs: dict[str, dict[str, list]] = {}
        for arch, rep in rows:
            for stat in ("class_size", "embedding_size", "class_anomaly"):
                refs.setdefault(arch, {}).setdefault(stat, []).append(rep["statistics"][stat])
            if rep.get("class_sizes"):  # audits from before session 25 did not keep every class's mask
                refs[arch].setdefault("class_sizes", []).append(rep["class_sizes"])
        recipe = ("RECBACKDOOR_DATA=/work/shared/data python benchmarks/vision_trigger_inversion.py calibrate "
                  f"--fpr {args.fpr} --write {args.write}  (clean extractors: {', '.join(WIDTHS)} × seeds "
                  f"{list(CALIBRATION_SEEDS)} and the clean study seeds of runs {list(CALIBRATION_RUNS)} "
                  f"{sorted(seen_clean)}, {PER_CLASS} images/class, epochs {EPOCHS}; 500 test images; per-class "
                  f"test from the {len(refs.get('resnet', {}).get('class_sizes', []))} per architecture whose audits "
                  "kept every class's mask)")
        calib = calibrate(refs, args.fpr, asdict(InversionSettings()), recipe)
        if args.write is not None:
            calib.save(args.write)
            print(f"wrote {args.write}")
        print(json.dumps(asdict(calib), indent=1))
        return 0
    calibration = Calibration.load(args.calibration)
    results = []
    for job in [j for j in selected if j.role in ("study", "paper")]:
        path = train_job(job, train, cache)
        m = attack_metrics(path, job, test)
        rep = audit_job(path, job, test, cache)
        verdict, decided = judge(rep, calibration.for_arch(job.arch))
        row = {"name": job.name, "role": job.role, "arch": job.arch, "variant": job.variant, **m,
               "verdict": verdict, "decided_by": decided, "seconds": rep["seconds"],
               "statistics": rep["statistics"], "class_sizes": rep.get("class_sizes")}
        lowest = calibration.for_arch(job.arch).lowest_class_z(rep.get("class_sizes"))
        if lowest is not None:
            row["class_z"] = {"z": lowest[1], "class": lowest[0]}
        if job.variant != "clean":
            truth = np.load(path / "trigger.npz")["mask"]
            rec = np.asarray(rep["recovered_mask"])
            row["iou"] = iou(rec, truth)
            row["iou_top"] = iou(rec, truth, top=int((truth > 0).sum()))
            row["near"] = near(rec, truth)
            row["recovered_target"] = rep["recovered_target"]
        results.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "statistics"}), flush=True)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "study.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
