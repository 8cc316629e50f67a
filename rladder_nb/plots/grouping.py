"""Figures of perceptual grouping: textured-MNIST examples, reconstructions per group, segmentations.

Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).

* :func:`colorize_groups` turns soft masks (K, H, W) into an RGB image, each group in its own colour
  (optionally shaded by the input image: the paper's Figure 6d "original image coloured using the
  found grouping").
* :func:`plot_textured_examples` — the paper's Figure 6a as a grid: inputs above their true masks.
* :func:`plot_grouping` — the paper's Figure 6b-d: per example the input, each group's
  reconstruction and the coloured segmentation (plus the true one if given).
* :func:`plot_segmentation_over_iterations` — the coloured segmentation after each Tagger iteration,
  one row per example: does inference sharpen the grouping?
* :func:`plot_iteration_curves` — a metric after each iteration (AMI, error), ours as lines, the
  paper's as open markers.
* :func:`plot_sequence_grouping` — the paper's Figure 7: input frames (then the true future) above the
  model's next-step predictions and generated frames, coloured by group.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import to_rgb


def _as_numpy(a):
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)


def group_colors(n_groups: int) -> np.ndarray:
    """(K, 3) RGB colours in [0, 1], one per group (matplotlib's tab10, cycled)."""
    if not isinstance(n_groups, (int, np.integer)) or n_groups < 1:
        raise ValueError(f"n_groups must be a positive integer, got {n_groups!r}")
    palette = [to_rgb(c) for c in plt.get_cmap("tab10").colors]
    return np.array([palette[k % len(palette)] for k in range(n_groups)])


def colorize_groups(masks, image=None, colors=None, shade=0.65) -> np.ndarray:
    """RGB image (H, W, 3) = sum_k masks[k] * colour_k, optionally shaded by a grey image.

    Parameters
    ----------
    masks : (K, H, W) non-negative, typically summing to one per pixel.
    image : (H, W) or (1, H, W) in [0, 1], or None. With an image, the colour is multiplied by
        ``1 - shade + shade * image`` so that the texture stays visible.
    colors : (K, 3) or None for :func:`group_colors`.
    shade : float in [0, 1].

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    masks = _as_numpy(masks)
    if masks.ndim != 3 or not np.isfinite(masks).all() or masks.min() < 0:
        raise ValueError(f"masks must be non-negative (K, H, W), got shape {masks.shape}")
    colors = group_colors(masks.shape[0]) if colors is None else _as_numpy(colors)
    if colors.shape != (masks.shape[0], 3):
        raise ValueError(f"colors must have shape ({masks.shape[0]}, 3), got {colors.shape}")
    rgb = np.einsum("khw,kc->hwc", masks, colors)                  # (H, W, 3)
    if image is not None:
        image = _as_numpy(image)
        if image.size != masks.shape[1] * masks.shape[2]:
            raise ValueError(f"image must have {masks.shape[1]}x{masks.shape[2]} pixels like the masks, "
                             f"got shape {image.shape}")
        rgb = rgb * (1.0 - shade + shade * image.reshape(masks.shape[1:]))[..., None]
    return np.clip(rgb, 0.0, 1.0)


def _images_2d(images, name):
    images = _as_numpy(images)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3:
        raise ValueError(f"{name} must be (N, H, W) or (N, 1, H, W), got shape {images.shape}")
    return images                                                  # (N, H, W)


def _masks(masks, name, n, hw):
    masks = _as_numpy(masks)
    if masks.ndim != 4 or masks.shape[0] < n or masks.shape[2:] != hw:
        raise ValueError(f"{name} must be (N, K, H, W) with at least {n} images of {hw[0]}x{hw[1]} pixels, "
                         f"got shape {masks.shape}")
    return masks


def _count(n, available):
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    return min(int(n), available)


def _blank(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def plot_textured_examples(images, masks, labels=None, n=8, ncols=None, panel_size=1.4, title=None):
    """A grid of textured-MNIST examples, each input above its coloured ground-truth masks.

    Reproduces the paper's Figure 6a (one example there; a grid here).

    Parameters
    ----------
    images : (N, 1, H, W) or (N, H, W) in [0, 1].
    masks : (N, K, H, W) ground-truth masks.
    labels : (N,) or None — shown as titles.
    n : int — how many examples; ncols : per row (default min(n, 8)).

    Returns
    -------
    matplotlib Figure.

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    images = _images_2d(images, "images")
    n = _count(n, len(images))
    masks = _masks(masks, "masks", n, images.shape[1:])
    ncols = min(n, 8) if ncols is None else int(ncols)
    if ncols < 1:
        raise ValueError(f"ncols must be positive, got {ncols}")
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(2 * nrows, ncols, figsize=(panel_size * ncols, 2 * panel_size * nrows + 0.4),
                             squeeze=False)
    for i in range(nrows * ncols):
        top, bottom = axes[2 * (i // ncols), i % ncols], axes[2 * (i // ncols) + 1, i % ncols]
        if i >= n:
            top.axis("off")
            bottom.axis("off")
            continue
        top.imshow(images[i], cmap="gray", vmin=0, vmax=1)
        bottom.imshow(colorize_groups(masks[i]))
        if labels is not None:
            top.set_title(f"label {int(np.asarray(labels)[i])}", fontsize=8)
        _blank(top)
        _blank(bottom)
    axes[0, 0].set_ylabel("input", fontsize=8)
    axes[1, 0].set_ylabel("true masks", fontsize=8)
    fig.suptitle(title or "Textured MNIST: inputs and ground-truth groups", fontsize=10)
    fig.tight_layout()
    return fig


def plot_grouping(images, masks_pred, recon=None, n=4, true_masks=None, panel_size=1.6, title=None):
    """Each example's input, each group's reconstruction and the coloured segmentation.

    The paper's Figure 6b-d: (b, c) the reconstructions of the groups that learned the background and
    the digit, (d) the input coloured by the found grouping.

    Parameters
    ----------
    images : (N, 1, H, W) or (N, H, W) in [0, 1].
    masks_pred : (N, K, H, W) predicted soft masks (e.g. Tagger's pi).
    recon : (N, K, 1, H, W), (N, K, H, W) or None — each group's reconstruction.
    n : int — how many examples (rows).
    true_masks : (N, K_true, H, W) or None — adds a column with the true segmentation.

    Returns
    -------
    matplotlib Figure.

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    images = _images_2d(images, "images")
    n = _count(n, len(images))
    hw = images.shape[1:]
    masks_pred = _masks(masks_pred, "masks_pred", n, hw)
    n_groups = masks_pred.shape[1]
    if recon is not None:
        recon = _as_numpy(recon)
        if recon.ndim == 5 and recon.shape[2] == 1:
            recon = recon[:, :, 0]
        if recon.shape[:2] != masks_pred.shape[:2] or recon.shape[2:] != hw:
            raise ValueError(f"recon must be (N, K, H, W) or (N, K, 1, H, W) matching masks_pred "
                             f"{masks_pred.shape}, got shape {recon.shape}")
    if true_masks is not None:
        true_masks = _masks(true_masks, "true_masks", n, hw)
    columns = ["input"] + ([f"group {k}" for k in range(n_groups)] if recon is not None else []) \
        + ["segmentation"] + (["true groups"] if true_masks is not None else [])
    colors = group_colors(n_groups)
    fig, axes = plt.subplots(n, len(columns), figsize=(panel_size * len(columns), panel_size * n + 0.4),
                             squeeze=False)
    for i in range(n):
        row = iter(axes[i])
        next(row).imshow(images[i], cmap="gray", vmin=0, vmax=1)
        if recon is not None:
            for k in range(n_groups):
                ax = next(row)
                ax.imshow(np.clip(recon[i, k], 0, 1), cmap="gray", vmin=0, vmax=1)
                for spine in ax.spines.values():                  # frame in the group's colour
                    spine.set_edgecolor(colors[k])
                    spine.set_linewidth(3)
        next(row).imshow(colorize_groups(masks_pred[i], images[i], colors))
        if true_masks is not None:
            next(row).imshow(colorize_groups(true_masks[i], images[i]))
        for ax in axes[i]:
            _blank(ax)
    for ax, name in zip(axes[0], columns):
        ax.set_title(name, fontsize=8)
    fig.suptitle(title or "Grouping: reconstructions per group and segmentation", fontsize=10)
    fig.tight_layout()
    return fig


def plot_segmentation_over_iterations(images, masks, n=4, true_masks=None, panel_size=1.5, title=None):
    """The coloured segmentation after every iteration, one row per example.

    Parameters
    ----------
    images : (N, 1, H, W) or (N, H, W) in [0, 1] — shades the colours.
    masks : (N, I, K, H, W) predicted soft masks after each of the I iterations.
    n : int — how many examples (rows).
    true_masks : (N, K_true, H, W) or None — adds a last column with the true segmentation.

    Returns
    -------
    matplotlib Figure with an (n, I [+ 1]) grid of axes.

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    images = _images_2d(images, "images")
    n = _count(n, len(images))
    masks = _as_numpy(masks)
    if masks.ndim != 5 or masks.shape[0] < n or masks.shape[3:] != images.shape[1:]:
        raise ValueError(f"masks must be (N, I, K, H, W) with at least {n} images of "
                         f"{images.shape[1]}x{images.shape[2]} pixels, got shape {masks.shape}")
    if true_masks is not None:
        true_masks = _masks(true_masks, "true_masks", n, images.shape[1:])
    n_iterations = masks.shape[1]
    ncols = n_iterations + (true_masks is not None)
    fig, axes = plt.subplots(n, ncols, figsize=(panel_size * ncols, panel_size * n + 0.4), squeeze=False)
    for i in range(n):
        for it in range(n_iterations):
            axes[i, it].imshow(colorize_groups(masks[i, it], images[i]))
        if true_masks is not None:
            axes[i, -1].imshow(colorize_groups(true_masks[i], images[i]))
        for ax in axes[i]:
            _blank(ax)
    for it in range(n_iterations):
        axes[0, it].set_title(f"iteration {it + 1}", fontsize=8)
    if true_masks is not None:
        axes[0, -1].set_title("true groups", fontsize=8)
    fig.suptitle(title or "Segmentation after each iteration", fontsize=10)
    fig.tight_layout()
    return fig


def plot_iteration_curves(ours, paper=None, ylabel="AMI", ax=None, title=None, colors=None):
    """A metric after each iteration: ours as lines with dots, the paper's as open markers.

    Parameters
    ----------
    ours : dict label -> sequence of values, one per iteration (a single value: a horizontal line,
        for models without iterations such as a ConvNet).
    paper : dict label -> sequence of values (or None entries) or None — drawn in the same colour as
        ``ours`` for labels they share.
    ylabel : str; ax : matplotlib Axes or None (a new figure).
    colors : dict label -> matplotlib colour or None — fixes each model's colour across several axes
        (default: tab10 in the order the labels appear).

    Returns
    -------
    matplotlib Axes.

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    if not isinstance(ours, dict) or not ours:
        raise ValueError("ours must be a non-empty dict label -> values per iteration")
    if paper is not None and not isinstance(paper, dict):
        raise TypeError(f"paper must be a dict label -> values or None, got {type(paper).__name__}")
    if colors is not None and not isinstance(colors, dict):
        raise TypeError(f"colors must be a dict label -> colour or None, got {type(colors).__name__}")
    curves = {}
    for name, values in [("ours", ours), ("paper", paper or {})]:
        for label, v in values.items():
            v = np.atleast_1d(np.asarray([np.nan if x is None else x for x in np.atleast_1d(v)], dtype=float))
            if v.ndim != 1 or v.size == 0:
                raise ValueError(f"{name}[{label!r}] must be a non-empty sequence of numbers, got {v.shape}")
            curves[name, label] = v
    n_iterations = max(v.size for v in curves.values())
    if ax is None:
        _, ax = plt.subplots(figsize=(4.5, 3.2), constrained_layout=True)
    colors = {**{label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(dict.fromkeys(
        [label for _, label in curves]))}, **(colors or {})}
    steps = np.arange(1, n_iterations + 1)
    for (name, label), v in curves.items():
        if name == "ours":
            if v.size == 1:
                ax.axhline(v[0], color=colors[label], lw=1.5, label=f"{label} (ours)")
            else:
                ax.plot(steps[:v.size], v, "o-", color=colors[label], label=f"{label} (ours)")
        else:
            x = steps[-1:] if v.size == 1 else steps[:v.size]
            ax.plot(x, v, "s--", mfc="none", color=colors[label], alpha=0.8, label=f"{label} (paper)")
    ax.set_xticks(steps)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    return ax


def plot_sequence_grouping(frames, pred_masks, predictions, n_observed, true_masks=None, panel_size=1.1,
                           title=None):
    """The paper's Figure 7 for one sequence: frames above the model's predictions coloured by group.

    Row 1: frames ``0 .. n_observed - 1`` (the input) then the true future. Row 2: prediction ``p`` is of
    frame ``p + 1`` (next-step predictions of the observed frames ``1 .. n_observed - 1``, then the future
    frames, generated), coloured by the predicted groups. Row 3 (with ``true_masks``): the true groups.

    Parameters
    ----------
    frames : (F, H, W) in [0, 1] — the true sequence.
    pred_masks : (P, K, H, W) — predicted masks of frames ``1 .. P`` (P <= F - 1).
    predictions : (P, H, W) — predicted frames ``1 .. P``.
    n_observed : int in 1..F — how many frames the model saw (the rest are generated).
    true_masks : (F, K_true, H, W) or None.

    Returns
    -------
    matplotlib Figure with a (2 or 3, F) grid of axes.

    Introduced in *Grouping by motion on Moving MNIST* (Part III).
    """
    frames = _as_numpy(frames)
    if frames.ndim != 3:
        raise ValueError(f"frames must be (F, H, W), got shape {frames.shape}")
    n_frames, hw = frames.shape[0], frames.shape[1:]
    pred_masks, predictions = _as_numpy(pred_masks), _as_numpy(predictions)
    if pred_masks.ndim != 4 or pred_masks.shape[2:] != hw or not 1 <= pred_masks.shape[0] <= n_frames - 1:
        raise ValueError(f"pred_masks must be (P, K, H, W) with 1 <= P <= {n_frames - 1} and {hw[0]}x{hw[1]} "
                         f"pixels, got shape {pred_masks.shape}")
    if predictions.shape != (pred_masks.shape[0], *hw):
        raise ValueError(f"predictions must be (P, H, W) = {(pred_masks.shape[0], *hw)}, got {predictions.shape}")
    if not isinstance(n_observed, (int, np.integer)) or not 1 <= n_observed <= n_frames:
        raise ValueError(f"n_observed must be an integer in 1..{n_frames}, got {n_observed!r}")
    if true_masks is not None:
        true_masks = _as_numpy(true_masks)
        if true_masks.ndim != 4 or true_masks.shape[0] != n_frames or true_masks.shape[2:] != hw:
            raise ValueError(f"true_masks must be (F, K_true, H, W) with F = {n_frames}, got {true_masks.shape}")
    nrows = 2 + (true_masks is not None)
    fig, axes = plt.subplots(nrows, n_frames, figsize=(panel_size * n_frames, panel_size * nrows + 0.5),
                             squeeze=False)
    for t in range(n_frames):
        axes[0, t].imshow(frames[t], cmap="gray", vmin=0, vmax=1)
        axes[0, t].set_title(f"{'frame' if t < n_observed else 'future'} {t}", fontsize=7,
                             color="black" if t < n_observed else "tab:red")
        if 1 <= t <= pred_masks.shape[0]:
            shade = np.clip(predictions[t - 1], 0, 1)
            axes[1, t].imshow(colorize_groups(pred_masks[t - 1], shade, shade=0.8))
            axes[1, t].set_title("predicted" if t < n_observed else "generated", fontsize=7,
                                 color="black" if t < n_observed else "tab:red")
        else:
            axes[1, t].axis("off")
        if true_masks is not None:
            axes[2, t].imshow(colorize_groups(true_masks[t], frames[t], shade=0.8))
        for row in axes[:, t]:
            _blank(row)
    axes[0, 0].set_ylabel("input / truth", fontsize=7)
    axes[1, 1].set_ylabel("model", fontsize=7)
    if true_masks is not None:
        axes[2, 0].set_ylabel("true groups", fontsize=7)
    fig.suptitle(title or "Next-step predictions, then generated frames, coloured by group", fontsize=10)
    fig.tight_layout()
    return fig
