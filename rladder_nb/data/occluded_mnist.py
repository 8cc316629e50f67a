"""Occluded Moving MNIST (paper, Section 3.1 and Figure 2) and its optimal temporal reconstruction.

Introduced in the chapter *Occluded Moving MNIST and optimal inference* (Part II).

* **Geometry (the paper's).** 14x14 digits fly on a 32x32 white canvas for 5 frames behind a fixed grid
  of white bars, 4 px wide and 8 visible px apart, vertical and horizontal. Velocities are one of the 8
  values (+-1, +-2), (+-2, +-1) px/frame; the digit bounces off the borders and always stays inside.
* **Our reconstruction (the paper is silent).** Digits are drawn *dark on white* so that strokes show:
  a pixel is ``1 - ink`` under the digit and ``1`` on the background and under a bar
  (``white_background=False`` gives ``ink`` on black with black bars). The bars start at pixel
  ``bar_offset=8``, so a 32 px side reads 8 visible, 4 bar, 8, 4, 8 -- symmetric. Digits are
  downscaled by 2x2 area averaging (:func:`rladder_nb.data.mnist.mnist_14x14`). Bouncing is an exact
  elastic reflection: positions fold ``start + velocity * t`` back into ``[0, canvas - digit_size]``.
* **Optimal reconstruction.** A digit pixel is *seen* when it lies off the bars in at least one frame;
  the optimal temporal reconstruction holds the seen pixels in digit coordinates and the background
  value (white) where a pixel was never seen (``optimal_seen_mask`` tells the two apart).
* **Fast and reproducible.** Everything is rendered for a whole batch with numpy fancy indexing. Each
  sequence's start and velocity are a hash of ``(seed, epoch, index)``, so an item is the same whether
  it is drawn alone or in a batch, and ``fresh_each_epoch=True`` draws new trajectories every epoch.
"""
from __future__ import annotations

import numpy as np

# the paper's 8 velocities, (dy, dx) in pixels per frame
VELOCITIES = np.array([(1, 2), (1, -2), (-1, 2), (-1, -2), (2, 1), (2, -1), (-2, 1), (-2, -1)], dtype=np.int64)


def _check_int(name, value, low, high=None):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def as_digit_images(images, digit_size: int) -> np.ndarray:
    """Validate digit images and bring them to ``digit_size`` as float32 intensities in [0, 1].

    Introduced in the chapter *Occluded Moving MNIST and optimal inference*.

    Parameters
    ----------
    images : array (N, S, S)
        uint8 in 0..255 or float in [0, 1]; ``S`` must be ``digit_size`` or ``2 * digit_size`` (then
        2x2 area averaging halves it, e.g. MNIST's 28x28 to the paper's 14x14).
    digit_size : int

    Returns
    -------
    np.ndarray
        (N, digit_size, digit_size) float32 in [0, 1].
    """
    digit_size = _check_int("digit_size", digit_size, 1)
    images = np.asarray(images)
    if images.ndim != 3 or images.shape[1] != images.shape[2] or len(images) == 0:
        raise ValueError(f"images must be a non-empty array of shape (N, S, S), got {images.shape}")
    if images.dtype == np.uint8:
        ink = images.astype(np.float32) / 255.0
    elif np.issubdtype(images.dtype, np.floating):
        if np.isnan(images).any() or images.min() < 0 or images.max() > 1:
            raise ValueError("float images must lie in [0, 1]; divide 0..255 values by 255 or pass uint8")
        ink = images.astype(np.float32)
    else:
        raise TypeError(f"images must be uint8 (0..255) or float ([0, 1]), got {images.dtype}")
    size = images.shape[1]
    if size == 2 * digit_size:
        ink = ink.reshape(len(ink), digit_size, 2, digit_size, 2).mean(axis=(2, 4), dtype=np.float32)
    elif size != digit_size:
        raise ValueError(f"images are {size}x{size} but digit_size is {digit_size}: pass images of size "
                         f"{digit_size} or {2 * digit_size} (e.g. MNIST's 28x28 for digit_size=14)")
    return ink


def occlusion_grid(canvas: int = 32, bar_width: int = 4, bar_gap: int = 8, bar_offset: int = 8) -> np.ndarray:
    """The occluding bars: True where a vertical or a horizontal bar covers the canvas.

    Introduced in the chapter *Occluded Moving MNIST and optimal inference*. Row (column) ``i`` is under
    a bar when ``(i - bar_offset) mod (bar_width + bar_gap) < bar_width``. ``bar_offset`` is our
    reconstruction (the paper does not give the bars' phase).

    Returns
    -------
    np.ndarray
        (canvas, canvas) bool.
    """
    canvas = _check_int("canvas", canvas, 1)
    bar_width = _check_int("bar_width", bar_width, 0)
    bar_gap = _check_int("bar_gap", bar_gap, 1)
    bar_offset = _check_int("bar_offset", bar_offset, 0)
    line = (np.arange(canvas) - bar_offset) % (bar_width + bar_gap) < bar_width  # (canvas,)
    return line[:, None] | line[None, :]


def bouncing_positions(start, velocity, n_frames: int, max_position) -> np.ndarray:
    """Positions of an object bouncing elastically inside ``[0, max_position]`` on each axis.

    Introduced in the chapter *Occluded Moving MNIST and optimal inference*. The unbounded path
    ``start + velocity * t`` is folded back at the walls (a triangle wave of period
    ``2 * max_position``), which is exactly a reflection off each border.

    Parameters
    ----------
    start, velocity : array (..., 2)
        Start in ``[0, max_position]`` and velocity per frame, (y, x); ints or floats.
    n_frames : int
    max_position : number
        ``canvas - object_size``; 0 pins the object at 0.

    Returns
    -------
    np.ndarray
        (..., n_frames, 2), same kind as ``start + velocity``.
    """
    start, velocity = np.asarray(start), np.asarray(velocity)
    n_frames = _check_int("n_frames", n_frames, 1)
    if max_position < 0:
        raise ValueError(f"max_position must be >= 0 (the object must fit the canvas), got {max_position}")
    if start.size and (start.min() < 0 or start.max() > max_position):
        raise ValueError(f"start positions must lie in [0, {max_position}]")
    times = np.arange(n_frames)[:, None]  # (T, 1)
    path = start[..., None, :] + velocity[..., None, :] * times  # (..., T, 2)
    if max_position == 0:
        return np.zeros_like(path)
    period = 2 * max_position
    folded = np.mod(path, period)
    return np.where(folded <= max_position, folded, period - folded)


# --------------------------------------------------------------------------------------------------
# per-sequence randomness: a counter-based hash, so items agree alone and in batches
# --------------------------------------------------------------------------------------------------

def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def sequence_randoms(seed: int, epoch: int, indices, n_draws: int) -> np.ndarray:
    """(len(indices), n_draws) uint64 pseudo-random numbers, a pure function of (seed, epoch, index).

    Introduced in the chapter *Occluded Moving MNIST and optimal inference*: a counter-based generator
    (splitmix64), so sequence ``i`` is the same drawn alone or in any batch.
    """
    key = _splitmix64(np.array([seed], dtype=np.uint64))
    key = _splitmix64(key ^ np.uint64(epoch))
    per_item = _splitmix64(key ^ np.asarray(indices, dtype=np.uint64))  # (N,)
    draws = np.arange(1, n_draws + 1, dtype=np.uint64) * np.uint64(0xD1B54A32D192ED03)
    return _splitmix64(per_item[:, None] ^ draws[None, :])  # (N, n_draws)


# --------------------------------------------------------------------------------------------------
# rendering
# --------------------------------------------------------------------------------------------------

def render_occluded(ink, positions, occlusion, white_background: bool = True) -> dict:
    """Render digits at given positions behind the bars, with the optimal reconstruction.

    Introduced in the chapter *Occluded Moving MNIST and optimal inference*; the vectorised core of
    :func:`generate_occluded_sequences` and :class:`OccludedMovingMNIST`.

    Parameters
    ----------
    ink : array (N, s, s)
        Digit intensities in [0, 1] (see :func:`as_digit_images`).
    positions : int array (N, T, 2)
        Top-left corner (y, x) of the digit in each frame; the digit must fit the canvas.
    occlusion : bool array (H, W)
        The bars (see :func:`occlusion_grid`).
    white_background : bool
        True: dark digits (``1 - ink``) on white with white bars; False: ``ink`` on black, black bars.

    Returns
    -------
    dict of np.ndarray
        ``frames``, ``clean_frames`` (N, T, H, W) float32; ``visible_mask`` (N, T, H, W) bool (pixels of
        the digit's s x s square that no bar covers); ``optimal_reconstruction`` (N, s, s) float32 and
        ``optimal_seen_mask`` (N, s, s) bool.
    """
    ink = np.asarray(ink, dtype=np.float32)
    positions = np.asarray(positions)
    occlusion = np.asarray(occlusion, dtype=bool)
    n, size = len(ink), ink.shape[-1]
    if positions.ndim != 3 or positions.shape[0] != n or positions.shape[2] != 2:
        raise ValueError(f"positions must have shape (N={n}, T, 2), got {positions.shape}")
    height, width = occlusion.shape
    if positions.min() < 0 or positions[..., 0].max() > height - size or positions[..., 1].max() > width - size:
        raise ValueError(f"positions must keep the {size}x{size} digit inside the {height}x{width} canvas")
    background = 1.0 if white_background else 0.0
    drawn = 1.0 - ink if white_background else ink  # (N, s, s) the digit as it appears
    steps = positions.shape[1]
    offsets = np.arange(size)
    rows = positions[..., 0, None] + offsets  # (N, T, s)
    cols = positions[..., 1, None] + offsets  # (N, T, s)
    seq_idx = np.arange(n)[:, None, None, None]  # (N, 1, 1, 1)
    step_idx = np.arange(steps)[None, :, None, None]  # (1, T, 1, 1)
    where = (seq_idx, step_idx, rows[..., :, None], cols[..., None, :])  # indexes (N, T, s, s)

    clean = np.full((n, steps, height, width), background, dtype=np.float32)  # (N, T, H, W)
    clean[where] = drawn[:, None]
    footprint = np.zeros((n, steps, height, width), dtype=bool)
    footprint[where] = True
    frames = np.where(occlusion, np.float32(background), clean)
    hidden_in_digit = occlusion[rows[..., :, None], cols[..., None, :]]  # (N, T, s, s)
    seen = ~hidden_in_digit.all(axis=1)  # (N, s, s) visible in at least one frame
    return {
        "frames": frames,
        "clean_frames": clean,
        "visible_mask": footprint & ~occlusion,
        "optimal_reconstruction": np.where(seen, drawn, np.float32(background)).astype(np.float32),
        "optimal_seen_mask": seen,
    }


def optimal_reconstruction_from_frames(frames, positions, occlusion, digit_size: int,
                                       white_background: bool = True):
    """The optimal observer: accumulate, in digit coordinates, every pixel seen so far.

    Introduced in the chapter *Occluded Moving MNIST and optimal inference* (the bottom row of the
    paper's Figure 2). It uses only what an ideal observer knows: the occluded frames, the digit's
    positions and the bars. Pixels not yet seen hold the background value.

    Parameters
    ----------
    frames : array (T, H, W)
        Occluded frames of one sequence.
    positions : int array (T, 2)
    occlusion : bool array (H, W)
    digit_size : int

    Returns
    -------
    reconstruction : np.ndarray (T, s, s) float32
        After each frame ``t``, the reconstruction from frames ``0..t``.
    seen : np.ndarray (T, s, s) bool
    """
    frames, positions = np.asarray(frames, dtype=np.float32), np.asarray(positions)
    occlusion = np.asarray(occlusion, dtype=bool)
    if frames.ndim != 3 or positions.shape != (len(frames), 2) or occlusion.shape != frames.shape[1:]:
        raise ValueError(f"expected frames (T, H, W), positions (T, 2) and occlusion (H, W); got "
                         f"{frames.shape}, {positions.shape}, {occlusion.shape}")
    offsets = np.arange(_check_int("digit_size", digit_size, 1))
    rows = positions[:, 0, None, None] + offsets[:, None]  # (T, s, 1)
    cols = positions[:, 1, None, None] + offsets[None, :]  # (T, 1, s)
    observed = frames[np.arange(len(frames))[:, None, None], rows, cols]  # (T, s, s)
    visible = ~occlusion[rows, cols]  # (T, s, s)
    seen = np.logical_or.accumulate(visible, axis=0)
    # the value of a pixel does not change over time, so the last visible observation is as good as any
    last_seen = np.maximum.accumulate(np.where(visible, np.arange(len(frames))[:, None, None], -1), axis=0)
    value = np.take_along_axis(observed, np.maximum(last_seen, 0), axis=0)
    background = np.float32(1.0 if white_background else 0.0)
    return np.where(seen, value, background).astype(np.float32), seen


def generate_occluded_sequences(images, labels, n: int, n_frames: int = 5, canvas: int = 32,
                                digit_size: int = 14, bar_width: int = 4, bar_gap: int = 8,
                                bar_offset: int = 8, white_background: bool = True, seed: int = 0,
                                epoch: int = 0, digit_indices=None) -> dict:
    """Draw ``n`` Occluded Moving MNIST sequences (numpy, vectorised).

    Introduced in the chapter *Occluded Moving MNIST and optimal inference*.

    Parameters
    ----------
    images : array (N, 28, 28) or (N, 14, 14)
        uint8 0..255 or float [0, 1] (see :func:`as_digit_images`).
    labels : int array (N,)
    n : int
        Number of sequences.
    n_frames, canvas, digit_size, bar_width, bar_gap : int
        The paper's 5, 32, 14, 4, 8.
    bar_offset : int
        First bar's row/column (our reconstruction, see :func:`occlusion_grid`).
    white_background : bool
        Dark digits on white (default, our reconstruction) or light digits on black.
    seed, epoch : int
        Sequence ``i`` is a pure function of ``(seed, epoch, i)`` (its digit too, unless
        ``digit_indices`` is given).
    digit_indices : int array (n,), optional
        Which image each sequence shows; default draws one uniformly at random per sequence.

    Returns
    -------
    dict of np.ndarray, one entry per sequence along axis 0 (like a DataLoader batch)
        ``frames``, ``clean_frames`` (n, T, H, W) float32 in [0, 1]; ``visible_mask`` (n, T, H, W) bool;
        ``optimal_reconstruction`` (n, s, s) float32; ``optimal_seen_mask`` (n, s, s) bool;
        ``positions`` (n, T, 2) int64 (top-left corner, (y, x)); ``velocity`` (n, 2) int64 (initial,
        (dy, dx)); ``label`` (n,) int64; ``digit_index`` (n,) int64; plus ``occlusion_mask`` (H, W) bool,
        the one grid shared by all sequences.
    """
    n = _check_int("n", n, 1)
    seed = _check_int("seed", seed, 0)
    epoch = _check_int("epoch", epoch, 0)
    canvas = _check_int("canvas", canvas, 1)
    n_frames = _check_int("n_frames", n_frames, 1)
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"images must be a non-empty array of shape (N, S, S), got {images.shape}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({len(images)},), got {labels.dtype} {labels.shape}")
    if _check_int("digit_size", digit_size, 1) > canvas:
        raise ValueError(f"digit_size {digit_size} does not fit the {canvas}x{canvas} canvas")
    occlusion = occlusion_grid(canvas, bar_width, bar_gap, bar_offset)
    keys = np.arange(n)
    if digit_indices is None:
        digit_indices = sequence_randoms(seed, epoch, keys, 4)[:, 3] % np.uint64(len(images))
    digit_indices = np.asarray(digit_indices).astype(np.int64)
    if digit_indices.shape != (n,) or digit_indices.min() < 0 or digit_indices.max() >= len(images):
        raise ValueError(f"digit_indices must be {n} indices into the {len(images)} images")
    ink = as_digit_images(images[digit_indices], digit_size)  # (n, s, s) only the digits used
    out = _draw_sequences(ink, labels[digit_indices], keys, keys, occlusion, n_frames, seed, epoch,
                          white_background)
    out["digit_index"] = digit_indices
    return out


def _draw_sequences(ink, labels, keys, digit_indices, occlusion, n_frames, seed, epoch, white_background):
    """Sequences keyed by ``keys``: key ``k`` gets the start and velocity hashed from (seed, epoch, k)."""
    max_position = occlusion.shape[0] - ink.shape[-1]
    draws = sequence_randoms(seed, epoch, keys, 3)  # (n, 3)
    start = (draws[:, :2] % np.uint64(max_position + 1)).astype(np.int64)  # (n, 2)
    velocity = VELOCITIES[(draws[:, 2] % np.uint64(len(VELOCITIES))).astype(np.int64)]  # (n, 2)
    positions = bouncing_positions(start, velocity, n_frames, max_position)  # (n, T, 2)
    out = render_occluded(ink[digit_indices], positions, occlusion, white_background)
    out.update(positions=positions.astype(np.int64), velocity=velocity,
               label=np.asarray(labels)[digit_indices].astype(np.int64), digit_index=digit_indices,
               occlusion_mask=occlusion)
    return out


class OccludedMovingMNIST:
    """Occluded Moving MNIST as a map-style dataset: item ``i`` shows digit ``i`` of ``digits``.

    Introduced in the chapter *Occluded Moving MNIST and optimal inference*. It works with
    ``torch.utils.data.DataLoader`` (items are dicts of tensors, keys as in
    :func:`generate_occluded_sequences` minus ``occlusion_mask``, which is the attribute
    :attr:`occlusion_mask`). :meth:`get_batch` is the vectorised fast path: it returns exactly what a
    DataLoader would collate from the same items.

    Parameters
    ----------
    digits : MNISTDigits or tuple (images, labels)
    n_frames, canvas, digit_size, bar_width, bar_gap, bar_offset, white_background, seed
        As in :func:`generate_occluded_sequences`.
    fresh_each_epoch : bool
        False: every epoch sees the same trajectories. True: trajectories are drawn afresh for each
        epoch set by :meth:`set_epoch` (call it before iterating; with DataLoader workers, do not use
        ``persistent_workers``).
    """

    def __init__(self, digits, n_frames: int = 5, canvas: int = 32, digit_size: int = 14, bar_width: int = 4,
                 bar_gap: int = 8, bar_offset: int = 8, white_background: bool = True, seed: int = 0,
                 fresh_each_epoch: bool = False):
        images, labels = (digits.images, digits.labels) if hasattr(digits, "images") else digits
        self.ink = as_digit_images(images, digit_size)  # (N, s, s)
        self.labels = np.asarray(labels)
        if self.labels.shape != (len(self.ink),) or not np.issubdtype(self.labels.dtype, np.integer):
            raise ValueError(f"labels must be integers of shape ({len(self.ink)},), got {self.labels.shape}")
        if digit_size > _check_int("canvas", canvas, 1):
            raise ValueError(f"digit_size {digit_size} does not fit the {canvas}x{canvas} canvas")
        self.occlusion_mask = occlusion_grid(canvas, bar_width, bar_gap, bar_offset)  # (H, W)
        self.n_frames = _check_int("n_frames", n_frames, 1)
        self.seed = _check_int("seed", seed, 0)
        self.white_background = bool(white_background)
        self.fresh_each_epoch = bool(fresh_each_epoch)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose trajectories items show (only matters with ``fresh_each_epoch``)."""
        self.epoch = _check_int("epoch", epoch, 0)

    def __len__(self) -> int:
        return len(self.ink)

    def get_batch(self, indices) -> dict:
        """Items ``indices`` stacked along axis 0, as torch tensors (the vectorised fast path)."""
        import torch

        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size == 0 or indices.min() < -len(self) or indices.max() >= len(self):
            raise IndexError(f"indices must be non-empty and within [0, {len(self)})")
        indices = indices % len(self)
        epoch = self.epoch if self.fresh_each_epoch else 0
        out = _draw_sequences(self.ink, self.labels, indices, indices, self.occlusion_mask, self.n_frames,
                              self.seed, epoch, self.white_background)
        del out["occlusion_mask"]
        return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in out.items()}

    def __getitem__(self, index) -> dict:
        return {key: value[0] for key, value in self.get_batch([int(index)]).items()}

    def batches(self, batch_size: int, shuffle: bool = True, drop_last: bool = False):
        """Iterate over the dataset in batches from :meth:`get_batch` (shuffled by seed and epoch)."""
        batch_size = _check_int("batch_size", batch_size, 1)
        order = np.arange(len(self))
        if shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self))
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        for begin in range(0, stop, batch_size):
            yield self.get_batch(order[begin:begin + batch_size])
