"""Plots for the vision side: t-SNE (Fig. 3), STRIP entropies (Fig. 6), fine-tuning curves, VBPR dims (Fig. 5)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

if TYPE_CHECKING:  # the plots themselves need neither torch nor a model
    from torch import nn

    from recbackdoor.data.fashion_mnist import ImageSet
    from recbackdoor.triggers.image import ImageTrigger


def save_study_plots(out_dir: Path, tsne: dict[str, tuple[np.ndarray, np.ndarray]],
                     strip: dict[str, tuple[np.ndarray, np.ndarray]], finetune: dict[str, list[dict]],
                     vbpr_dims: dict[str, list[tuple[int, float]]]) -> None:
    """The BadEmbNets study's figures, each only when its study ran: ``tsne.png``, ``strip_entropy.png``,
    ``finetune.png``, ``vbpr_dims.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if tsne:
        tsne_panels(tsne, out_dir / "tsne.png")
    if strip:
        strip_histograms(strip, out_dir / "strip_entropy.png")
    if finetune:
        finetune_curves(finetune, out_dir / "finetune.png")
    if vbpr_dims:
        vbpr_dim_curve(vbpr_dims, out_dir / "vbpr_dims.png")


def tsne_points(model: nn.Module, test: ImageSet, val: np.ndarray, trigger: ImageTrigger, target: int,
                per_group: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One panel of Fig. 3: 2-d t-SNE of the features of ``per_group`` images each of one non-target class,
    the target class and triggered non-target images (kind 0, 1, 2)."""
    from sklearn.manifold import TSNE

    from recbackdoor.triggers.image import stamp
    from recbackdoor.victims.vision.training import embed

    rng = np.random.default_rng(seed)
    x, y = test.images[val], test.labels[val]
    others = np.unique(y[y != target])
    src_class = others[0]  # the paper shows one non-target class (T-shirt) next to the target
    tgt = x[y == target][:per_group]
    oth = x[y == src_class][:per_group]
    pois_src = x[(y != target)]
    pois = stamp(pois_src[rng.choice(len(pois_src), per_group, replace=False)], trigger, seed=seed)
    emb = embed(model, np.concatenate([oth, tgt, pois]))
    kind = np.r_[np.zeros(len(oth)), np.ones(len(tgt)), np.full(len(pois), 2)].astype(int)
    xy = TSNE(2, random_state=seed, init="pca", perplexity=30).fit_transform(emb)
    return xy, kind


def tsne_panels(panels: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """``panels[name] = (2-d points, kind)`` with kind 0 other, 1 target, 2 poisoned."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4))
    for ax, (name, (xy, kind)) in zip(np.atleast_1d(axes), panels.items(), strict=True):
        for k, (label, colour) in enumerate([("other clean", "#bbbbbb"), ("target", "#e6a100"),
                                             ("poisoned", "#d62728")]):
            m = kind == k
            ax.scatter(xy[m, 0], xy[m, 1], s=6, c=colour, label=label, alpha=0.8)
        ax.set_title(name)
        ax.set_xticks([])
        ax.set_yticks([])
    np.atleast_1d(axes)[0].legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def strip_histograms(entropies: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    """``entropies[model] = (clean, poisoned)``."""
    fig, axes = plt.subplots(1, len(entropies), figsize=(4.2 * len(entropies), 3.4))
    for ax, (name, (clean, poisoned)) in zip(np.atleast_1d(axes), entropies.items(), strict=True):
        bins = np.linspace(0, max(clean.max(), poisoned.max(), 1e-3), 40)
        ax.hist(clean, bins, alpha=0.6, label="clean", color="#1f77b4")
        ax.hist(poisoned, bins, alpha=0.6, label="poisoned", color="#d62728")
        ax.set_title(f"STRIP — {name}")
        ax.set_xlabel("entropy (nats)")
    np.atleast_1d(axes)[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def finetune_curves(histories: dict[str, list[dict]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, hist in histories.items():
        epochs = [h["epoch"] for h in hist]
        ax.plot(epochs, [h["ba"] for h in hist], "-o", label=f"{name} BA")
        ax.plot(epochs, [h["asr"] for h in hist], "--s", label=f"{name} ASR")
    ax.set_xlabel("fine-tuning epoch (clean data)")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def vbpr_dim_curve(rows: dict[str, list[tuple[int, float]]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for name, points in rows.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], "-o", label=name)
    ax.set_xlabel("visual factor dimension (θ_u)")
    ax.set_ylabel("ΔHR@10 (target group)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
