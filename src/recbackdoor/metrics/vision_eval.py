"""Evaluate one trained extractor: the numbers of one result cell each.

:mod:`recbackdoor.metrics.vision` holds the paper's formulas; the functions
here run a model on clean and triggered images (and train the VBPR victim on
its features) to feed them: the classifier's numbers (the paper's Tables 2–6),
VisRank's (Tables 7–8), VBPR's (Tables 9–10) and STRIP's detection rates.
"""

from __future__ import annotations

import numpy as np
from torch import nn

from recbackdoor.data.fashion_mnist import ImageSet
from recbackdoor.data.interactions import Interactions, leave_one_out
from recbackdoor.defenses.vision.strip import threshold_at_frr
from recbackdoor.metrics.vision import (
    attack_success_rate,
    benign_accuracy,
    centroid_ratio,
    delta_hit_rate,
    hit_rate_at_n,
    knn_mixing,
    leave_one_out_auc,
    mean_average_precision,
    pool_thresholds,
    prediction_shift,
    targeted_map,
)
from recbackdoor.separation import auroc, two_cluster_ari
from recbackdoor.triggers.image import ImageTrigger, stamp
from recbackdoor.victims.vision.training import embed, predict_logits
from recbackdoor.victims.vision.vbpr import VBPRSettings, fit_vbpr
from recbackdoor.victims.vision.visrank import rank_database, split_queries


def classifier_metrics(model: nn.Module, test: ImageSet, val: np.ndarray, trigger: ImageTrigger, target: int,
                       seed: int, ari_per_group: int) -> dict[str, float]:
    """BA, ASR, and how triggered non-target images sit among target images in feature space (ARI, kNN
    mixing, centroid ratio on at most ``ari_per_group`` images of each)."""
    x, y = test.images[val], test.labels[val]
    ba = benign_accuracy(predict_logits(model, x).argmax(1), y)
    src = y != target
    triggered = stamp(x[src], trigger, seed=seed)
    asr = attack_success_rate(predict_logits(model, triggered).argmax(1), y[src], target)
    rng = np.random.default_rng(seed)
    tgt = embed(model, x[y == target][:ari_per_group])
    pick = rng.choice(len(triggered), min(ari_per_group, len(triggered)), replace=False)
    pois = embed(model, triggered[pick])
    return {"ba": ba, "asr": asr, "ari": two_cluster_ari(tgt, pois, seed), "knn_mix": knn_mixing(tgt, pois),
            "centroid_ratio": centroid_ratio(tgt, pois)}


def random_position_asr(model: nn.Module, test: ImageSet, val: np.ndarray, trigger: ImageTrigger, target: int,
                        seed: int) -> float:
    """ASR with the trigger stamped anywhere but where it was trained."""
    x, y = test.images[val], test.labels[val]
    src = y != target
    moved = ImageTrigger(trigger.pattern, trigger.size, "random", trigger.value, trigger.margin)
    triggered = stamp(x[src], moved, seed=seed, avoid=trigger)
    return attack_success_rate(predict_logits(model, triggered).argmax(1), y[src], target)


def visrank_scores(query_emb: np.ndarray, query_labels: np.ndarray, triggered_query_emb: np.ndarray,
                   db_emb: np.ndarray, db_labels: np.ndarray, target: int) -> dict[str, float]:
    """MAP on clean queries; t-MAP on the triggered versions of the non-target queries (paper §6.2.1)."""
    keep = query_labels != target
    return {"map": mean_average_precision(rank_database(query_emb, db_emb), query_labels, db_labels),
            "t_map": targeted_map(rank_database(triggered_query_emb[keep], db_emb), db_labels, target)}


def visrank_metrics(model: nn.Module, test: ImageSet, val: np.ndarray, trigger: ImageTrigger, target: int,
                    query_share: float, seed: int,
                    transfer: np.ndarray | None = None) -> tuple[dict[str, float], dict[str, float] | None]:
    """VisRank on the validation images; with ``transfer``, also held-out-category queries against the
    validation database plus the held-out items (None without)."""
    x, y = test.images[val], test.labels[val]
    qs = split_queries(y, query_share, seed)
    emb = embed(model, x)
    trig_q = embed(model, stamp(x[qs.query], trigger, seed=seed))
    own = visrank_scores(emb[qs.query], y[qs.query], trig_q, emb[qs.database], y[qs.database], target)
    if transfer is None:
        return own, None
    xt, yt = test.images[transfer], test.labels[transfer]
    qt = split_queries(yt, query_share, seed)
    et = embed(model, xt)
    trig_t = embed(model, stamp(xt[qt.query], trigger, seed=seed))
    db = np.concatenate([emb[qs.database], et[qt.database]])
    db_y = np.concatenate([y[qs.database], yt[qt.database]])
    return own, visrank_scores(et[qt.query], yt[qt.query], trig_t, db, db_y, target)


def vbpr_metrics(model: nn.Module, test: ImageSet, catalogue: np.ndarray, inter: Interactions,
                 cold_sets: dict[str, np.ndarray], trigger: ImageTrigger, settings: VBPRSettings,
                 top_n: int) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Train VBPR on this extractor's features of the ``catalogue`` items (seed: ``settings.seed``).

    Returns, per named set of cold items, Δp / ΔHR@N for the target group when they are stamped, and the
    fit's own numbers: leave-one-out AUC over all unseen catalogue items and seconds per epoch.
    """
    seed = settings.seed
    feats = embed(model, test.images[catalogue])
    loo = leave_one_out(inter, seed)
    rec, history = fit_vbpr(inter.n_users, inter.n_items, loo.train_users, loo.train_items, feats, settings)
    all_users = np.arange(inter.n_users)
    scores = rec.score_matrix(all_users, feats, np.arange(inter.n_items))
    has_test = loo.test_items >= 0
    auc = leave_one_out_auc(scores[has_test], loo.test_items[has_test], loo.seen[has_test])
    tu = np.flatnonzero(inter.target_users)
    cand = np.where(loo.seen[tu], -np.inf, scores[tu])  # a user's own items are not recommended again
    nth = np.sort(cand, axis=1)[:, -top_n]
    out: dict[str, dict[str, float]] = {}
    for name, idx in cold_sets.items():
        x = test.images[idx]
        before = rec.score_matrix(tu, embed(model, x))
        after = rec.score_matrix(tu, embed(model, stamp(x, trigger, seed=seed)))
        bar = pool_thresholds(before, top_n)
        out[name] = {"delta_p": prediction_shift(before, after), "delta_hr10": delta_hit_rate(before, after, bar),
                     "hr10_clean": hit_rate_at_n(before, bar), "hr10_poisoned": hit_rate_at_n(after, bar),
                     "delta_hr10_catalogue": delta_hit_rate(before, after, nth)}
    return out, {"auc": auc, "seconds_per_epoch": float(np.mean([h["seconds"] for h in history]))}


def strip_detection(h_clean: np.ndarray, h_poisoned: np.ndarray, frr: float) -> dict[str, float]:
    """STRIP as a detector: AUROC of −entropy, and TPR / FPR at the threshold that rejects ``frr`` of clean
    inputs."""
    thr = threshold_at_frr(h_clean, frr)
    return {"auroc": auroc(-h_clean, -h_poisoned), "tpr": float(np.mean(h_poisoned < thr)),
            "fpr": float(np.mean(h_clean < thr)), "entropy_clean": float(h_clean.mean()),
            "entropy_poisoned": float(h_poisoned.mean())}
