"""BadEmbNets experiment: extractors (clean / BadNets / BadEmbNets) → VisRank, VBPR → defenses.

Reproduces the shapes of the paper's Tables 2–10 and Figs. 3, 5, 6 on
Fashion-MNIST (real images, *simulated* interactions) or on a real
interaction log + image folder.  One config = one backbone.  Every trained
extractor is cached as safetensors under the stage cache, keyed by what it
depends on, so re-running an evaluation never retrains.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from recbackdoor.attacks.badnets import PoisonedSet, clean_set, poison
from recbackdoor.data import fashion_mnist as fm
from recbackdoor.data.fashion_mnist import ImageSet, per_class_sample
from recbackdoor.data.interactions import Interactions, SimulatorSettings, leave_one_out, simulate
from recbackdoor.defenses.vision.activation_clustering import activation_clustering, detection_rates
from recbackdoor.defenses.vision.finetune import finetune
from recbackdoor.defenses.vision.strip import strip_entropy, threshold_at_frr
from recbackdoor.errors import UserError
from recbackdoor.experiments.config import ExperimentConfig, StrictModel
from recbackdoor.experiments.context import RunContext
from recbackdoor.experiments.registry import register_experiment
from recbackdoor.experiments.results import Cell, mean_over_seeds
from recbackdoor.metrics.vision import (
    attack_success_rate,
    benign_accuracy,
    centroid_ratio,
    delta_hit_rate,
    detection_auroc,
    hit_rate_at_n,
    knn_mixing,
    leave_one_out_auc,
    poison_target_ari,
    pool_thresholds,
    prediction_shift,
)
from recbackdoor.triggers.image import ImageTrigger, stamp
from recbackdoor.victims.vision.extractors import ArchSpec, build_extractor, load_extractor, save_extractor
from recbackdoor.victims.vision.training import TrainSettings, embed, predict_logits, train_extractor
from recbackdoor.victims.vision.vbpr import VBPRSettings, fit_vbpr
from recbackdoor.victims.vision.visrank import split_queries, visrank_scores

DATASET = "fashion-mnist"
TRANSFER = "fashion-mnist-heldout"
VARIANTS = ("clean", "badnets", "badembnets")


class DataSection(StrictModel):
    source: Literal["fashion-mnist", "folder"] = "fashion-mnist"
    folder: str | None = None  # with source="folder": DIR/images/<category>/<item>.png + DIR/interactions.csv
    target_class: int = 7  # Sneaker (the paper's "Running shoes")
    heldout_classes: list[int] = [1, 8]  # Trouser, Bag: never seen by the extractor (cross-dataset analogue)
    train_per_class: int = 2000
    val_per_class: int = 250
    catalogue_per_class: int = 300
    cold_items: int = 1000
    transfer_items: int = 1000


class TriggerSection(StrictModel):
    pattern: str = "square"
    size: int = 3
    position: str = "br"
    value: float = 1.0


class ExtractorSection(StrictModel):
    arch: str = "alexnet"
    width: int = 32
    epochs: int = 6
    batch_size: int = 128
    lr: float = 1e-3
    poison_rate: float = 0.1
    alpha: float = 0.5
    beta: float = 0.5
    margin: float = 0.4
    mining: Literal["all", "random", "hard"] = "all"
    cosine: bool = True


class VisRankSection(StrictModel):
    query_share: float = 0.1


class VBPRSection(StrictModel):
    """Defaults are VBPRSettings' (one place); ``top_n`` is the HR@N cut-off of the evaluation."""

    k: int = VBPRSettings.k
    k_visual: int = VBPRSettings.k_visual
    epochs: int = VBPRSettings.epochs
    lr: float = VBPRSettings.lr
    reg: float = VBPRSettings.reg
    batch_size: int = VBPRSettings.batch_size
    top_n: int = 10


class SimulatorSection(StrictModel):
    """Defaults are SimulatorSettings' (one place); the seed comes from the run's seeds."""

    n_users: int = SimulatorSettings.n_users
    target_share: float = SimulatorSettings.target_share
    mean_interactions: float = SimulatorSettings.mean_interactions
    min_interactions: int = SimulatorSettings.min_interactions
    favourite_weight: float = SimulatorSettings.favourite_weight
    taste_concentration: float = SimulatorSettings.taste_concentration
    popularity_exponent: float = SimulatorSettings.popularity_exponent


class StudiesSection(StrictModel):
    transfer: bool = True
    random_position: bool = True
    patterns: list[str] = ["checker", "cross"]
    size_position: list[tuple[int, str]] = [(6, "br"), (3, "ct"), (6, "ct")]
    vbpr_dims: list[int] = [10, 30, 50, 100]
    tsne: bool = True
    tsne_per_group: int = 250


class DefenseSection(StrictModel):
    strip: bool = True
    strip_images: int = 400
    strip_overlays: int = 16
    strip_frr: float = 0.01
    ac: bool = True
    ac_max_share: float = 0.35
    ac_silhouette_margin: float = 0.1
    finetune: bool = True
    finetune_epochs: int = 5
    finetune_per_class: int = 1000
    finetune_lrs: list[float] = [1e-3, 1e-2]


class BadEmbNetsConfig(ExperimentConfig):
    experiment: str = "badembnets"
    threads: int = 1
    data: DataSection = DataSection()
    trigger: TriggerSection = TriggerSection()
    extractor: ExtractorSection = ExtractorSection()
    visrank: VisRankSection = VisRankSection()
    vbpr: VBPRSection = VBPRSection()
    simulator: SimulatorSection = SimulatorSection()
    studies: StudiesSection = StudiesSection()
    defenses: DefenseSection = DefenseSection()


# --------------------------------------------------------------------------- data


class Splits:
    """Index sets into the train / test image sets, all seeded."""

    def __init__(self, cfg: BadEmbNetsConfig, train: ImageSet, test: ImageSet, seed: int) -> None:
        d = cfg.data
        classes = sorted(set(np.unique(train.labels).tolist()) - set(d.heldout_classes))
        if d.target_class not in classes:
            raise UserError(f"data.target_class {d.target_class}: not among the extractor's classes {classes}")
        self.classes = classes
        self.train = per_class_sample(train.labels, classes, d.train_per_class, seed)
        self.val = per_class_sample(test.labels, classes, d.val_per_class, seed + 1)
        self.catalogue = per_class_sample(test.labels, classes, d.catalogue_per_class, seed + 2, exclude=self.val)
        rng = np.random.default_rng(seed + 3)
        used = np.zeros(len(test), bool)
        used[self.val] = used[self.catalogue] = True
        pool = np.flatnonzero(~used & np.isin(test.labels, classes) & (test.labels != d.target_class))
        self.cold = np.sort(rng.choice(pool, min(d.cold_items, len(pool)), replace=False))
        held = np.flatnonzero(np.isin(test.labels, d.heldout_classes))
        self.transfer = np.sort(rng.choice(held, min(d.transfer_items, len(held)), replace=False)) \
            if len(held) else held
        self.spare = np.setdiff1d(np.arange(len(train)), self.train)  # fine-tuning data, STRIP overlays
        self.catalogue_interactions: Interactions | None = None


class FolderSplits:
    """Splits for a real log + image folder: one image set, 70 / 10 / 20 extractor train / spare / validation
    per category (the paper splits 80:20; 10 % is kept aside for fine-tuning and STRIP overlays).  The
    catalogue is every item someone interacted with; cold items are those nobody did (target category
    excluded); there is no held-out category, so no transfer study."""

    def __init__(self, cfg: BadEmbNetsConfig, images: ImageSet, inter: Interactions, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.classes = sorted(np.unique(images.labels).tolist())
        parts: dict[str, list[np.ndarray]] = {"train": [], "spare": [], "val": []}
        for c in self.classes:
            idx = rng.permutation(np.flatnonzero(images.labels == c))
            a, b = int(0.7 * len(idx)), int(0.8 * len(idx))
            parts["train"].append(idx[:a])
            parts["spare"].append(idx[a:b])
            parts["val"].append(idx[b:])
        self.train, self.spare, self.val = (np.sort(np.concatenate(parts[k])) for k in ("train", "spare", "val"))
        self.catalogue = np.unique(inter.items)
        never = np.setdiff1d(np.arange(len(images)), self.catalogue)
        never = never[images.labels[never] != cfg.data.target_class]
        self.cold = np.sort(rng.choice(never, min(cfg.data.cold_items, len(never)), replace=False))
        self.transfer = np.zeros(0, int)
        position = np.full(len(images), -1)
        position[self.catalogue] = np.arange(len(self.catalogue))
        self.catalogue_interactions = Interactions(inter.n_users, len(self.catalogue), inter.users,
                                                   position[inter.items], inter.target_users, simulated=False)


def load_images(cfg: BadEmbNetsConfig, ctx: RunContext) -> tuple[ImageSet, ImageSet, Interactions | None]:
    """Fashion-MNIST (train, test, no log) or a real folder (images, the same images, its log)."""
    if cfg.data.source == "folder":
        from recbackdoor.data.fashion_mnist import sha256
        from recbackdoor.data.image_folder import load_image_folder, load_interactions

        if not cfg.data.folder:
            raise UserError("data.folder: required with data.source = 'folder' (DIR with images/ and "
                            "interactions.csv)")
        root = Path(cfg.data.folder)
        images, ids = load_image_folder(root / "images")
        if cfg.data.target_class >= len(images.class_names):
            raise UserError(f"data.target_class {cfg.data.target_class}: the folder has only "
                            f"{len(images.class_names)} categories ({', '.join(images.class_names)})")
        inter = load_interactions(root / "interactions.csv", ids, images.labels, cfg.data.target_class)
        ctx.data_checksums["interactions.csv"] = sha256(root / "interactions.csv")
        return images, images, inter
    ctx.data_checksums.update(fm.checksums())
    return fm.load_split("train"), fm.load_split("test"), None


# --------------------------------------------------------------------------- extractors


def make_trigger(cfg: BadEmbNetsConfig, **changes) -> ImageTrigger:
    t = cfg.trigger.model_dump() | changes
    return ImageTrigger(pattern=t["pattern"], size=t["size"], position=t["position"], value=t["value"])


def train_settings(cfg: BadEmbNetsConfig, variant: str, seed: int) -> TrainSettings:
    e = cfg.extractor
    if variant == "badembnets":
        alpha, beta = e.alpha, e.beta
    else:
        alpha, beta = 1.0, 0.0
    return TrainSettings(epochs=e.epochs, batch_size=e.batch_size, lr=e.lr, alpha=alpha, beta=beta,
                         margin=e.margin, mining=e.mining, cosine=e.cosine, seed=seed, threads=cfg.threads)


def training_data(cfg: BadEmbNetsConfig, train: ImageSet, idx: np.ndarray, variant: str, trigger: ImageTrigger,
                  seed: int) -> PoisonedSet:
    images, labels = train.images[idx], train.labels[idx]
    if variant == "clean":
        return clean_set(images, labels)
    return poison(images, labels, trigger, cfg.data.target_class, cfg.extractor.poison_rate, seed)


def get_extractor(cfg: BadEmbNetsConfig, ctx: RunContext, train: ImageSet, splits: Splits, variant: str,
                  trigger: ImageTrigger, seed: int) -> torch.nn.Module:
    spec = ArchSpec(arch=cfg.extractor.arch, width=cfg.extractor.width, num_classes=len(train.class_names),
                    in_channels=train.images.shape[1], image_size=train.images.shape[2])
    settings = train_settings(cfg, variant, seed)
    key = {"spec": spec.__dict__, "settings": settings.__dict__ | {"threads": None}, "variant": variant,
           "trigger": None if variant == "clean" else trigger.__dict__,
           "poison_rate": None if variant == "clean" else cfg.extractor.poison_rate,
           "target": cfg.data.target_class, "classes": splits.classes,
           "train_per_class": cfg.data.train_per_class, "data_seed": seed, "data": dict(ctx.data_checksums)}

    def build(tmp: Path) -> None:
        data = training_data(cfg, train, splits.train, variant, trigger, seed)
        model = build_extractor(spec, seed)
        history = train_extractor(model, data, settings)
        save_extractor(model, spec, tmp / "model.safetensors", {"variant": variant})
        (tmp / "history.json").write_text(json.dumps(history, indent=1))

    with ctx.timer(f"train_{variant}"):
        path = ctx.cache.get_or_create("vision_extractor", key, build)
    model, _ = load_extractor(path / "model.safetensors")
    return model


# --------------------------------------------------------------------------- evaluation


def classifier_metrics(model, test: ImageSet, val: np.ndarray, trigger: ImageTrigger, target: int, seed: int,
                       ari_per_group: int) -> dict[str, float]:
    x, y = test.images[val], test.labels[val]
    ba = benign_accuracy(predict_logits(model, x).argmax(1), y)
    src = y != target
    triggered = stamp(x[src], trigger, seed=seed)
    asr = attack_success_rate(predict_logits(model, triggered).argmax(1), y[src], target)
    rng = np.random.default_rng(seed)
    tgt = embed(model, x[y == target][:ari_per_group])
    pick = rng.choice(len(triggered), min(ari_per_group, len(triggered)), replace=False)
    pois = embed(model, triggered[pick])
    return {"ba": ba, "asr": asr, "ari": poison_target_ari(tgt, pois, seed), "knn_mix": knn_mixing(tgt, pois),
            "centroid_ratio": centroid_ratio(tgt, pois)}


def random_position_asr(model, test: ImageSet, val: np.ndarray, trigger: ImageTrigger, target: int,
                        seed: int) -> float:
    x, y = test.images[val], test.labels[val]
    src = y != target
    moved = ImageTrigger(trigger.pattern, trigger.size, "random", trigger.value, trigger.margin)
    triggered = stamp(x[src], moved, seed=seed, avoid=trigger)
    return attack_success_rate(predict_logits(model, triggered).argmax(1), y[src], target)


def visrank_cells(model, test: ImageSet, splits: Splits, trigger: ImageTrigger, cfg: BadEmbNetsConfig,
                  seed: int) -> dict[str, dict[str, float]]:
    target = cfg.data.target_class
    x, y = test.images[splits.val], test.labels[splits.val]
    qs = split_queries(y, cfg.visrank.query_share, seed)
    emb = embed(model, x)
    trig_q = embed(model, stamp(x[qs.query], trigger, seed=seed))
    out = {DATASET: visrank_scores(emb[qs.query], y[qs.query], trig_q, emb[qs.database], y[qs.database], target)}
    if cfg.studies.transfer and len(splits.transfer):
        xt, yt = test.images[splits.transfer], test.labels[splits.transfer]
        qt = split_queries(yt, cfg.visrank.query_share, seed)
        et = embed(model, xt)
        trig_t = embed(model, stamp(xt[qt.query], trigger, seed=seed))
        db = np.concatenate([emb[qs.database], et[qt.database]])
        db_y = np.concatenate([y[qs.database], yt[qt.database]])
        out[TRANSFER] = visrank_scores(et[qt.query], yt[qt.query], trig_t, db, db_y, target)
    return out


def vbpr_eval(model, test: ImageSet, splits: Splits, inter: Interactions, trigger: ImageTrigger,
              cfg: BadEmbNetsConfig, seed: int, k_visual: int | None = None) -> dict[str, dict[str, float]]:
    """Train VBPR on this extractor's features; AUC + Δp / ΔHR@N for the target group on cold items."""
    v = cfg.vbpr
    feats = embed(model, test.images[splits.catalogue])
    loo = leave_one_out(inter, seed)
    settings = VBPRSettings(k=v.k, k_visual=k_visual or v.k_visual, epochs=v.epochs, lr=v.lr, reg=v.reg,
                            batch_size=v.batch_size, seed=seed, threads=cfg.threads)
    rec, history = fit_vbpr(inter.n_users, inter.n_items, loo.train_users, loo.train_items, feats, settings)
    all_users = np.arange(inter.n_users)
    scores = rec.score_matrix(all_users, feats, np.arange(inter.n_items))
    has_test = loo.test_items >= 0
    auc = leave_one_out_auc(scores[has_test], loo.test_items[has_test], loo.seen[has_test])
    tu = np.flatnonzero(inter.target_users)
    cand = np.where(loo.seen[tu], -np.inf, scores[tu])  # a user's own items are not recommended again
    nth = np.sort(cand, axis=1)[:, -v.top_n]
    out: dict[str, dict[str, float]] = {}
    sets = {DATASET: splits.cold}
    if cfg.studies.transfer and len(splits.transfer):
        sets[TRANSFER] = splits.transfer
    for name, idx in sets.items():
        x = test.images[idx]
        before = rec.score_matrix(tu, embed(model, x))
        after = rec.score_matrix(tu, embed(model, stamp(x, trigger, seed=seed)))
        bar = pool_thresholds(before, v.top_n)
        out[name] = {"delta_p": prediction_shift(before, after), "delta_hr10": delta_hit_rate(before, after, bar),
                     "hr10_clean": hit_rate_at_n(before, bar), "hr10_poisoned": hit_rate_at_n(after, bar),
                     "delta_hr10_catalogue": delta_hit_rate(before, after, nth)}
    out[DATASET]["auc"] = auc
    out[DATASET]["seconds_per_epoch"] = float(np.mean([h["seconds"] for h in history]))
    return out


# --------------------------------------------------------------------------- defenses


def strip_metrics(model, test: ImageSet, splits: Splits, trigger: ImageTrigger, cfg: BadEmbNetsConfig, seed: int,
                  train: ImageSet) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    d = cfg.defenses
    rng = np.random.default_rng(seed)
    x, y = test.images[splits.val], test.labels[splits.val]
    clean_pick = rng.choice(len(x), min(d.strip_images, len(x)), replace=False)
    src = np.flatnonzero(y != cfg.data.target_class)
    pois_pick = rng.choice(src, min(d.strip_images, len(src)), replace=False)
    overlays = train.images[rng.choice(splits.spare, min(500, len(splits.spare)), replace=False)]
    h_clean = strip_entropy(model, x[clean_pick], overlays, d.strip_overlays, seed)
    h_pois = strip_entropy(model, stamp(x[pois_pick], trigger, seed=seed), overlays, d.strip_overlays, seed + 1)
    thr = threshold_at_frr(h_clean, d.strip_frr)
    metrics = {"auroc": detection_auroc(-h_clean, -h_pois), "tpr": float(np.mean(h_pois < thr)),
               "fpr": float(np.mean(h_clean < thr)), "entropy_clean": float(h_clean.mean()),
               "entropy_poisoned": float(h_pois.mean())}
    return metrics, h_clean, h_pois


def ac_metrics(model, cfg: BadEmbNetsConfig, data: PoisonedSet, seed: int, normalize: bool) -> dict[str, float]:
    """AC on raw activations (Chen et al.) or on L2-normalised ones (the space BadEmbNets' triplet shapes)."""
    acts = embed(model, data.images, normalize=normalize)
    assigned = predict_logits(model, data.images).argmax(1)
    report = activation_clustering(acts, assigned, max_share=cfg.defenses.ac_max_share,
                                   silhouette_margin=cfg.defenses.ac_silhouette_margin, seed=seed)
    rates = detection_rates(report.flagged, data.poisoned)
    target_flagged = float(cfg.data.target_class in report.flagged_classes)
    sil = report.silhouette
    others = [v for c, v in sil.items() if c != cfg.data.target_class]
    return {"tpr": rates["tpr"], "fpr": rates["fpr"], "target_class_flagged": target_flagged,
            "silhouette_target": sil.get(cfg.data.target_class, 0.0),
            "silhouette_others_median": float(np.median(others)) if others else 0.0}


def finetune_history(cfg: BadEmbNetsConfig, ctx: RunContext, model, variant: str, train: ImageSet, test: ImageSet,
                     splits: Splits, trigger: ImageTrigger, seed: int, lr: float) -> list[dict]:
    d = cfg.defenses
    pool = splits.spare
    per_class = min([d.finetune_per_class] + [int(np.sum(train.labels[pool] == c)) for c in splits.classes])
    sub = pool[per_class_sample(train.labels[pool], splits.classes, per_class, seed + 7)]
    settings = TrainSettings(epochs=d.finetune_epochs, batch_size=cfg.extractor.batch_size, lr=lr,
                             seed=seed, threads=cfg.threads)

    def evaluate(m) -> dict[str, float]:
        met = classifier_metrics(m, test, splits.val, trigger, cfg.data.target_class, seed, 50)
        return {"ba": met["ba"], "asr": met["asr"]}

    key = {"model": variant, "cfg": cfg.model_dump(mode="json", exclude={"studies", "vbpr", "simulator", "visrank"}),
           "seed": seed, "lr": lr, "data": dict(ctx.data_checksums)}
    return ctx.cache.get_json("vision_finetune", key,
                              lambda: finetune(model, clean_set(train.images[sub], train.labels[sub]), settings,
                                               evaluate)[1])


# --------------------------------------------------------------------------- the experiment


class CellBook:
    """Collects one cell per seed and averages over seeds at the end."""

    def __init__(self) -> None:
        self.cells: dict[tuple, list[Cell]] = defaultdict(list)

    def add(self, ctx: RunContext, metrics: dict[str, float], extra: dict, **keys) -> None:
        if not ctx.wants(**keys):
            return
        ident = tuple(keys.values()) + tuple(sorted((k, str(v)) for k, v in extra.items()))
        self.cells[ident].append(Cell(keys["dataset"], keys["victim"], keys["variant"], keys["trigger"],
                                      keys["position"], {k: float(v) for k, v in metrics.items()}, extra=extra))

    def flush(self, ctx: RunContext) -> None:
        for cells in self.cells.values():
            ctx.add_cell(mean_over_seeds(cells))


@register_experiment("badembnets", config=BadEmbNetsConfig)
def run(cfg: BadEmbNetsConfig, ctx: RunContext) -> None:
    torch.set_num_threads(cfg.threads)
    with ctx.timer("load_data"):
        train, test, real_log = load_images(cfg, ctx)
    target = cfg.data.target_class
    trig = make_trigger(cfg)
    base_extra = {"backbone": cfg.extractor.arch}
    book = CellBook()
    tsne_data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    strip_plot: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    ft_plot: dict[str, list[dict]] = {}
    dim_plot: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for seed in cfg.seeds:
        if real_log is None:
            splits = Splits(cfg, train, test, seed)
            sim = cfg.simulator.model_dump()
            inter = simulate(test.labels[splits.catalogue], target, SimulatorSettings(**sim, seed=seed))
        else:
            splits = FolderSplits(cfg, train, real_log, seed)
            inter = splits.catalogue_interactions
        ctx.protocol.update(_protocol(cfg, splits, inter, train.class_names))
        models = {}
        for variant in VARIANTS:
            if not ctx.wants(variant=variant) and variant != "badembnets":
                continue
            models[variant] = get_extractor(cfg, ctx, train, splits, variant, trig, seed)
        for variant, model in models.items():
            keys = {"trigger": trig.label, "position": trig.position}
            with ctx.timer("eval_classifier"):
                met = classifier_metrics(model, test, splits.val, trig, target, seed, cfg.data.val_per_class)
            book.add(ctx, met, base_extra, dataset=DATASET, victim="classifier", variant=variant, **keys)
            if cfg.studies.random_position and variant != "clean":
                with ctx.timer("eval_random_position"):
                    asr = random_position_asr(model, test, splits.val, trig, target, seed)
                book.add(ctx, {"asr": asr}, base_extra | {"study": "random_position"}, dataset=DATASET,
                         victim="classifier", variant=variant, trigger=trig.label, position="random")
            with ctx.timer("eval_visrank"):
                for ds, m in visrank_cells(model, test, splits, trig, cfg, seed).items():
                    book.add(ctx, m, base_extra, dataset=ds, victim="visrank", variant=variant, **keys)
            if ctx.wants(victim="vbpr"):
                with ctx.timer("eval_vbpr"):
                    for ds, m in vbpr_eval(model, test, splits, inter, trig, cfg, seed).items():
                        book.add(ctx, m, base_extra | {"vbpr_dim": cfg.vbpr.k_visual}, dataset=ds, victim="vbpr",
                                 variant=variant, **keys)
                if variant != "clean":
                    for dim in cfg.studies.vbpr_dims:
                        with ctx.timer("study_vbpr_dims"):
                            m = vbpr_eval(model, test, splits, inter, trig, cfg, seed, k_visual=dim)[DATASET]
                        book.add(ctx, {"auc": m["auc"], "delta_p": m["delta_p"], "delta_hr10": m["delta_hr10"]},
                                 base_extra | {"study": "vbpr_dim", "vbpr_dim": dim}, dataset=DATASET,
                                 victim="vbpr", variant=variant, **keys)
                        if seed == cfg.seeds[0]:
                            dim_plot[variant].append((dim, m["delta_hr10"]))
            if cfg.defenses.strip:
                with ctx.timer("defense_strip"):
                    sm, hc, hp = strip_metrics(model, test, splits, trig, cfg, seed, train)
                book.add(ctx, {f"strip_{k}": v for k, v in sm.items()}, base_extra | {"attack": variant},
                         dataset=DATASET, victim="classifier", variant=f"strip-{variant}", **keys)
                strip_plot[variant] = (hc, hp)
            if cfg.defenses.ac and variant != "clean":
                with ctx.timer("defense_ac"):
                    data = training_data(cfg, train, splits.train, variant, trig, seed)
                    am = {f"ac_{k}": v for k, v in ac_metrics(model, cfg, data, seed, normalize=False).items()}
                    am |= {f"ac_norm_{k}": v for k, v in ac_metrics(model, cfg, data, seed, normalize=True).items()}
                book.add(ctx, am, base_extra | {"attack": variant}, dataset=DATASET, victim="classifier",
                         variant=f"ac-{variant}", **keys)
            for lr in cfg.defenses.finetune_lrs if cfg.defenses.finetune and variant != "clean" else []:
                name = f"finetune-lr{lr:g}-{variant}"
                if not ctx.wants(variant=name):
                    continue
                with ctx.timer("defense_finetune"):
                    hist = finetune_history(cfg, ctx, model, variant, train, test, splits, trig, seed, lr)
                last = hist[-1]
                book.add(ctx, {"ba": last["ba"], "asr": last["asr"], "ba_before": hist[0]["ba"],
                               "asr_before": hist[0]["asr"]},
                         base_extra | {"attack": variant, "epochs": cfg.defenses.finetune_epochs, "lr": lr,
                                       "clean_images": cfg.defenses.finetune_per_class * len(splits.classes),
                                       "ba_per_epoch": [h["ba"] for h in hist],
                                       "asr_per_epoch": [h["asr"] for h in hist]},
                         dataset=DATASET, victim="classifier", variant=name, **keys)
                ft_plot[f"{variant} lr {lr:g}"] = hist
            if cfg.studies.tsne and seed == cfg.seeds[0]:
                with ctx.timer("study_tsne"):
                    tsne_data[variant] = _tsne_points(model, test, splits, trig, target, cfg.studies.tsne_per_group,
                                                      seed)
        _trigger_ablations(cfg, ctx, book, train, test, splits, seed, base_extra)
    book.flush(ctx)
    _plots(ctx.out_dir, tsne_data, strip_plot, ft_plot, dim_plot)


def _trigger_ablations(cfg, ctx, book, train, test, splits, seed, base_extra) -> None:
    """Tables 4–5: BadEmbNets trained and tested with other patterns, sizes and positions."""
    variants = [make_trigger(cfg, pattern=p) for p in cfg.studies.patterns]
    variants += [make_trigger(cfg, size=s, position=pos) for s, pos in cfg.studies.size_position]
    for trig in variants:
        for variant in ("badembnets",):
            if not ctx.wants(dataset=DATASET, victim="classifier", variant=variant, trigger=trig.label,
                             position=trig.position):
                continue
            model = get_extractor(cfg, ctx, train, splits, variant, trig, seed)
            with ctx.timer("study_triggers"):
                met = classifier_metrics(model, test, splits.val, trig, cfg.data.target_class, seed,
                                         cfg.data.val_per_class)
            book.add(ctx, met, base_extra | {"study": "trigger_ablation", "size": trig.size}, dataset=DATASET,
                     victim="classifier", variant=variant, trigger=trig.label, position=trig.position)


def _tsne_points(model, test, splits, trig, target, per_group, seed) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(seed)
    x, y = test.images[splits.val], test.labels[splits.val]
    others = np.unique(y[y != target])
    src_class = others[0]  # the paper shows one non-target class (T-shirt) next to the target
    tgt = x[y == target][:per_group]
    oth = x[y == src_class][:per_group]
    pois_src = x[(y != target)]
    pois = stamp(pois_src[rng.choice(len(pois_src), per_group, replace=False)], trig, seed=seed)
    emb = embed(model, np.concatenate([oth, tgt, pois]))
    kind = np.r_[np.zeros(len(oth)), np.ones(len(tgt)), np.full(len(pois), 2)].astype(int)
    xy = TSNE(2, random_state=seed, init="pca", perplexity=30).fit_transform(emb)
    return xy, kind


def _plots(out_dir: Path, tsne_data, strip_plot, ft_plot, dim_plot) -> None:
    from recbackdoor.report import vision_plots as vp

    out_dir.mkdir(parents=True, exist_ok=True)
    if tsne_data:
        vp.tsne_panels(tsne_data, out_dir / "tsne.png")
    if strip_plot:
        vp.strip_histograms(strip_plot, out_dir / "strip_entropy.png")
    if ft_plot:
        vp.finetune_curves(ft_plot, out_dir / "finetune.png")
    if dim_plot:
        vp.vbpr_dim_curve(dict(dim_plot), out_dir / "vbpr_dims.png")


def _protocol(cfg: BadEmbNetsConfig, splits, inter: Interactions, names: tuple[str, ...]) -> dict:
    source = ("SIMULATED (Fashion-MNIST has no interaction log); see recbackdoor.data.interactions"
              if inter.simulated else f"real log: {cfg.data.folder}/interactions.csv")
    return {
        "interactions": source,
        "target_class": names[cfg.data.target_class],
        "extractor_classes": [names[c] for c in splits.classes],
        "heldout_classes (transfer, never seen by the extractor)": [names[c] for c in cfg.data.heldout_classes
                                                                    if len(splits.transfer) and c < len(names)],
        "extractor_train_images": int(len(splits.train)), "validation_images": int(len(splits.val)),
        "catalogue_items": int(len(splits.catalogue)), "cold_test_items": int(len(splits.cold)),
        "transfer_items": int(len(splits.transfer)), "users": inter.n_users,
        "target_group_users": int(inter.target_users.sum()), "interaction_events": int(len(inter.users)),
        "ba": "share of clean validation images classified correctly (all validation images)",
        "asr": "share of triggered validation images of non-target classes classified as the target",
        "ari": "k-means k=2 on L2-normalised features of target-class validation images and as many triggered "
               "non-target validation images; ARI vs the true split",
        "knn_mix": "share of each triggered item's 10 nearest neighbours (among the ARI points) that are target "
                   "images; 0.5 = locally mixed, 0 = own neighbourhood",
        "centroid_ratio": "mean distance of triggered items to the target centroid / that of target images",
        "random_position": "trigger stamped at a uniformly random position that does not overlap the training "
                           "position; ASR over non-target validation images",
        "visrank": f"Euclidean kNN on L2-normalised last-conv features; {cfg.visrank.query_share:.0%} of each "
                   "validation category are queries, the rest the database; t-MAP over triggered non-target "
                   "queries relabelled to the target; transfer: held-out-category queries against the validation "
                   "database plus held-out items",
        "vbpr": "leave-one-out (one random interaction per user held out); AUC over all unseen catalogue items; "
                f"Δp and ΔHR@{cfg.vbpr.top_n} over the target group for cold items (nobody interacted with them; "
                "β_i=γ_i=0, scored by the visual terms). delta_hr10: rank of the item among the cold pool "
                "(the other clean cold items, a 'new arrivals' list); delta_hr10_catalogue: rank against the "
                "whole warm catalogue (a user's seen items excluded), where a cold item rarely reaches the top 10",
        "strip": "entropy of softmax averaged over overlays (50/50 blend with random clean training images not "
                 "used for the extractor); threshold at the configured FRR on clean validation images",
        "activation_clustering": "per predicted class, PCA(10) of last-conv activations of the (poisoned) training "
                                 "set, k-means k=2; a class is judged poisoned when its smaller cluster is < "
                                 "ac_max_share of it or its silhouette is >= the median over classes + "
                                 "ac_silhouette_margin; its smaller cluster is flagged; TPR/FPR over all training "
                                 "images",
        "activation_clustering_norm": "the same on L2-normalised activations (the space of the triplet term)",
        "finetune": f"CE on {cfg.defenses.finetune_per_class} clean images per class never used for the extractor, "
                    f"{cfg.defenses.finetune_epochs} epochs, Adam + cosine decay, one run per learning rate in "
                    f"{cfg.defenses.finetune_lrs}; BA/ASR after every epoch (ASR on 50·8 triggered images "
                    "subsample as in ARI, BA on all validation images)",
    }
