"""The Recurrent Ladder network (Prémont-Schwarz et al. 2017): one module, every ablation a switch.

Introduced in *From message passing to the RLadder* (``book/part1/04_from_message_passing_to_rladder.md``);
its convolutional form returns in the Occluded Moving MNIST chapters.

At every time step (or inference iteration) ``t`` and layer ``l = 1..L`` (``l = 0`` is the input):

* **encoder** (stateful, bottom-up): ``e_l(t), s_l(t) = f_l(up(e_{l-1}(t)), d_l(t-1), s_l(t-1))`` — an
  LSTM/GRU cell, convolutional where the layer is spatial; ``e_0(t)`` is the observation ``x(t)``.
* **decoder** (stateless, top-down): ``d_l(t) = g_l(e_l(t), down(d_{l+1}(t)))`` — an elementwise Ladder
  combinator of the lateral input ``e_l`` and the top-down input; at the top the top-down input is a
  linear map of ``e_L`` itself, at the bottom ``d_0(t)`` is the low-level output (a denoised input or the
  prediction of the next frame).
* **decoder-to-encoder** links: ``d_l(t-1)`` is an input of the encoder cell at ``t`` (the paper's green
  arrows). ``decoder_to_encoder=False`` removes exactly these; ``decoder=False`` removes the decoder (the
  paper's "hierarchical RNN").
* **high-level task**: a linear classifier on the top encoder output (spatially averaged if convolutional).

Layers are given as a list of :func:`dense` / :func:`conv` specs; between convolutional layers the
bottom-up map is a (strided) convolution and the top-down map a transposed convolution, between a
convolutional and a dense layer a flatten + linear map. Tensors are ``(B, T, *shape)`` with shape
``(D,)`` or ``(C, H, W)``. The sizes, cells and combinators are our reconstruction: the paper's appendix
with its exact architectures is not available.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..training import register_model
from .cells import COMBINATORS, make_combinator, make_encoder_cell


@dataclass(frozen=True)
class Layer:
    """One RLadder layer: ``kind`` 'dense' (``size`` units) or 'conv' (``size`` channels)."""

    kind: str
    size: int
    stride: int = 1
    kernel_size: int | tuple = 3

    def __post_init__(self):
        if self.kind not in ("dense", "conv"):
            raise ValueError(f"layer kind must be 'dense' or 'conv', got {self.kind!r}")
        if not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"layer size must be a positive integer, got {self.size!r}")


def dense(size: int) -> Layer:
    """A fully-connected recurrent layer of ``size`` units."""
    return Layer("dense", size)


def conv(channels: int, stride: int = 1, kernel_size=3) -> Layer:
    """A convolutional recurrent layer of ``channels`` channels, reached by a conv of ``stride``."""
    return Layer("conv", channels, stride, kernel_size)


def _as_layer(spec) -> Layer:
    if isinstance(spec, Layer):
        return spec
    if isinstance(spec, dict):
        return Layer(**spec)
    if isinstance(spec, (list, tuple)) and spec:
        return Layer(*spec)
    raise TypeError(f"a layer must be a Layer, a dict or a tuple like ('conv', 32, 2); got {spec!r}")


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _conv_out(n, k, s):
    return (n + 2 * (k // 2) - k) // s + 1


class _TopDownConv(nn.Module):
    """A convolutional top-down map with ``hidden`` channels: a transposed convolution, a ReLU and a 3x3
    convolution (``RLadder``'s ``decoder_hidden``; without it the map is one transposed convolution)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, hidden):
        super().__init__()
        padding = tuple(k // 2 for k in kernel_size)
        self.up = nn.ConvTranspose2d(in_channels, hidden, kernel_size, stride=stride, padding=padding)
        self.refine = nn.Sequential(nn.ReLU(), nn.Conv2d(hidden, out_channels, 3, padding=1))

    def forward(self, x, output_size):
        return self.refine(self.up(x, output_size=output_size))


@register_model
class RLadder(nn.Module):
    """A fully-connected or convolutional Recurrent Ladder network.

    Parameters
    ----------
    input_shape : tuple
        Shape of one observation: ``(D,)`` or ``(C, H, W)``.
    layers : list
        Layer specs, bottom to top (:func:`dense`, :func:`conv`, dicts or tuples).
    cell : {'lstm', 'gru'}
        Encoder cell type.
    combinator : {'vanilla', 'gaussian'}
        Decoder cell (Ladder combinator) type.
    decoder : bool
        Keep the decoder (False gives the "hierarchical RNN").
    decoder_to_encoder : bool
        Keep the links from the decoder at ``t-1`` to the encoder at ``t``.
    n_classes : int or None
        Size of the classifier on the top encoder output; None for no classifier.
    bottom_output : bool
        Produce a low-level output. Without a decoder it is a linear readout of the top layer.
    norm : None, 'layer' or 'group'
        Normalisation of the encoder cells' gates (default: 'group' for conv layers, none for dense).
    gate_decoder_to_encoder : bool
        Multiply each layer's decoder-to-encoder input ``d_l(t-1)`` by a learned scalar that starts at 0
        (as ReZero/SkipInit do for residual branches), so that training starts from the hierarchical RNN
        and lets the links in as far as they help. Our choice for the convolutional RLadder: with the
        links open from the start its class cost did not move for ~1,000 steps, even when their weights
        started at zero (Adam moves any weight by about the learning rate per step, useful or not).
    zero_bias_init : bool
        Start the biases of the bottom-up maps (and of a residual cell's map before its normalisation) at
        0 instead of PyTorch's default, uniform in +-1/sqrt(fan-in). Our choice for the convolutional
        RLadder on MNIST frames, which are mostly empty: there a channel's bias can outweigh its weighted
        input, and with the default some initialisations of the RLadder and of the hierarchical RNN sat at
        chance for 1,000 steps or more (one never left it in 8,000).
    decoder_hidden : int or None
        Give each convolutional top-down map hidden capacity: a transposed convolution to
        ``decoder_hidden`` channels, a ReLU and a 3x3 convolution to the layer's channels, instead of one
        transposed convolution straight to them (None, the default: the Ladder's single map ``V``). With
        the single map, ``d_0`` is close to a linear function of ``d_1``, so next-frame prediction asks the
        encoder's own bottom features to be nearly the predicted frame; the hidden layer lets the decoder
        do that rendering itself.
    zero_init_decoder_to_encoder : bool
        Start the weights through which each encoder cell reads ``d_l(t-1)`` at 0 (the input columns of
        the cell's first map that the links feed), so that the untrained network computes exactly the
        hierarchical RNN's function while those weights get the full gradient from the first step (behind
        a scalar gate instead, their gradient is scaled by the gate, which starts at 0). Needs
        ``decoder_to_encoder``; supported for the ``reslstm`` and ``lstm`` cells.
    normalize_decoder_to_encoder : bool
        Normalise each link's ``d_l(t-1)`` per sequence to zero mean and unit variance over the layer's
        units (a layer norm without parameters) before it enters the encoder: in the convolutional layers
        of our Occluded Moving MNIST models the decoder's outputs are several times larger than the
        bottom-up inputs they join, with an offset of about 0.5 from the vanilla combinator's sigmoid term.
    detach_decoder_to_encoder : bool
        Stop the gradient at each link: the encoder reads ``d_l(t-1)`` as an input (a message), and the
        decoder learns only from its own tasks, not from what the encoder makes of it later.
    """

    def __init__(self, input_shape, layers, cell="lstm", combinator="vanilla", decoder=True,
                 decoder_to_encoder=True, n_classes=None, bottom_output=True, norm="auto",
                 gate_decoder_to_encoder=False, zero_bias_init=False, decoder_hidden=None,
                 zero_init_decoder_to_encoder=False, normalize_decoder_to_encoder=False,
                 detach_decoder_to_encoder=False):
        super().__init__()
        input_shape = tuple(int(s) for s in input_shape)
        if len(input_shape) not in (1, 3) or min(input_shape) < 1:
            raise ValueError(f"input_shape must be (D,) or (C, H, W) with positive sizes, got {input_shape}")
        layers = [_as_layer(s) for s in layers]
        if not layers:
            raise ValueError("an RLadder needs at least one layer")
        if combinator not in COMBINATORS:
            raise ValueError(f"unknown combinator {combinator!r}: expected one of {COMBINATORS}")
        if n_classes is not None and (not isinstance(n_classes, int) or n_classes < 2):
            raise ValueError(f"n_classes must be an integer >= 2 or None, got {n_classes!r}")
        if decoder_hidden is not None and (not isinstance(decoder_hidden, int) or decoder_hidden < 1):
            raise ValueError(f"decoder_hidden must be a positive integer or None, got {decoder_hidden!r}")
        if decoder_to_encoder and not decoder:
            decoder_to_encoder = False  # nothing to link from
        self.config = dict(input_shape=input_shape, layers=[asdict(l) for l in layers], cell=cell,
                           combinator=combinator, decoder=decoder, decoder_to_encoder=decoder_to_encoder,
                           n_classes=n_classes, bottom_output=bottom_output, norm=norm,
                           gate_decoder_to_encoder=bool(gate_decoder_to_encoder),
                           zero_bias_init=bool(zero_bias_init), decoder_hidden=decoder_hidden,
                           zero_init_decoder_to_encoder=bool(zero_init_decoder_to_encoder),
                           normalize_decoder_to_encoder=bool(normalize_decoder_to_encoder),
                           detach_decoder_to_encoder=bool(detach_decoder_to_encoder))
        self.normalize_decoder_to_encoder = bool(normalize_decoder_to_encoder)
        self.detach_decoder_to_encoder = bool(detach_decoder_to_encoder)
        self.input_shape, self.layers = input_shape, layers
        self.decoder, self.decoder_to_encoder = decoder, decoder_to_encoder
        self.shapes = self._layer_shapes(input_shape, layers)  # shapes[0] = input, shapes[l] = layer l

        self.up = nn.ModuleList()     # e_{l-1} -> input of encoder cell l
        self.cells = nn.ModuleList()
        for l, layer in enumerate(layers, start=1):
            below, here = self.shapes[l - 1], self.shapes[l]
            is_conv = layer.kind == "conv"
            if is_conv:
                self.up.append(nn.Conv2d(below[0], layer.size, _pair(layer.kernel_size), stride=layer.stride,
                                         padding=tuple(k // 2 for k in _pair(layer.kernel_size))))
            else:
                self.up.append(nn.Sequential(nn.Flatten(), nn.Linear(math.prod(below), layer.size)))
            cell_norm = ("group" if is_conv else None) if norm == "auto" else norm
            n_in = layer.size * (2 if self.decoder_to_encoder else 1)
            self.cells.append(make_encoder_cell(cell, is_conv, n_in, layer.size, layer.kernel_size, cell_norm))

        if decoder:
            top = self.shapes[-1]
            self.top_down = nn.Conv2d(top[0], top[0], 1) if len(top) == 3 else nn.Linear(top[0], top[0])
            self.down = nn.ModuleList()   # d_{l+1} -> top-down input of layer l, for l = 0..L-1
            for l in range(len(layers)):
                here, above, layer_above = self.shapes[l], self.shapes[l + 1], layers[l]
                if layer_above.kind == "conv" and len(here) == 3:
                    k = _pair(layer_above.kernel_size)
                    self.down.append(
                        _TopDownConv(above[0], here[0], k, layer_above.stride, decoder_hidden) if decoder_hidden
                        else nn.ConvTranspose2d(above[0], here[0], k, stride=layer_above.stride,
                                                padding=tuple(kk // 2 for kk in k)))
                else:
                    self.down.append(nn.Sequential(nn.Flatten(), nn.Linear(math.prod(above), math.prod(here)),
                                                   nn.Unflatten(1, here)))
            self.combinators = nn.ModuleList(
                make_combinator(combinator, (s[0], 1, 1) if len(s) == 3 else s) for s in self.shapes)
        elif bottom_output:
            self.readout = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(self.shapes[-1]), math.prod(input_shape)),
                                         nn.Unflatten(1, input_shape))
        self.bottom_output = bottom_output
        # one scalar per layer l = 1..L, starting closed (see gate_decoder_to_encoder)
        self.d2e_gates = (nn.Parameter(torch.zeros(len(layers))) if gate_decoder_to_encoder and self.decoder_to_encoder
                          else None)
        self.classifier = nn.Linear(self.shapes[-1][0], n_classes) if n_classes else None
        if zero_init_decoder_to_encoder and self.decoder_to_encoder:
            if cell not in ("reslstm", "lstm"):
                raise ValueError(f"zero_init_decoder_to_encoder supports the 'reslstm' and 'lstm' cells, not {cell!r}")
            for l, layer_cell in enumerate(self.cells):
                first = layer_cell.feedforward[0] if hasattr(layer_cell, "feedforward") else (
                    layer_cell.conv if hasattr(layer_cell, "conv") else layer_cell.linear)
                size = layers[l].size  # the cell's input is [bottom-up (size), d_l(t-1) (size), ...]
                with torch.no_grad():
                    first.weight[:, size:2 * size].zero_()
        if zero_bias_init:
            for l, cell in enumerate(self.cells):
                nn.init.zeros_(self.up[l].bias if isinstance(self.up[l], nn.Conv2d) else self.up[l][1].bias)
                if hasattr(cell, "feedforward"):  # ResidualLSTMCell: the map before its normalisation
                    nn.init.zeros_(cell.feedforward[0].bias)

    @staticmethod
    def _layer_shapes(input_shape, layers):
        shapes = [input_shape]
        for layer in layers:
            below = shapes[-1]
            if layer.kind == "conv":
                if len(below) != 3:
                    raise ValueError("a conv layer must sit on a (C, H, W) input or another conv layer, "
                                     f"not on shape {below}")
                k, s = _pair(layer.kernel_size), _pair(layer.stride)
                shapes.append((layer.size, _conv_out(below[1], k[0], s[0]), _conv_out(below[2], k[1], s[1])))
            else:
                shapes.append((layer.size,))
        return shapes

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def _check_input(self, x):
        if not torch.is_tensor(x):
            raise TypeError(f"x must be a torch tensor, got {type(x).__name__}")
        if x.dim() != 2 + len(self.input_shape) or tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(f"expected x of shape (batch, time, {', '.join(map(str, self.input_shape))}), "
                             f"got {tuple(x.shape)}")

    def initial_state(self, x_t) -> dict:
        """The state before the first step, for a batch like ``x_t`` ``(B, *input_shape)``: empty encoder
        states and, with decoder-to-encoder links, an all-zero decoder output ``d(-1)``."""
        B = x_t.shape[0]
        return {"encoder": [None] * len(self.layers),
                "decoder": [x_t.new_zeros(B, *s) for s in self.shapes] if self.decoder_to_encoder else None}

    def step(self, x_t, state: dict | None = None):
        """One time step (or inference iteration) of the RLadder on ``x_t`` ``(B, *input_shape)``.

        Returns ``(out, state)``: ``out`` holds ``bottom`` ``(B, *input_shape)`` or None, ``logits``
        ``(B, n_classes)`` or None, ``encoder`` and ``decoder`` (lists over layers 0..L; decoder None
        without one); ``state`` goes into the next step. :meth:`forward` is a loop over this; loops that
        build each step's input from the previous outputs (Tagger, Part III) call it directly.
        """
        if not torch.is_tensor(x_t) or tuple(x_t.shape[1:]) != self.input_shape:
            shape = tuple(x_t.shape) if torch.is_tensor(x_t) else type(x_t).__name__
            raise ValueError(f"expected x_t of shape (batch, {', '.join(map(str, self.input_shape))}), got {shape}")
        state = self.initial_state(x_t) if state is None else state
        L = len(self.layers)
        enc_state, prev_d = list(state["encoder"]), state["decoder"]
        e = [x_t]
        for l in range(1, L + 1):
            inp = self.up[l - 1](e[l - 1])
            if self.decoder_to_encoder:
                feedback = prev_d[l].detach() if self.detach_decoder_to_encoder else prev_d[l]
                if self.normalize_decoder_to_encoder:
                    feedback = F.layer_norm(feedback, feedback.shape[1:])
                feedback = feedback if self.d2e_gates is None else self.d2e_gates[l - 1] * feedback
                inp = torch.cat([inp, feedback], dim=1)
            h, enc_state[l - 1] = self.cells[l - 1](inp, enc_state[l - 1])
            e.append(h)
        d, bottom = None, None
        if self.decoder:
            d = [None] * (L + 1)
            u = self.top_down(e[L])
            for l in range(L, -1, -1):
                d[l] = self.combinators[l](e[l], u)
                if l > 0:
                    down = self.down[l - 1]
                    spatial = isinstance(down, (nn.ConvTranspose2d, _TopDownConv))
                    u = down(d[l], output_size=e[l - 1].shape[-2:]) if spatial else down(d[l])
            if self.bottom_output:
                bottom = d[0]
        elif self.bottom_output:
            bottom = self.readout(e[L])
        logits = None
        if self.classifier is not None:
            top = e[L].mean(dim=(2, 3)) if e[L].dim() == 4 else e[L]
            logits = self.classifier(top)
        out = {"bottom": bottom, "logits": logits, "encoder": e, "decoder": d}
        return out, {"encoder": enc_state, "decoder": d if self.decoder_to_encoder else None}

    def forward(self, x, return_states: bool = False):
        """Run the RLadder over ``x`` of shape ``(B, T, *input_shape)``.

        Returns a dict with ``bottom`` ``(B, T, *input_shape)`` — the low-level output ``d_0`` (or None),
        ``logits`` ``(B, T, n_classes)`` (or None) and, with ``return_states``, ``encoder`` and ``decoder``:
        lists over layers 0..L of ``(B, T, *shape_l)`` tensors.
        """
        self._check_input(x)
        T = x.shape[1]
        L = len(self.layers)
        state = None
        steps = []
        for t in range(T):
            out, state = self.step(x[:, t], state)
            steps.append(out)
        result = {k: (torch.stack([s[k] for s in steps], 1) if steps[0][k] is not None else None)
                  for k in ("bottom", "logits")}
        if return_states:
            result["encoder"] = [torch.stack([s["encoder"][l] for s in steps], 1) for l in range(L + 1)]
            result["decoder"] = ([torch.stack([s["decoder"][l] for s in steps], 1) for l in range(L + 1)]
                                 if self.decoder else None)
        return result
