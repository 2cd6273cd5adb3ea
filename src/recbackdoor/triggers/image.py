"""Image trigger stamps: plain functions of an image batch (ART-style).

Fashion-MNIST has a black background, so the default stamp is a *white*
square in the bottom-right corner (the paper's black square suits the white
backgrounds of Amazon product photos; on black it would be invisible).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PATTERNS = ("square", "checker", "cross")
POSITIONS = ("br", "bl", "tr", "tl", "ct", "random")


@dataclass(frozen=True)
class ImageTrigger:
    """A stamp: ``pattern`` of ``size``×``size`` pixels at ``position`` with ``margin`` pixels to the edge."""

    pattern: str = "square"
    size: int = 3
    position: str = "br"
    value: float = 1.0
    margin: int = 1

    def __post_init__(self) -> None:
        if self.pattern not in PATTERNS:
            raise ValueError(f"trigger pattern {self.pattern!r}: expected one of {PATTERNS}")
        if self.position not in POSITIONS:
            raise ValueError(f"trigger position {self.position!r}: expected one of {POSITIONS}")
        if self.size < 1:
            raise ValueError("trigger size must be >= 1")

    @property
    def label(self) -> str:
        """Name used in result cells: the pattern, with the size when it is not the default 3."""
        return self.pattern if self.size == 3 else f"{self.pattern}{self.size}"


def pattern_mask(pattern: str, size: int) -> np.ndarray:
    """Boolean mask of the pixels a pattern sets."""
    if pattern == "square":
        return np.ones((size, size), bool)
    ii, jj = np.indices((size, size))
    if pattern == "checker":
        return (ii + jj) % 2 == 0
    if pattern == "cross":  # a plus sign: middle row and column
        return (ii == size // 2) | (jj == size // 2)
    raise ValueError(f"unknown trigger pattern {pattern!r}")


def fixed_corner(position: str, size: int, height: int, width: int, margin: int) -> tuple[int, int]:
    """Top-left pixel of a stamp at a named position."""
    bottom, right = height - size - margin, width - size - margin
    corners = {"br": (bottom, right), "bl": (bottom, margin), "tr": (margin, right), "tl": (margin, margin),
               "ct": ((height - size) // 2, (width - size) // 2)}
    return corners[position]


def random_corners(n: int, trigger: ImageTrigger, height: int, width: int, seed: int,
                   avoid: ImageTrigger | None = None) -> np.ndarray:
    """Seeded random positions; with ``avoid``, none overlaps that trigger's own area."""
    rng = np.random.default_rng(seed)
    s = trigger.size
    out = np.empty((n, 2), int)
    filled = 0
    block = None
    if avoid is not None:
        r0, c0 = fixed_corner(avoid.position, avoid.size, height, width, avoid.margin)
        block = (r0, c0, avoid.size)
    while filled < n:
        cand = np.stack([rng.integers(0, height - s + 1, 2 * n), rng.integers(0, width - s + 1, 2 * n)], 1)
        if block is not None:
            r0, c0, t = block
            overlap = (cand[:, 0] < r0 + t) & (cand[:, 0] + s > r0) & (cand[:, 1] < c0 + t) & (cand[:, 1] + s > c0)
            cand = cand[~overlap]
        take = min(n - filled, len(cand))
        out[filled:filled + take] = cand[:take]
        filled += take
    return out


def stamp(images: np.ndarray, trigger: ImageTrigger, seed: int = 0, avoid: ImageTrigger | None = None) -> np.ndarray:
    """Return a copy of ``images`` (n, C, H, W) with the trigger stamped on every image.

    ``position="random"`` draws one seeded position per image (never overlapping
    ``avoid`` when given), the test of the paper's Table 6.
    """
    out = np.array(images, copy=True)
    n, _, height, width = out.shape
    mask = pattern_mask(trigger.pattern, trigger.size)
    if trigger.position == "random":
        corners = random_corners(n, trigger, height, width, seed, avoid)
        for k, (r, c) in enumerate(corners):
            patch = out[k, :, r:r + trigger.size, c:c + trigger.size]
            patch[:, mask] = trigger.value
        return out
    r, c = fixed_corner(trigger.position, trigger.size, height, width, trigger.margin)
    patch = out[:, :, r:r + trigger.size, c:c + trigger.size]
    patch[:, :, mask] = trigger.value
    return out
