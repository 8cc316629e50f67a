"""Next-step models of piano rolls for the polyphonic-music experiment (the paper's Table 3).

Introduced in *Polyphonic music* (``book/part2/08_polyphonic_music.md``).

* Every model maps a piano roll ``x`` (B, T, 88) to logits (B, T, 88) where ``[:, t]`` scores
  ``x[:, t + 1]`` given ``x[:, :t + 1]`` (``forward``), and ``aligned_logits`` shifts the input by one
  silent frame so that ``[:, t]`` scores ``x[:, t]`` itself (the alignment of
  :func:`rladder_nb.metrics.piano_roll_nll`, first step included). Notes are independent given the past:
  these are the *marginal* models of Table 3.
* :class:`PianoRollRLadder` wraps the one :class:`~rladder_nb.models.rladder.RLadder`: a frame is a
  (1, 1, 88) image, convolutional LSTMs run along the pitch axis, a fully-connected LSTM sits on top and
  the bottom decoder output ``d_0`` (+ a learned per-pitch bias, our reconstruction) gives the logits.
* :class:`PianoRollLSTM` (the LSTM baseline of :class:`~rladder_nb.models.baselines.MusicLSTM`, made
  checkpointable) and :class:`PianoRollBernoulli` (the independent-note floor as a module with its 88
  probabilities in a buffer) share the same interface, so one training and evaluation code serves all.
* The trainable models carry their learning curves in buffers (``train_curve`` (N, 2): step, loss;
  ``valid_curve`` (M, 2): step, validation NLL) so that a zoo checkpoint can show how it was trained.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..training import register_model
from .baselines import BernoulliFloor, MusicLSTM, masked_nll  # noqa: F401  (masked_nll re-exported)
from .rladder import RLadder

N_NOTES = 88


def shift_right(x: torch.Tensor) -> torch.Tensor:
    """Prepend one silent frame and drop the last: ``(B, T, 88) -> (B, T, 88)`` with ``out[:, t] = x[:, t-1]``."""
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)


class _LearningCurves:
    """Mixin: ``train_curve`` / ``valid_curve`` buffers whose length is only known when loading."""

    _curve_names = ("train_curve", "valid_curve")

    def _init_curves(self):
        for name in self._curve_names:
            self.register_buffer(name, torch.zeros(0, 2))

    def set_learning_curves(self, train_rows, valid_rows) -> None:
        """Store ``[(step, loss), ...]`` and ``[(step, valid_nll), ...]`` with the model's weights."""
        for name, rows in zip(self._curve_names, (train_rows, valid_rows)):
            device = getattr(self, name).device
            setattr(self, name, torch.tensor(np.asarray(rows, dtype=np.float32).reshape(-1, 2), device=device))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for name in self._curve_names:  # resize the buffers to the stored curves before copying them
            stored = state_dict.get(prefix + name)
            if stored is not None:
                setattr(self, name, torch.empty_like(stored))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def _check_roll_batch(x, n_notes=N_NOTES) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != n_notes:
        shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
        raise ValueError(f"expected a tensor (batch, steps, {n_notes}) of piano rolls; got {shape}")
    return x.float()


@register_model
class PianoRollRLadder(_LearningCurves, nn.Module):
    """An RLadder that reads one piano-roll frame per step and predicts the next frame's notes.

    Parameters
    ----------
    layers : list
        RLadder layer specs, bottom to top (see :func:`rladder_nb.models.rladder.conv` / ``dense``); conv
        layers act on the (1, 1, 88) frame, so their kernels and strides are pairs ``(1, k)``.
    cell, combinator, decoder, decoder_to_encoder, norm
        Passed to :class:`~rladder_nb.models.rladder.RLadder`.
    pitch_bias : bool
        Add a learned bias per pitch to the bottom decoder output (our reconstruction: the RLadder's
        convolutions and per-channel combinators are the same at every pitch, the keys are not).
    input_dropout : float
        Probability of dropping each input note during training (a corruption of the input, as in a
        denoising Ladder; 0 disables it). Our reconstruction.

    Introduced in *Polyphonic music* (Part II).
    """

    def __init__(self, layers, cell="lstm", combinator="vanilla", decoder=True, decoder_to_encoder=True,
                 pitch_bias=True, input_dropout=0.0, norm="auto"):
        super().__init__()
        if not 0.0 <= input_dropout < 1.0:
            raise ValueError(f"input_dropout must lie in [0, 1), got {input_dropout!r}")
        self.rladder = RLadder((1, 1, N_NOTES), layers, cell=cell, combinator=combinator, decoder=decoder,
                               decoder_to_encoder=decoder_to_encoder, n_classes=None, bottom_output=True,
                               norm=norm)
        self.config = dict(layers=self.rladder.config["layers"], cell=cell, combinator=combinator, decoder=decoder,
                           decoder_to_encoder=decoder_to_encoder, pitch_bias=pitch_bias,
                           input_dropout=input_dropout, norm=norm)
        self.input_dropout = input_dropout
        self.pitch_bias = nn.Parameter(torch.zeros(N_NOTES)) if pitch_bias else None
        self._init_curves()

    def forward(self, x: torch.Tensor, return_states: bool = False):
        """Logits (B, T, 88): ``[:, t]`` scores ``x[:, t + 1]`` given ``x[:, :t + 1]``.

        With ``return_states`` returns ``(logits, out)`` where ``out`` is the RLadder's dict with the
        encoder and decoder states of every layer.
        """
        x = _check_roll_batch(x)
        if self.training and self.input_dropout > 0:
            x = x * (torch.rand_like(x) >= self.input_dropout)
        B, T = x.shape[:2]
        out = self.rladder(x.reshape(B, T, 1, 1, N_NOTES), return_states=return_states)
        logits = out["bottom"].reshape(B, T, N_NOTES)  # d_0: (B, T, 88)
        if self.pitch_bias is not None:
            logits = logits + self.pitch_bias
        return (logits, out) if return_states else logits

    def aligned_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, 88) where ``[:, t]`` scores ``x[:, t]`` given ``x[:, :t]`` (step 0: no context)."""
        return self.forward(shift_right(_check_roll_batch(x)))

    def loss(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        """Mean NLL per scored step (nats), every step scored, padding ignored."""
        x = _check_roll_batch(x)
        return masked_nll(self.aligned_logits(x), x, lengths)


@register_model
class PianoRollLSTM(_LearningCurves, MusicLSTM):
    """The LSTM baseline (:class:`~rladder_nb.models.baselines.MusicLSTM`) with a ``config``, so that it
    can be checkpointed, learning-curve buffers and the same ``input_dropout`` as :class:`PianoRollRLadder`
    (so that both get the same regularisation). Introduced in *Polyphonic music* (Part II)."""

    def __init__(self, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.0,
                 input_dropout: float = 0.0):
        super().__init__(hidden_size=hidden_size, num_layers=num_layers, dropout=dropout)
        if not 0.0 <= input_dropout < 1.0:
            raise ValueError(f"input_dropout must lie in [0, 1), got {input_dropout!r}")
        self.config = dict(hidden_size=hidden_size, num_layers=num_layers, dropout=dropout,
                           input_dropout=input_dropout)
        self.input_dropout = input_dropout
        self._init_curves()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, 88)``: ``[:, t]`` scores ``x[:, t + 1]`` given ``x[:, :t + 1]``."""
        x = self._check(x)
        if self.training and self.input_dropout > 0:
            x = x * (torch.rand_like(x) >= self.input_dropout)
        return super().forward(x)


@register_model
class PianoRollBernoulli(nn.Module):
    """The independent-note floor as a module: the same 88 probabilities at every step.

    ``fit(train_rolls)`` counts notes with :class:`~rladder_nb.models.baselines.BernoulliFloor`
    (Laplace ``smoothing``); the probabilities live in a buffer so that a checkpoint holds them.
    Introduced in *Polyphonic music* (Part II).
    """

    def __init__(self, smoothing: float = 1.0):
        super().__init__()
        BernoulliFloor(smoothing)  # validates smoothing
        self.config = dict(smoothing=smoothing)
        self.register_buffer("probabilities", torch.full((N_NOTES,), 0.5, dtype=torch.float64))

    def fit(self, rolls) -> "PianoRollBernoulli":
        """Set the probabilities to the smoothed note frequencies of ``rolls`` (a list of (T_i, 88))."""
        floor = BernoulliFloor(self.config["smoothing"]).fit(rolls)
        self.probabilities = torch.as_tensor(floor.probabilities_, dtype=torch.float64,
                                             device=self.probabilities.device)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, 88), the same at every step (the past is ignored)."""
        x = _check_roll_batch(x)
        logits = torch.logit(self.probabilities).to(x.dtype)  # (88,)
        return logits.expand(*x.shape[:2], N_NOTES)

    aligned_logits = forward  # no context is used, so no shift is needed

    def loss(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        x = _check_roll_batch(x)
        return masked_nll(self.aligned_logits(x), x, lengths)

    def n_parameters(self) -> int:
        """The 88 fitted probabilities (not trained by gradient)."""
        return int(self.probabilities.numel())


@torch.no_grad()
def sample_continuation(net, prime, n_steps: int, seed: int = 0, n_samples: int = 1, temperature: float = 1.0):
    """Continue a piano roll by sampling each next frame from the model's predicted note marginals.

    Every note of frame ``t + 1`` is an independent coin with probability ``sigmoid(logit / temperature)``
    given the frames up to ``t`` (the primer, then the model's own samples). The whole sequence is re-run
    for each new frame, since the RLadder has no step-by-step interface: ``n_steps`` forward passes.

    Parameters
    ----------
    net : a model of this module (``forward`` gives next-step logits)
    prime : array (T0, 88) of 0/1, T0 >= 1
    n_steps : int
        Frames to generate.
    seed : int
        Seed of the sampling generator (the result is reproducible).
    n_samples : int
        Independent continuations, generated as one batch.
    temperature : float
        Scales the logits (1: the model's own marginals).

    Returns
    -------
    (rolls (n_samples, T0 + n_steps, 88) uint8, probabilities (n_samples, n_steps, 88) float32) — the
    probabilities each generated frame was drawn from.

    Introduced in *Polyphonic music* (Part II).
    """
    prime = np.asarray(prime.detach().cpu() if torch.is_tensor(prime) else prime)
    if prime.ndim != 2 or prime.shape[1] != N_NOTES or len(prime) < 1 or not np.all((prime == 0) | (prime == 1)):
        raise ValueError(f"prime must be a non-empty binary piano roll (T0, {N_NOTES}); got shape {prime.shape}")
    for label, value in (("n_steps", n_steps), ("n_samples", n_samples)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}")
    device = next(iter(net.state_dict().values())).device
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    net.eval()
    x = torch.as_tensor(prime, dtype=torch.float32, device=device).expand(n_samples, -1, -1).clone()  # (S, T0, 88)
    probs = []
    for _ in range(n_steps):
        p = torch.sigmoid(net(x)[:, -1] / temperature).float().cpu()  # (S, 88): the next frame's marginals
        frame = (torch.rand(p.shape, generator=generator) < p).float()
        probs.append(p)
        x = torch.cat([x, frame.to(device)[:, None]], dim=1)
    return x.cpu().numpy().astype(np.uint8), torch.stack(probs, 1).numpy()
