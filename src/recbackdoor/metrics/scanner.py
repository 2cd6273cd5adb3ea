"""Detection metrics of a title scanner: AUROC, and TPR / FPR at its saved threshold."""

from __future__ import annotations

import numpy as np


def rate_above(scores: np.ndarray, threshold: float) -> float:
    """Share of titles flagged (score strictly above the threshold): TPR on poisoned, FPR on clean titles."""
    scores = np.asarray(scores)
    return float((scores > threshold).mean()) if len(scores) else float("nan")
