"""A labelled image training set that may hold poisoned rows.

It lives in ``data`` because both sides of the pipeline use it: attacks
(``attacks/badnets.py``) produce it, victims (extractor training) and defenses
(fine-tuning, activation clustering) consume it, and neither may import the
other's stage for a shared data type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PoisonedSet:
    """Training images after poisoning; ``poisoned`` marks stamped + relabelled rows."""

    images: np.ndarray
    labels: np.ndarray
    poisoned: np.ndarray
    source_labels: np.ndarray

    @property
    def rate(self) -> float:
        return float(self.poisoned.mean())
