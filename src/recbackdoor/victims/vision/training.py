"""Train an extractor with α·CE + β·triplet; β = 0 gives the clean / BadNets objective."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recbackdoor.attacks.badembnets import triplet_loss
from recbackdoor.attacks.badnets import PoisonedSet


@dataclass(frozen=True)
class TrainSettings:
    epochs: int = 5
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    alpha: float = 1.0
    beta: float = 0.0
    margin: float = 0.4
    mining: str = "all"
    cosine: bool = True  # cosine learning-rate decay: steadier final BA for short runs
    seed: int = 0
    threads: int = 1


def train_extractor(model: nn.Module, data: PoisonedSet, settings: TrainSettings,
                    on_epoch: Callable[[int, nn.Module], dict] | None = None) -> list[dict]:
    """Adam on shuffled mini-batches; returns one record per epoch (loss terms, seconds, ``on_epoch`` extras)."""
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    images = torch.from_numpy(data.images)
    labels = torch.from_numpy(data.labels)
    poisoned = torch.from_numpy(data.poisoned)
    steps = settings.epochs * -(-len(labels) // settings.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1)) if settings.cosine else None
    history = []
    for epoch in range(settings.epochs):
        model.train()
        start = time.perf_counter()
        order = rng.permutation(len(labels))
        sums = {"ce": 0.0, "triplet": 0.0}
        batches = 0
        for lo in range(0, len(order), settings.batch_size):
            idx = torch.from_numpy(order[lo:lo + settings.batch_size])
            if len(idx) < 2:
                continue
            feats = model.features(images[idx])
            ce = F.cross_entropy(model.head(feats), labels[idx])
            loss = settings.alpha * ce
            if settings.beta > 0:
                tl = triplet_loss(feats, labels[idx], poisoned[idx], settings.margin, gen, settings.mining)
                loss = loss + settings.beta * tl
                sums["triplet"] += float(tl.detach())
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            sums["ce"] += float(ce.detach())
            batches += 1
        record = {"epoch": epoch + 1, "seconds": time.perf_counter() - start,
                  **{k: v / max(batches, 1) for k, v in sums.items()}}
        if on_epoch is not None:
            model.eval()
            record.update(on_epoch(epoch + 1, model))
        history.append(record)
    model.eval()
    return history


@torch.no_grad()
def predict_logits(model: nn.Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])))
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


@torch.no_grad()
def embed(model: nn.Module, images: np.ndarray, batch_size: int = 512, normalize: bool = True) -> np.ndarray:
    """Last-conv-block features; L2-normalised by default, the space the triplet term shapes."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        f = model.features(torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])))
        out.append(F.normalize(f, dim=1) if normalize else f)
    return torch.cat(out).numpy()
