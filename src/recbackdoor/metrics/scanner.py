"""Detection metrics of a title scanner: AUROC, and TPR / FPR at its saved threshold."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score


def auroc(clean_scores: np.ndarray, poisoned_scores: np.ndarray) -> float:
    """Probability that a poisoned title outscores a clean one (ties count half)."""
    labels = np.r_[np.zeros(len(clean_scores)), np.ones(len(poisoned_scores))]
    return float(roc_auc_score(labels, np.r_[clean_scores, poisoned_scores]))


def rate_above(scores: np.ndarray, threshold: float) -> float:
    """Share of titles flagged (score strictly above the threshold): TPR on poisoned, FPR on clean titles."""
    scores = np.asarray(scores)
    return float((scores > threshold).mean()) if len(scores) else float("nan")
