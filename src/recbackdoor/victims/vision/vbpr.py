"""VBPR (He & McAuley 2016), paper eq. 1, trained with the BPR loss.

p(u, i) = α + β_u + β_i + γ_u·γ_i + θ_u·(E φ(X_i)) + β'·φ(X_i).
α and β_u cancel in BPR's pairwise difference but are kept so scores match
eq. 1.  Items with no training interaction (the attack's cold test items)
have β_i = 0 and γ_i = 0: only their visual terms are learnt from others.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class VBPRSettings:
    k: int = 20
    k_visual: int = 20
    epochs: int = 20
    lr: float = 0.005
    reg: float = 1e-4
    batch_size: int = 2048
    seed: int = 0
    threads: int = 1


class VBPR(nn.Module):
    def __init__(self, n_users: int, n_items: int, feature_dim: int, k: int, k_visual: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.zeros(()))
        self.beta_u = nn.Parameter(torch.zeros(n_users))
        self.beta_i = nn.Parameter(torch.zeros(n_items))
        self.gamma_u = nn.Parameter(0.01 * torch.randn(n_users, k))
        self.gamma_i = nn.Parameter(0.01 * torch.randn(n_items, k))
        self.theta_u = nn.Parameter(0.01 * torch.randn(n_users, k_visual))
        self.E = nn.Parameter(0.01 * torch.randn(k_visual, feature_dim))
        self.beta_prime = nn.Parameter(torch.zeros(feature_dim))

    def visual_part(self, users: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """θ_u·(E φ) + β'·φ for paired (user, feature) rows."""
        return (self.theta_u[users] * (feats @ self.E.T)).sum(1) + feats @ self.beta_prime

    def score(self, users: torch.Tensor, items: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        return (self.alpha + self.beta_u[users] + self.beta_i[items]
                + (self.gamma_u[users] * self.gamma_i[items]).sum(1) + self.visual_part(users, feats[items]))

    @torch.no_grad()
    def score_matrix(self, users: np.ndarray, feats: np.ndarray, item_ids: np.ndarray | None = None) -> np.ndarray:
        """Scores users × items; ``item_ids=None`` means cold items (β_i = 0, γ_i = 0)."""
        u = torch.as_tensor(users)
        f = torch.as_tensor(feats, dtype=torch.float32)
        visual = self.theta_u[u] @ (f @ self.E.T).T + (f @ self.beta_prime)[None, :]
        base = (self.alpha + self.beta_u[u])[:, None]
        if item_ids is None:
            return (base + visual).numpy()
        i = torch.as_tensor(item_ids)
        return (base + self.beta_i[i][None, :] + self.gamma_u[u] @ self.gamma_i[i].T + visual).numpy()


def fit_vbpr(n_users: int, n_items: int, train_users: np.ndarray, train_items: np.ndarray, feats: np.ndarray,
             settings: VBPRSettings) -> tuple[VBPR, list[dict]]:
    """BPR with uniform negative sampling (a negative the user has seen is resampled once, as is common)."""
    torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    model = VBPR(n_users, n_items, feats.shape[1], settings.k, settings.k_visual)
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    f = torch.as_tensor(feats, dtype=torch.float32)
    seen = np.unique(train_users.astype(np.int64) * n_items + train_items)
    history = []
    for epoch in range(settings.epochs):
        start = time.perf_counter()
        order = rng.permutation(len(train_users))
        neg = rng.integers(0, n_items, len(order))
        clash = np.isin(train_users[order].astype(np.int64) * n_items + neg, seen, assume_unique=False)
        neg[clash] = rng.integers(0, n_items, int(clash.sum()))
        total = 0.0
        for lo in range(0, len(order), settings.batch_size):
            sl = order[lo:lo + settings.batch_size]
            u = torch.as_tensor(train_users[sl])
            i = torch.as_tensor(train_items[sl])
            j = torch.as_tensor(neg[lo:lo + settings.batch_size])
            diff = model.score(u, i, f) - model.score(u, j, f)
            reg = (model.gamma_u[u].pow(2).sum() + model.gamma_i[i].pow(2).sum() + model.gamma_i[j].pow(2).sum()
                   + model.theta_u[u].pow(2).sum() + model.beta_i[i].pow(2).sum() + model.beta_i[j].pow(2).sum())
            loss = -F.logsigmoid(diff).mean() + settings.reg * (reg / len(sl) + model.E.pow(2).sum())
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(sl)
        history.append({"epoch": epoch + 1, "loss": total / len(order), "seconds": time.perf_counter() - start})
    return model, history
