"""Experiment ``toy_temporal``: a learned RLadder predicts the next observation of a temporal Gaussian model.

Introduced in *From message passing to the RLadder* (``book/part1/04_from_message_passing_to_rladder.md``).

* Data: fresh sequences of :class:`rladder_nb.gaussian.temporal.TemporalGaussianModel` every step; a fixed
  test set drawn with a separate seed.
* Models: the RLadder and its two ablations, each at the scale's width and "small" (hidden sizes 8 and
  4 at book scale: a top layer narrower than the filter's six-dimensional state).
* Each is a fully-connected RLadder reading ``x_t`` online; its bottom decoder output ``d_0(t)`` is the
  prediction of ``x_{t+1}`` (for the "hierarchical RNN" ablation, a linear readout of the top layer).
* Metric: ``mse_ratio_to_exact`` — test MSE of the next-step predictions divided by that of the Kalman
  filter's exact predictive mean ``E[x_{t+1} | x_{<=t}]`` on the same sequences, pooled over time steps;
  ``mse_ratio_per_step`` gives it per time step ``t`` (predicting ``x_{t+1}``).
"""
from __future__ import annotations

import math

import torch

from .. import settings
from ..gaussian.temporal import TemporalGaussianModel, kalman_filter
from ..models.rladder import RLadder
from ..training import train
from .toy_static import ABLATIONS, TEST_SEED_OFFSET

NAME = "toy_temporal"
# each network twice: at the scale's width, and small (a top layer narrower than the filter's state)
MODELS = tuple(ABLATIONS) + tuple(f"{m}_small" for m in ABLATIONS)
SMALL_HIDDEN = {"smoke": (8, 4), "book": (8, 4), "paper": (16, 8)}
GENERATIVE = dict(dx=6, dy=4, dz=2, x_noise=0.3, y_noise=0.3, z_decay=0.97, z_angle=2 * math.pi / 40,
                  y_decay=0.5, y_angle=2 * math.pi / 6, seed=0)
SCALES = {
    "smoke": dict(hidden=(16, 8), seq_len=8, batch_size=32, n_steps=40, lr=3e-3, n_test=500),
    "book": dict(hidden=(64, 32), seq_len=20, batch_size=128, n_steps=3000, lr=3e-3, n_test=5000),
    "paper": dict(hidden=(256, 128), seq_len=50, batch_size=256, n_steps=20000, lr=2e-3, n_test=20000),
}


def config(model: str, scale: str) -> dict:
    """Every choice of a ``toy_temporal`` run at ``scale`` (our reconstruction: sizes are ours)."""
    scale = settings.check_scale(scale)
    small = model.endswith("_small")
    sizes = dict(SCALES[scale], hidden=SMALL_HIDDEN[scale]) if small else SCALES[scale]
    return dict(model=model, scale=scale, generative=dict(GENERATIVE), cell="lstm", combinator="vanilla",
                **ABLATIONS[model.removesuffix("_small")], **sizes)


def generative_model(cfg) -> TemporalGaussianModel:
    """The toy model the experiment's data come from."""
    return TemporalGaussianModel.random(**cfg["generative"])


def build(cfg) -> RLadder:
    dx = cfg["generative"]["dx"]
    return RLadder((dx,), [("dense", h) for h in cfg["hidden"]], cell=cfg["cell"], combinator=cfg["combinator"],
                   decoder=cfg["decoder"], decoder_to_encoder=cfg["decoder_to_encoder"], bottom_output=True)


def _batch(gm, n, seq_len, seed, device):
    x = gm.sample(n, seq_len, seed=seed)["x"]
    return torch.as_tensor(x, dtype=torch.float32, device=device)  # (B, T, dx)


def _loss(model, x):
    pred = model(x)["bottom"][:, :-1]  # prediction of x_{t+1} made at t: (B, T-1, dx)
    loss = ((pred - x[:, 1:]) ** 2).mean()
    return loss, {}


def train_model(model: str, cfg: dict, seed: int = 0, progress=True, checkpoint_path=None,
                max_seconds: float | None = None):
    """Train one ``toy_temporal`` model; returns ``(model, TrainResult)``."""
    settings.seed_everything(seed)
    device = settings.get_device()
    gm = generative_model(cfg)
    net = build(cfg).to(device)
    result = train(net, lambda step: _batch(gm, cfg["batch_size"], cfg["seq_len"], seed * 10_000_019 + step, device),
                   _loss, cfg["n_steps"], lr=cfg["lr"], checkpoint_path=checkpoint_path, progress=progress,
                   max_seconds=max_seconds,
                   description=f"{NAME}/{model}")
    return net, result


def test_set(cfg, seed=0):
    """The test sequences ``x`` (N, T, dx) and the Kalman filter's next-step predictions (N, T-1, dx)."""
    gm = generative_model(cfg)
    x = gm.sample(cfg["n_test"], cfg["seq_len"], seed=TEST_SEED_OFFSET + seed)["x"]
    exact = kalman_filter(gm, x)["next_obs_mean"][:, :-1]
    return x, exact


@torch.no_grad()
def predict(net, x):
    """The network's next-step predictions for numpy sequences ``x`` (N, T, dx): (N, T-1, dx) float64."""
    device = next(net.parameters()).device
    net.eval()
    out = net(torch.as_tensor(x, dtype=torch.float32, device=device))["bottom"][:, :-1]
    return out.double().cpu().numpy()


def evaluate(model_name: str, net, cfg: dict, seed: int = 0) -> dict:
    """Test metrics: next-step MSE relative to the Kalman filter's, pooled and per time step."""
    x, exact = test_set(cfg, seed)
    pred = predict(net, x)
    target = x[:, 1:]
    mse_t = ((pred - target) ** 2).mean(axis=(0, 2))
    exact_t = ((exact - target) ** 2).mean(axis=(0, 2))
    return {"mse_ratio_to_exact": round(float(mse_t.mean() / exact_t.mean()), 6),
            "mse_ratio_per_step": [round(float(r), 6) for r in mse_t / exact_t],
            "mse": round(float(mse_t.mean()), 8), "exact_mse": round(float(exact_t.mean()), 8)}
