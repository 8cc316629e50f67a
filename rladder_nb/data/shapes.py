"""Tagger's *Shapes*: binary 20x20 images of three shapes each, with which shape owns each pixel.

Introduced in *Perceptual grouping by texture* (its sanity check). The data set of Reichert & Serre (2014)
as Tagger's released code generates it (Greff et al. 2016, ``data/shapes.py``), redrawn here: each image
holds ``n_shapes`` shapes, each drawn uniformly from a 7x7 square ring (two pixels thick) and a 7x12
triangle pointing up or down, at a uniformly random position fully inside the canvas; shapes may overlap
(a pixel is 1 where any shape covers it). The ground truth says which shape covers each pixel; the
pixels that count for a segmentation score are those covered by exactly one shape (the background and
overlaps are left out, as the released masks do). Our triangle's outline is our own drawing of theirs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

SIZE = 20                 # the canvas is SIZE x SIZE
N_SHAPES = 3              # shapes per image
SHAPE_NAMES = ("square", "up-triangle", "down-triangle")


def shape_templates() -> dict:
    """The three binary templates ``{name: (h, w) uint8 array}``: a 7x7 square ring two pixels thick, and a
    7x12 triangle (two-pixel outline, two-row base) pointing up, and the same flipped."""
    square = np.ones((7, 7), np.uint8)
    square[2:5, 2:5] = 0
    up = np.zeros((7, 12), np.uint8)
    for row in range(5):                      # the slanted sides, two pixels wide, apex at the top
        left, right = 5 - row, 6 + row
        up[row, left:left + 2] = 1
        up[row, right - 1:right + 1] = 1
    up[:2, 4:8] = 1                           # the apex filled
    up[5:] = 1                                # the base
    return {"square": square, "up-triangle": up, "down-triangle": up[::-1].copy()}


@dataclass
class ShapesData:
    """``images`` (n, 1, S, S) float32 in {0, 1}; ``masks`` (n, n_shapes, S, S) float32, 1 where shape j
    covers the pixel; ``scored`` (n, S, S) bool, the pixels covered by exactly one shape; ``shapes`` (n,
    n_shapes) int64, the index into :data:`SHAPE_NAMES` of each shape."""
    images: torch.Tensor
    masks: torch.Tensor
    scored: torch.Tensor
    shapes: torch.Tensor

    def __len__(self):
        return len(self.images)


def generate_shapes(n: int, seed: int, n_shapes: int = N_SHAPES, size: int = SIZE) -> ShapesData:
    """``n`` Shapes images, a pure function of ``seed`` (see the module docstring)."""
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not isinstance(n_shapes, (int, np.integer)) or n_shapes < 1:
        raise ValueError(f"n_shapes must be a positive integer, got {n_shapes!r}")
    templates = [shape_templates()[name] for name in SHAPE_NAMES]
    biggest = max(max(t.shape) for t in templates)
    if not isinstance(size, (int, np.integer)) or size < biggest:
        raise ValueError(f"size must be an integer >= {biggest} (the largest shape), got {size!r}")
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, n_shapes, size, size), np.float32)
    kinds = rng.integers(0, len(templates), size=(n, n_shapes))
    for i in range(n):
        for j in range(n_shapes):
            t = templates[kinds[i, j]]
            top = rng.integers(0, size - t.shape[0] + 1)
            left = rng.integers(0, size - t.shape[1] + 1)
            masks[i, j, top:top + t.shape[0], left:left + t.shape[1]] = t
    cover = masks.sum(axis=1)
    images = (cover > 0).astype(np.float32)[:, None]
    return ShapesData(torch.from_numpy(images), torch.from_numpy(masks), torch.from_numpy(cover == 1),
                      torch.from_numpy(kinds.astype(np.int64)))


def flip_bits(x: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` (values in {0, 1}) with each value flipped independently with probability ``p`` (Tagger's
    corruption of binary inputs)."""
    if not 0 <= p <= 1:
        raise ValueError(f"the flip probability must be in [0, 1], got {p!r}")
    flip = (torch.rand(x.shape, generator=generator) < p).to(x.dtype).to(x.device)
    return x + flip * (1 - 2 * x)
