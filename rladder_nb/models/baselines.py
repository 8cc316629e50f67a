"""Baselines the RLadder is compared with: small, separate modules (DESIGN principle 2).

* :class:`BernoulliFloor` — every note an independent coin with its training-set frequency, the same at
  every step: the sanity floor of the music benchmarks (about 11.06 nats per step on JSB Chorales).
* :class:`MusicLSTM` — a one-layer (or deeper) LSTM reading the piano roll and emitting, at step t, the
  logits of the 88 notes of step t + 1: a "marginal" model of Table 3 (notes independent given the past).
* More baselines will join this file: the temporal baseline of Occluded Moving MNIST (a per-frame CNN
  with a recurrent layer on top).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

N_NOTES = 88


def _check_rolls(rolls, where: str) -> list:
    if isinstance(rolls, np.ndarray) and rolls.ndim == 2:
        rolls = [rolls]
    if not isinstance(rolls, (list, tuple)) or len(rolls) == 0:
        raise ValueError(f"{where}: expected a non-empty list of (T_i, 88) piano rolls")
    out = []
    for i, roll in enumerate(rolls):
        roll = np.asarray(roll)
        if roll.ndim != 2 or roll.shape[1] != N_NOTES:
            raise ValueError(f"{where}: roll {i} has shape {roll.shape}; expected (T, {N_NOTES})")
        out.append(roll)
    return out


def masked_nll(logits: torch.Tensor, x: torch.Tensor, lengths=None) -> torch.Tensor:
    """Mean NLL per scored step (nats): Bernoulli NLL summed over the 88 notes, padding ignored.

    ``logits`` are aligned with ``x`` (both (B, T, 88)); steps ``t >= lengths[b]`` do not count.
    Introduced in *Polyphonic music* (Part II).
    """
    per_step = nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)  # (B, T)
    if lengths is None:
        return per_step.mean()
    lengths = torch.as_tensor(lengths, device=x.device)
    mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]  # (B, T)
    return (per_step * mask).sum() / mask.sum().clamp(min=1)


class BernoulliFloor:
    """Independent per-pitch Bernoulli model: ``p(x_t) = prod_k p_k^x_tk (1 - p_k)^(1 - x_tk)``.

    ``p_k = (count_k + smoothing) / (steps + 2 smoothing)`` over all training steps: additive (Laplace)
    smoothing, needed because some notes of the test sets never sound in training (one on JSB, one on
    Nottingham, five on MuseData) and would get probability 0. With ``smoothing=1`` and the first step scored, it gives
    11.06 / 10.25 / 11.51 / 11.05 nats per step on JSB / Nottingham / MuseData / Piano-midi.de test;
    any smoothing from 0.01 to 1 agrees to 0.01 nats.

    Parameters
    ----------
    smoothing : float
        Pseudo-count added to the on and off counts of each note (our choice, labelled).

    Introduced in *Polyphonic music* (Part II).
    """

    def __init__(self, smoothing: float = 1.0):
        if not np.isscalar(smoothing) or not smoothing > 0:
            raise ValueError(f"smoothing must be a positive pseudo-count, got {smoothing!r}")
        self.smoothing = float(smoothing)
        self.probabilities_ = None  # (88,) after fit

    def fit(self, rolls) -> "BernoulliFloor":
        """Count how often each note sounds over every step of the training rolls."""
        rolls = _check_rolls(rolls, "BernoulliFloor.fit")
        counts = sum(r.astype(np.float64).sum(axis=0) for r in rolls)  # (88,)
        n_steps = sum(len(r) for r in rolls)
        self.probabilities_ = (counts + self.smoothing) / (n_steps + 2 * self.smoothing)
        self.n_steps_ = n_steps
        return self

    def predict_proba(self, rolls) -> list:
        """Probabilities ``(T_i, 88)`` for each roll (the same row at every step)."""
        if self.probabilities_ is None:
            raise RuntimeError("BernoulliFloor is not fitted yet: call fit(train_rolls) first")
        rolls = _check_rolls(rolls, "BernoulliFloor.predict_proba")
        return [np.broadcast_to(self.probabilities_, r.shape).copy() for r in rolls]

    def score(self, rolls, score_first_step: bool = True) -> float:
        """Average NLL per step (nats) on ``rolls``; see :func:`rladder_nb.metrics.piano_roll_nll`."""
        from rladder_nb.metrics import piano_roll_nll

        rolls = _check_rolls(rolls, "BernoulliFloor.score")
        return piano_roll_nll(self.predict_proba(rolls), rolls, score_first_step=score_first_step)


class MusicLSTM(nn.Module):
    """LSTM next-step model of piano rolls: logits of ``p(x_{t+1} | x_{<=t})`` at every step.

    * input ``(B, T, 88)`` piano roll -> LSTM (``num_layers`` x ``hidden_size``) -> linear -> ``(B, T, 88)``
      logits; output ``[:, t]`` depends on inputs ``[:, :t+1]`` only (causal).
    * :meth:`aligned_logits` shifts the input right by one zero frame so that output ``[:, t]`` predicts
      ``x_t`` itself: the alignment :func:`rladder_nb.metrics.piano_roll_nll` expects, first step included.

    Parameters
    ----------
    hidden_size : int
        Units of each LSTM layer.
    num_layers : int
    dropout : float
        Dropout between LSTM layers (only with ``num_layers > 1``).

    Introduced in *Polyphonic music* (Part II).
    """

    def __init__(self, hidden_size: int = 128, num_layers: int = 1, dropout: float = 0.0, n_notes: int = N_NOTES):
        super().__init__()
        for label, value in (("hidden_size", hidden_size), ("num_layers", num_layers), ("n_notes", n_notes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        self.n_notes = n_notes
        self.lstm = nn.LSTM(n_notes, hidden_size, num_layers=num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.readout = nn.Linear(hidden_size, n_notes)

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != self.n_notes:
            shape = tuple(x.shape) if hasattr(x, "shape") else type(x).__name__
            raise ValueError(f"MusicLSTM expects a tensor (batch, steps, {self.n_notes}); got {shape}")
        return x.float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, 88)``: ``[:, t]`` scores ``x[:, t + 1]`` given ``x[:, :t + 1]``."""
        hidden, _ = self.lstm(self._check(x))  # (B, T, H)
        return self.readout(hidden)  # (B, T, 88)

    def aligned_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, 88)`` where ``[:, t]`` scores ``x[:, t]`` given ``x[:, :t]`` (step 0: no context)."""
        x = self._check(x)
        shifted = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1)  # (B, T, 88), a silent frame first
        return self.forward(shifted)

    def loss(self, x: torch.Tensor, lengths=None) -> torch.Tensor:
        """Mean NLL per scored step (nats), every step scored, padding (``t >= lengths[b]``) ignored."""
        x = self._check(x)
        return masked_nll(self.aligned_logits(x), x, lengths)

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
