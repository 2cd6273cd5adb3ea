"""Our VBPR against Cornac's VBPR on the same interactions and the same visual features.

Interactions: the seeded simulator over a Fashion-MNIST catalogue (simulated,
as everywhere on the vision side); features: an extractor's last-conv-block
output (``--weights FILE.safetensors``) or, without one, PCA(64) of the pixels.
Protocol: leave-one-out; AUC over the catalogue items both libraries know (an
item that never occurs in training is unknown to Cornac); the same k, k2,
epochs, batch size, learning rate.  Reports AUC and seconds per epoch.

Cornac is installed for this benchmark only (``pip install -c constraints.txt cornac``);
without it the script says so and exits 0.

    RECBACKDOOR_DATA=/work/shared/data python benchmarks/vbpr_vs_cornac.py --weights model.safetensors
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def features(images: np.ndarray, weights: Path | None) -> tuple[np.ndarray, str]:
    if weights is None:
        from sklearn.decomposition import PCA

        return PCA(64, random_state=0).fit_transform(images.reshape(len(images), -1)).astype(np.float32), "pca64"
    from recbackdoor.victims.vision.extractors import load_extractor
    from recbackdoor.victims.vision.training import embed

    model, spec = load_extractor(weights)
    return embed(model, images), f"{spec.arch} last-conv features ({weights.name})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--k2", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--out", type=Path, default=None, help="write the comparison as JSON here")
    args = parser.parse_args(argv)
    try:
        import cornac
        from cornac.data import Dataset, ImageModality
        from cornac.models import VBPR as CornacVBPR
    except ImportError:
        print("cornac is not installed: `pip install -c constraints.txt cornac` to run this benchmark; skipping.")
        return 0
    torch.set_num_threads(1)
    from recbackdoor.data import fashion_mnist as fm
    from recbackdoor.data.interactions import SimulatorSettings, leave_one_out, simulate
    from recbackdoor.metrics.vision import leave_one_out_auc
    from recbackdoor.victims.vision.vbpr import VBPRSettings, fit_vbpr

    test = fm.load_split("test")
    classes = [0, 2, 3, 4, 5, 6, 7, 9]
    idx = fm.per_class_sample(test.labels, classes, args.per_class, seed=2)
    feats, feat_name = features(test.images[idx], args.weights)
    inter = simulate(test.labels[idx], 7, SimulatorSettings(n_users=args.users, seed=0))
    loo = leave_one_out(inter, seed=0)
    has_test = loo.test_items >= 0

    # --- ours
    start = time.perf_counter()
    ours, hist = fit_vbpr(inter.n_users, inter.n_items, loo.train_users, loo.train_items, feats,
                          VBPRSettings(k=args.k, k_visual=args.k2, epochs=args.epochs, lr=args.lr,
                                       batch_size=args.batch_size, seed=0))
    ours_sec = (time.perf_counter() - start) / args.epochs
    ours_scores = ours.score_matrix(np.arange(inter.n_users), feats, np.arange(inter.n_items))

    # --- cornac, same triples, same features
    triples = [(str(u), str(i), 1.0) for u, i in zip(loo.train_users, loo.train_items, strict=True)]
    train_set = Dataset.from_uir(triples, seed=0)
    image = ImageModality(features=feats, ids=[str(i) for i in range(inter.n_items)], normalized=False)
    image.build(id_map=train_set.iid_map)
    train_set.add_modalities(item_image=image)
    model = CornacVBPR(k=args.k, k2=args.k2, n_epochs=args.epochs, batch_size=args.batch_size,
                       learning_rate=args.lr, lambda_w=1e-4, lambda_b=1e-4, lambda_e=1e-4, verbose=False, seed=0)
    start = time.perf_counter()
    model.fit(train_set)
    cornac_sec = (time.perf_counter() - start) / args.epochs
    known = np.array([int(i) for i in train_set.iid_map], int)  # our ids, in Cornac's index order
    users = [u for u in range(inter.n_users) if has_test[u] and str(u) in train_set.uid_map
             and loo.test_items[u] in set(known)]
    c_scores = np.stack([model.score(train_set.uid_map[str(u)]) for u in users])[:, :len(known)]
    pos = {item: k for k, item in enumerate(known)}
    test_cols = np.array([pos[loo.test_items[u]] for u in users])
    seen = loo.seen[np.ix_(users, known)]
    auc_cornac = leave_one_out_auc(c_scores, test_cols, seen)
    auc_ours = leave_one_out_auc(ours_scores[np.ix_(users, known)], test_cols, seen)
    result = {"features": feat_name, "users": len(users), "items": int(len(known)),
              "train_interactions": int(len(loo.train_users)), "k": args.k, "k2": args.k2, "epochs": args.epochs,
              "batch_size": args.batch_size, "lr": args.lr, "cornac_version": cornac.__version__,
              "torch_threads": torch.get_num_threads(),
              "ours": {"auc": auc_ours, "seconds_per_epoch": ours_sec, "final_loss": hist[-1]["loss"]},
              "cornac": {"auc": auc_cornac, "seconds_per_epoch": cornac_sec}}
    print(json.dumps(result, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
