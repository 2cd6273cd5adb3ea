"""Thresholds set from clean requests to a false-alarm budget, not copied from the paper.

The paper's thresholds (150 for ONION and RPD, 0.4 for STRIP) belong to its
LLaMA-7B victims and perplexities; with another LM the same number can flag
nothing or everything. As OpenBackdoor does for STRIP, a threshold is instead
chosen so that at most ``budget`` of clean requests are flagged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def calibrate_threshold(clean_scores: Sequence[float], budget: float, low_flags: bool = False) -> float:
    """The threshold at which at most ``budget`` of these clean scores raise a flag.

    By default a score flags when it is *above* the threshold (ONION's perplexity drop, RPD's P(Yes) drop);
    ``low_flags=True`` is for scores that flag when *below* it (STRIP's entropy). Ties at the threshold never
    flag, so the budget holds even when many clean scores are equal.
    """
    if not 0 <= budget < 1:
        raise ValueError(f"budget must be in [0, 1), got {budget}")
    scores = np.asarray(clean_scores, dtype=np.float64)
    if scores.size == 0 or not np.isfinite(scores).all():
        raise ValueError("calibration needs at least one clean score, all finite")
    ordered = np.sort(scores) if low_flags else np.sort(scores)[::-1]
    allowed = int(np.floor(budget * len(ordered)))
    return float(ordered[min(allowed, len(ordered) - 1)])
