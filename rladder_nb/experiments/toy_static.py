"""Experiment ``toy_static``: a learned RLadder infers the latents of a static hierarchical Gaussian model.

Introduced in *From message passing to the RLadder* (``book/part1/04_from_message_passing_to_rladder.md``).

* Data: fresh samples ``(x, y, z)`` of :class:`rladder_nb.gaussian.static.StaticGaussianModel` every
  step (no over-fitting possible); a fixed test set drawn with a separate seed.
* Model: a fully-connected RLadder that sees the same ``x`` at every iteration; linear readouts of its
  decoder layers give ``y`` (layer 1) and ``z`` (layer 2) after each iteration (of its encoder layers
  when the decoder is ablated).
* Metric: ``mse_ratio_to_exact`` — the test MSE of the estimated latents divided by the MSE of the exact
  posterior mean on the same samples (1 is optimal: nothing can beat the exact posterior mean), after
  the last iteration; ``mse_ratio_per_iteration`` gives it after each iteration.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import settings
from ..gaussian.static import StaticGaussianModel
from ..models.rladder import RLadder
from ..training import register_model, train

NAME = "toy_static"
MODELS = ("rladder", "rladder_no_decoder_to_encoder", "hierarchical_rnn")
ABLATIONS = {  # model name -> RLadder switches
    "rladder": dict(decoder=True, decoder_to_encoder=True),
    "rladder_no_decoder_to_encoder": dict(decoder=True, decoder_to_encoder=False),
    "hierarchical_rnn": dict(decoder=False, decoder_to_encoder=False),
}
GENERATIVE = dict(dx=8, dy=4, dz=2, x_noise=0.5, y_noise=0.5, seed=0)
SCALES = {
    "smoke": dict(hidden=(16, 8), iterations=3, batch_size=64, n_steps=40, lr=3e-3, n_test=2000),
    "book": dict(hidden=(64, 32), iterations=4, batch_size=256, n_steps=3000, lr=3e-3, n_test=20000),
    "paper": dict(hidden=(256, 128), iterations=6, batch_size=512, n_steps=20000, lr=2e-3, n_test=100000),
}
TEST_SEED_OFFSET = 1_000_003


def config(model: str, scale: str) -> dict:
    """Every choice of a ``toy_static`` run at ``scale`` (our reconstruction: sizes are ours)."""
    scale = settings.check_scale(scale)
    return dict(model=model, scale=scale, generative=dict(GENERATIVE), cell="lstm", combinator="vanilla",
                **ABLATIONS[model], **SCALES[scale])


def generative_model(cfg) -> StaticGaussianModel:
    """The toy model the experiment's data come from."""
    return StaticGaussianModel.random(**cfg["generative"])


@register_model
class LatentReadoutRLadder(nn.Module):
    """An RLadder with one linear readout per latent level, from the decoder (or encoder) layers 1..L.

    ``forward(x (B, T, D)) -> list over levels of (B, T, latent_dim)`` estimates after each iteration.
    """

    def __init__(self, input_size: int, hidden: tuple, latent_sizes: tuple, cell="lstm", combinator="vanilla",
                 decoder=True, decoder_to_encoder=True):
        super().__init__()
        if len(hidden) != len(latent_sizes):
            raise ValueError(f"need one latent size per hidden layer, got {hidden} and {latent_sizes}")
        self.config = dict(input_size=input_size, hidden=tuple(hidden), latent_sizes=tuple(latent_sizes),
                           cell=cell, combinator=combinator, decoder=decoder, decoder_to_encoder=decoder_to_encoder)
        self.rladder = RLadder((input_size,), [("dense", h) for h in hidden], cell=cell, combinator=combinator,
                               decoder=decoder, decoder_to_encoder=decoder_to_encoder, bottom_output=False)
        self.readouts = nn.ModuleList(nn.Linear(h, k) for h, k in zip(hidden, latent_sizes))

    def forward(self, x):
        out = self.rladder(x, return_states=True)
        states = out["decoder"] if out["decoder"] is not None else out["encoder"]
        return [head(states[l + 1]) for l, head in enumerate(self.readouts)]


def build(cfg) -> LatentReadoutRLadder:
    g = cfg["generative"]
    return LatentReadoutRLadder(g["dx"], cfg["hidden"], (g["dy"], g["dz"]), cell=cfg["cell"],
                                combinator=cfg["combinator"], decoder=cfg["decoder"],
                                decoder_to_encoder=cfg["decoder_to_encoder"])


def _batch(gm, n, seed, iterations, device):
    s = gm.sample(n, seed=seed)
    x = torch.as_tensor(s["x"], dtype=torch.float32, device=device)
    x = x.unsqueeze(1).expand(-1, iterations, -1)  # the same observation at every iteration: (B, T, dx)
    targets = [torch.as_tensor(s[k], dtype=torch.float32, device=device) for k in ("y", "z")]
    return x, targets


def _loss(model, batch):
    x, (y, z) = batch
    y_hat, z_hat = model(x)  # (B, T, dy), (B, T, dz)
    err = ((y_hat - y.unsqueeze(1)) ** 2).sum(-1) + ((z_hat - z.unsqueeze(1)) ** 2).sum(-1)  # (B, T)
    loss = err.mean()  # every iteration is trained to be as good as it can be
    return loss, {"final_mse": float(err[:, -1].mean().detach()) / (y.shape[1] + z.shape[1])}


def train_model(model: str, cfg: dict, seed: int = 0, progress=True, checkpoint_path=None,
                max_seconds: float | None = None):
    """Train one ``toy_static`` model; returns ``(model, TrainResult)``."""
    settings.seed_everything(seed)
    device = settings.get_device()
    gm = generative_model(cfg)
    net = build(cfg).to(device)
    result = train(net, lambda step: _batch(gm, cfg["batch_size"], seed * 10_000_019 + step, cfg["iterations"], device),
                   _loss, cfg["n_steps"], lr=cfg["lr"], checkpoint_path=checkpoint_path, progress=progress,
                   max_seconds=max_seconds,
                   description=f"{NAME}/{model}")
    return net, result


@torch.no_grad()
def evaluate(model_name: str, net, cfg: dict, seed: int = 0) -> dict:
    """Test metrics: MSE of the latents per iteration, relative to the exact posterior mean's."""
    gm = generative_model(cfg)
    device = next(net.parameters()).device
    s = gm.sample(cfg["n_test"], seed=TEST_SEED_OFFSET + seed)
    post = gm.posterior(s["x"])
    truth = torch.as_tensor(_concat(s["y"], s["z"]), dtype=torch.float64)
    exact = torch.as_tensor(_concat(post["y_mean"], post["z_mean"]), dtype=torch.float64)
    exact_mse = float(((exact - truth) ** 2).mean())
    net.eval()
    x = torch.as_tensor(s["x"], dtype=torch.float32, device=device).unsqueeze(1).expand(-1, cfg["iterations"], -1)
    y_hat, z_hat = net(x)
    est = torch.cat([y_hat, z_hat], dim=-1).double().cpu()  # (N, T, dy+dz)
    mse_per_iter = ((est - truth.unsqueeze(1)) ** 2).mean(dim=(0, 2))
    ratios = [round(float(m) / exact_mse, 6) for m in mse_per_iter]
    return {"mse_ratio_to_exact": ratios[-1], "mse_ratio_per_iteration": ratios,
            "mse": round(float(mse_per_iter[-1]), 8), "exact_mse": round(exact_mse, 8)}


def _concat(a, b):
    import numpy as np

    return np.concatenate([a, b], axis=-1)
