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


def stamp(images: np.ndarray, trigger: ImageTrigger | MaskTrigger, seed: int = 0,
          avoid: ImageTrigger | None = None) -> np.ndarray:
    """Return a copy of ``images`` (n, C, H, W) with the trigger stamped on every image.

    ``position="random"`` draws one seeded position per image (never overlapping
    ``avoid`` when given), the test of the paper's Table 6.  A :class:`MaskTrigger` is applied as it is.
    """
    if isinstance(trigger, MaskTrigger):
        return trigger.apply(np.asarray(images))
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


# --------------------------------------------------------------------------- free-form triggers

FAMILIES = ("shape", "blend", "noise")
SHAPES = ("rect", "disc", "triangle", "ring", "ell", "diagonal", "bar")


@dataclass(frozen=True, eq=False)
class MaskTrigger:
    """Any trigger as a per-pixel ``mask`` (H, W, in [0, 1]: 1 replaces the pixel, 0.5 blends half) and a
    ``pattern`` (C, H, W) written through it: ``x' = (1 − m)·x + m·p``.  ``stamp`` and ``poison`` accept it."""

    name: str
    mask: np.ndarray
    pattern: np.ndarray

    @property
    def label(self) -> str:
        return self.name

    def apply(self, images: np.ndarray) -> np.ndarray:
        m = self.mask[None, None]
        return ((1.0 - m) * images + m * self.pattern[None]).astype(images.dtype)


def shape_mask(shape: str, h: int, w: int) -> np.ndarray:
    """Boolean ``h``×``w`` mask of a shape (none of them is one of the audit's candidate stamps)."""
    ii, jj = np.indices((h, w))
    ci, cj = (h - 1) / 2, (w - 1) / 2
    r = min(h, w) / 2
    d2 = (ii - ci) ** 2 + (jj - cj) ** 2
    masks = {
        "rect": np.ones((h, w), bool),
        "disc": d2 <= r * r,
        "triangle": jj * h <= (ii + 1) * w,  # lower-left triangle
        "ring": (d2 <= r * r) & (d2 >= (r - 1.2) ** 2),
        "ell": (jj == 0) | (ii == h - 1),
        "diagonal": np.abs(ii * (w - 1) - jj * (h - 1)) <= max(h, w) - 1,
        "bar": np.abs(ii - ci) < 1,
    }
    if shape not in masks:
        raise ValueError(f"shape {shape!r}: expected one of {SHAPES}")
    return masks[shape]


def sample_trigger(family: str, rng: np.random.Generator, channels: int = 1, height: int = 28,
                   width: int = 28) -> MaskTrigger:
    """Draw one trigger of a family, placed anywhere in the image (for audit studies: triggers that the
    audit's candidate stamps — square / checker / cross at corners or centre — do not contain).

    * ``shape``: rectangle (non-square), disc, triangle, ring, L, diagonal or bar, 3–6 px, ink white or grey;
    * ``blend``: a semi-transparent shape or patch (opacity 0.4–0.7), 4–7 px, any ink;
    * ``noise``: a patch of fixed random pixel values, 3–6 px, opaque or half-transparent.
    """
    if family not in FAMILIES:
        raise ValueError(f"trigger family {family!r}: expected one of {FAMILIES}")
    if family == "noise":
        h = w = int(rng.integers(3, 7))
        local = np.ones((h, w), bool)
        ink = rng.random((channels, h, w)).astype(np.float32)
        alpha = float(rng.choice([1.0, 0.6]))
        desc = f"noise {h}x{w} a={alpha:.1f}"
    else:
        shape = str(rng.choice(SHAPES))
        lo, hi = (3, 7) if family == "shape" else (4, 8)
        h, w = int(rng.integers(lo, hi)), int(rng.integers(lo, hi))
        if shape == "rect" and h == w:
            w = h + 1 if h < hi - 1 else h - 1
        local = shape_mask(shape, h, w)
        if local.all() and h == w:  # a small disc fills its box: that would be a candidate square
            w += 1
            local = shape_mask(shape, h, w)
        if family == "shape":
            value = float(rng.choice([1.0, round(float(rng.uniform(0.35, 0.75)), 2)]))
            alpha = 1.0
        else:
            value = round(float(rng.uniform(0.0, 1.0)), 2)
            alpha = round(float(rng.uniform(0.4, 0.7)), 2)
        ink = np.full((channels, h, w), value, np.float32)
        desc = f"{family} {shape} {h}x{w} ink={value:.2f} a={alpha:.2f}"
    r = int(rng.integers(0, height - h + 1))
    c = int(rng.integers(0, width - w + 1))
    mask = np.zeros((height, width), np.float32)
    mask[r:r + h, c:c + w] = local * alpha
    pattern = np.zeros((channels, height, width), np.float32)
    pattern[:, r:r + h, c:c + w] = ink
    return MaskTrigger(f"{desc} @({r},{c})", mask, pattern)
