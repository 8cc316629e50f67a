"""Figures of the chapter *Polyphonic music* (``book/part2/08_polyphonic_music.md``; the paper's Section 3.2).

* :func:`plot_prediction` — a piece's piano roll above the model's predicted note probabilities.
* :func:`draw_step` — one time step: predicted probability of each pitch against the notes played (the
  drawing function of the chapter's explorer and of its static small multiples).
* :func:`plot_learning_curves` — training loss and validation NLL from the models' curve buffers.
* :func:`plot_continuation` — a primer and sampled continuations, with the boundary marked.
* :func:`draw_music_rladder` — the piano-roll RLadder's levels and their shapes along the pitch axis.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..pianoroll import LOWEST_NOTE, N_NOTES, check_roll, note_name, plot_pianoroll
from .rladder import DECODER, ENCODER


def _sounding_range(*rolls, pad: int = 2):
    active = np.flatnonzero(np.max([np.asarray(r).max(axis=0) for r in rolls], axis=0) > 0.05)
    if not active.size:
        return LOWEST_NOTE, LOWEST_NOTE + N_NOTES - 1
    return (LOWEST_NOTE + max(0, active[0] - pad), LOWEST_NOTE + min(N_NOTES - 1, active[-1] + pad))


def plot_prediction(roll, probabilities, frame: str = "step", title: str | None = None):
    """The played roll (top) and the predicted probabilities (bottom), aligned step by step.

    ``probabilities[t]`` is the model's distribution for ``roll[t]`` given ``roll[:t]``. Played notes are
    outlined in red on the probabilities. Returns the figure. Introduced in *Polyphonic music*.
    """
    roll = check_roll(roll)
    probabilities = check_roll(probabilities, allow_probabilities=True)
    if probabilities.shape != roll.shape:
        raise ValueError(f"roll {roll.shape} and probabilities {probabilities.shape} must have the same shape")
    note_range = _sounding_range(roll, probabilities)
    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True, constrained_layout=True)
    plot_pianoroll(roll, ax=axes[0], title="played", frame=frame, note_range=note_range)
    plot_pianoroll(probabilities, ax=axes[1], title="predicted probability of each note, given the past",
                   frame=frame, note_range=note_range, cmap="viridis")
    t, k = np.nonzero(roll)
    axes[1].scatter(t, k + LOWEST_NOTE, s=6, marker="s", facecolors="none", edgecolors="red", linewidths=0.6)
    axes[0].set_xlabel("")
    if title:
        fig.suptitle(title)
    return fig


def draw_step(ax, roll, probabilities, step: int, note_range=None):
    """Bars: predicted probability of each pitch at ``step``; red dots: the notes actually played.

    Also writes the step's NLL (nats) in the title. Introduced in *Polyphonic music*.
    """
    roll = check_roll(roll)
    probabilities = check_roll(probabilities, allow_probabilities=True)
    if not 0 <= step < len(roll):
        raise ValueError(f"step must lie in 0..{len(roll) - 1}, got {step}")
    low, high = note_range or _sounding_range(roll, probabilities)
    pitches = np.arange(low, high + 1)
    p = probabilities[step, low - LOWEST_NOTE: high - LOWEST_NOTE + 1]
    played = roll[step, low - LOWEST_NOTE: high - LOWEST_NOTE + 1].astype(bool)
    ax.bar(pitches, p, width=0.8, color=np.where(played, "tab:red", "0.6"))
    ax.plot(pitches[played], np.ones(played.sum()) * 1.04, "o", color="tab:red", ms=4, label="played")
    q = np.clip(probabilities[step].astype(np.float64), 1e-7, 1 - 1e-7)
    nll = -float((roll[step] * np.log(q) + (1 - roll[step]) * np.log1p(-q)).sum())
    ax.set_ylim(0, 1.1)
    ax.set_xlim(low - 0.5, high + 0.5)
    ticks = [m for m in pitches if m % 12 == 0]
    ax.set_xticks(ticks)
    ax.set_xticklabels([note_name(m) for m in ticks])
    ax.set_ylabel("p(note on)")
    ax.set_title(f"step {step}: {nll:.2f} nats")


def plot_learning_curves(curves: dict, floor: float | None = None, title: str | None = None):
    """``curves = {label: (train_curve (N, 2), valid_curve (M, 2))}``: loss and validation NLL per step.

    ``floor`` draws the Bernoulli floor as a dashed line. Returns the figure. Introduced in *Polyphonic music*.
    """
    fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for color, (label, (train_curve, valid_curve)) in zip(colors, curves.items()):
        train_curve, valid_curve = np.asarray(train_curve).reshape(-1, 2), np.asarray(valid_curve).reshape(-1, 2)
        ax.plot(train_curve[:, 0], train_curve[:, 1], color=color, alpha=0.35, lw=1)
        ax.plot(valid_curve[:, 0], valid_curve[:, 1], "o-", color=color, ms=3, label=f"{label} (validation)")
    if floor is not None:
        ax.axhline(floor, ls="--", color="0.4", label="Bernoulli floor")
    ax.set_xlabel("training step")
    ax.set_ylabel("NLL (nats per step)")
    ax.legend(fontsize=8)
    ax.set_title(title or "training loss on crops (faint) and validation NLL (dots)")
    return fig


def plot_continuation(rolls, prime_len: int, frame: str = "step", titles=None):
    """Each roll of ``rolls`` (S, T, 88) on its own row, a line where the primer ends.

    Returns the figure. Introduced in *Polyphonic music*.
    """
    rolls = np.asarray(rolls)
    if rolls.ndim == 2:
        rolls = rolls[None]
    note_range = _sounding_range(*rolls)
    fig, axes = plt.subplots(len(rolls), 1, figsize=(9, 2.2 * len(rolls)), sharex=True, squeeze=False,
                             constrained_layout=True)
    for i, (ax, roll) in enumerate(zip(axes[:, 0], rolls)):
        plot_pianoroll(roll, ax=ax, frame=frame, note_range=note_range,
                       title=titles[i] if titles else None)
        ax.axvline(prime_len - 0.5, color="tab:red", lw=1.5)
        if i < len(rolls) - 1:
            ax.set_xlabel("")
    axes[0, 0].text(prime_len - 1, note_range[1], "primer | sampled ", ha="right", va="top", color="tab:red",
                    fontsize=8)
    return fig


def draw_music_rladder(shapes, ax=None, title: str | None = None):
    """The piano-roll RLadder's levels: encoder (blue) and decoder (orange) bars as wide as their pitch axis.

    ``shapes`` is ``RLadder.shapes``: ``[(1, 1, 88), (C, 1, W), ..., (D,)]``. Returns the figure.
    Introduced in *Polyphonic music*.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 0.75 * len(shapes) + 1))
    width = 4.0
    for level, shape in enumerate(shapes):
        if len(shape) == 3:
            w = width * shape[2] / N_NOTES
            what = "frame x(t)" if level == 0 else f"ConvLSTM, {shape[0]} ch x {shape[2]} pitches"
        else:
            w = 0.6
            what = f"LSTM, {shape[0]} units"
        for x0, color, label in ((0.0, ENCODER, "e"), (5.0, DECODER, "d")):
            if level == 0 and label == "e":
                color = "0.5"
            ax.add_patch(plt.Rectangle((x0 + (width - w) / 2, level - 0.3), w, 0.6, fc=color, ec="k", alpha=0.85))
            ax.text(x0 + width / 2, level, f"{label}{level}", ha="center", va="center", color="white", fontsize=8,
                    weight="bold")
        ax.text(-0.2, level, what, ha="right", va="center", fontsize=8)
        ax.annotate("", xy=(5.0 + (width - w) / 2, level), xytext=(width - (width - w) / 2, level),
                    arrowprops=dict(arrowstyle="-|>", color="0.3", lw=0.8))
    ax.text(5.0 + width / 2, -0.65, "d0 + pitch bias = logits of x(t+1)", ha="center", fontsize=8)
    ax.set_xlim(-4.2, 9.3)
    ax.set_ylim(-0.9, len(shapes) - 0.4)
    ax.axis("off")
    ax.set_title(title or "encoder (left, up) and decoder (right, down); bar width = pitch positions")
    return ax.figure
