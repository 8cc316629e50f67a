"""Stopped-gradient readouts (probes) of an RLadder's internal states.

Introduced in *Ablations and probing* (chapter 6, ``book/part2/06_ablations_and_probing.md``), which
reproduces the paper's Figure 4: a readout of the bottom decoder layer trained on the unoccluded digit.

* **A probe is a linear readout** from one layer's state, ``encoder[l]`` or ``decoder[l]`` of
  ``RLadder.forward(x, return_states=True)``, to an image (a frame of the sequence). A convolutional
  state ``(C, h, w)`` below an ``(H, W)`` target with ``H = s_y h``, ``W = s_x w`` is read by one
  ``k x k`` convolution to ``s_y s_x`` channels, each state position writing the ``s_y x s_x`` block of
  the target it sits on (a pixel shuffle); any other state (a dense layer) by one linear map to all
  ``H W`` pixels. Each channel of the (zero-padded) state is first standardised with fixed statistics of
  the training states, which changes nothing a linear map can express but makes Adam converge quickly.
* **The gradient stops at the state.** The network runs once, in ``eval`` mode under
  ``torch.no_grad()``, over a pool of training sequences; only the probe's parameters are optimised
  (Adam on the mean squared error per pixel). The network's weights never change and receive no
  gradient (``tests/test_probe.py`` checks both).
* **Targets** (our reconstruction: the paper says only "trained on the ground truth"):
  ``clean_frames``, the unoccluded frames that the network never sees, or ``frames``, the observed
  ones; ``time_shift=1`` (default) reads frame ``t+1`` from the state at ``t``, the frame that the
  bottom decoder layer's units are trained to predict; ``time_shift=0`` the current frame. Training
  sequences get one extra frame so that every time step has a target; targets are in the experiment's
  own representation (``cfg['data']``: ink on black for ``occluded_mnist``).
* :func:`changes_of_mind` finds the sequences whose per-frame class decision changes, like the paper's
  5 -> 3 example.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from .training import ladder_lr

PARTS = ("encoder", "decoder")
TARGETS = ("clean_frames", "frames")
PROBE_SEED = 7_000_001  # training sequences of a probe: seed + PROBE_SEED (never the test set's seed)
# how much data and optimisation a probe gets, per scale
SIZES = {
    "smoke": dict(n_sequences=48, n_steps=60, batch_size=64, lr=1e-2, kernel_size=3),
    "book": dict(n_sequences=2000, n_steps=1500, batch_size=128, lr=1e-2, kernel_size=3),
    "paper": dict(n_sequences=10000, n_steps=4000, batch_size=256, lr=1e-2, kernel_size=3),
}
# sizes of the other computations of the chapter *Ablations and probing*, per scale: probes trained in its
# exercises get ``exercise_steps``; ``n_examples`` sequences are drawn in the Figure-4 reproduction
CHAPTER_SIZES = {
    "smoke": dict(exercise_steps=40, n_examples=2),
    "book": dict(exercise_steps=500, n_examples=2),
    "paper": dict(exercise_steps=2000, n_examples=3),
}


class Probe(nn.Module):
    """A linear readout of one RLadder layer: ``forward(state (B, *state_shape)) -> (B, H, W)``.

    Introduced in *Ablations and probing* (chapter 6).

    Parameters
    ----------
    state_shape : tuple
        ``(C, h, w)`` or ``(D,)``: the shape of one time step of the layer's state.
    target_shape : tuple
        ``(H, W)``.
    layer : tuple
        ``(part, index)`` it reads, recorded for :func:`apply_probe`.
    target : str
        What it was trained on (see :data:`TARGETS`).
    time_shift : int
        0 or 1: the state at ``t`` reads the target at ``t + time_shift``.
    kernel_size : int
        Size of the convolution of a convolutional readout (odd).
    mean, std : tensor (C,), optional
        Per-channel statistics of the training states (default 0 and 1).
    """

    def __init__(self, state_shape, target_shape, layer=("decoder", 1), target="clean_frames", time_shift=1,
                 kernel_size=3, mean=None, std=None):
        super().__init__()
        self.state_shape = tuple(int(s) for s in state_shape)
        self.target_shape = tuple(int(s) for s in target_shape)
        if len(self.target_shape) != 2 or min(self.target_shape) < 1:
            raise ValueError(f"target_shape must be (H, W), got {target_shape}")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        self.layer, self.target, self.time_shift = check_layer(layer), target, int(time_shift)
        channels = self.state_shape[0]
        self.register_buffer("mean", torch.zeros(channels) if mean is None else torch.as_tensor(mean).float())
        self.register_buffer("std", torch.ones(channels) if std is None else torch.as_tensor(std).float())
        H, W = self.target_shape
        spatial = len(self.state_shape) == 3 and H % self.state_shape[1] == 0 and W % self.state_shape[2] == 0
        if spatial:
            self.block = (H // self.state_shape[1], W // self.state_shape[2])  # (s_y, s_x)
            self.readout = nn.Conv2d(channels, self.block[0] * self.block[1], kernel_size)  # padded in forward
        else:
            self.block = None
            self.readout = nn.Linear(math.prod(self.state_shape), H * W)

    def forward(self, state):
        if tuple(state.shape[1:]) != self.state_shape:
            raise ValueError(f"expected states of shape (batch, {', '.join(map(str, self.state_shape))}), "
                             f"got {tuple(state.shape)}")
        view = (1, -1) + (1,) * (len(self.state_shape) - 1)
        B, (H, W) = len(state), self.target_shape
        if self.block is None:
            z = (state - self.mean.view(view)) / self.std.view(view)  # standardised per channel
            return self.readout(z.flatten(1)).view(B, H, W)
        r = self.readout.kernel_size[0] // 2
        # zero-pad the *raw* state, then standardise: exactly a reparametrisation of a plain zero-padded conv
        z = (F.pad(state, (r, r, r, r)) - self.mean.view(view)) / self.std.view(view)
        (sy, sx), (h, w) = self.block, self.state_shape[1:]
        blocks = self.readout(z).view(B, sy, sx, h, w)  # (B, s_y, s_x, h, w)
        return blocks.permute(0, 3, 1, 4, 2).reshape(B, H, W)  # pixel (i s_y + a, j s_x + b) <- (a, b, i, j)


def check_layer(layer) -> tuple:
    """Validate a layer name ``(part, index)``, e.g. ``("decoder", 1)``; return it as a tuple.

    Introduced in *Ablations and probing* (chapter 6).
    """
    if (not isinstance(layer, (tuple, list)) or len(layer) != 2 or layer[0] not in PARTS
            or isinstance(layer[1], bool) or not isinstance(layer[1], (int, np.integer))):
        raise ValueError(f"layer must be a pair (part, index) with part in {PARTS} and an integer index, "
                         f"e.g. ('decoder', 1) for the bottom decoder layer d_1; got {layer!r}")
    return (layer[0], int(layer[1]))


def _check_network(net, layer):
    from .models.rladder import RLadder

    if not isinstance(net, RLadder):
        raise TypeError(f"a probe reads the states of an RLadder, got {type(net).__name__}: the static and "
                        "temporal baselines have no encoder/decoder states to probe")
    part, index = check_layer(layer)
    n_layers = len(net.layers)
    if not 0 <= index <= n_layers:
        raise ValueError(f"layer index {index} is out of range: this RLadder has {part} layers 0..{n_layers} "
                         f"(0 is the {'input' if part == 'encoder' else 'bottom output d_0'})")
    if part == "decoder" and not net.decoder:
        raise ValueError("this RLadder has no decoder (decoder=False, the hierarchical RNN): probe an "
                         "('encoder', l) layer instead")
    return part, index


def layer_states(net, cfg: dict, sequences: dict, layer=("decoder", 1), chunk: int = 200) -> torch.Tensor:
    """The frozen network's state of ``layer`` on ``sequences``: ``(N, T, *state_shape)``, float32, CPU.

    Introduced in *Ablations and probing* (chapter 6). The network runs in ``eval`` mode under
    ``torch.no_grad()`` (its mode is restored afterwards); ``sequences`` are numpy dicts with
    ``frames`` and ``label`` (e.g. :func:`rladder_nb.experiments.occluded_mnist.test_set`).
    """
    from .experiments import occluded_mnist as om

    part, index = _check_network(net, layer)
    if not isinstance(sequences, dict) or "frames" not in sequences or "label" not in sequences:
        raise TypeError("sequences must be a dict with 'frames' (N, T, H, W) and 'label' (N,), "
                        "e.g. occluded_mnist.test_set(cfg)")
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    states = []
    try:
        with torch.no_grad():
            for begin in range(0, len(sequences["label"]), chunk):
                part_seqs = {k: sequences[k][begin:begin + chunk] for k in ("frames", "label")}
                x, _ = om.inputs(cfg, part_seqs, device)  # (B, T, 1, H, W)
                states.append(net(x, return_states=True)[part][index].float().cpu())
    finally:
        net.train(was_training)
    return torch.cat(states)


def make_probe_sequences(cfg: dict, n_sequences: int, seed: int = 0, extra_frames: int = 1, split: str = "train"):
    """Occluded sequences of ``split`` digits for training a probe, with ``extra_frames`` frames beyond
    the experiment's ``n_frames`` (a target for ``time_shift=1`` at the last step).

    Introduced in *Ablations and probing* (chapter 6). Their trajectories are seeded by ``seed +
    PROBE_SEED``, so they never coincide with the test set's; the first ``n_frames`` frames are
    exactly what the experiment would show.
    """
    from .data.occluded_mnist import generate_occluded_sequences
    from .experiments import occluded_mnist as om

    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    images, labels = om.train_digits(cfg, split) if split == "train" else _test_digits()
    data = dict(cfg["data"], n_frames=cfg["data"]["n_frames"] + int(extra_frames))
    return generate_occluded_sequences(images, labels, n=int(n_sequences), seed=int(seed) + PROBE_SEED, **data)


def _test_digits():
    from .data.mnist import load_mnist

    digits = load_mnist("test")
    return digits.images, digits.labels


def _pairs(states, targets, time_shift):
    """Flatten (N, T, *s) states and (N, T', H, W) targets into aligned (M, *s), (M, H, W) pairs."""
    steps = min(states.shape[1], targets.shape[1] - time_shift)
    if steps < 1:
        raise ValueError(f"time_shift={time_shift} leaves no (state, target) pair: the targets have "
                         f"{targets.shape[1]} frames and the states {states.shape[1]}")
    x = states[:, :steps].reshape(-1, *states.shape[2:])
    y = torch.as_tensor(targets[:, time_shift:time_shift + steps], dtype=torch.float32).reshape(-1, *targets.shape[2:])
    return x, y


def fit_probe(states, targets, layer=("decoder", 1), target="clean_frames", time_shift=1, n_steps=600,
              batch_size=128, lr=1e-2, kernel_size=3, seed=0, log_every=20):
    """Fit a :class:`Probe` by Adam on the mean squared error of precomputed states and targets.

    Introduced in *Ablations and probing* (chapter 6); :func:`train_probe` calls it.

    Parameters
    ----------
    states : tensor ``(N, T, *state_shape)``
        Detached states (gradients cannot reach whatever made them).
    targets : array or tensor (N, T', H, W)
        ``targets[:, t + time_shift]`` is the target of ``states[:, t]``.
    layer, target, time_shift, kernel_size
        Recorded in the probe (see :class:`Probe`).
    n_steps, batch_size, lr : optimisation (lr decays linearly to 0 over the last third of the steps).
    seed : int
        Seeds the probe's initialisation and its minibatches (torch's global generator is untouched).

    Returns
    -------
    probe : Probe (in eval mode)
    history : list of dict
        ``{"step", "loss"}`` every ``log_every`` steps and at the end (loss: MSE per pixel of the batch).
    """
    if not torch.is_tensor(states) or states.dim() < 3:
        raise TypeError("states must be a tensor (N, T, *state_shape), e.g. from layer_states(...)")
    if time_shift not in (0, 1):
        raise ValueError(f"time_shift must be 0 or 1, got {time_shift!r}")
    if not isinstance(target, str):
        raise TypeError(f"target must be a string naming what the probe reads, e.g. one of {TARGETS}")
    for name, value in (("n_steps", n_steps), ("batch_size", batch_size), ("log_every", log_every)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    targets = torch.as_tensor(targets, dtype=torch.float32)
    if targets.dim() != 4 or len(targets) != len(states):
        raise ValueError(f"targets must be (N={len(states)}, T, H, W), got {tuple(targets.shape)}")
    x, y = _pairs(states.detach().float(), targets, time_shift)  # (M, *s), (M, H, W)
    dims = [0] + list(range(2, x.dim()))  # every axis but the channel
    generator = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        probe = Probe(x.shape[1:], y.shape[1:], layer, target, time_shift, kernel_size,
                      mean=x.mean(dim=dims), std=x.std(dim=dims).clamp_min(1e-6))
    optimiser = torch.optim.Adam(probe.parameters(), lr=lr)
    history = []
    probe.train()
    for step in range(n_steps):
        for group in optimiser.param_groups:
            group["lr"] = ladder_lr(step, n_steps, lr)
        pick = torch.randint(len(x), (min(batch_size, len(x)),), generator=generator)
        loss = ((probe(x[pick]) - y[pick]) ** 2).mean()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        if step % log_every == 0 or step == n_steps - 1:
            history.append({"step": step, "loss": float(loss.detach())})
    return probe.eval(), history


def train_probe(net, cfg: dict, layer=("decoder", 1), target: str = "clean_frames", time_shift: int = 1,
                n_steps: int | None = None, n_sequences: int | None = None, seed: int = 0, scale=None,
                sequences: dict | None = None, kernel_size: int | None = None):
    """Train a stopped-gradient probe of ``net``'s ``layer`` on ``target`` (the paper's Figure 4, row 4).

    Introduced in *Ablations and probing* (chapter 6).

    Parameters
    ----------
    net : RLadder
        A trained network; it is frozen (run under ``torch.no_grad()``), never modified.
    cfg : dict
        Its experiment config (``occluded_mnist.config(...)`` or a zoo entry's ``config``).
    layer : (part, index)
        ``("decoder", 1)``: the bottom decoder layer ``d_1``; any ``("encoder"|"decoder", 0..L)``.
    target : {'clean_frames', 'frames'}
        The unoccluded frames (never seen by the network) or the observed ones.
    time_shift : {0, 1}
        Read frame ``t + time_shift`` from the state at ``t`` (our reconstruction, default 1).
    n_steps, n_sequences : int, optional
        Default: :data:`SIZES` of ``scale`` (``settings.get_scale``).
    seed : int
        Seeds the training sequences (offset by :data:`PROBE_SEED`), the init and the minibatches.
    sequences : dict, optional
        Training sequences to use instead (numpy, ``frames``, ``clean_frames``, ``label``); for
        ``time_shift=1`` they should hold one frame more than the network is to see.
    kernel_size : int, optional
        Of a convolutional readout (odd); default :data:`SIZES` of ``scale``.

    Returns
    -------
    probe : Probe
    history : list of dict
        :func:`fit_probe`'s, plus a final ``{"seconds", "n_pairs", "n_sequences"}`` summary entry.
    """
    from . import settings

    _check_network(net, layer)
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}: expected one of {TARGETS}")
    if time_shift not in (0, 1):
        raise ValueError(f"time_shift must be 0 or 1, got {time_shift!r}")
    sizes = SIZES[settings.get_scale(scale)]
    n_steps = sizes["n_steps"] if n_steps is None else n_steps
    n_sequences = sizes["n_sequences"] if n_sequences is None else n_sequences
    start = time.perf_counter()
    if sequences is None:
        sequences = make_probe_sequences(cfg, n_sequences, seed, extra_frames=time_shift)
    n_frames = cfg["data"]["n_frames"]
    seen = {"frames": sequences["frames"][:, :n_frames], "label": sequences["label"]}  # the network's input
    states = layer_states(net, cfg, seen, layer)  # (N, T, *s), computed without gradients
    probe, history = fit_probe(states, sequences[target], layer, target, time_shift, n_steps,
                               sizes["batch_size"], sizes["lr"], kernel_size or sizes["kernel_size"], seed)
    history.append({"seconds": round(time.perf_counter() - start, 2), "n_sequences": len(states),
                    "n_pairs": len(states) * min(states.shape[1], sequences[target].shape[1] - time_shift)})
    return probe, history


def apply_probe(probe: Probe, net, cfg: dict, sequences: dict) -> np.ndarray:
    """The probe's readout on ``sequences``: (N, T, H, W) numpy, at every time step the network sees.

    Introduced in *Ablations and probing* (chapter 6). With ``time_shift=1`` entry ``t`` is the probe's
    estimate of frame ``t + 1``.
    """
    if not isinstance(probe, Probe):
        raise TypeError(f"probe must be a Probe (from train_probe), got {type(probe).__name__}")
    states = layer_states(net, cfg, sequences, probe.layer)  # (N, T, *s)
    if tuple(states.shape[2:]) != probe.state_shape:
        raise ValueError(f"the probe reads states of shape {probe.state_shape}, but {probe.layer} of this "
                         f"network has shape {tuple(states.shape[2:])}: was it trained on another network?")
    with torch.no_grad():
        out = probe(states.flatten(0, 1))  # (N T, H, W)
    return out.view(*states.shape[:2], *probe.target_shape).numpy()


def probe_error(readout, sequences: dict, target: str = "clean_frames", time_shift: int = 1,
                scale: float = 1e5, mask=None) -> np.ndarray:
    """Mean squared error per pixel of a readout (N, T, H, W) against its targets, per time step, x ``scale``.

    Introduced in *Ablations and probing* (chapter 6). Step ``t`` compares ``readout[:, t]`` with
    ``sequences[target][:, t + time_shift]``; steps without a target are left out. ``mask`` (H, W) bool
    restricts the average to some pixels (e.g. those under the occlusion bars).
    """
    readout = np.asarray(readout, dtype=np.float64)
    truth = np.asarray(sequences[target], dtype=np.float64)
    if readout.ndim != 4 or truth.ndim != 4 or readout.shape[0] != truth.shape[0]:
        raise ValueError(f"expected a readout (N, T, H, W) and targets alike, got {readout.shape}, {truth.shape}")
    steps = min(readout.shape[1], truth.shape[1] - time_shift)
    sq = (readout[:, :steps] - truth[:, time_shift:time_shift + steps]) ** 2  # (N, steps, H, W)
    if mask is None:
        return sq.mean(axis=(0, 2, 3)) * scale
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != sq.shape[2:] or not mask.any():
        raise ValueError(f"mask must be a boolean (H, W) = {sq.shape[2:]} array selecting some pixels")
    return sq[:, :, mask].mean(axis=(0, 2)) * scale


def changes_of_mind(logits, labels=None, min_confidence: float = 0.5) -> list[dict]:
    """Sequences whose per-frame decision (argmax of the logits) changes, most confident swings first.

    Introduced in *Ablations and probing* (chapter 6), to find examples like the paper's 5 -> 3.

    Parameters
    ----------
    logits : array (N, T, C)
    labels : int array (N,), optional
        When given, only sequences whose final decision is correct are returned.
    min_confidence : float
        Both the abandoned belief (at some frame before the last change) and the final one must have at
        least this probability.

    Returns
    -------
    list of dict
        ``{"index", "decisions" (T,), "from", "to", "frame" (1-based, the first frame of the final
        decision), "swing"}``, sorted by ``swing`` = (probability of the abandoned class when it was
        believed) x (final probability of the final class), largest first.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 3:
        raise ValueError(f"logits must have shape (N, T, C), got {logits.shape}")
    if labels is not None and np.asarray(labels).shape != (len(logits),):
        raise ValueError(f"labels must have shape ({len(logits)},), got {np.asarray(labels).shape}")
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)  # (N, T, C)
    decisions = probs.argmax(-1)  # (N, T)
    found = []
    for i, d in enumerate(decisions):
        final = d[-1]
        differs = np.flatnonzero(d != final)
        if not len(differs) or (labels is not None and final != labels[i]):
            continue
        last_other = differs[-1]  # the last frame that believed something else
        old = d[last_other]
        believed = probs[i, :last_other + 1, old][d[:last_other + 1] == old].max()
        confidence = probs[i, -1, final]
        if believed >= min_confidence and confidence >= min_confidence:
            found.append({"index": i, "decisions": d.tolist(), "from": int(old), "to": int(final),
                          "frame": int(last_other + 2), "swing": float(believed * confidence)})
    return sorted(found, key=lambda r: -r["swing"])
