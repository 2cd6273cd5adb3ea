"""Activation Clustering (Chen et al. 2018): k-means (k=2) on each class's activations.

Works on the training data (before deployment): activations of every sample
the model assigns to a class are reduced by PCA and split in two.  A class
is judged poisoned when its smaller cluster holds less than ``max_share`` of
the class (Chen et al.'s size rule) or when its silhouette score stands out —
at least ``silhouette_margin`` above the median over classes (their
silhouette rule; at a 10 % poisoning rate over 8 classes the poisoned images
are ~44 % of the target class, which the size rule alone cannot catch).
The smaller cluster of a poisoned class is flagged.  Detection rates are scored against ground truth (ART's
``evaluate_defence``): TPR = flagged poisoned / poisoned, FPR = flagged clean /
clean, over the whole set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from torch import nn

from recbackdoor.data.poisoned import PoisonedSet
from recbackdoor.victims.vision.training import embed, predict_logits


@dataclass(frozen=True)
class ACReport:
    flagged: np.ndarray
    flagged_classes: tuple[int, ...]
    silhouette: dict[int, float]


def activation_clustering(activations: np.ndarray, assigned: np.ndarray, n_components: int = 10,
                          max_share: float = 0.35, silhouette_margin: float = 0.1, seed: int = 0) -> ACReport:
    """Flag the smaller k-means cluster of each class judged poisoned (size or silhouette rule)."""
    flagged = np.zeros(len(assigned), bool)
    classes, sil = [], {}
    splits = {}
    for c in np.unique(assigned):
        idx = np.flatnonzero(assigned == c)
        if len(idx) < 10:
            continue
        x = activations[idx]
        x = PCA(min(n_components, x.shape[1], len(idx) - 1), random_state=seed).fit_transform(x)
        found = KMeans(2, n_init=10, random_state=seed).fit_predict(x)
        small = int(np.argmin(np.bincount(found, minlength=2)))
        share = float(np.mean(found == small))
        sil[int(c)] = float(silhouette_score(x, found, sample_size=min(2000, len(idx)), random_state=seed))
        splits[int(c)] = (idx[found == small], share)
    median = float(np.median(list(sil.values()))) if sil else 0.0
    for c, (members, share) in splits.items():
        if share < max_share or sil[c] >= median + silhouette_margin:
            flagged[members] = True
            classes.append(c)
    return ACReport(flagged, tuple(classes), sil)


def detection_rates(flagged: np.ndarray, poisoned: np.ndarray) -> dict[str, float]:
    tpr = float(flagged[poisoned].mean()) if poisoned.any() else 0.0
    fpr = float(flagged[~poisoned].mean()) if (~poisoned).any() else 0.0
    return {"tpr": tpr, "fpr": fpr}


def training_set_audit(model: nn.Module, data: PoisonedSet, target: int, max_share: float,
                       silhouette_margin: float, seed: int, normalize: bool) -> dict[str, float]:
    """AC on the model's own (poisoned) training set: detection rates against the truth, whether the target
    class was judged poisoned, and the silhouettes behind that judgement.

    ``normalize=False`` clusters raw activations (Chen et al.); ``True`` L2-normalised ones, the space
    BadEmbNets' triplet term shapes.
    """
    acts = embed(model, data.images, normalize=normalize)
    assigned = predict_logits(model, data.images).argmax(1)
    report = activation_clustering(acts, assigned, max_share=max_share, silhouette_margin=silhouette_margin,
                                   seed=seed)
    rates = detection_rates(report.flagged, data.poisoned)
    target_flagged = float(target in report.flagged_classes)
    sil = report.silhouette
    others = [v for c, v in sil.items() if c != target]
    return {"tpr": rates["tpr"], "fpr": rates["fpr"], "target_class_flagged": target_flagged,
            "silhouette_target": sil.get(target, 0.0),
            "silhouette_others_median": float(np.median(others)) if others else 0.0}
