"""BadEmbNets experiment: extractors (clean / BadNets / BadEmbNets) → VisRank, VBPR → defenses.

Reproduces the shapes of the paper's Tables 2–10 and Figs. 3, 5, 6 on
Fashion-MNIST (real images, *simulated* interactions) or on a real
interaction log + image folder.  One config = one backbone.  Every trained
extractor is cached as safetensors under the stage cache, keyed by what it
depends on, so re-running an evaluation never retrains.

This module holds the order of the study's steps, its cache keys and how
results become cells; the steps themselves sit in the stage they belong to,
so that each imports only the stages before it: the config schema in
:mod:`~recbackdoor.experiments.badembnets_config`, the splits in
:mod:`~recbackdoor.data.vision_splits`, the defenses' runs in
:mod:`~recbackdoor.defenses.vision`, the evaluators in
:mod:`~recbackdoor.metrics.vision_eval`, the figures in
:mod:`~recbackdoor.report.vision_plots`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np
import torch

from recbackdoor.attacks.badnets import PoisonedSet, clean_set, poison
from recbackdoor.data.fashion_mnist import ImageSet
from recbackdoor.data.interactions import Interactions, SimulatorSettings, simulate
from recbackdoor.data.vision_splits import FolderSplits, Splits, load_images
from recbackdoor.defenses.vision.activation_clustering import training_set_audit
from recbackdoor.defenses.vision.finetune import finetune_on_spare
from recbackdoor.defenses.vision.strip import clean_and_triggered_entropies
from recbackdoor.experiments.badembnets_config import BadEmbNetsConfig
from recbackdoor.experiments.context import RunContext
from recbackdoor.experiments.registry import register_experiment
from recbackdoor.experiments.results import Cell, mean_over_seeds
from recbackdoor.metrics.vision_eval import (
    classifier_metrics,
    random_position_asr,
    strip_detection,
    vbpr_metrics,
    visrank_metrics,
)
from recbackdoor.triggers.image import ImageTrigger
from recbackdoor.victims.vision.extractors import ArchSpec, build_extractor, load_extractor, save_extractor
from recbackdoor.victims.vision.training import TrainSettings, train_extractor
from recbackdoor.victims.vision.vbpr import VBPRSettings

DATASET = "fashion-mnist"
TRANSFER = "fashion-mnist-heldout"
VARIANTS = ("clean", "badnets", "badembnets")


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


def extractor_spec(cfg: BadEmbNetsConfig, train: ImageSet) -> ArchSpec:
    return ArchSpec(arch=cfg.extractor.arch, width=cfg.extractor.width, num_classes=len(train.class_names),
                    in_channels=train.images.shape[1], image_size=train.images.shape[2])


def get_extractor(cfg: BadEmbNetsConfig, ctx: RunContext, train: ImageSet, splits: Splits | FolderSplits, variant: str,
                  trigger: ImageTrigger, seed: int) -> torch.nn.Module:
    spec = extractor_spec(cfg, train)
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


# --------------------------------------------------------------------------- evaluation and defenses


def transfer_items(cfg: BadEmbNetsConfig, splits: Splits | FolderSplits) -> np.ndarray | None:
    """The held-out-category items when the transfer study runs and there are any."""
    return splits.transfer if cfg.studies.transfer and len(splits.transfer) else None


def visrank_cells(model, test: ImageSet, splits: Splits | FolderSplits, trigger: ImageTrigger,
                  cfg: BadEmbNetsConfig, seed: int) -> dict[str, dict[str, float]]:
    own, transfer = visrank_metrics(model, test, splits.val, trigger, cfg.data.target_class, cfg.visrank.query_share,
                                    seed, transfer_items(cfg, splits))
    return {DATASET: own} | ({TRANSFER: transfer} if transfer is not None else {})


def vbpr_eval(model, test: ImageSet, splits: Splits | FolderSplits, inter: Interactions, trigger: ImageTrigger,
              cfg: BadEmbNetsConfig, seed: int, k_visual: int | None = None) -> dict[str, dict[str, float]]:
    """Train VBPR on this extractor's features; AUC + Δp / ΔHR@N for the target group on cold items."""
    v = cfg.vbpr
    settings = VBPRSettings(k=v.k, k_visual=k_visual or v.k_visual, epochs=v.epochs, lr=v.lr, reg=v.reg,
                            batch_size=v.batch_size, seed=seed, threads=cfg.threads)
    cold = {DATASET: splits.cold}
    if (transfer := transfer_items(cfg, splits)) is not None:
        cold[TRANSFER] = transfer
    out, fit = vbpr_metrics(model, test, splits.catalogue, inter, cold, trigger, settings, v.top_n)
    out[DATASET] |= fit
    return out


def finetune_history(cfg: BadEmbNetsConfig, ctx: RunContext, model, variant: str, train: ImageSet, test: ImageSet,
                     splits: Splits | FolderSplits, trigger: ImageTrigger, seed: int, lr: float) -> list[dict]:
    d = cfg.defenses
    settings = TrainSettings(epochs=d.finetune_epochs, batch_size=cfg.extractor.batch_size, lr=lr,
                             seed=seed, threads=cfg.threads)

    def evaluate(m) -> dict[str, float]:
        met = classifier_metrics(m, test, splits.val, trigger, cfg.data.target_class, seed, 50)
        return {"ba": met["ba"], "asr": met["asr"]}

    key = {"model": variant, "cfg": cfg.model_dump(mode="json", exclude={"studies", "vbpr", "simulator", "visrank"}),
           "seed": seed, "lr": lr, "data": dict(ctx.data_checksums)}
    return ctx.cache.get_json("vision_finetune", key, lambda: finetune_on_spare(
        model, train, splits.spare, splits.classes, d.finetune_per_class, settings, evaluate, seed))


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
    from recbackdoor.report import vision_plots as vp  # matplotlib: only once a run starts

    torch.set_num_threads(cfg.threads)
    with ctx.timer("load_data"):
        train, test, real_log, checksums = load_images(cfg.data)
        ctx.data_checksums.update(checksums)
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
            splits = Splits(cfg.data, train, test, seed)
            sim = cfg.simulator.model_dump()
            inter = simulate(test.labels[splits.catalogue], target, SimulatorSettings(**sim, seed=seed))
        else:
            splits = FolderSplits(cfg.data, train, real_log, seed)
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
                    hc, hp = clean_and_triggered_entropies(model, test.images[splits.val], test.labels[splits.val],
                                                           target, trig, train.images, splits.spare,
                                                           cfg.defenses.strip_images, cfg.defenses.strip_overlays, seed)
                    sm = strip_detection(hc, hp, cfg.defenses.strip_frr)
                book.add(ctx, {f"strip_{k}": v for k, v in sm.items()}, base_extra | {"attack": variant},
                         dataset=DATASET, victim="classifier", variant=f"strip-{variant}", **keys)
                strip_plot[variant] = (hc, hp)
            if cfg.defenses.ac and variant != "clean":
                with ctx.timer("defense_ac"):
                    data = training_data(cfg, train, splits.train, variant, trig, seed)
                    ac = partial(training_set_audit, model, data, target, cfg.defenses.ac_max_share,
                                 cfg.defenses.ac_silhouette_margin, seed)
                    am = {f"ac_{k}": v for k, v in ac(normalize=False).items()}
                    am |= {f"ac_norm_{k}": v for k, v in ac(normalize=True).items()}
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
                    tsne_data[variant] = vp.tsne_points(model, test, splits.val, trig, target,
                                                        cfg.studies.tsne_per_group, seed)
        _trigger_ablations(cfg, ctx, book, train, test, splits, seed, base_extra)
    book.flush(ctx)
    vp.save_study_plots(ctx.out_dir, tsne_data, strip_plot, ft_plot, dict(dim_plot))


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
