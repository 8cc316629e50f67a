"""Two-digit Moving MNIST with ground-truth segmentation masks (paper, Section 4.3).

Introduced in the chapter *Grouping by motion on Moving MNIST* (Part III).

* The paper used "moving MNIST [25]" (Srivastava et al., 2015) re-implemented by its authors to get
  ground-truth segmentations (its footnote 2); this generator is ours. Defaults follow [25]: 20 frames,
  two 28x28 digits on a 64x64 canvas. Pass ``canvas=32, digit_size=14`` (MNIST images are then
  downscaled by 2x2 averaging) for CPU-sized runs.
* Each digit starts at a uniform integer position, moves in a uniform random direction with a speed
  drawn uniformly from ``speed_range`` px/frame (our choice) and bounces elastically off the borders
  (:func:`rladder_nb.data.occluded_mnist.bouncing_positions`), positions rounded to whole pixels.
  Digits move independently and may overlap.
* Frames: light digits on a black background (0), combined by the pixel-wise maximum, in [0, 1].
* Masks: ``masks[:, t, 0]`` is the background (every pixel where no digit has ink above
  ``background_threshold``), ``masks[:, t, k]`` digit ``k``; they sum to one per pixel. Where digits
  overlap, ``overlap='argmax'`` gives the pixel to the digit with the larger intensity (exact ties are
  split equally); ``overlap='split'`` shares it in proportion to the intensities. ``overlap_mask`` marks
  those pixels (the paper's AMI ignores overlaps of equal colour and the uniform background).
"""
from __future__ import annotations

import numpy as np

from rladder_nb.data.occluded_mnist import _check_int, as_digit_images, bouncing_positions

OVERLAP_RULES = ("argmax", "split")


def combine_layers(layers, overlap: str = "argmax", background_threshold: float = 0.0):
    """Combine per-digit ink layers into a frame, masks, a segmentation and an overlap mask.

    Introduced in the chapter *Grouping by motion on Moving MNIST*.

    Parameters
    ----------
    layers : array (..., K, H, W)
        Ink of each digit alone, in [0, 1].
    overlap : {'argmax', 'split'}
        How pixels inked by several digits are shared (see the module docstring).
    background_threshold : float
        A pixel belongs to the background when no digit's ink exceeds it.

    Returns
    -------
    frames : (..., H, W) float32, the maximum over digits.
    masks : (..., K + 1, H, W) float32, background first; sums to one over axis -3.
    segmentation : (..., H, W) uint8, 0 for background, k for digit k (the argmax of ``masks``;
        ties go to the lower k).
    overlap_mask : (..., H, W) bool, pixels inked by two or more digits.
    """
    if overlap not in OVERLAP_RULES:
        raise ValueError(f"unknown overlap rule {overlap!r}: expected one of {', '.join(OVERLAP_RULES)}")
    if not 0 <= background_threshold < 1:
        raise ValueError(f"background_threshold must be in [0, 1), got {background_threshold}")
    layers = np.asarray(layers, dtype=np.float32)
    frames = layers.max(axis=-3)  # (..., H, W)
    inked = layers > background_threshold  # (..., K, H, W)
    background = ~inked.any(axis=-3)  # (..., H, W)
    if overlap == "argmax":
        share = (layers == frames[..., None, :, :]) & inked  # the brightest digits, ties kept
    else:
        share = np.where(inked, layers, 0.0)
    total = share.sum(axis=-3, keepdims=True, dtype=np.float32)
    digit_masks = np.divide(share, total, out=np.zeros(layers.shape, np.float32), where=total > 0)
    masks = np.concatenate([background[..., None, :, :].astype(np.float32), digit_masks], axis=-3)
    segmentation = np.zeros(frames.shape, np.uint8)  # argmax over groups, first wins ties
    best = masks[..., 0, :, :]
    for k in range(1, masks.shape[-3]):  # a loop over few groups beats argmax over a strided axis
        better = masks[..., k, :, :] > best
        segmentation[better] = k
        best = np.maximum(best, masks[..., k, :, :])
    return frames, masks, segmentation, inked.sum(axis=-3) >= 2


def generate_moving_mnist(images, labels, n: int, n_frames: int = 20, canvas: int = 64, digit_size: int = 28,
                          n_digits: int = 2, speed_range=(2.0, 4.0), overlap: str = "argmax",
                          background_threshold: float = 0.0, seed: int = 0, chunk_size: int = 64) -> dict:
    """Draw ``n`` Moving MNIST sequences with ground-truth masks.

    Introduced in the chapter *Grouping by motion on Moving MNIST* (paper, Section 4.3).

    Parameters
    ----------
    images : array (N, S, S)
        uint8 0..255 or float [0, 1], ``S`` = ``digit_size`` or ``2 * digit_size``.
    labels : int array (N,)
    n : int
        Number of sequences.
    n_frames, canvas, digit_size, n_digits : int
        Defaults 20, 64, 28, 2 (the paper's length; the canvas and digit size of [25]).
    speed_range : (float, float)
        Speeds are uniform in this range, px/frame (our choice).
    overlap, background_threshold
        See :func:`combine_layers`.
    seed : int
        The whole draw is a function of ``seed`` (draw a new seed per epoch for fresh data).
    chunk_size : int
        Sequences rendered at once (bounds the temporary memory, not the result).

    Returns
    -------
    dict of np.ndarray, one entry per sequence along axis 0
        ``frames`` (n, T, H, W) float32; ``masks`` (n, T, K+1, H, W) float32 (mind the memory:
        4 (K+1) T H W bytes per sequence); ``segmentation`` (n, T, H, W) uint8; ``overlap_mask``
        (n, T, H, W) bool; ``label`` (n, K) int64; ``digit_index`` (n, K) int64; ``positions``
        (n, K, T, 2) int64 (top-left (y, x)); ``velocity`` (n, K, 2) float64 (dy, dx).
    """
    n = _check_int("n", n, 1)
    n_frames = _check_int("n_frames", n_frames, 1)
    canvas = _check_int("canvas", canvas, 1)
    n_digits = _check_int("n_digits", n_digits, 1, 255)
    seed = _check_int("seed", seed, 0)
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    if _check_int("digit_size", digit_size, 1) > canvas:
        raise ValueError(f"digit_size {digit_size} does not fit the {canvas}x{canvas} canvas")
    low, high = (float(v) for v in speed_range)
    if not 0 <= low <= high:
        raise ValueError(f"speed_range must be (low, high) with 0 <= low <= high, got {speed_range}")
    if overlap not in OVERLAP_RULES:
        raise ValueError(f"unknown overlap rule {overlap!r}: expected one of {', '.join(OVERLAP_RULES)}")
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"images must be a non-empty array of shape (N, S, S), got {images.shape}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({len(images)},), got {labels.dtype} {labels.shape}")

    rng = np.random.default_rng(seed)
    max_position = canvas - digit_size
    digit_index = rng.integers(0, len(images), size=(n, n_digits))  # (n, K)
    start = rng.integers(0, max_position + 1, size=(n, n_digits, 2))  # (n, K, 2)
    angle = rng.uniform(0.0, 2 * np.pi, size=(n, n_digits))
    speed = rng.uniform(low, high, size=(n, n_digits))
    velocity = speed[..., None] * np.stack([np.sin(angle), np.cos(angle)], axis=-1)  # (n, K, 2)
    positions = np.rint(bouncing_positions(start.astype(float), velocity, n_frames, max_position)).astype(np.int64)
    ink = as_digit_images(images[digit_index.reshape(-1)], digit_size).reshape(n, n_digits, digit_size, digit_size)

    shape = (n, n_frames, canvas, canvas)
    out = {"frames": np.empty(shape, np.float32),
           "masks": np.empty((n, n_frames, n_digits + 1, canvas, canvas), np.float32),
           "segmentation": np.empty(shape, np.uint8), "overlap_mask": np.empty(shape, bool)}
    offsets = np.arange(digit_size)
    for begin in range(0, n, chunk_size):
        part = slice(begin, min(begin + chunk_size, n))
        pos = positions[part]  # (c, K, T, 2)
        c = len(pos)
        layers = np.zeros((c, n_frames, n_digits, canvas, canvas), np.float32)  # (c, T, K, H, W)
        rows = pos[..., 0, None] + offsets  # (c, K, T, s)
        cols = pos[..., 1, None] + offsets
        layers[np.arange(c)[:, None, None, None, None], np.arange(n_frames)[None, None, :, None, None],
               np.arange(n_digits)[None, :, None, None, None], rows[..., :, None], cols[..., None, :]] = \
            ink[part][:, :, None]  # (c, K, 1, s, s) broadcast over T
        frames, masks, segmentation, overlapped = combine_layers(layers, overlap, background_threshold)
        out["frames"][part], out["masks"][part] = frames, masks
        out["segmentation"][part], out["overlap_mask"][part] = segmentation, overlapped
    out.update(label=labels[digit_index].astype(np.int64), digit_index=digit_index.astype(np.int64),
               positions=positions, velocity=velocity)
    return out
