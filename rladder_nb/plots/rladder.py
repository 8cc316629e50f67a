"""Schematics of the RLadder unrolled in time (the paper's Figure 1a), drawn with matplotlib.

Introduced in *Introduction* and *From message passing to the RLadder* (Part I).
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

ENCODER, DECODER, LINK = "#4C72B0", "#DD8452", "#55A868"


def _box(ax, x, y, text, color, w=0.8, h=0.5):
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.03", fc=color, ec="k",
                                alpha=0.85, lw=1))
    ax.text(x, y, text, ha="center", va="center", fontsize=9, color="white", weight="bold")


def _arrow(ax, p, q, color="k", style="-|>", ls="-", rad=0.0, lw=1.3):
    ax.add_patch(FancyArrowPatch(p, q, arrowstyle=style, mutation_scale=11, color=color, lw=lw, ls=ls,
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=14, shrinkB=14))


def draw_rladder(n_layers: int = 3, n_steps: int = 2, decoder: bool = True, decoder_to_encoder: bool = True,
                 ax=None, title: str | None = None):
    """Draw an RLadder with ``n_layers`` layers unrolled over ``n_steps`` time steps.

    Encoder cells (blue) pass ``e_l`` up and their state ``s_l`` to the next step; decoder cells (orange)
    pass ``d_l`` down; lateral links join ``e_l`` to ``d_l``; green links carry ``d_l(t-1)`` to the encoder
    at ``t``. The switches remove parts exactly as the ablations do. Returns the figure.
    """
    if n_layers < 1 or n_steps < 1:
        raise ValueError(f"need n_layers >= 1 and n_steps >= 1, got {n_layers} and {n_steps}")
    if ax is None:
        _, ax = plt.subplots(figsize=(3.2 * n_steps + 0.6, 1.1 * n_layers + 1.6))
    dx_step, dx_dec = 3.2, 1.3
    for t in range(n_steps):
        x0 = t * dx_step
        ax.text(x0 + dx_dec / 2, -0.15, f"x(t{'' if t == n_steps - 1 else f'-{n_steps - 1 - t}'})",
                ha="center", va="center", fontsize=9)
        _arrow(ax, (x0, -0.05), (x0, 1.0))
        for l in range(1, n_layers + 1):
            y = l
            _box(ax, x0, y, f"e{l}", ENCODER)
            if l < n_layers:
                _arrow(ax, (x0, y), (x0, y + 1))
            if decoder:
                _box(ax, x0 + dx_dec, y, f"d{l}", DECODER)
                _arrow(ax, (x0, y), (x0 + dx_dec, y), color="0.3")  # lateral
                if l < n_layers:
                    _arrow(ax, (x0 + dx_dec, y + 1), (x0 + dx_dec, y))
            if t + 1 < n_steps:
                _arrow(ax, (x0, y), (x0 + dx_step, y), color=ENCODER, ls=":", rad=-0.25)  # state s_l
                if decoder and decoder_to_encoder:
                    _arrow(ax, (x0 + dx_dec, y), (x0 + dx_step, y), color=LINK, lw=1.8)
        if decoder:
            _box(ax, x0 + dx_dec, 0.35, "d0", DECODER, w=0.6, h=0.4)
            _arrow(ax, (x0 + dx_dec, 1), (x0 + dx_dec, 0.35))
            ax.text(x0 + dx_dec + 0.45, 0.35, "prediction /\nreconstruction", fontsize=7, va="center")
        ax.text(x0, n_layers + 0.55, "class", ha="center", fontsize=8)
        _arrow(ax, (x0, n_layers), (x0, n_layers + 0.55))
    ax.set_xlim(-0.8, (n_steps - 1) * dx_step + dx_dec + 1.3)
    ax.set_ylim(-0.4, n_layers + 0.9)
    ax.set_aspect("equal")
    ax.axis("off")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color="k", label="bottom-up / top-down"),
               Line2D([], [], color=ENCODER, ls=":", label="encoder state s_l(t-1)")]
    if decoder:
        handles.append(Line2D([], [], color="0.3", label="lateral e_l -> d_l"))
        if decoder_to_encoder:
            handles.append(Line2D([], [], color=LINK, lw=1.8, label="decoder-to-encoder d_l(t-1)"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, fontsize=7, frameon=False)
    if title:
        ax.set_title(title)
    return ax.figure


def draw_ablations(n_layers: int = 2):
    """The full RLadder and its two structural ablations side by side."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 1.3 * n_layers + 1.8))
    for ax, (name, kw) in zip(axes, [("RLadder", {}), ("w/o decoder-to-encoder", {"decoder_to_encoder": False}),
                                     ("hierarchical RNN (no decoder)", {"decoder": False})]):
        draw_rladder(n_layers, 2, ax=ax, title=name, **kw)
    fig.tight_layout()
    return fig
