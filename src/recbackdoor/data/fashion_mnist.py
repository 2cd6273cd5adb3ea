"""Fashion-MNIST loader (real product images; no interactions come with them).

The files are the official Zalando Research release; each is checked against
its published sha256 so a result file can name exactly which bytes it used.
A missing file raises one :class:`UserError` naming the files, the folder
searched and where to download them.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recbackdoor.data.files import sha256
from recbackdoor.errors import UserError
from recbackdoor.paths import data_root

SUBDIR = "fashion-mnist"
SOURCE_URL = "https://github.com/zalandoresearch/fashion-mnist/tree/master/data/fashion"
FILES: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")


@dataclass(frozen=True)
class ImageSet:
    """Images as float32 in [0, 1], shape (n, 1, H, W); integer category labels."""

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> ImageSet:
        return ImageSet(self.images[index], self.labels[index], self.class_names)


def folder(root: Path | None = None) -> Path:
    return (root or data_root()) / SUBDIR


def check_files(root: Path | None = None) -> Path:
    """Return the data folder, or raise one line naming every missing file."""
    base = folder(root)
    missing = [name for name in FILES if not (base / name).exists()]
    if missing:
        raise UserError(f"{base}: Fashion-MNIST files missing: {', '.join(missing)}; "
                        f"download them from {SOURCE_URL} into that folder (or set RECBACKDOOR_DATA)")
    return base


def checksums(root: Path | None = None, verify: bool = True) -> dict[str, str]:
    """sha256 of every file; with ``verify`` a mismatch is a UserError (wrong or corrupt download)."""
    base = check_files(root)
    sums = {}
    for name, expected in FILES.items():
        actual = sha256(base / name)
        if verify and actual != expected:
            raise UserError(f"{base / name}: sha256 {actual} does not match the official release ({expected})")
        sums[f"{SUBDIR}/{name}"] = actual
    return sums


def _read_idx(path: Path, offset: int) -> np.ndarray:
    try:
        raw = gzip.open(path).read()
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable gzip IDX file ({exc})") from None
    return np.frombuffer(raw, np.uint8, offset=offset)


def load_split(split: str = "train", root: Path | None = None) -> ImageSet:
    """Load ``train`` (60,000) or ``test`` (10,000) images."""
    if split not in ("train", "test"):
        raise UserError(f"fashion-mnist split {split!r}: expected 'train' or 'test'")
    base = check_files(root)
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(base / f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 1, 28, 28)
    labels = _read_idx(base / f"{prefix}-labels-idx1-ubyte.gz", 8).astype(np.int64)
    return ImageSet(images.astype(np.float32) / 255.0, labels, CLASS_NAMES)


def per_class_sample(labels: np.ndarray, classes: list[int], per_class: int, seed: int,
                     exclude: np.ndarray | None = None) -> np.ndarray:
    """Seeded, balanced sample of indices: ``per_class`` from each class in ``classes``."""
    rng = np.random.default_rng(seed)
    taken = np.zeros(len(labels), bool)
    if exclude is not None:
        taken[exclude] = True
    out = []
    for c in classes:
        pool = np.flatnonzero((labels == c) & ~taken)
        if len(pool) < per_class:
            raise UserError(f"class {c}: only {len(pool)} images left, {per_class} requested")
        out.append(rng.choice(pool, per_class, replace=False))
    return np.sort(np.concatenate(out))
