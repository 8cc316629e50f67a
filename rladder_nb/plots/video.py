"""Figures of frame sequences: Occluded Moving MNIST (the paper's Figure 2) and grouped Moving MNIST.

* :func:`plot_occluded_sequence` -- introduced in *Occluded Moving MNIST and optimal inference*: the
  observed frames, the clean frames with the bars drawn over them, and the optimal temporal
  reconstruction after each frame (computed from the observations alone).
* :func:`plot_frames` -- introduced in *Grouping by motion on Moving MNIST*: a row of frames, optionally
  coloured by group (soft masks or an integer segmentation), as in the paper's Figure 7.

Both accept numpy arrays or torch tensors and return a ``matplotlib.figure.Figure``.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb

from rladder_nb.data.occluded_mnist import occlusion_grid, optimal_reconstruction_from_frames


def _numpy(value):
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _off(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def plot_occluded_sequence(sample, index: int | None = None, occlusion_mask=None, bar_colour="tab:orange",
                           mark_unseen: bool = False, panel_size: float = 1.6, title: str | None = None):
    """The paper's Figure 2 for one Occluded Moving MNIST sequence.

    Introduced in the chapter *Occluded Moving MNIST and optimal inference*.

    Parameters
    ----------
    sample : dict
        One sequence (``frames`` (T, H, W), ``clean_frames``, ``positions`` (T, 2)), e.g. an item of
        :class:`rladder_nb.data.occluded_mnist.OccludedMovingMNIST`, or a batch with ``index``.
    index : int, optional
        Which sequence of a batch (``frames`` (N, T, H, W)) to draw.
    occlusion_mask : bool array (H, W), optional
        The bars; default ``sample['occlusion_mask']`` if present, else the paper's grid.
    bar_colour : matplotlib colour
        Colour of the bars in the middle row.
    mark_unseen : bool
        Tint digit pixels not seen so far in the bottom row (the paper leaves them white).
    panel_size : float
        Inches per panel.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Three rows: observed frames; frames with the occlusion visualised; optimal temporal
        reconstruction after frames 1..t.
    """
    if not isinstance(sample, dict) or not {"frames", "clean_frames", "positions"} <= set(sample):
        raise TypeError("sample must be a dict with 'frames', 'clean_frames' and 'positions' "
                        "(an item of OccludedMovingMNIST or generate_occluded_sequences' output)")
    frames, clean, positions = (_numpy(sample[k]) for k in ("frames", "clean_frames", "positions"))
    if frames.ndim == 4:
        if index is None:
            raise ValueError(f"sample holds a batch of {len(frames)} sequences: pass index=...")
        frames, clean, positions = frames[index], clean[index], positions[index]
    if frames.ndim != 3 or clean.shape != frames.shape or positions.shape != (len(frames), 2):
        raise ValueError(f"expected frames (T, H, W), clean_frames alike and positions (T, 2); got "
                         f"{frames.shape}, {clean.shape}, {positions.shape}")
    if occlusion_mask is None:
        occlusion_mask = sample.get("occlusion_mask")
    occlusion = (occlusion_grid(frames.shape[-1]) if occlusion_mask is None
                 else _numpy(occlusion_mask).astype(bool))
    if occlusion.shape != frames.shape[1:]:
        raise ValueError(f"occlusion_mask must have shape {frames.shape[1:]}, got {occlusion.shape}")
    digit_size = _numpy(sample["optimal_reconstruction"]).shape[-1] if "optimal_reconstruction" in sample else 14
    white = bool(frames[:, occlusion].mean() > 0.5) if occlusion.any() else True
    recon, seen = optimal_reconstruction_from_frames(frames, positions, occlusion, digit_size, white)

    steps = len(frames)
    fig, axes = plt.subplots(3, steps, figsize=(panel_size * steps, panel_size * 3.2), squeeze=False,
                             constrained_layout=True)
    overlay = np.zeros(occlusion.shape + (4,))
    overlay[occlusion] = (*to_rgb(bar_colour), 0.55)
    for t in range(steps):
        axes[0, t].imshow(frames[t], cmap="gray", vmin=0, vmax=1)
        axes[0, t].set_title(f"t = {t + 1}")
        axes[1, t].imshow(clean[t], cmap="gray", vmin=0, vmax=1)
        axes[1, t].imshow(overlay)
        shown = np.repeat(recon[t][..., None], 3, axis=-1)  # (s, s, 3)
        if mark_unseen:
            shown[~seen[t]] = to_rgb("lightsteelblue")
        axes[2, t].imshow(shown, vmin=0, vmax=1)
        for row in range(3):
            _off(axes[row, t])
    for row, name in enumerate(("observed frames", "frames with\nocclusion visualised",
                                "optimal temporal\nreconstruction")):
        axes[row, 0].set_ylabel(name)
    if title:
        fig.suptitle(title)
    return fig


def group_colours(n_groups: int) -> np.ndarray:
    """(n_groups, 3) RGB colours, one per group (matplotlib's ``tab10`` cycled).

    Introduced in the chapter *Grouping by motion on Moving MNIST* (used by :func:`plot_frames`).
    """
    cycle = plt.get_cmap("tab10").colors
    return np.array([cycle[k % len(cycle)] for k in range(n_groups)])


def plot_frames(frames, masks=None, colours=None, time_offset: int = 0, ncols: int | None = None,
                panel_size: float = 1.4, title: str | None = None):
    """A sequence of frames in a row, optionally coloured by group.

    Introduced in the chapter *Grouping by motion on Moving MNIST* (the style of the paper's Figure 7).

    Parameters
    ----------
    frames : array (T, H, W)
        Intensities in [0, 1].
    masks : array (T, K, H, W) or int array (T, H, W), optional
        Soft group masks (summing to one over K) or an integer segmentation; each pixel is drawn in
        ``sum_k masks_k * colour_k``, scaled by its intensity (so a black background stays black).
    colours : array (K, 3), optional
        RGB per group; default :func:`group_colours`.
    time_offset : int
        Number of the first frame in the panel titles.
    ncols : int, optional
        Panels per row (default: all in one row).
    panel_size : float
        Inches per panel.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    frames = _numpy(frames).astype(np.float32)
    if frames.ndim != 3:
        raise ValueError(f"frames must have shape (T, H, W), got {frames.shape}")
    if frames.size and (frames.min() < 0 or frames.max() > 1):
        raise ValueError("frames must lie in [0, 1]")
    if masks is None:
        images = np.repeat(frames[..., None], 3, axis=-1)  # (T, H, W, 3)
    else:
        masks = _numpy(masks)
        if masks.shape == frames.shape and np.issubdtype(masks.dtype, np.integer):
            masks = np.moveaxis(np.eye(int(masks.max()) + 1, dtype=np.float32)[masks], -1, 1)  # one-hot
        if masks.ndim != 4 or masks.shape[0] != frames.shape[0] or masks.shape[2:] != frames.shape[1:]:
            raise ValueError(f"masks must have shape (T, K, H, W) or be an integer (T, H, W) segmentation "
                             f"matching frames {frames.shape}; got {masks.shape}")
        colours = group_colours(masks.shape[1]) if colours is None else np.asarray(colours, dtype=float)
        if colours.shape != (masks.shape[1], 3):
            raise ValueError(f"colours must have shape ({masks.shape[1]}, 3), got {colours.shape}")
        tint = np.einsum("tkhw,kc->thwc", masks.astype(np.float32), colours)  # (T, H, W, 3)
        images = np.clip(tint * frames[..., None], 0, 1)
    steps = len(frames)
    ncols = ncols or steps
    nrows = (steps + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size * ncols, panel_size * nrows + 0.4),
                             squeeze=False, constrained_layout=True)
    for t, ax in enumerate(axes.flat):
        if t < steps:
            ax.imshow(images[t])
            ax.set_title(f"{t + time_offset}", fontsize=9)
            _off(ax)
        else:
            ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig
