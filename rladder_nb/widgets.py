"""ipywidgets explorers, each with a static companion that needs no kernel.

Introduced in *Message passing in a static hierarchical Gaussian model* (Part I).

A chapter builds an explorer from a drawing function ``draw(**values) -> matplotlib Figure``:

* :func:`explorer` wraps it in sliders / drop-downs for JupyterLab;
* :func:`small_multiples` draws the same function for a few chosen values side by side, the static
  companion that the rendered book shows (widget cells are tagged ``remove-output`` in the book);
* :func:`animation_html` turns a per-frame drawing function into a self-contained HTML animation.
"""
from __future__ import annotations

from typing import Callable, Sequence

import matplotlib.pyplot as plt


def explorer(draw: Callable, **controls):
    """An ``ipywidgets.interactive`` around ``draw``; controls follow ipywidgets' abbreviations.

    ``(lo, hi)`` or ``(lo, hi, step)`` gives a slider, a list gives a drop-down, a widget is used as is.
    """
    import ipywidgets

    if not callable(draw):
        raise TypeError(f"draw must be callable, got {type(draw).__name__}")
    if not controls:
        raise ValueError("explorer needs at least one control, e.g. iteration=(0, 10)")

    def _show(**values):
        fig = draw(**values)
        if fig is not None:
            plt.show()

    return ipywidgets.interactive(_show, **controls)


def small_multiples(draw_into: Callable, values: Sequence, name: str, ncols: int | None = None,
                    panel_size=(3.0, 3.0), title: str | None = None, **fixed):
    """Call ``draw_into(ax, **{name: v}, **fixed)`` for each ``v`` of ``values`` on a grid of axes.

    Returns the figure. ``draw_into`` draws into the given axes and returns nothing.
    """
    values = list(values)
    if not values:
        raise ValueError(f"small_multiples needs at least one value of {name!r}")
    ncols = ncols or len(values)
    nrows = (len(values) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols, panel_size[1] * nrows),
                             squeeze=False, constrained_layout=True)
    for ax, v in zip(axes.flat, values):
        draw_into(ax, **{name: v}, **fixed)
        if not ax.get_title():
            ax.set_title(f"{name} = {v}")
    for ax in list(axes.flat)[len(values):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig


def animation_html(fig, update: Callable[[int], object], frames: int, interval_ms: int = 400) -> str:
    """A self-contained JavaScript animation (``FuncAnimation.to_jshtml``) of ``update(i)`` on ``fig``."""
    from matplotlib import animation

    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    anim = animation.FuncAnimation(fig, update, frames=frames, interval=interval_ms, blit=False)
    html = anim.to_jshtml()
    plt.close(fig)
    return html
