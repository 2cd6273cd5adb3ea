"""STRIP (Gao et al. 2019): entropy of predictions under image superimposition.

At inference, each input is blended with ``n_overlays`` random clean images;
a trojaned input keeps predicting the target class (low entropy), a clean one
does not.  Higher score = more suspicious, so the score is −entropy.  The
decision threshold comes from a false-rejection rate on clean inputs, not a
magic number.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from recbackdoor.triggers.image import ImageTrigger, stamp
from recbackdoor.victims.vision.training import predict_logits


def strip_entropy(model: nn.Module, images: np.ndarray, overlays: np.ndarray, n_overlays: int = 16,
                  seed: int = 0) -> np.ndarray:
    """Mean prediction entropy (nats) of each image blended 50/50 with random overlay images."""
    rng = np.random.default_rng(seed)
    out = np.empty(len(images))
    for lo in range(0, len(images), 64):
        batch = images[lo:lo + 64]
        picks = rng.integers(0, len(overlays), (len(batch), n_overlays))
        blended = 0.5 * batch[:, None] + 0.5 * overlays[picks]
        logits = predict_logits(model, blended.reshape(-1, *images.shape[1:]).astype(np.float32))
        p = torch.softmax(torch.from_numpy(logits), 1).numpy()
        ent = -(p * np.log(np.clip(p, 1e-12, None))).sum(1)
        out[lo:lo + len(batch)] = ent.reshape(len(batch), n_overlays).mean(1)
    return out


def threshold_at_frr(clean_entropy: np.ndarray, frr: float = 0.01) -> float:
    """Entropy below which an input is flagged, so that ``frr`` of clean inputs are rejected."""
    return float(np.quantile(clean_entropy, frr))


def clean_and_triggered_entropies(model: nn.Module, images: np.ndarray, labels: np.ndarray, target: int,
                                  trigger: ImageTrigger, overlay_images: np.ndarray, overlay_pool: np.ndarray,
                                  n_images: int, n_overlays: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """STRIP entropies of up to ``n_images`` clean images and as many triggered images of non-target classes.

    Overlays are up to 500 of ``overlay_images[overlay_pool]``, clean images not used to train the extractor.
    """
    rng = np.random.default_rng(seed)
    clean_pick = rng.choice(len(images), min(n_images, len(images)), replace=False)
    src = np.flatnonzero(labels != target)
    pois_pick = rng.choice(src, min(n_images, len(src)), replace=False)
    overlays = overlay_images[rng.choice(overlay_pool, min(500, len(overlay_pool)), replace=False)]
    h_clean = strip_entropy(model, images[clean_pick], overlays, n_overlays, seed)
    h_pois = strip_entropy(model, stamp(images[pois_pick], trigger, seed=seed), overlays, n_overlays, seed + 1)
    return h_clean, h_pois
