"""Real interaction log + image folder (the layout of the VBPR line's Amazon / Tradesy data).

Layout accepted::

    DIR/images/<category>/<item_id>.(png|jpg|jpeg)
    DIR/interactions.csv      # columns: user_id,item_id  (one implicit-feedback event per row)

Images are converted to grayscale and resized to the extractor's input size,
so the same extractors, victims and metrics run unchanged on a real log.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recbackdoor.data.fashion_mnist import ImageSet
from recbackdoor.data.interactions import Interactions, from_pairs
from recbackdoor.errors import UserError

SUFFIXES = (".png", ".jpg", ".jpeg")


def load_image_folder(folder: Path, size: int = 28) -> tuple[ImageSet, list[str]]:
    """Images under ``folder/<category>/``; returns the set and the item ids (file stems) in order."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: image folder not found (expected <category>/<item_id>.png|jpg)")
    categories = sorted(p.name for p in folder.iterdir() if p.is_dir())
    images, labels, ids = [], [], []
    for c, name in enumerate(categories):
        for path in sorted((folder / name).iterdir()):
            if path.suffix.lower() not in SUFFIXES:
                continue
            try:
                with Image.open(path) as img:
                    arr = np.asarray(img.convert("L").resize((size, size)), np.float32) / 255.0
            except (UnidentifiedImageError, OSError) as exc:
                raise UserError(f"{path}: unreadable image ({exc})") from None
            images.append(arr[None])
            labels.append(c)
            ids.append(path.stem)
    if not images:
        raise UserError(f"{folder}: no images found (expected <category>/<item_id>.png|jpg)")
    return ImageSet(np.stack(images), np.asarray(labels, np.int64), tuple(categories)), ids


def load_interactions(csv_path: Path, item_ids: list[str], item_labels: np.ndarray,
                      target_class: int) -> Interactions:
    """Read ``user_id,item_id`` rows; items without an image are an error naming the first such row."""
    csv_path = Path(csv_path)
    try:
        frame = pd.read_csv(csv_path, dtype=str)
    except (OSError, pd.errors.ParserError) as exc:
        raise UserError(f"{csv_path}: cannot read interactions CSV ({exc})") from None
    for col in ("user_id", "item_id"):
        if col not in frame.columns:
            raise UserError(f"{csv_path}: missing column {col!r} (have {', '.join(frame.columns)})")
    index = {item: k for k, item in enumerate(item_ids)}
    mapped = frame["item_id"].map(index)
    if mapped.isna().any():
        row = int(np.flatnonzero(mapped.isna().to_numpy())[0])
        raise UserError(f"{csv_path}: row {row + 2}, field item_id: {frame['item_id'].iloc[row]!r} has no image")
    users = pd.factorize(frame["user_id"])[0]
    return from_pairs(users, mapped.to_numpy(int), len(item_ids), item_labels, target_class)
