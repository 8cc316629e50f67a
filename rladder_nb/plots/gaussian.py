"""Figures of Part I: message passing in the static and the temporal hierarchical Gaussian models.

* chapter 2 (*Message passing in a static hierarchical Gaussian model*): :func:`plot_convergence`,
  :func:`plot_iterations_needed`, :func:`plot_rladder_mapping` (the messages drawn on the RLadder's
  computation graph, the paper's Figure 1a), :func:`draw_static_estimates`;
* chapter 3 (*Message passing in time*): :func:`plot_temporal_sample`, :func:`plot_next_step_prediction`,
  :func:`draw_message_graph` (the paper's Figure 1c), :func:`draw_message_contributions` and
  :func:`temporal_message_figure`, which the chapter's widget and animation redraw.

Colours follow the paper's Figure 1a: encoder / bottom-up red, decoder / top-down blue,
decoder-to-encoder green; in time, past-to-future is green too (it is what the recurrent links carry).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

COLORS = {"bottom-up": "tab:red", "top-down": "tab:blue", "past-to-future": "tab:green",
          "lateral": "0.25", "prediction": "tab:purple"}
MESSAGE_KINDS = ("bottom-up", "top-down", "past-to-future")
_OFF = "0.85"


def _check_show(show) -> tuple:
    show = (show,) if isinstance(show, str) else tuple(show)
    unknown = set(show) - set(MESSAGE_KINDS)
    if unknown:
        raise ValueError(f"unknown message kinds {sorted(unknown)}: expected a subset of {MESSAGE_KINDS}")
    return show


def _arrow(ax, start, end, color, text=None, text_offset=(0, 0), style="-|>", ls="-", lw=1.8, fontsize=9):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=14, color=color, lw=lw,
                                 linestyle=ls, shrinkA=2, shrinkB=2, zorder=2))
    if text:
        mid = ((start[0] + end[0]) / 2 + text_offset[0], (start[1] + end[1]) / 2 + text_offset[1])
        ax.text(*mid, text, color=color, fontsize=fontsize, ha="center", va="center", zorder=3,
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.85))


# ------------------------------------------------------------------------------------- chapter 2


def plot_convergence(errors: dict, rates: dict | None = None, tol: float | None = None, ax=None):
    """Relative error against iteration on a log scale, one line per schedule (chapter 2).

    ``errors`` maps a label to an array of relative errors (index 0 = initial estimate); ``rates`` maps
    the same labels to the predicted per-iteration factor, drawn as a dashed ``error_1 * rate^(t-1)`` line.
    """
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    for i, (label, err) in enumerate(errors.items()):
        err = np.asarray(err)
        t = np.arange(len(err))
        color = f"C{i}"
        ax.semilogy(t, np.maximum(err, 1e-17), "o-", ms=3, color=color, label=label)
        if rates and label in rates and len(err) > 1:
            ax.semilogy(t[1:], err[1] * rates[label] ** (t[1:] - 1.0), "--", color=color, alpha=0.6,
                        label=f"predicted rate {rates[label]:.3f}")
    if tol is not None:
        ax.axhline(tol, color="0.5", lw=0.8, ls=":")
        ax.text(0, tol, f"{tol:g}", va="bottom", ha="left", color="0.4", fontsize=8)
    ax.set(xlabel="iteration", ylabel="relative error of the posterior mean")
    ax.legend(fontsize=8)
    return fig


def plot_iterations_needed(noise_values, iterations: dict, xlabel: str, ax=None):
    """Iterations needed to shrink the error by a fixed factor, against a noise level (chapter 2)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.4), constrained_layout=True)
    for label, its in iterations.items():
        ax.loglog(noise_values, its, "o-", label=label)
    ax.set(xlabel=xlabel, ylabel="iterations needed")
    ax.legend(fontsize=8)
    return fig


def _box(ax, center, text, color, width=1.5, height=0.8):
    x, y = center
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height, boxstyle="round,pad=0.05",
                                fc="white", ec=color, lw=2, zorder=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=9, zorder=3)


def plot_rladder_mapping():
    """Our derivation's messages drawn on the RLadder computation graph of two iterations (chapter 2).

    Red: encoder (bottom-up messages); blue: decoder (top-down predictions and the lateral combination);
    grey: lateral links; green: decoder-to-encoder links from iteration ``t-1`` to ``t``.
    """
    fig, ax = plt.subplots(figsize=(9.5, 5.2), constrained_layout=True)
    rows = {"x": 0.0, "y": 2.0, "z": 4.0}
    red, blue, green, grey = COLORS["bottom-up"], COLORS["top-down"], COLORS["past-to-future"], COLORS["lateral"]
    for k, (t, label) in enumerate(((-1, "t-1"), (0, "t"))):
        ex, dx_ = 4.6 * k, 4.6 * k + 2.4
        enc = {"x": r"$x$", "y": "encoder $y$",
               "z": r"encoder $z$" + "\n" + r"$\hat z_{" + label + "}$"}
        dec = {"x": r"$B\hat y_{" + label + "}$", "y": r"decoder $y$" + "\n" + r"$\hat y_{" + label + "}$",
               "z": r"decoder $z$"}
        for level, yy in rows.items():
            _box(ax, (ex, yy), enc[level], red)
            _box(ax, (dx_, yy), dec[level], blue)
        ax.text((ex + dx_) / 2, 5.1, f"iteration {label}", ha="center", fontsize=11)
        _arrow(ax, (ex, 0.45), (ex, 1.55), red, r"$h=B^\top\Sigma_x^{-1}x$", (0.0, 0))
        _arrow(ax, (ex, 2.45), (ex, 3.55), red,
               r"$A^\top\Sigma_y^{-1}\hat y_{" + ("t-2" if t else "t-1") + "}$", (0.0, 0))
        _arrow(ax, (dx_, 3.55), (dx_, 2.45), blue, r"$A\hat z_{" + label + "}$", (0.0, 0))
        _arrow(ax, (dx_, 1.55), (dx_, 0.45), blue, "reconstruction", (0.0, 0), fontsize=8)
        _arrow(ax, (ex + 0.78, 2.0), (dx_ - 0.78, 2.0), grey, "$h$", (0, 0.22))
        _arrow(ax, (ex + 0.78, 4.0), (dx_ - 0.78, 4.0), grey, r"$\hat z$", (0, 0.22))
    # decoder-to-encoder: the previous iteration's estimate of y enters the encoder
    _arrow(ax, (2.4 + 0.78, 1.8), (4.6 - 0.78, 1.8), green, r"$\hat y_{t-1}$", (0, -0.28), lw=2.4)
    _arrow(ax, (2.4 + 0.78, 3.8), (4.6 - 0.78, 3.8), green, "not needed", (0, -0.25), lw=1.0, ls=":", fontsize=7)
    ax.text(-0.9, -0.9,
            r"decoder $y$: $\hat y_t = (P_y)^{-1}\,(h + \Sigma_y^{-1} A\hat z_t)$ (lateral combination);"
            r"   encoder $z$: $\hat z_t = (P_z)^{-1} A^\top\Sigma_y^{-1}\hat y_{t-1}$ (bottom-up + prior)",
            fontsize=9, ha="left")
    handles = [plt.Line2D([], [], color=c, lw=2, label=lab) for c, lab in
               ((red, "encoder: bottom-up messages"), (blue, "decoder: top-down messages, lateral combination"),
                (grey, "lateral"), (green, "decoder-to-encoder"))]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=4, fontsize=9, frameon=False)
    ax.set(xlim=(-0.95, 8.0), ylim=(-1.2, 5.5))
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


def draw_static_estimates(ax, sample: dict, posterior: dict, history: list, iteration: int, index: int = 0):
    """True latents, exact posterior mean (+-2 sd) and the message-passing estimate at ``iteration``.

    Chapter 2's widget and its small multiples. ``sample`` from ``StaticGaussianModel.sample``,
    ``posterior`` from ``.posterior`` and ``history`` from ``message_passing`` (all batched).
    """
    if not 0 <= iteration < len(history):
        raise ValueError(f"iteration must lie in [0, {len(history) - 1}], got {iteration}")
    if not 0 <= index < len(sample["x"]):
        raise ValueError(f"index must lie in [0, {len(sample['x']) - 1}], got {index}")
    dy, dz = sample["y"].shape[1], sample["z"].shape[1]
    pos = np.arange(dy + dz) + np.r_[np.zeros(dy), np.ones(dz)]             # a gap between the layers
    truth = np.r_[sample["y"][index], sample["z"][index]]
    exact = np.r_[posterior["y_mean"][index], posterior["z_mean"][index]]
    sd = np.sqrt(np.diag(posterior["cov"]))
    est = np.r_[history[iteration]["y_mean"][index], history[iteration]["z_mean"][index]]
    ax.errorbar(pos, exact, yerr=2 * sd, fmt="o", mfc="white", color="tab:blue", capsize=3,
                label="exact posterior mean $\\pm 2$ sd")
    ax.plot(pos, truth, "kx", ms=8, mew=2, label="true value")
    ax.plot(pos + 0.18, est, "o", color="tab:orange", label="message-passing estimate")
    ax.axvline(dy, color="0.8", lw=1)
    ax.set_xticks(pos, [f"$y_{i + 1}$" for i in range(dy)] + [f"$z_{i + 1}$" for i in range(dz)])
    ax.axhline(0, color="0.85", lw=0.8, zorder=0)
    ax.set_title(f"iteration {iteration}", fontsize=10)


# ------------------------------------------------------------------------------------- chapter 3


def plot_temporal_sample(sample: dict, index: int = 0, max_dims: int = 3):
    """One sampled sequence: the top level ``z``, the middle level ``y`` and the observations ``x`` (chapter 3)."""
    fig, axes = plt.subplots(3, 1, figsize=(8, 5.5), sharex=True, constrained_layout=True)
    for ax, key, name in zip(axes, ("z", "y", "x"), ("top level $z_t$ (slow)", "middle level $y_t$",
                                                     "observations $x_t$")):
        values = sample[key][index]
        for d in range(min(max_dims, values.shape[1])):
            ax.plot(values[:, d], "-" if key != "x" else ".-", lw=1.3, ms=4, label=f"{key}[{d}]")
        ax.set_ylabel(name, fontsize=9)
        ax.legend(fontsize=7, loc="upper right", ncol=max_dims)
    axes[-1].set_xlabel("time step $t$")
    return fig


def plot_next_step_prediction(x, kf: dict, index: int = 0, dims=(0, 1), oracle=None):
    """Observed ``x_t`` with the filter's prediction ``E[x_t | x_<t]`` and its +-2 sd band (chapter 3).

    ``x`` is ``(n, T, dx)``; ``kf`` the batched output of ``kalman_filter``; ``oracle`` an optional
    ``(n, T, dx)`` prediction that knows the true latents, drawn for comparison.
    """
    dims = list(dims)
    fig, axes = plt.subplots(len(dims), 1, figsize=(8, 2.4 * len(dims)), sharex=True, squeeze=False,
                             constrained_layout=True)
    t = np.arange(x.shape[1])
    for ax, d in zip(axes[:, 0], dims):
        mean = kf["predicted_obs_mean"][index, :, d]
        sd = np.sqrt(kf["predicted_obs_cov"][:, d, d])
        ax.fill_between(t, mean - 2 * sd, mean + 2 * sd, color="tab:purple", alpha=0.18, label="$\\pm 2$ sd")
        ax.plot(t, mean, color="tab:purple", lw=1.5, label="$E[x_t\\mid x_{<t}]$ (Kalman)")
        if oracle is not None:
            ax.plot(t, oracle[index, :, d], color="0.4", lw=1, ls="--", label="knows the true latents")
        ax.plot(t, x[index, :, d], "k.", ms=6, label="observed $x_t$")
        ax.set_ylabel(f"$x_t[{d}]$")
    axes[0, 0].legend(fontsize=8, ncol=4, loc="upper left")
    axes[-1, 0].set_xlabel("time step $t$")
    return fig


def draw_message_graph(ax, t: int, show=MESSAGE_KINDS):
    """The paper's Figure 1c around time ``t``, with the chosen kinds of message coloured (chapter 3)."""
    show = _check_show(show)
    ax.clear()
    cols = {-1: 0.0, 0: 2.0, 1: 4.0}
    rows = {"x": 0.0, "y": 1.6, "z": 3.2}
    for dt, cx in cols.items():
        if dt == -1 and t == 0:       # nothing before the first step: the initial distribution
            for level in ("y", "z"):
                ax.text(cx, rows[level], "prior", ha="center", va="center", fontsize=9, color="0.3")
            continue
        for level, cy in rows.items():
            observed = level == "x" and dt <= 0
            ax.add_patch(plt.Circle((cx, cy), 0.42, fc="0.75" if observed else "white",
                                    ec="0.2", ls="--" if dt == 1 else "-", lw=1.5, zorder=1))
            sub = {-1: f"{t - 1}", 0: f"{t}", 1: f"{t + 1}"}[dt]
            ax.text(cx, cy, f"${level}_{{{sub}}}$", ha="center", va="center", fontsize=10, zorder=3)

    def color(kind):
        return COLORS[kind] if kind in show else _OFF

    for level in ("y", "z"):          # past -> future (the dynamics), into t and on to t + 1
        for a, b in ((-1, 0), (0, 1)):
            _arrow(ax, (cols[a] + 0.45, rows[level]), (cols[b] - 0.45, rows[level]), color("past-to-future"),
                   ls="-" if b == 0 else "--")
    _arrow(ax, (cols[0], 0.45), (cols[0], 1.15), color("bottom-up"))                 # x_t -> y_t
    _arrow(ax, (cols[0] - 0.12, 2.05), (cols[0] - 0.12, 2.75), color("bottom-up"))   # y_t -> z_t
    _arrow(ax, (cols[0] + 0.12, 2.75), (cols[0] + 0.12, 2.05), color("top-down"))    # z_t -> y_t
    _arrow(ax, (cols[1] + 0.12, 2.75), (cols[1] + 0.12, 2.05), color("top-down"), ls="--")
    _arrow(ax, (cols[1], 1.15), (cols[1], 0.45), COLORS["prediction"], ls="--")      # predict x_{t+1}
    ax.set(xlim=(-0.6, 4.6), ylim=(-0.6, 3.8))
    ax.set_aspect("equal")
    ax.axis("off")
    handles = [plt.Line2D([], [], color=color(k), lw=2, label=k) for k in MESSAGE_KINDS]
    handles.append(plt.Line2D([], [], color=COLORS["prediction"], lw=2, ls="--", label="prediction of $x_{t+1}$"))
    ax.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False)


def draw_message_contributions(ax, kf: dict, truth: dict, t: int, index: int = 0, coord: int = 0,
                               show=MESSAGE_KINDS):
    """How each message moves the filtered means of ``y_t[coord]`` and ``z_t[coord]`` (a waterfall, chapter 3).

    Each bar starts where the previous one ended; the black bar is the filtered mean they add up to and
    the cross the true value. ``kf`` is the batched output of ``kalman_filter``; ``truth`` the batched sample.
    """
    show = _check_show(show)
    ax.clear()
    m = kf["messages"]
    dy = m["past_y"].shape[-1]
    groups = [("z", [("past-to-future", m["past_z"]), ("bottom-up", m["bottom_up_z"])], dy + coord),
              ("y", [("past-to-future", m["past_y"]), ("top-down", m["top_down"]), ("bottom-up", m["bottom_up_y"])],
               coord)]
    labels, ticks, row, ends = [], [], 0.0, [0.0]
    for level, pieces, state_idx in groups:
        start = 0.0
        for kind, values in pieces:
            value = values[index, t, coord]
            ax.barh(row, value, left=start, height=0.7, color=COLORS[kind] if kind in show else _OFF)
            labels.append(f"${level}$: {kind}")
            ticks.append(row)
            start += value
            ends.append(start)
            row += 1
        ax.barh(row, kf["filtered_mean"][index, t, state_idx], height=0.7, color="0.15")
        ax.plot(truth[level][index, t, coord], row, "x", color="tab:orange", ms=9, mew=2.5)
        ends += [kf["filtered_mean"][index, t, state_idx], truth[level][index, t, coord]]
        labels.append(f"filtered ${level}_t[{coord}]$")
        ticks.append(row)
        row += 1.5
    ax.set_yticks(ticks, labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="0.6", lw=0.8)
    ax.plot([], [], "x", color="tab:orange", ms=7, mew=2, label="true value")
    lo, hi = min(ends), max(ends)
    pad = 0.1 * (hi - lo) + 1e-3
    ax.set_xlim(lo - pad, hi + pad)
    ax.legend(fontsize=7, loc="best")
    ax.set_title("each message's contribution at step t", fontsize=9)


def _draw_series(ax, truth, kf, index, layer_slice, coord, t, name, color):
    mean = kf["filtered_mean"][index, : t + 1, layer_slice][:, coord]
    i = np.arange(kf["filtered_cov"].shape[1])[layer_slice][coord]
    sd = np.sqrt(kf["filtered_cov"][: t + 1, i, i])
    steps = np.arange(t + 1)
    ax.plot(truth[:, coord], color="0.6", lw=1, label="true")
    ax.fill_between(steps, mean - 2 * sd, mean + 2 * sd, color=color, alpha=0.2)
    ax.plot(steps, mean, "o-", ms=2.5, color=color, lw=1.5, label="filtered $\\pm 2$ sd")
    ax.axvline(t, color="0.3", lw=0.8, ls=":")
    ax.set_ylabel(name, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", ncol=2)


def temporal_message_figure(sample: dict, kf: dict, t: int, show=MESSAGE_KINDS, index: int = 0, coord: int = 0,
                            fig=None):
    """Chapter 3's widget view at step ``t``: the message graph, each message's contribution, and the
    filtered estimates of ``y[coord]`` and ``z[coord]`` so far. Pass ``fig`` to redraw an animation frame."""
    show = _check_show(show)
    T = sample["x"].shape[1]
    if not 0 <= t < T:
        raise ValueError(f"t must lie in [0, {T - 1}], got {t}")
    if fig is None:
        fig = plt.figure(figsize=(10, 5.6))
    fig.clear()
    # a fixed layout (no constrained_layout): animations redraw this figure for every frame
    grid = fig.add_gridspec(2, 2, width_ratios=(1, 1.3), left=0.13, right=0.98, bottom=0.09, top=0.91,
                            wspace=0.22, hspace=0.4)
    dy = sample["y"].shape[-1]
    draw_message_graph(fig.add_subplot(grid[0, 0]), t, show)
    draw_message_contributions(fig.add_subplot(grid[1, 0]), kf, sample, t, index, coord, show)
    ax_z = fig.add_subplot(grid[0, 1])
    ax_y = fig.add_subplot(grid[1, 1], sharex=ax_z)
    _draw_series(ax_z, sample["z"][index], kf, index, slice(dy, None), coord, t, f"$z_t[{coord}]$", "tab:green")
    _draw_series(ax_y, sample["y"][index], kf, index, slice(0, dy), coord, t, f"$y_t[{coord}]$", "tab:blue")
    ax_y.set_xlabel("time step $t$")
    fig.suptitle(f"Kalman filter as messages, step t = {t}", fontsize=11)
    return fig
