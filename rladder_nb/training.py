"""One training loop for every experiment, with atomic checkpoints that resume.

Introduced in *From message passing to the RLadder* (``book/part1/04_from_message_passing_to_rladder.md``).

* :func:`train` runs ``n_steps`` optimiser steps of ``loss_fn(model, batch) -> (loss, {name: value})`` on
  batches from ``make_batch(step)`` (fresh samples per step, so it is resumable and reproducible), with a
  ``tqdm.auto`` progress bar, an optional periodic evaluation, an optional wall-clock budget and the
  Ladder's learning-rate schedule (constant, then linear decay to zero over the last ``decay_fraction``).
* :func:`save_checkpoint` writes model config + weights (+ optimiser and progress when training) to a
  temporary file and renames it into place, so a crash never leaves a half-written checkpoint and a
  failed run never overwrites a good one. :func:`load_checkpoint` rebuilds the model from its registered
  class and config, and reports a corrupt or mismatched file instead of half-loading it.
* :func:`ema_update` is the Mean Teacher's weight average (Tarvainen & Valpola 2017).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from .fileio import atomic_write_bytes, sha256_of  # noqa: F401  (re-exported)

CHECKPOINT_FORMAT = "rladder_nb-checkpoint-1"
MODEL_CLASSES: dict[str, type] = {}


def register_model(cls):
    """Class decorator: lets :func:`load_checkpoint` rebuild ``cls`` from ``cls(**config)``."""
    MODEL_CLASSES[cls.__name__] = cls
    return cls


def _registered(module: str | None = None):
    """The registered model classes, after importing ``module`` (a ``rladder_nb.`` module) to register its."""
    import importlib

    from .models import rladder  # noqa: F401  (registers RLadder)

    if module and module.startswith("rladder_nb."):
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ValueError(f"the checkpoint's model module {module!r} cannot be imported: {err}") from err
    return MODEL_CLASSES


def save_checkpoint(path, model, **extra) -> Path:
    """Save ``model`` (its class name, ``config`` and weights) and ``extra`` items atomically."""
    if not hasattr(model, "config"):
        raise TypeError(f"{type(model).__name__} has no .config: only registered models can be checkpointed")
    import io

    payload = {"format": CHECKPOINT_FORMAT, "model_class": type(model).__name__,
               "model_module": type(model).__module__,
               "model_config": model.config, "state_dict": model.state_dict(), **extra}
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_checkpoint(path, expected_sha256: str | None = None, map_location="cpu"):
    """Rebuild the model stored at ``path``; return ``(model, payload)``.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` for a corrupt file, a checksum
    mismatch, an unknown format or model class, or weights that do not fit the stored config.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: train it first "
                                "(python -m rladder_nb train ...) or check the zoo manifest")
    if expected_sha256 is not None and sha256_of(path) != expected_sha256:
        raise ValueError(f"checkpoint {path} does not match its recorded SHA-256: the file is corrupt or stale; "
                         "retrain it (RLADDER_NB_RETRAIN=1) or restore it from git")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for a damaged zip/pickle
        raise ValueError(f"checkpoint {path} could not be read ({type(err).__name__}: {err}); "
                         "the file is corrupt or not a rladder_nb checkpoint") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a rladder_nb checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    classes = _registered(payload.get("model_module"))
    name = payload.get("model_class")
    if name not in classes:
        raise ValueError(f"checkpoint {path} holds an unknown model class {name!r}; known: {sorted(classes)}")
    model = classes[name](**payload["model_config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path} does not fit its model config (stale checkpoint?): {err}") from err
    model.eval()
    return model, payload


def ema_update(teacher, student, decay: float = 0.99) -> None:
    """Mean Teacher: ``teacher <- decay * teacher + (1 - decay) * student``, parameter by parameter."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    with torch.no_grad():
        for pt, ps in zip(teacher.parameters(), student.parameters()):
            pt.mul_(decay).add_(ps.detach(), alpha=1.0 - decay)


def ladder_lr(step: int, n_steps: int, lr: float, decay_fraction: float = 1 / 3) -> float:
    """Constant ``lr``, then a linear decay to zero over the last ``decay_fraction`` of the steps."""
    start = int(n_steps * (1 - decay_fraction))
    if step < start or n_steps <= start:
        return lr
    return lr * max(0.0, (n_steps - step) / (n_steps - start))


@dataclass
class TrainResult:
    """What :func:`train` returns: per-step losses/metrics, evaluations, steps done, wall time, and with
    ``keep_best`` the best evaluation so far (``best``: ``{"step", "metric", "value", "state_dict"}``)."""

    history: list = field(default_factory=list)
    evaluations: list = field(default_factory=list)
    steps: int = 0
    wall_time_s: float = 0.0
    stopped_early: bool = False
    best: dict | None = None

    def offer(self, model, evaluation: dict, metric: str) -> bool:
        """Keep a copy of ``model``'s weights if ``evaluation[metric]`` is lower than the best so far
        (``evaluation`` has the ``step`` it was made at); return True if it was."""
        if metric not in evaluation:
            raise ValueError(f"keep_best={metric!r}, but the evaluation returned only "
                             f"{sorted(k for k in evaluation if k != 'step')}")
        value = float(evaluation[metric])
        if self.best is not None and not value < self.best["value"]:
            return False
        self.best = {"step": int(evaluation["step"]), "metric": metric, "value": value,
                     "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        return True


def train(model, make_batch: Callable[[int], object], loss_fn: Callable, n_steps: int, lr: float = 1e-3,
          decay_fraction: float = 1 / 3, grad_clip: float | None = 1.0, checkpoint_path=None,
          checkpoint_every: int = 200, resume: bool = True, evaluate: Callable | None = None,
          eval_every: int | None = None, max_seconds: float | None = None, progress: bool = True,
          log_every: int = 10, description: str = "training", keep_best: str | None = None) -> TrainResult:
    """Train ``model`` with Adam for ``n_steps`` steps; see the module docstring.

    ``make_batch(step)`` must return the batch for that step (already on the model's device);
    ``loss_fn(model, batch)`` returns ``(loss_tensor, {metric: float})``. ``evaluate(model)`` (every
    ``eval_every`` steps) returns ``{metric: float}``; with ``keep_best`` (one of those metrics) the result's
    ``best`` holds the weights with its lowest value. With ``checkpoint_path`` the run saves every
    ``checkpoint_every`` steps and at the end, and resumes from that file when ``resume``: the history, the
    evaluations and the best weights so far are saved with it, so a run continued in pieces ends as one
    run would.
    """
    from tqdm.auto import tqdm

    if not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be a non-negative integer, got {n_steps!r}")
    if lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    result = TrainResult()
    start_step = 0
    if checkpoint_path is not None and resume and Path(checkpoint_path).is_file():
        _, payload = load_checkpoint(checkpoint_path)
        model.load_state_dict(payload["state_dict"])
        if "optimizer" in payload:
            opt.load_state_dict(payload["optimizer"])
        start_step = int(payload.get("step", 0))
        result.history = list(payload.get("history", []))
        result.evaluations = list(payload.get("evaluations", []))
        result.best = payload.get("best") if keep_best else None
        result.wall_time_s = float(payload.get("wall_time_s", 0.0))

    def _save(step):
        if checkpoint_path is not None:
            best = {"best": result.best} if result.best is not None else {}
            save_checkpoint(checkpoint_path, model, optimizer=opt.state_dict(), step=step,
                            history=result.history, evaluations=result.evaluations,
                            wall_time_s=result.wall_time_s, **best)

    model.train()
    t0, wall0 = time.perf_counter(), result.wall_time_s
    bar = tqdm(range(start_step, n_steps), desc=description, disable=not progress, leave=False)
    step = start_step
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = ladder_lr(step, n_steps, lr, decay_fraction)
        loss, metrics = loss_fn(model, make_batch(step))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}; lower lr or check the data")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        result.wall_time_s = wall0 + time.perf_counter() - t0
        if step % log_every == 0 or step == n_steps - 1:
            result.history.append({"step": step, "loss": float(loss.detach()), **metrics})
            bar.set_postfix(loss=f"{float(loss.detach()):.4g}")
        if evaluate is not None and eval_every and (step + 1) % eval_every == 0:
            model.eval()
            result.evaluations.append({"step": step + 1, **evaluate(model)})
            if keep_best:
                result.offer(model, result.evaluations[-1], keep_best)
            model.train()
        if checkpoint_path is not None and (step + 1) % checkpoint_every == 0:
            _save(step + 1)
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            result.stopped_early = True
            step += 1
            break
    else:
        step = n_steps
    result.steps = max(step, start_step)
    _save(result.steps)
    model.eval()
    if math.isnan(result.wall_time_s):
        result.wall_time_s = 0.0
    return result
