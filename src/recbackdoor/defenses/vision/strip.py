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
