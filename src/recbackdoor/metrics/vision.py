"""Vision-side metrics, one function per formula of the BadEmbNets paper.

All rates are fractions in [0, 1].  Every function states its denominator.
"""

from __future__ import annotations

import numpy as np


def benign_accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    """BA: share of clean test images classified correctly (denominator: all clean test images)."""
    return float(np.mean(np.asarray(predicted) == np.asarray(labels)))


def attack_success_rate(predicted: np.ndarray, source_labels: np.ndarray, target: int) -> float:
    """ASR: share of triggered images whose true class is not the target that are classified as the target."""
    keep = np.asarray(source_labels) != target
    return float(np.mean(np.asarray(predicted)[keep] == target))


def knn_mixing(target_emb: np.ndarray, poisoned_emb: np.ndarray, k: int = 10) -> float:
    """Share of each poisoned item's k nearest neighbours (in target ∪ poisoned) that are target items.

    With as many target as poisoned items, ≈0.5 means locally indistinguishable, 0 means poisoned items
    only neighbour each other — a stricter notion of blending than a k-means ARI near 0.
    """
    z = np.concatenate([target_emb, poisoned_emb])
    d = (z ** 2).sum(1)[:, None] - 2 * z @ z.T + (z ** 2).sum(1)[None, :]
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d[len(target_emb):], axis=1)[:, :k]
    return float(np.mean(nn < len(target_emb)))


def centroid_ratio(target_emb: np.ndarray, poisoned_emb: np.ndarray) -> float:
    """Mean distance of poisoned items to the target centroid over that of target items (1 = as close)."""
    centre = target_emb.mean(0)
    return float(np.linalg.norm(poisoned_emb - centre, axis=1).mean()
                 / np.linalg.norm(target_emb - centre, axis=1).mean())


def average_precision(relevant_in_rank_order: np.ndarray) -> float:
    """AP of one ranked list: mean of precision@k over the ranks k holding a relevant item (0 if none)."""
    rel = np.asarray(relevant_in_rank_order, bool)
    if not rel.any():
        return 0.0
    hits = np.cumsum(rel)
    ranks = np.flatnonzero(rel) + 1
    return float(np.mean(hits[rel] / ranks))


def mean_average_precision(order: np.ndarray, query_labels: np.ndarray, db_labels: np.ndarray) -> float:
    """MAP of ranked retrieval (``order``: database indices per query, best first); relevant = a database item
    with the query's label."""
    rel = np.asarray(db_labels)[order] == np.asarray(query_labels)[:, None]
    return float(np.mean([average_precision(r) for r in rel]))


def targeted_map(order: np.ndarray, db_labels: np.ndarray, target: int) -> float:
    """t-MAP: MAP of the (triggered) queries' rankings with every query relabelled to the target class."""
    return mean_average_precision(order, np.full(len(order), target), db_labels)


def leave_one_out_auc(scores: np.ndarray, test_items: np.ndarray, seen: np.ndarray) -> float:
    """VBPR's AUC: per user, share of unseen items scored below the held-out item; mean over users.

    ``scores`` (users × items); ``seen`` (users × items) marks training and test interactions,
    which are excluded from the negatives.
    """
    users = np.arange(len(test_items))
    pos = scores[users, test_items][:, None]
    negatives = ~seen
    wins = ((scores < pos) & negatives).sum(1) + 0.5 * ((scores == pos) & negatives).sum(1)
    return float(np.mean(wins / np.maximum(negatives.sum(1), 1)))


def prediction_shift(before: np.ndarray, after: np.ndarray) -> float:
    """Δp (eqs. 9–10): mean over test items of the mean over users of p'_{u,i} − p_{u,i}. Arrays: users × items."""
    per_item = (np.asarray(after) - np.asarray(before)).mean(0)
    return float(per_item.mean())


def hit_rate_at_n(item_scores: np.ndarray, nth_best_catalogue: np.ndarray) -> float:
    """HR@N (eqs. 11a–b): share of (user, test item) pairs where the item beats the user's N-th best catalogue item.

    ``item_scores`` users × test items (each test item inserted alone into the catalogue);
    ``nth_best_catalogue`` per user, the N-th highest score among that user's candidate catalogue items,
    or per (user, item) as from :func:`pool_thresholds`.
    """
    bar = np.asarray(nth_best_catalogue)
    hits = np.asarray(item_scores) > (bar[:, None] if bar.ndim == 1 else bar)
    return float(hits.mean(0).mean())


def delta_hit_rate(before: np.ndarray, after: np.ndarray, nth_best_catalogue: np.ndarray) -> float:
    """ΔHR@N (eq. 11c): HR@N with triggered images minus HR@N with clean images."""
    return hit_rate_at_n(after, nth_best_catalogue) - hit_rate_at_n(before, nth_best_catalogue)


def pool_thresholds(pool_scores: np.ndarray, n: int) -> np.ndarray:
    """Per (user, item) bar to enter the top-N of a pool when that item is swapped for another version of itself.

    The competitors of item i are the *other* pool items: if i is in the user's top-N, the bar is the
    (N+1)-th best score, else the N-th.  ``pool_scores`` users × pool items (clean versions).
    """
    if pool_scores.shape[1] <= n:
        return np.full(pool_scores.shape, -np.inf)
    top = -np.sort(-pool_scores, axis=1)[:, : n + 1]
    nth, next_ = top[:, n - 1 : n], top[:, n : n + 1]
    return np.where(pool_scores >= nth, next_, nth)


