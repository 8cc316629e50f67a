"""Run-time choices, in one place: scale, device, seeding, data directory.

Introduced in the chapter *Introduction* (``book/part1/01_introduction.md``).

* **scale** — ``smoke`` (seconds, for tests and CI), ``book`` (the default: minutes on a 2-core CPU,
  loading zoo checkpoints), ``paper`` (the paper's sizes, for a GPU through the command line).
  Read from the environment variable ``RLADDER_NB_SCALE``.
* **device** — ``cuda`` > ``mps`` > ``cpu`` unless ``RLADDER_NB_DEVICE`` says otherwise.
* **data directory** — ``RLADDER_NB_DATA``, else a per-user cache directory.
* **retrain** — ``RLADDER_NB_RETRAIN=1`` makes :func:`rladder_nb.zoo.load_or_train` train instead of
  loading a recorded checkpoint.
"""
from __future__ import annotations

import os
import random
import sys
from pathlib import Path

import numpy as np

SCALES = ("smoke", "book", "paper")
DEFAULT_SCALE = "book"


def check_scale(scale: str) -> str:
    """Return ``scale`` if it is one of :data:`SCALES`, else raise a ``ValueError`` that lists them."""
    if not isinstance(scale, str) or scale.strip().lower() not in SCALES:
        raise ValueError(
            f"unknown scale {scale!r}: expected one of {', '.join(SCALES)} "
            "(set RLADDER_NB_SCALE or pass scale=...)"
        )
    return scale.strip().lower()


def get_scale(scale: str | None = None) -> str:
    """The scale to run at: ``scale`` if given, else ``$RLADDER_NB_SCALE``, else ``'book'``."""
    if scale is None:
        scale = os.environ.get("RLADDER_NB_SCALE", DEFAULT_SCALE) or DEFAULT_SCALE
    return check_scale(scale)


def get_device(device=None):
    """The torch device to use: ``device`` if given, else ``$RLADDER_NB_DEVICE``, else cuda > mps > cpu."""
    import torch

    if device is None:
        device = os.environ.get("RLADDER_NB_DEVICE") or None
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"unknown device {device!r}: expected e.g. 'cpu', 'cuda', 'cuda:1' or 'mps'") from err
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but CUDA is not available here; use 'cpu'")
    return dev


def seed_everything(seed: int) -> int:
    """Seed Python's, NumPy's and PyTorch's generators; return the seed."""
    import torch

    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return seed


def data_dir(path=None) -> Path:
    """The data directory: ``path`` if given, else ``$RLADDER_NB_DATA``, else a per-user cache directory.

    It is not created here; loaders create the sub-folders they write to.
    """
    if path is None:
        path = os.environ.get("RLADDER_NB_DATA")
    if not path:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        path = os.path.join(base, "rladder_nb")
    return Path(path).expanduser()


def retrain_requested() -> bool:
    """True when ``RLADDER_NB_RETRAIN`` is set to 1/true/yes."""
    return os.environ.get("RLADDER_NB_RETRAIN", "").strip().lower() in {"1", "true", "yes"}


# in a notebook: the cell (IPython execution count) being run and the messages it has already printed
_cell_reports: dict = {"cell": None, "messages": set()}


def _notebook_cell():
    """The execution count of the IPython cell being run, or None outside IPython (command line, tests)."""
    ipython = sys.modules.get("IPython")   # never imported here: if it is not loaded, this is no kernel
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return getattr(shell, "execution_count", None)


def report(message: str) -> None:
    """Tell the user something they should know (e.g. which data source a loader used).

    Printed to stdout so that it shows in notebooks and in the rendered book. In a notebook a message is
    printed once per cell: a cell that loads the same digits or zoo entry several times says so once (a
    later cell says it again). Elsewhere every call prints.
    """
    cell = _notebook_cell()
    if cell is not None:
        if cell != _cell_reports["cell"]:
            _cell_reports.update(cell=cell, messages=set())
        if message in _cell_reports["messages"]:
            return
        _cell_reports["messages"].add(message)
    print(f"[rladder_nb] {message}", file=sys.stdout, flush=True)
