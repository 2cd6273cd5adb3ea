"""The BadEmbNets study's images and their seeded index splits.

Which images train the extractor, which validate it, which form the catalogue
VBPR learns from, which are the cold items an attacker uploads, which are the
held-out-category items of the transfer study, and which are kept aside for
fine-tuning and STRIP overlays.  Two sources: Fashion-MNIST (train and test
images; the interactions are simulated over the catalogue afterwards) and a
real image folder with its interaction log.

The settings come as any object with the attributes of :class:`SplitSettings`
(the experiment's ``[data]`` section), so data needs nothing from the
experiment that reads the config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from recbackdoor.data import fashion_mnist as fm
from recbackdoor.data.fashion_mnist import ImageSet, per_class_sample
from recbackdoor.data.interactions import Interactions
from recbackdoor.errors import UserError


class SplitSettings(Protocol):
    source: str  # "fashion-mnist" | "folder"
    folder: str | None  # with source="folder": DIR/images/<category>/<item>.png + DIR/interactions.csv
    target_class: int
    heldout_classes: list[int]
    train_per_class: int
    val_per_class: int
    catalogue_per_class: int
    cold_items: int
    transfer_items: int


class Splits:
    """Index sets into the train / test image sets, all seeded."""

    def __init__(self, d: SplitSettings, train: ImageSet, test: ImageSet, seed: int) -> None:
        classes = sorted(set(np.unique(train.labels).tolist()) - set(d.heldout_classes))
        if d.target_class not in classes:
            raise UserError(f"data.target_class {d.target_class}: not among the extractor's classes {classes}")
        self.classes = classes
        self.train = per_class_sample(train.labels, classes, d.train_per_class, seed)
        self.val = per_class_sample(test.labels, classes, d.val_per_class, seed + 1)
        self.catalogue = per_class_sample(test.labels, classes, d.catalogue_per_class, seed + 2, exclude=self.val)
        rng = np.random.default_rng(seed + 3)
        used = np.zeros(len(test), bool)
        used[self.val] = used[self.catalogue] = True
        pool = np.flatnonzero(~used & np.isin(test.labels, classes) & (test.labels != d.target_class))
        self.cold = np.sort(rng.choice(pool, min(d.cold_items, len(pool)), replace=False))
        held = np.flatnonzero(np.isin(test.labels, d.heldout_classes))
        self.transfer = np.sort(rng.choice(held, min(d.transfer_items, len(held)), replace=False)) \
            if len(held) else held
        self.spare = np.setdiff1d(np.arange(len(train)), self.train)  # fine-tuning data, STRIP overlays
        self.catalogue_interactions: Interactions | None = None


class FolderSplits:
    """Splits for a real log + image folder: one image set, 70 / 10 / 20 extractor train / spare / validation
    per category (the paper splits 80:20; 10 % is kept aside for fine-tuning and STRIP overlays).  The
    catalogue is every item someone interacted with; cold items are those nobody did (target category
    excluded); there is no held-out category, so no transfer study."""

    def __init__(self, d: SplitSettings, images: ImageSet, inter: Interactions, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.classes = sorted(np.unique(images.labels).tolist())
        parts: dict[str, list[np.ndarray]] = {"train": [], "spare": [], "val": []}
        for c in self.classes:
            idx = rng.permutation(np.flatnonzero(images.labels == c))
            a, b = int(0.7 * len(idx)), int(0.8 * len(idx))
            parts["train"].append(idx[:a])
            parts["spare"].append(idx[a:b])
            parts["val"].append(idx[b:])
        self.train, self.spare, self.val = (np.sort(np.concatenate(parts[k])) for k in ("train", "spare", "val"))
        self.catalogue = np.unique(inter.items)
        never = np.setdiff1d(np.arange(len(images)), self.catalogue)
        never = never[images.labels[never] != d.target_class]
        self.cold = np.sort(rng.choice(never, min(d.cold_items, len(never)), replace=False))
        self.transfer = np.zeros(0, int)
        position = np.full(len(images), -1)
        position[self.catalogue] = np.arange(len(self.catalogue))
        self.catalogue_interactions = Interactions(inter.n_users, len(self.catalogue), inter.users,
                                                   position[inter.items], inter.target_users, simulated=False)


def load_images(d: SplitSettings) -> tuple[ImageSet, ImageSet, Interactions | None, dict[str, str]]:
    """Fashion-MNIST (train, test, no log) or a real folder (images, the same images, its log), and the
    checksums of the files read, for the result file."""
    if d.source == "folder":
        from recbackdoor.data.files import sha256
        from recbackdoor.data.image_folder import load_image_folder, load_interactions

        if not d.folder:
            raise UserError("data.folder: required with data.source = 'folder' (DIR with images/ and "
                            "interactions.csv)")
        root = Path(d.folder)
        images, ids = load_image_folder(root / "images")
        if d.target_class >= len(images.class_names):
            raise UserError(f"data.target_class {d.target_class}: the folder has only "
                            f"{len(images.class_names)} categories ({', '.join(images.class_names)})")
        inter = load_interactions(root / "interactions.csv", ids, images.labels, d.target_class)
        return images, images, inter, {"interactions.csv": sha256(root / "interactions.csv")}
    checksums = fm.checksums()
    return fm.load_split("train"), fm.load_split("test"), None, checksums
