"""Baselines for the video experiments (Occluded Moving MNIST): the RLadder's encoder without recurrence.

Introduced in *Occluded Moving MNIST and optimal inference* (``book/part2/05_occluded_moving_mnist.md``).

* :class:`FeedForwardEncoder` — the bottom-up path of an :class:`~rladder_nb.models.rladder.RLadder`
  built from the same layer list, with every recurrent cell replaced by a feed-forward one. A conv layer
  is the RLadder's strided ``up`` convolution followed by a 3x3 convolution (where the ConvLSTM's gate
  convolution sits), GroupNorm and ReLU; a dense layer is Flatten + Linear + LayerNorm + ReLU. Same
  layer shapes as the RLadder's encoder (our reconstruction of "the static feed-forward network from
  which the encoder of the RLadder was derived": the paper's Appendix D.1 is not available).
* :class:`StaticClassifier` — that encoder and a linear classifier: the paper's *gold standard* when it
  reads the optimal temporal reconstruction of the digit.
* :class:`TemporalBaseline` — the same encoder applied to every frame, with its top (dense) layer
  replaced by a fully-connected LSTM or GRU: temporal information can only flow at the top (the paper's
  Figure 3, left).
* Both return dicts like the RLadder does (``logits``; ``bottom`` is None: no prediction output).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..training import register_model
from .rladder import RLadder, _as_layer, _pair

RNN_TYPES = ("lstm", "gru")
RNN_INPUTS = ("features", "top")   # see TemporalBaseline


def _groups(channels: int) -> int:
    """GroupNorm groups: about 4 channels per group, at most 8 groups (as in the ConvLSTM cells)."""
    groups = max(1, min(8, channels // 4))
    while channels % groups:
        groups -= 1
    return groups


class FeedForwardEncoder(nn.Module):
    """The RLadder encoder's layer stack without recurrence; ``forward(x (B, *input_shape)) -> (B, *shape_L)``.

    Introduced in *Occluded Moving MNIST and optimal inference*.

    Parameters
    ----------
    input_shape : tuple
        ``(C, H, W)`` or ``(D,)``.
    layers : list
        Layer specs as for :class:`~rladder_nb.models.rladder.RLadder` (``conv``/``dense`` or tuples).
    """

    def __init__(self, input_shape, layers):
        super().__init__()
        layers = [_as_layer(s) for s in layers]
        if not layers:
            raise ValueError("a FeedForwardEncoder needs at least one layer")
        self.shapes = RLadder._layer_shapes(tuple(int(s) for s in input_shape), layers)
        blocks = []
        for layer, below in zip(layers, self.shapes[:-1]):
            if layer.kind == "conv":
                k = _pair(layer.kernel_size)
                pad = tuple(kk // 2 for kk in k)
                blocks.append(nn.Sequential(
                    nn.Conv2d(below[0], layer.size, k, stride=layer.stride, padding=pad),  # the RLadder's `up`
                    nn.Conv2d(layer.size, layer.size, k, padding=pad),                     # where the cell sits
                    nn.GroupNorm(_groups(layer.size), layer.size), nn.ReLU()))
            else:
                blocks.append(nn.Sequential(nn.Flatten(), nn.Linear(math.prod(below), layer.size),
                                            nn.LayerNorm(layer.size), nn.ReLU()))
        self.blocks = nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x)


def _check(x, shape, what):
    if not torch.is_tensor(x):
        raise TypeError(f"x must be a torch tensor, got {type(x).__name__}")
    if tuple(x.shape[-len(shape):]) != tuple(shape) or x.dim() != len(shape) + (2 if what == "seq" else 1):
        lead = "batch, time" if what == "seq" else "batch"
        raise ValueError(f"expected x of shape ({lead}, {', '.join(map(str, shape))}), got {tuple(x.shape)}")


@register_model
class StaticClassifier(nn.Module):
    """A feed-forward classifier with the RLadder encoder's architecture (the gold standard's network).

    Introduced in *Occluded Moving MNIST and optimal inference*.
    ``forward(x (B, *input_shape)) -> {"logits": (B, n_classes), "bottom": None}``.

    Parameters
    ----------
    input_shape : tuple
        Shape of one image, e.g. ``(1, 32, 32)``.
    layers : list
        The RLadder's layer specs (see :class:`FeedForwardEncoder`).
    n_classes : int
    """

    def __init__(self, input_shape, layers, n_classes: int = 10):
        super().__init__()
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        layers = [_as_layer(s) for s in layers]
        self.input_shape = tuple(int(s) for s in input_shape)
        self.config = dict(input_shape=self.input_shape, layers=[list(vars(l).values()) for l in layers],
                           n_classes=n_classes)
        self.encoder = FeedForwardEncoder(self.input_shape, layers)
        top = self.encoder.shapes[-1]
        self.classifier = nn.Linear(top[0], n_classes)

    def forward(self, x):
        _check(x, self.input_shape, "image")
        h = self.encoder(x)  # (B, *shape_L)
        if h.dim() == 4:
            h = h.mean(dim=(2, 3))  # spatial average, as the RLadder's classifier does
        return {"logits": self.classifier(h), "bottom": None}

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


@register_model
class TemporalBaseline(nn.Module):
    """A feed-forward encoder per frame + a fully-connected RNN at the top only (the paper's temporal baseline).

    Introduced in *Occluded Moving MNIST and optimal inference*. A linear classifier reads the RNN at every
    frame. ``forward(x (B, T, *input_shape)) -> {"logits": (B, T, n_classes), "bottom": None}``.

    Two readings of the paper ("a deep feed-forward network (the one on which the encoder is based) with
    a recurrent neural network (RNN) at the top only"), chosen by ``rnn_input``:

    * ``'top'``: the whole feed-forward network -- the gold standard's, its top dense layer included -- runs
      on each frame, and an LSTM/GRU of the top layer's size sits on top of it. What the experiments use.
    * ``'features'``: the top layer ``layers[-1]`` itself becomes the RNN, reading the flattened output of
      the layers below. The first version (the default, so that its saved models still load); its class
      cost sat at chance for thousands of steps with few labels (see
      :mod:`rladder_nb.experiments.occluded_mnist_semi`).

    Parameters
    ----------
    input_shape : tuple
    layers : list
        The RLadder's layer specs; the last one must be ``dense``.
    n_classes : int
    rnn : {'lstm', 'gru'}
    rnn_input : {'features', 'top'}
    residual : bool
        With ``rnn_input='top'``: the classifier reads ``f + rnn(f)``, ``f`` the feed-forward network's top
        output -- the RLadder's residual cells (:class:`~rladder_nb.models.cells.ResidualLSTMCell`) in
        the one place where this network has memory.
    """

    def __init__(self, input_shape, layers, n_classes: int = 10, rnn: str = "lstm", rnn_input: str = "features",
                 residual: bool = False):
        super().__init__()
        if rnn not in RNN_TYPES:
            raise ValueError(f"unknown rnn {rnn!r}: expected one of {RNN_TYPES}")
        if rnn_input not in RNN_INPUTS:
            raise ValueError(f"unknown rnn_input {rnn_input!r}: expected one of {RNN_INPUTS}")
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
        layers = [_as_layer(s) for s in layers]
        if len(layers) < 2 or layers[-1].kind != "dense":
            raise ValueError("the temporal baseline needs feed-forward layers below and a dense top layer "
                             f"(the RNN), e.g. [conv(8), conv(16, 2), dense(64)]; got {layers}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.config = dict(input_shape=self.input_shape, layers=[list(vars(l).values()) for l in layers],
                           n_classes=n_classes, rnn=rnn, rnn_input=rnn_input, residual=bool(residual))
        if residual and rnn_input != "top":
            raise ValueError("residual=True adds the RNN's output to the feed-forward network's top output, "
                             "so it needs rnn_input='top'")
        self.residual = bool(residual)
        self.encoder = FeedForwardEncoder(self.input_shape, layers if rnn_input == "top" else layers[:-1])
        below = math.prod(self.encoder.shapes[-1])
        self.rnn = (nn.LSTM if rnn == "lstm" else nn.GRU)(below, layers[-1].size, batch_first=True)
        self.classifier = nn.Linear(layers[-1].size, n_classes)

    def forward(self, x):
        _check(x, self.input_shape, "seq")
        B, T = x.shape[:2]
        features = self.encoder(x.reshape(B * T, *self.input_shape)).reshape(B, T, -1)  # (B, T, F)
        hidden, _ = self.rnn(features)  # (B, T, H)
        if self.residual:
            hidden = features + hidden
        return {"logits": self.classifier(hidden), "bottom": None}

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
