"""Building blocks of the RLadder: recurrent encoder cells and Ladder decoder combinators.

Introduced in *From message passing to the RLadder* (``book/part1/04_from_message_passing_to_rladder.md``).

* Encoder cells are stateful: :class:`LSTMCell` / :class:`GRUCell` for fully-connected layers,
  :class:`ConvLSTMCell` / :class:`ConvGRUCell` for spatial layers (Shi et al. 2015). Each can normalise
  its gate pre-activations (LayerNorm for dense cells, GroupNorm for convolutional ones): the Ladder
  used batch norm in its encoder, and without some normalisation the convolutional RLadder barely trains
  (``NOTES.md`` §7). The forget-gate bias starts at 1.
* Decoder cells are stateless, elementwise *combinators* ``g(z, u)`` of the lateral input ``z`` (the
  encoder's output at the same layer) and the top-down input ``u`` (NOTES.md §2): the "vanilla"
  combinator of Pezeshki et al. (2016) and the Gaussian one of Rasmus et al. (2015). Their parameters
  are per unit (dense) or per channel (convolutional): our reconstruction of the paper's "cells inspired
  by the original Ladder networks".
* Every cell takes and returns tensors shaped like PyTorch's own cells: ``(B, features)`` or
  ``(B, C, H, W)``; recurrent cells keep their state in a tuple.
"""
from __future__ import annotations

import torch
from torch import nn

CELL_TYPES = ("lstm", "gru", "reslstm")
COMBINATORS = ("vanilla", "gaussian")


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class _GateNorm(nn.Module):
    """Normalises each gate's pre-activation separately (LayerNorm / GroupNorm), or does nothing."""

    def __init__(self, n_gates: int, size: int, conv: bool, norm: str | None):
        super().__init__()
        self.n_gates, self.conv = n_gates, conv
        if norm is None or norm == "none":
            self.norms = None
        elif norm in ("layer", "group"):
            if conv:
                groups = max(1, min(8, size // 4))
                while size % groups:
                    groups -= 1
                self.norms = nn.ModuleList(nn.GroupNorm(groups, size) for _ in range(n_gates))
            else:
                self.norms = nn.ModuleList(nn.LayerNorm(size) for _ in range(n_gates))
        else:
            raise ValueError(f"unknown norm {norm!r}: expected None, 'layer' or 'group'")

    def forward(self, gates):  # (B, n_gates*size[, H, W])
        chunks = gates.chunk(self.n_gates, dim=1)
        if self.norms is None:
            return chunks
        return tuple(n(c) for n, c in zip(self.norms, chunks))


class LSTMCell(nn.Module):
    """A fully-connected LSTM cell (Hochreiter & Schmidhuber 1997) with optional gate normalisation.

    ``forward(x (B, input_size), state=(h, c) or None) -> (h, (h, c))``.
    """

    n_gates = 4

    def __init__(self, input_size: int, hidden_size: int, norm: str | None = None):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"sizes must be >= 1, got input_size={input_size}, hidden_size={hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.linear = nn.Linear(input_size + hidden_size, self.n_gates * hidden_size)
        self.norm = _GateNorm(self.n_gates, hidden_size, conv=False, norm=norm)
        with torch.no_grad():  # forget-gate bias 1: remember by default
            self.linear.bias[hidden_size:2 * hidden_size].fill_(1.0)

    def initial_state(self, x):
        z = x.new_zeros(x.shape[0], self.hidden_size)
        return (z, z)

    def _mix(self, x, h):
        return self.linear(torch.cat([x, h], dim=1))

    def forward(self, x, state=None):
        h, c = self.initial_state(x) if state is None else state
        i, f, g, o = self.norm(self._mix(x, h))
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class GRUCell(nn.Module):
    """A fully-connected GRU cell (Cho et al. 2014) with optional gate normalisation.

    ``forward(x (B, input_size), state=(h,) or None) -> (h, (h,))``.
    """

    def __init__(self, input_size: int, hidden_size: int, norm: str | None = None):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"sizes must be >= 1, got input_size={input_size}, hidden_size={hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.gates = nn.Linear(input_size + hidden_size, 2 * hidden_size)
        self.candidate = nn.Linear(input_size + hidden_size, hidden_size)
        self.norm = _GateNorm(2, hidden_size, conv=False, norm=norm)

    def initial_state(self, x):
        return (x.new_zeros(x.shape[0], self.hidden_size),)

    def forward(self, x, state=None):
        (h,) = self.initial_state(x) if state is None else state
        r, u = self.norm(self.gates(torch.cat([x, h], dim=1)))
        r, u = torch.sigmoid(r), torch.sigmoid(u)
        n = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))
        h = (1 - u) * h + u * n
        return h, (h,)


class ConvLSTMCell(nn.Module):
    """A convolutional LSTM cell (Shi et al. 2015): the LSTM's matrix products become convolutions.

    ``forward(x (B, C_in, H, W), state=(h, c) or None) -> (h (B, C, H, W), (h, c))``.
    """

    n_gates = 4

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size=3, norm: str | None = "group"):
        super().__init__()
        if in_channels < 1 or hidden_channels < 1:
            raise ValueError(f"channels must be >= 1, got {in_channels} and {hidden_channels}")
        k = _pair(kernel_size)
        self.in_channels, self.hidden_size = in_channels, hidden_channels
        self.conv = nn.Conv2d(in_channels + hidden_channels, self.n_gates * hidden_channels, k,
                              padding=(k[0] // 2, k[1] // 2))
        self.norm = _GateNorm(self.n_gates, hidden_channels, conv=True, norm=norm)
        with torch.no_grad():
            self.conv.bias[hidden_channels:2 * hidden_channels].fill_(1.0)

    def initial_state(self, x):
        z = x.new_zeros(x.shape[0], self.hidden_size, *x.shape[2:])
        return (z, z)

    def forward(self, x, state=None):
        h, c = self.initial_state(x) if state is None else state
        i, f, g, o = self.norm(self.conv(torch.cat([x, h], dim=1)))
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class ConvGRUCell(nn.Module):
    """A convolutional GRU cell. ``forward(x (B, C_in, H, W), state=(h,) or None) -> (h, (h,))``."""

    def __init__(self, in_channels: int, hidden_channels: int, kernel_size=3, norm: str | None = "group"):
        super().__init__()
        if in_channels < 1 or hidden_channels < 1:
            raise ValueError(f"channels must be >= 1, got {in_channels} and {hidden_channels}")
        k = _pair(kernel_size)
        pad = (k[0] // 2, k[1] // 2)
        self.in_channels, self.hidden_size = in_channels, hidden_channels
        self.gates = nn.Conv2d(in_channels + hidden_channels, 2 * hidden_channels, k, padding=pad)
        self.candidate = nn.Conv2d(in_channels + hidden_channels, hidden_channels, k, padding=pad)
        self.norm = _GateNorm(2, hidden_channels, conv=True, norm=norm)

    def initial_state(self, x):
        return (x.new_zeros(x.shape[0], self.hidden_size, *x.shape[2:]),)

    def forward(self, x, state=None):
        (h,) = self.initial_state(x) if state is None else state
        r, u = self.norm(self.gates(torch.cat([x, h], dim=1)))
        r, u = torch.sigmoid(r), torch.sigmoid(u)
        n = torch.tanh(self.candidate(torch.cat([x, r * h], dim=1)))
        h = (1 - u) * h + u * n
        return h, (h,)


class ResidualLSTMCell(nn.Module):
    """A feed-forward layer with an LSTM beside it: ``h = relu(norm(W x)) + lstm(relu(norm(W x)))``.

    The feed-forward path (a convolution or linear map, GroupNorm/LayerNorm, ReLU: the layer of the
    static network the encoder derives from) carries the bottom-up signal at full strength from the
    first step of training; the (Conv)LSTM adds memory on top of it. Our choice for deep convolutional
    encoders, where a stack of plain ConvLSTMs sits on a long plateau before the class cost moves
    (see the Occluded Moving MNIST chapters). ``forward(x, state) -> (h, state)`` like the other cells.
    """

    def __init__(self, input_size: int, hidden_size: int, conv: bool, kernel_size=3, norm: str | None = "group"):
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"sizes must be >= 1, got input_size={input_size}, hidden_size={hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        if conv:
            self.in_channels = input_size   # the name the ConvLSTM/ConvGRU cells use
            k = _pair(kernel_size)
            groups = max(1, min(8, hidden_size // 4))
            while hidden_size % groups:
                groups -= 1
            self.feedforward = nn.Sequential(nn.Conv2d(input_size, hidden_size, k, padding=(k[0] // 2, k[1] // 2)),
                                             nn.GroupNorm(groups, hidden_size), nn.ReLU())
            self.lstm = ConvLSTMCell(hidden_size, hidden_size, kernel_size, norm=norm)
        else:
            self.feedforward = nn.Sequential(nn.Linear(input_size, hidden_size), nn.LayerNorm(hidden_size), nn.ReLU())
            self.lstm = LSTMCell(hidden_size, hidden_size, norm=norm)

    def forward(self, x, state=None):
        f = self.feedforward(x)
        h, state = self.lstm(f, state)
        return f + h, state


def make_encoder_cell(cell: str, conv: bool, input_size: int, hidden_size: int, kernel_size=3, norm=None):
    """The encoder cell for one layer: ``cell`` in ``('lstm', 'gru', 'reslstm')``, convolutional if ``conv``."""
    if cell not in CELL_TYPES:
        raise ValueError(f"unknown encoder cell {cell!r}: expected one of {CELL_TYPES}")
    if cell == "reslstm":
        return ResidualLSTMCell(input_size, hidden_size, conv, kernel_size, norm=norm)
    if conv:
        cls = ConvLSTMCell if cell == "lstm" else ConvGRUCell
        return cls(input_size, hidden_size, kernel_size, norm=norm)
    cls = LSTMCell if cell == "lstm" else GRUCell
    return cls(input_size, hidden_size, norm=norm)


class VanillaCombinator(nn.Module):
    """The "vanilla" Ladder combinator (Pezeshki et al. 2016), elementwise per unit or channel.

    .. math:: g(z, u) = b_0 + w_{0z} z + w_{0u} u + w_{0zu} z u
                       + w_s\\,\\sigma(b_1 + w_{1z} z + w_{1u} u + w_{1zu} z u)

    initialised with :math:`w_{0z} = w_s = w_{1z} = 1` and everything else 0, so that it starts close to
    passing the lateral input through.
    ``param_shape`` is ``(units,)`` for dense layers or ``(C, 1, 1)`` for convolutional ones.
    """

    _ones = ("w0z", "ws", "w1z")
    _names = ("b0", "w0z", "w0u", "w0zu", "ws", "b1", "w1z", "w1u", "w1zu")

    def __init__(self, param_shape):
        super().__init__()
        for name in self._names:
            init = torch.ones if name in self._ones else torch.zeros
            setattr(self, name, nn.Parameter(init(*param_shape)))

    def forward(self, z, u):
        zu = z * u
        linear = self.b0 + self.w0z * z + self.w0u * u + self.w0zu * zu
        gate = torch.sigmoid(self.b1 + self.w1z * z + self.w1u * u + self.w1zu * zu)
        return linear + self.ws * gate


class GaussianCombinator(nn.Module):
    """The Gaussian Ladder combinator of Rasmus et al. (2015), with parameters ``a1 .. a10``.

    .. math:: \\mu(u) = a_1 \\sigma(a_2 u + a_3) + a_4 u + a_5, \\qquad
              v(u) = a_6 \\sigma(a_7 u + a_8) + a_9 u + a_{10}, \\qquad
              g(z, u) = (z - \\mu(u))\\, v(u) + \\mu(u)

    initialised with ``a2 = a7 = 1`` and the others 0. ``sigmoid_v=True`` passes ``v`` through a sigmoid
    (Tagger's variant for continuous data).
    """

    def __init__(self, param_shape, sigmoid_v: bool = False):
        super().__init__()
        self.sigmoid_v = sigmoid_v
        for i in range(1, 11):
            init = torch.ones if i in (2, 7) else torch.zeros
            setattr(self, f"a{i}", nn.Parameter(init(*param_shape)))

    def forward(self, z, u):
        mu = self.a1 * torch.sigmoid(self.a2 * u + self.a3) + self.a4 * u + self.a5
        v = self.a6 * torch.sigmoid(self.a7 * u + self.a8) + self.a9 * u + self.a10
        if self.sigmoid_v:
            v = torch.sigmoid(v)
        return (z - mu) * v + mu


def make_combinator(kind: str, param_shape):
    """A decoder combinator: ``kind`` in ``('vanilla', 'gaussian')``."""
    if kind == "vanilla":
        return VanillaCombinator(param_shape)
    if kind == "gaussian":
        return GaussianCombinator(param_shape)
    raise ValueError(f"unknown combinator {kind!r}: expected one of {COMBINATORS}")
