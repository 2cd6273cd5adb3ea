"""BadNets poisoning: stamp a share of training images and relabel them to the target.

Training a classifier on this set with cross-entropy alone is BadNets (Gu et
al.); adding the triplet term of :mod:`recbackdoor.attacks.badembnets` makes
it BadEmbNets.  Poisoned images replace the clean ones they were made from,
so the training set keeps its size.
"""

from __future__ import annotations

import numpy as np

from recbackdoor.data.poisoned import PoisonedSet
from recbackdoor.triggers.image import ImageTrigger, stamp


def clean_set(images: np.ndarray, labels: np.ndarray) -> PoisonedSet:
    """A training set with nothing poisoned (the clean extractor's data)."""
    return PoisonedSet(images, labels, np.zeros(len(labels), bool), labels)


def poison(images: np.ndarray, labels: np.ndarray, trigger: ImageTrigger, target: int, rate: float,
           seed: int) -> PoisonedSet:
    """Stamp ``rate`` of the whole set (drawn from non-target images) and relabel to ``target``."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"poisoning rate {rate} must be in [0, 1)")
    rng = np.random.default_rng(seed)
    candidates = np.flatnonzero(labels != target)
    n_poison = int(round(rate * len(labels)))
    chosen = rng.choice(candidates, n_poison, replace=False)
    out_images = np.array(images, copy=True)
    out_images[chosen] = stamp(images[chosen], trigger, seed=seed)
    out_labels = np.array(labels, copy=True)
    out_labels[chosen] = target
    mask = np.zeros(len(labels), bool)
    mask[chosen] = True
    return PoisonedSet(out_images, out_labels, mask, np.asarray(labels))
