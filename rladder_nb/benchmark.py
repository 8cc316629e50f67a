"""How long a run takes here: training speed per model, at a scale, on this machine.

``python -m rladder_nb benchmark EXPERIMENT [--scale S] [--seconds N]`` trains each model from scratch for
``N`` seconds (no checkpoint, nothing recorded) with the experiment's own training function, and reports
its steps per second and what that makes of the scale's full run. Run it before starting a long training
on a new machine (a laptop, a GPU), and compare devices with ``RLADDER_NB_DEVICE``.

* What is timed is the training loop alone (forward, backward and optimiser steps, with the data each
  step draws); building the data set and the model, and any evaluation an experiment does after training
  (``music`` validates), are reported separately as ``other_seconds``.
* The *first* steps of a run are timed. A cost that an experiment adds only later in a run is missing from
  the figure: ``occluded_mnist`` ramps its prediction cost in after a few thousand steps
  (``prediction_warmup``), and ``occluded_mnist_semi`` starts its consistency cost once the class cost
  has fallen. Both change the speed by a fraction, not a factor.
* Threads: PyTorch's own setting, which ``OMP_NUM_THREADS`` sets. On a 2-core machine shared with other
  work one thread is fastest (see :func:`rladder_nb.experiments.occluded_mnist.measure_throughput`).
"""
from __future__ import annotations

import json
import time

from . import settings, zoo
from .experiments import check_model, get_experiment
from .fileio import atomic_write_bytes


def benchmark(experiment: str, models=None, scale=None, dataset=None, seconds: float = 20.0, seed: int = 0,
              progress: bool = False) -> list[dict]:
    """Train each model of ``experiment`` for ``seconds`` and measure its speed.

    Parameters
    ----------
    experiment : str
        An experiment name (``python -m rladder_nb zoo`` lists the recorded ones).
    models : list of str or None
        Which models (default: every model of the experiment).
    scale : str or None
        ``smoke``, ``book`` or ``paper`` (default: ``$RLADDER_NB_SCALE`` or ``book``).
    dataset : str or None
        The experiment's data set or setting (default: its default).
    seconds : float
        Training time per model (> 0). The loop stops after the step during which the time runs out, so a
        slow model still makes at least one step.

    Returns
    -------
    list of dict, one per model: ``model``, ``steps`` (measured), ``seconds`` (in the training loop),
    ``other_seconds`` (data, model, post-training work), ``n_steps`` (the scale's full run),
    ``steps_per_s``, ``examples_per_s`` (steps x batch size, where the config has one) and
    ``full_run_minutes`` (``n_steps`` at the measured speed); speeds are None for a model that trains in no
    steps (``music``'s Bernoulli floor is fitted by counting).
    """
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ValueError(f"seconds must be a positive number, got {seconds!r}")
    exp = get_experiment(experiment)
    scale = settings.get_scale(scale)
    models = list(exp.MODELS) if models is None else [check_model(exp, m) for m in models]
    rows = []
    for model in models:
        _, config = zoo.run_config(exp, model, scale, dataset)
        start = time.perf_counter()
        _, result = exp.train_model(model, config, seed, progress=progress, max_seconds=float(seconds))
        total = time.perf_counter() - start
        n_steps = config.get("n_steps")
        row = {"model": model, "steps": result.steps, "seconds": round(result.wall_time_s, 2),
               "other_seconds": round(total - result.wall_time_s, 1), "n_steps": n_steps,
               "steps_per_s": None, "examples_per_s": None, "full_run_minutes": None}
        if result.steps and result.wall_time_s > 0:
            rate = result.steps / result.wall_time_s
            row["steps_per_s"] = round(rate, 3)
            if isinstance(config.get("batch_size"), int):
                row["examples_per_s"] = round(rate * config["batch_size"], 1)
            if n_steps:
                row["full_run_minutes"] = round(n_steps / rate / 60, 3)
        rows.append(row)
    return rows


def where() -> str:
    """The device that runs here and the machine, in words (for the benchmark's heading)."""
    return f"{settings.get_device()}; {zoo.hardware()}"


def report(experiment: str, scale: str, rows: list[dict]) -> str:
    """The benchmark's rows as a plain-text table under a heading that says where they were measured."""
    def cell(value, width, digits):
        return ("-" if value is None else f"{value:.{digits}f}").rjust(width)

    def duration(minutes):
        if minutes is None:
            return "-"
        if minutes < 1:
            return f"{minutes * 60:.0f} s"
        return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.1f} h"

    lines = [f"benchmark {experiment} at scale {scale} on {where()}:",
             f"  {'model':34s} {'steps':>6s} {'s':>7s} {'steps/s':>9s} {'examples/s':>11s} {'full run':>18s}"]
    for r in rows:
        full = duration(r["full_run_minutes"]) + ("" if r["full_run_minutes"] is None else f" / {r['n_steps']}")
        lines.append(f"  {r['model']:34s} {r['steps']:6d} {r['seconds']:7.1f} {cell(r['steps_per_s'], 9, 2)} "
                     f"{cell(r['examples_per_s'], 11, 1)} {full:>18s}")
    lines.append("  (full run: the scale's n_steps at the measured speed; the first steps were timed, see "
                 "`help(rladder_nb.benchmark)`)")
    return "\n".join(lines)


def write_json(path, experiment: str, scale: str, rows: list[dict]):
    """Write the rows with where they were measured to ``path`` as JSON (atomically)."""
    payload = {"experiment": experiment, "scale": scale, "where": where(), "rows": rows}
    return atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode())
