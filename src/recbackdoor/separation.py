"""How well a score or an embedding tells poisoned from clean.

Defenses decide with these statistics (the extractor audit's STRIP and
Activation Clustering evidence, a scanner's validation rounds) and the metrics
stage reports them (Table 3's ARI, a detector's AUROC).  They live below every
stage so that both use one implementation and neither imports the other.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, roc_auc_score


def auroc(clean_scores: np.ndarray, poisoned_scores: np.ndarray) -> float:
    """Probability that a poisoned item outscores a clean one (ties count half); higher score = more suspect."""
    labels = np.r_[np.zeros(len(clean_scores)), np.ones(len(poisoned_scores))]
    return float(roc_auc_score(labels, np.r_[clean_scores, poisoned_scores]))


def two_cluster_ari(target_emb: np.ndarray, poisoned_emb: np.ndarray, seed: int = 0) -> float:
    """ARI between k-means (k=2) on target ∪ poisoned embeddings and the true split (BadEmbNets' Table 3).

    ≈1: poisoned items form their own cluster (BadNets); ≈0: blended into the target cluster.
    """
    x = np.concatenate([target_emb, poisoned_emb])
    truth = np.r_[np.zeros(len(target_emb), int), np.ones(len(poisoned_emb), int)]
    found = KMeans(2, n_init=10, random_state=seed).fit_predict(x)
    return float(adjusted_rand_score(truth, found))
