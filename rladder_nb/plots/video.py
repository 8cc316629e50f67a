"""Figures of frame sequences: Occluded Moving MNIST (the paper's Figure 2) and grouped Moving MNIST.

* :func:`plot_occluded_sequence` -- introduced in *Occluded Moving MNIST and optimal inference*: the
  observed frames, the clean frames with the bars drawn over them, and the optimal temporal
  reconstruction after each frame (computed from the observations alone).
* :func:`plot_frames` -- introduced in *Grouping by motion on Moving MNIST*: a row of frames, optionally
  coloured by group (soft masks or an integer segmentation), as in the paper's Figure 7.
* :func:`plot_model_bars`, :func:`plot_per_frame_curves`, :func:`plot_class_probabilities`,
  :func:`plot_probe_sequence` (the paper's Figure 4), :func:`plot_state_channels` -- introduced in
  *Ablations and probing*: Table 1 beside the paper's, and what a probe reads from the RLadder.

All accept numpy arrays or torch tensors and return a ``matplotlib.figure.Figure``.
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


# --------------------------------------------------------------------------------------------------
# Ablations and probing (chapter 6): Table 1 beside the paper's, Figure 4
# --------------------------------------------------------------------------------------------------

def plot_model_bars(values: dict, xlabel: str, ax=None, log: bool = False, fmt: str = "{:.2f}",
                    colours: dict | None = None, title: str | None = None):
    """Horizontal bars, one per model, annotated with their values (missing values drawn as "-").

    Introduced in the chapter *Ablations and probing* (our Table 1 beside the paper's, and the training
    throughput of each model).

    Parameters
    ----------
    values : dict
        Model name -> number, or None for a metric the model does not have (the paper's "-").
    xlabel : str
    ax : matplotlib Axes, optional
    log : bool
        Logarithmic x axis.
    fmt : str
        Format of the annotations.
    colours : dict, optional
        Model name -> colour (default: grey, the RLadder in orange).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(values, dict) or not values:
        raise ValueError("values must be a non-empty dict {model name: number or None}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 0.45 * len(values) + 1.0), constrained_layout=True)
    names = list(values)
    present = [v for v in values.values() if v is not None and v > 0]
    right = max(present) if present else 1.0
    left = 10.0 ** np.floor(np.log10(min(present) / 2)) if (log and present) else 0.0  # a major tick in view
    for y, name in enumerate(names):
        value = values[name]
        colour = (colours or {}).get(name, "tab:orange" if name == "rladder" else "0.55")
        if value is None or (log and value <= 0):
            ax.text(left if log else right * 0.02, y, " -", va="center")
            continue
        ax.barh(y, value - left, left=left, color=colour)
        ax.text(value, y, " " + fmt.format(value), va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    if log:
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.set_xlim(left=left)
    ax.set_xlim(right=right * (3 if log else 1.25))
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return ax.figure


def plot_per_frame_curves(curves: dict, ylabel: str, levels: dict | None = None, ax=None, first_frame: int = 1,
                          title: str | None = None):
    """One line per model over frames (e.g. the classification error after each frame).

    Introduced in the chapter *Ablations and probing*.

    Parameters
    ----------
    curves : dict
        Model name -> values per frame.
    ylabel : str
    levels : dict, optional
        Name -> a constant drawn as a dotted horizontal line (e.g. the gold standard's error).
    ax : matplotlib Axes, optional
    first_frame : int
        Number of the first frame on the x axis.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not isinstance(curves, dict) or not curves:
        raise ValueError("curves must be a non-empty dict {model name: values per frame}")
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 3.8), constrained_layout=True)
    palette = [c for k, c in enumerate(plt.get_cmap("tab10").colors) if k != 1]  # orange is the RLadder's
    for k, (name, values) in enumerate(curves.items()):
        values = np.asarray(values, dtype=float)
        frames = np.arange(first_frame, first_frame + len(values))
        style = dict(lw=2.5, color="tab:orange") if name == "rladder" else dict(lw=1.3, color=palette[k % 9])
        ax.plot(frames, values, "o-", label=name, **style)
    for k, (name, value) in enumerate((levels or {}).items()):
        ax.axhline(value, ls=":", color=("0.2", "tab:purple", "tab:brown")[k % 3], label=name)
    ax.set_xlabel("frame")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title)
    return ax.figure


def plot_class_probabilities(probabilities, label: int | None = None, ax=None, min_probability: float = 0.1,
                             title: str | None = None):
    """Class probabilities after each frame, one line per class that ever exceeds ``min_probability``.

    Introduced in the chapter *Ablations and probing* (beside the paper's Figure 4: the network changing
    its mind).

    Parameters
    ----------
    probabilities : array (T, C)
    label : int, optional
        The true class, drawn thick.
    ax : matplotlib Axes, optional
    min_probability : float
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    probabilities = _numpy(probabilities).astype(float)
    if probabilities.ndim != 2:
        raise ValueError(f"probabilities must have shape (T, C), got {probabilities.shape}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.0), constrained_layout=True)
    frames = np.arange(1, len(probabilities) + 1)
    for c in np.flatnonzero(probabilities.max(0) >= min_probability):
        ax.plot(frames, probabilities[:, c], "o-", color=f"C{c}", lw=3 if c == label else 1.3,
                label=f"{c}" + (" (true)" if c == label else ""))
    ax.set(xlabel="frame", ylabel="probability", ylim=(-0.02, 1.02), xticks=frames)
    ax.legend(fontsize=7, title="class", title_fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def plot_probe_sequence(clean, frames, predicted=None, readout=None, probabilities=None, label: int | None = None,
                        time_shift: int = 1, panel_size: float = 1.45, title: str | None = None):
    """The paper's Figure 4 for one sequence: ground truth, observations, predictions, probe readout.

    Introduced in the chapter *Ablations and probing*.

    Parameters
    ----------
    clean : array (T, H, W)
        The unoccluded frames (never seen by the network).
    frames : array (T, H, W)
        The observed frames.
    predicted : array (T, H, W), optional
        The network's bottom output ``d_0(t)``: its prediction of frame ``t + 1``.
    readout : array (T, H, W), optional
        A probe's readout at each step (of frame ``t + time_shift``).
    probabilities : array (T, C), optional
        Class probabilities after each frame, drawn in an extra panel on the right.
    label : int, optional
    time_shift : int
        What the readout at ``t`` estimates, for the row's label.
    panel_size : float
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    clean, frames = _numpy(clean), _numpy(frames)
    if clean.ndim != 3 or frames.shape != clean.shape:
        raise ValueError(f"clean and frames must both be (T, H, W), got {clean.shape} and {frames.shape}")
    rows = [("ground truth\n(unoccluded)", clean), ("observed\nframes", frames)]
    if predicted is not None:
        rows.append(("predicted\nframe t+1", _numpy(predicted)))
    if readout is not None:
        rows.append((f"probe readout\n(frame t+{time_shift})" if time_shift else "probe readout", _numpy(readout)))
    for name, images in rows:
        if images.shape != clean.shape:
            raise ValueError(f"{name.splitlines()[0]} must have shape {clean.shape}, got {images.shape}")
    steps = len(clean)
    extra = probabilities is not None
    fig = plt.figure(figsize=(panel_size * (steps + 2.6 * extra) + 0.8, panel_size * len(rows) + 0.5),
                     constrained_layout=True)
    grid = fig.add_gridspec(len(rows), steps + extra, width_ratios=[1] * steps + [2.6] * extra)
    for r, (name, images) in enumerate(rows):
        for t in range(steps):
            ax = fig.add_subplot(grid[r, t])
            ax.imshow(np.clip(images[t], 0, 1), cmap="gray", vmin=0, vmax=1)
            _off(ax)
            if r == 0:
                ax.set_title(f"t = {t + 1}", fontsize=9)
            if t == 0:
                ax.set_ylabel(name, fontsize=8)
    if extra:
        plot_class_probabilities(probabilities, label, ax=fig.add_subplot(grid[:, steps]),
                                 title="class probabilities")
    if title:
        fig.suptitle(title)
    return fig


def plot_state_channels(state, ax=None, max_channels: int = 16, title: str | None = None):
    """The channels of one layer's state at one time step, tiled into one image (or a bar chart).

    Introduced in the chapter *Ablations and probing* (its explorer of internal states).

    Parameters
    ----------
    state : array (C, h, w) or (D,)
    ax : matplotlib Axes, optional
    max_channels : int
        At most this many channels are tiled (the first ones).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    state = _numpy(state).astype(float)
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.6), constrained_layout=True)
    if state.ndim == 1:
        ax.bar(np.arange(len(state)), state, color="0.4")
        ax.set(xlabel="unit", ylabel="activation")
    elif state.ndim == 3:
        shown = state[:max_channels]  # (c, h, w)
        c, h, w = shown.shape
        cols = int(np.ceil(np.sqrt(c)))
        nrows = int(np.ceil(c / cols))
        tiles = np.full((nrows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
        limit = np.abs(shown).max() or 1.0
        for k in range(c):
            i, j = divmod(k, cols)
            tiles[i * (h + 1):i * (h + 1) + h, j * (w + 1):j * (w + 1) + w] = shown[k]
        ax.imshow(tiles, cmap="RdBu_r", vmin=-limit, vmax=limit)
        _off(ax)
    else:
        raise ValueError(f"state must have shape (C, h, w) or (D,), got {state.shape}")
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure
