"""Trigger inversion: search for the smallest stamp that behaves like a backdoor trigger.

Two searches, both over a *mask* ``m`` (H×W in [0, 1], how much of each pixel
the stamp replaces) and a *pattern* ``p`` (C×H×W in [0, 1], what it writes):
``x' = (1 − m)·x + m·p``, optimised with Adam on the user's clean images.

* **Per class** (Neural Cleanse, Wang et al., IEEE S&P 2019) — needs the
  classifier head: for every class the model predicts, the smallest mask that
  sends images of *other* classes to it.  A backdoor target needs a far
  smaller mask than the others; the anomaly index of the smallest mask is
  ``(median − L1) / (1.4826·MAD)`` over the classes' mask sizes.  All classes
  are optimised together in one batch (one forward pass per step).
* **Embedding only** (DECREE, Feng et al., CVPR 2023) — needs no head and no
  labels: the smallest mask whose stamped images' features *collapse* (mean
  pairwise cosine similarity at least ``collapse_similarity``, measured from
  the mean clean feature: last-block features are ReLU outputs, all positive,
  so raw cosines of unrelated clean images are already ≈ 0.5–0.7).  A clean
  extractor only collapses when the stamp paints over most of the object; a
  backdoored one collapses under its small trigger.  The mask size is judged
  against clean extractors (:mod:`recbackdoor.defenses.vision.calibration`).

Mask size is reported as a *fraction of the image* (L1 of the mask / H·W, DECREE's
"PL1-norm").  The λ weight of the mask term follows Neural Cleanse's schedule:
raised while the stamp succeeds, lowered while it fails; the smallest
successful mask seen is kept and finally re-checked on every image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Progress = Callable[[int], None]


@dataclass(frozen=True)
class InversionSettings:
    """Hyper-parameters of both searches (tuned on tiny models and the paper's own stamp only)."""

    steps: int = 200
    # Neural Cleanse's own success level (99 %) on a 32-image batch: at 90 % of 16 images a clean study ResNet's
    # universal adversarial patch (1.0-1.9 % of the image) looked like a backdoor's; at 99 % it needs 1.9-2.9 %
    # while 5 of the 6 study ResNet backdoors stay at 0.3-1.2 % (docs/notes/vision_trigger_inversion.md)
    batch_size: int = 32           # images per class per step (per-class search)
    embed_batch_size: int = 48     # images per restart per step (embedding search)
    restarts: int = 2              # embedding search: independent starts, the smallest mask wins
    lr: float = 0.1
    init_lambda: float = 0.5       # weight of the mask fraction in the loss
    lambda_factor: float = 1.15    # NC-style multiplicative schedule
    warmup: int = 20               # steps before λ starts moving
    class_success: float = 0.99    # share of other-class images that must reach the class
    collapse_similarity: float = 0.6  # mean pairwise cosine (from the clean mean) counted as a collapse
    min_class_share: float = 0.02  # classes predicted for fewer clean images are skipped
    seed: int = 0


@dataclass(frozen=True)
class RecoveredTrigger:
    """One inverted trigger: ``mask`` (H, W), ``pattern`` (C, H, W), both in [0, 1]."""

    mask: np.ndarray
    pattern: np.ndarray
    size: float            # mask L1 / (H·W): how much of a clean image the stamp needs
    success: float         # per class: share of other-class images sent to the class; embedding: mean cos
    target: int | None     # the class (per-class search); None for the embedding search

    def apply(self, images: np.ndarray) -> np.ndarray:
        return apply_trigger(images, self.mask, self.pattern)


@dataclass(frozen=True)
class ClassInversion:
    """Per-class search: one recovered trigger per candidate class, and the anomaly index of each."""

    triggers: tuple[RecoveredTrigger, ...]
    anomaly: tuple[float, ...]

    @property
    def suspect(self) -> int:
        """Index into ``triggers`` of the class with the smallest mask."""
        return int(np.argmin([t.size for t in self.triggers]))


def apply_trigger(images: np.ndarray, mask: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    """``(1 − m)·x + m·p`` on a batch (n, C, H, W)."""
    return ((1.0 - mask)[None, None] * images + mask[None, None] * pattern[None]).astype(np.float32)


def anomaly_index(sizes: np.ndarray) -> np.ndarray:
    """Neural Cleanse's anomaly index: how many (consistent) MADs below the median each size lies."""
    sizes = np.asarray(sizes, float)
    med = np.median(sizes)
    mad = 1.4826 * np.median(np.abs(sizes - med))
    return (med - sizes) / max(mad, 1e-3 * max(med, 1e-6))


def _params(k: int, channels: int, h: int, w: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    m = (torch.randn((k, 1, h, w), generator=gen) * 0.1 - 2.0).requires_grad_(True)
    p = (torch.randn((k, channels, h, w), generator=gen) * 0.5).requires_grad_(True)
    return m, p


def _start_search(k: int, c: int, h: int, w: int, gen: torch.Generator, s: InversionSettings) -> tuple:
    """The state both searches start from: ``k`` masks and patterns (raw, pre-sigmoid) with their optimiser,
    one size penalty each, and the best (smallest successful) mask so far, none yet."""
    m_raw, p_raw = _params(k, c, h, w, gen)
    opt = torch.optim.Adam([m_raw, p_raw], lr=s.lr)
    lam = torch.full((k,), s.init_lambda)
    best_size = torch.full((k,), float("inf"))
    return (m_raw, p_raw, opt, lam, best_size, torch.sigmoid(m_raw.detach()).clone(),
            torch.sigmoid(p_raw.detach()).clone())


def _freeze(model: nn.Module) -> list[bool]:
    model.eval()
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    return flags


def _unfreeze(model: nn.Module, flags: list[bool]) -> None:
    for p, f in zip(model.parameters(), flags, strict=True):
        p.requires_grad_(f)


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch: int = 512) -> torch.Tensor:
    out = [model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def invert_classes(model: nn.Module, images: np.ndarray, settings: InversionSettings = InversionSettings(),
                   progress: Progress | None = None) -> ClassInversion:
    """Neural Cleanse over every class the model predicts on ``images`` (n, C, H, W in [0, 1])."""
    s = settings
    flags = _freeze(model)
    try:
        x = torch.from_numpy(np.ascontiguousarray(images, np.float32))
        n, c, h, w = x.shape
        clean = _predict(model, x)
        counts = torch.bincount(clean, minlength=1)
        classes = [int(k) for k in torch.nonzero(counts >= max(2, s.min_class_share * n)).flatten()]
        gen = torch.Generator().manual_seed(s.seed)
        k = len(classes)
        m_raw, p_raw, opt, lam, best_size, best_m, best_p = _start_search(k, c, h, w, gen, s)
        target = torch.tensor(classes)
        for step in range(s.steps):
            idx = torch.randint(0, n, (s.batch_size,), generator=gen)
            xb, yb = x[idx], clean[idx]
            mask, pat = torch.sigmoid(m_raw), torch.sigmoid(p_raw)
            stamped = (1 - mask[:, None]) * xb[None] + (mask * pat)[:, None]  # (k, B, C, H, W)
            logits = model(stamped.reshape(-1, c, h, w)).reshape(k, len(idx), -1)
            other = (yb[None] != target[:, None]).float()  # only images of other classes count
            ce = F.cross_entropy(logits.permute(0, 2, 1), target[:, None].expand(k, len(idx)), reduction="none")
            ce = (ce * other).sum(1) / other.sum(1).clamp(min=1)
            size = mask.flatten(1).mean(1)
            loss = (ce + lam * size).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                hit = ((logits.argmax(2) == target[:, None]).float() * other).sum(1) / other.sum(1).clamp(min=1)
                ok = hit >= s.class_success
                best_size, lam = _keep_smallest(ok, size, mask, pat, best_size, best_m, best_p, lam, step, s)
            if progress is not None:
                progress(1)
        triggers = []
        for j, cls in enumerate(classes):
            found = bool(torch.isfinite(best_size[j]))
            mask = (best_m[j, 0] if found else torch.sigmoid(m_raw.detach()[j, 0])).numpy()
            pat = (best_p[j] if found else torch.sigmoid(p_raw.detach()[j])).numpy()
            others = np.flatnonzero(clean.numpy() != cls)
            pred = _predict(model, torch.from_numpy(apply_trigger(images[others], mask, pat))).numpy()
            # a class never reached within the budget needed more than the search had: size 1 (the whole image)
            size = float(mask.mean()) if found else 1.0
            triggers.append(RecoveredTrigger(mask, pat, size, float(np.mean(pred == cls)) if len(pred) else 0.0, cls))
        sizes = np.array([t.size for t in triggers])
        return ClassInversion(tuple(triggers), tuple(float(a) for a in anomaly_index(sizes)))
    finally:
        _unfreeze(model, flags)


def mean_pairwise_cosine(z: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity over distinct pairs of rows (last two dims: rows × features)."""
    z = F.normalize(z, dim=-1)
    b = z.shape[-2]
    total = z.sum(-2)
    return ((total * total).sum(-1) - b) / (b * (b - 1))


@torch.no_grad()
def features(model: nn.Module, images: np.ndarray, batch: int = 512) -> torch.Tensor:
    """Raw (unnormalised) ``model.features`` of a batch, in chunks."""
    x = torch.from_numpy(np.ascontiguousarray(images, np.float32))
    return torch.cat([model.features(x[i:i + batch]) for i in range(0, len(x), batch)])


def collapse_similarity(model: nn.Module, images: np.ndarray, center: torch.Tensor) -> float:
    """Mean pairwise cosine similarity of the features of ``images``, measured from ``center``."""
    return float(mean_pairwise_cosine(features(model, images) - center))


def invert_embedding(model: nn.Module, images: np.ndarray, settings: InversionSettings = InversionSettings(),
                     progress: Progress | None = None) -> RecoveredTrigger:
    """DECREE: the smallest mask whose stamped images' features collapse; uses ``model.features`` only."""
    s = settings
    flags = _freeze(model)
    try:
        x = torch.from_numpy(np.ascontiguousarray(images, np.float32))
        n, c, h, w = x.shape
        center = features(model, images).mean(0)  # ReLU features are all positive: measure from the clean mean
        r = s.restarts
        gen = torch.Generator().manual_seed(s.seed + 1)
        m_raw, p_raw, opt, lam, best_size, best_m, best_p = _start_search(r, c, h, w, gen, s)
        b = min(s.embed_batch_size, n)
        for step in range(s.steps):
            idx = torch.stack([torch.randperm(n, generator=gen)[:b] for _ in range(r)])
            xb = x[idx]  # (r, b, C, H, W): each restart sees its own batch
            mask, pat = torch.sigmoid(m_raw), torch.sigmoid(p_raw)
            stamped = (1 - mask[:, None]) * xb + (mask * pat)[:, None]
            z = model.features(stamped.reshape(-1, c, h, w)).reshape(r, b, -1) - center
            sim = mean_pairwise_cosine(z)
            size = mask.flatten(1).mean(1)
            loss = ((1 - sim) + lam * size).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                ok = sim >= s.collapse_similarity
                best_size, lam = _keep_smallest(ok, size, mask, pat, best_size, best_m, best_p, lam, step, s)
            if progress is not None:
                progress(1)
        found = torch.isfinite(best_size)
        # a restart that never collapsed the features reports its full mask: it needed more than it had
        sizes = torch.where(found, best_size, torch.ones(r))
        j = int(torch.argmin(sizes))
        mask, pat = best_m[j, 0].numpy(), best_p[j].numpy()
        size = float(mask.mean()) if bool(found[j]) else 1.0
        return RecoveredTrigger(mask, pat, size, collapse_similarity(model, apply_trigger(images, mask, pat), center),
                                None)
    finally:
        _unfreeze(model, flags)


def _keep_smallest(ok: torch.Tensor, size: torch.Tensor, mask: torch.Tensor, pat: torch.Tensor,
                   best_size: torch.Tensor, best_m: torch.Tensor, best_p: torch.Tensor, lam: torch.Tensor,
                   step: int, s) -> tuple[torch.Tensor, torch.Tensor]:
    """Neural Cleanse's bookkeeping after a step, shared by the class and the embedding searches: keep, per
    restart, the smallest mask that has succeeded (``ok``) so far, and raise the size penalty while it succeeds,
    lower it while it fails (after ``s.warmup`` steps). ``best_m`` and ``best_p`` are updated in place."""
    better = ok & (size < best_size)
    best_size = torch.where(better, size, best_size)
    best_m[better] = mask[better].detach()
    best_p[better] = pat[better].detach()
    if step >= s.warmup:
        lam = torch.where(ok, lam * s.lambda_factor, lam / s.lambda_factor).clamp(1e-3, 1e3)
    return best_size, lam
