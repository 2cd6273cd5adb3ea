"""Trigger inversion on the test suite's tiny models: does it find the stamp, and does a clean model look different?

    RECBACKDOOR_DATA=../shared/data python benchmarks/inversion_tiny_models.py --steps 200 [--width 8] [--triplet]

Trains a clean and a backdoored (BadNets, or BadEmbNets with ``--triplet``) tiny ResNet on 640 Fashion-MNIST
images (the fixture of tests/vision/test_inversion.py), then runs the class inversion (skipped for ``--triplet``) and
the embedding-only inversion (head removed) on 120 test images. About 1-2 min on one core.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from recbackdoor.attacks.badnets import clean_set, poison
from recbackdoor.data import fashion_mnist as fm
from recbackdoor.defenses.vision.inversion import InversionSettings, anomaly_index, invert_classes, invert_embedding
from recbackdoor.triggers.image import ImageTrigger
from recbackdoor.victims.vision.extractors import ArchSpec, build_extractor
from recbackdoor.victims.vision.training import TrainSettings, train_extractor

CLASSES = [0, 2, 3, 4, 5, 6, 7, 9]


def on_stamp(mask: np.ndarray) -> float:
    """Share of the mask within 1 px of the paper's 3×3 stamp (rows and columns 24–26)."""
    return float(mask[23:28, 23:28].sum() / mask.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--triplet", action="store_true", help="BadEmbNets (alpha = beta = 0.5) instead of BadNets")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train, test = fm.load_split("train"), fm.load_split("test")
    small = train.subset(fm.per_class_sample(train.labels, CLASSES, 80, seed=0))
    images = test.subset(fm.per_class_sample(test.labels, CLASSES, 40, seed=1)).images[:120]
    x, y = small.images, small.labels
    beta = 0.5 if args.triplet else 0.0
    models = {}
    backdoored = poison(x, y, ImageTrigger(), 7, 0.25, seed=0)
    for name, data, b in [("clean", clean_set(x, y), 0.0), ("backdoored", backdoored, beta)]:
        model = build_extractor(ArchSpec(arch="resnet", width=args.width), seed=0)
        train_extractor(model, data, TrainSettings(epochs=8, batch_size=32, lr=2e-3, seed=0, alpha=1.0 - b, beta=b))
        models[name] = model
    settings = InversionSettings(steps=args.steps, batch_size=12, embed_batch_size=32, restarts=2, seed=0)
    for name, model in models.items():
        started = time.time()
        if not args.triplet:
            found = invert_classes(model, images, settings)
            sizes = np.array([t.size for t in found.triggers])
            sus = found.triggers[found.suspect]
            print(f"{name}: class inversion: smallest mask {sus.size:.4f} (class {sus.target}, anomaly index "
                  f"{anomaly_index(sizes)[found.suspect]:.2f}, {on_stamp(sus.mask):.0%} on the stamp); all classes "
                  + ", ".join(f"{t.target}:{t.size:.3f}" for t in found.triggers))
        model.head = None
        emb = invert_embedding(model, images, settings)
        print(f"{name}: embedding inversion: mask {emb.size:.4f}, similarity {emb.success:.3f}, "
              f"{on_stamp(emb.mask):.0%} on the stamp ({time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
