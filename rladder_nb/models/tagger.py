"""The Tagger loop (Greff et al. 2016) around an engine: Tagger with a Ladder, RTagger with the RLadder.

Introduced in *Perceptual grouping with Tagger and RTagger* (Part III); the video form returns in
*Grouping by motion on Moving MNIST*.

* **K groups, one network.** One :class:`~rladder_nb.models.rladder.RLadder` (the engine) is shared by
  the K groups: they are folded into the batch, ``(B*K, 4C, H, W)``, so the groups interact only through
  their inputs and the softmax over groups.
* **Per-group inputs** at every iteration (the paper's Section 4.1, NOTES §5): the reconstruction
  ``z_k``, the likelihood term ``m_k * (x - z_k)``, the mask ``m_k`` and the mask likelihood
  ``L(m)_k = softmax_k(-[0.5 log(sn^2 + v) + (x - z_k)^2 / (2 (sn^2 + v))])``: ``sn`` the input noise
  std, ``v`` a learned positive variance (``softplus`` of a parameter; one ``v`` in these inputs and in
  the cost is our reconstruction).
* **Heads** on the engine's bottom decoder output ``d_0`` (4C channels): a 1x1 conv to C channels gives
  the new ``z_k``; a 1x1 conv to one channel, softmaxed over the groups, the new ``m_k``
  (``mask_update='residual'``, our option: ``log m_k`` is added to that logit, so the head learns a
  change of the current masks). With ``head_norm='tagger'`` (as in the Tagger's released code), each
  head's output is normalised per pixel over the batch and the groups (zero mean, unit variance, batch
  statistics also at evaluation) and then scaled: ``z_k = c_1 * zhat + b_1`` (per pixel, ``c_1`` starts
  at 1, ``b_1`` at 0) and the mask logits by one learned scalar ``c_2`` (starts at 1). The mask logits
  then cannot all shrink to one value -- the groups cannot start out identical -- until ``c_2`` learns to.
* **Engines.** ``engine='rladder'`` (RTagger): one :meth:`RLadder.step` per iteration, the state carried
  over, decoder-to-encoder links on. ``engine='ladder'`` (Tagger): the state is reset at every iteration
  and there are no decoder-to-encoder links -- a feed-forward convolutional Ladder applied afresh at each
  iteration (its LSTM cells then start from a zero state: feed-forward gated layers). Nothing else differs.
* **Binary data** (``likelihood='bernoulli'``, as the released code's ``input_type='binary'``): the input is
  corrupted by bit flips with probability ``flip_prob`` (``n``); ``z_k`` is a probability, the sigmoid of
  the z head (whose pre-sigmoid value is what the next iteration gets as its ``z_k`` input); the likelihood
  term is the derivative of ``log sum_j m_j zt_j`` with respect to ``z_k``, ``m_k (1 - 2n) / (xi - 1 + x)``
  with ``zt_k = n + (1 - 2n) z_k`` (the probability of observing a 1) and ``xi = sum_j m_j zt_j``; the mask
  likelihood is a softmax over groups of ``log p(x | zt_k)``; and the cost is the cross-entropy of the
  clean image under ``sum_k m_k z_k`` (:func:`bernoulli_tagger_cost`), the likelihood of a mixture of
  Bernoullis. Tagger's Shapes are binary (*Perceptual grouping by texture*, its sanity check).
* **Classification.** ``n_classes + 1`` logits per group ("none" last); per group a softmax, the "none"
  unit dropped, a sum over groups, normalised -> class probabilities per iteration.
* **Video.** With ``x`` of shape ``(B, I, C, H, W)``, iteration ``i`` sees frame ``i`` and its
  ``z_k, m_k`` predict frame ``i + 1``; ``n_generate`` further iterations feed the model its own
  prediction ``sum_k m_k z_k``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..data.shapes import flip_bits
from ..training import register_model
from .rladder import RLadder

ENGINES = ("rladder", "ladder")
MASK_UPDATES = ("direct", "residual")   # new mask logits = head(d_0), or log m_k + head(d_0) (our option)
HEAD_NORMS = (None, "tagger")   # the heads' outputs as they are, or normalised as in the released Tagger code
INITIAL_Z = 0.5        # the constant every z_k starts from (Tagger's choice for inputs in [0, 1])
INITIAL_V = 0.1        # initial value of the learned variance v (our choice)
LIKELIHOODS = ("gaussian", "bernoulli")   # continuous inputs with Gaussian noise, binary inputs with bit flips


@register_model
class Tagger(nn.Module):
    """Tagger (``engine='ladder'``) or RTagger (``engine='rladder'``): K groups sharing one engine.

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).

    Parameters
    ----------
    input_shape : tuple
        ``(C, H, W)`` of one image (or frame).
    layers : list
        The engine's layer specs (see :class:`~rladder_nb.models.rladder.RLadder`).
    n_groups : int
        K, the number of groups (>= 2).
    engine : {'rladder', 'ladder'}
        RTagger or Tagger (see the module docstring).
    n_classes : int or None
        Number of classes of the classification head (None: no head).
    noise_std : float
        ``sn``, the std of the Gaussian input corruption, used in the mask likelihood.
    cell, combinator, norm, gate_decoder_to_encoder
        Passed to the engine (see :class:`~rladder_nb.models.rladder.RLadder`).
    mask_update : {'direct', 'residual'}
        New mask logits from the head alone (NOTES §5), or added to ``log m_k`` (our option).
    head_norm : {None, 'tagger'}
        The heads' outputs as they are, or normalised over batch and groups and rescaled (see the
        module docstring).
    zero_bias_init : bool
        Passed to the engine (see :class:`~rladder_nb.models.rladder.RLadder`).
    likelihood : {'gaussian', 'bernoulli'}
        Continuous inputs with Gaussian noise (``noise_std``), or binary inputs corrupted by bit flips with
        probability ``flip_prob`` (see the module docstring).
    flip_prob : float
        ``n``, the bit-flip probability of binary inputs, in [0, 0.5) (used with ``likelihood='bernoulli'``).
    initial_z : float
        The constant every ``z_k`` starts from (:data:`INITIAL_Z`; the data's mean is the released code's
        choice for binary data).
    """

    def __init__(self, input_shape, layers, n_groups: int = 3, engine: str = "rladder", n_classes=None,
                 noise_std: float = 0.2, cell: str = "lstm", combinator: str = "vanilla", norm="auto",
                 gate_decoder_to_encoder: bool = False,
                 mask_update: str = "direct", head_norm=None, zero_bias_init: bool = False,
                 likelihood: str = "gaussian", flip_prob: float = 0.2, initial_z: float = INITIAL_Z):
        super().__init__()
        input_shape = tuple(int(s) for s in input_shape)
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(f"input_shape must be (C, H, W) with positive sizes, got {input_shape}")
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}: expected one of {ENGINES} "
                             "('rladder' for RTagger, 'ladder' for Tagger)")
        if mask_update not in MASK_UPDATES:
            raise ValueError(f"unknown mask_update {mask_update!r}: expected one of {MASK_UPDATES}")
        if head_norm not in HEAD_NORMS:
            raise ValueError(f"unknown head_norm {head_norm!r}: expected one of {HEAD_NORMS}")
        if not isinstance(n_groups, int) or n_groups < 2:
            raise ValueError(f"n_groups must be an integer >= 2, got {n_groups!r}")
        if n_classes is not None and (not isinstance(n_classes, int) or n_classes < 1):
            raise ValueError(f"n_classes must be a positive integer or None, got {n_classes!r}")
        if not (isinstance(noise_std, (int, float)) and noise_std >= 0):
            raise ValueError(f"noise_std must be a non-negative number, got {noise_std!r}")
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}: expected one of {LIKELIHOODS}")
        if not (isinstance(flip_prob, (int, float)) and 0 <= flip_prob < 0.5):
            raise ValueError(f"flip_prob must be a number in [0, 0.5), got {flip_prob!r}")
        if not (isinstance(initial_z, (int, float)) and math.isfinite(initial_z)):
            raise ValueError(f"initial_z must be a finite number, got {initial_z!r}")
        if likelihood == "bernoulli" and not 0 < initial_z < 1:
            raise ValueError(f"with likelihood='bernoulli' initial_z is a probability in (0, 1), got {initial_z!r}")
        C, H, W = input_shape
        self.engine_input_shape = (4 * C, H, W)
        self.engine = RLadder(self.engine_input_shape, layers, cell=cell, combinator=combinator, decoder=True,
                              decoder_to_encoder=(engine == "rladder"),
                              n_classes=(n_classes + 1 if n_classes else None), bottom_output=True, norm=norm,
                              gate_decoder_to_encoder=gate_decoder_to_encoder, zero_bias_init=zero_bias_init)
        self.config = dict(input_shape=input_shape, layers=self.engine.config["layers"], n_groups=n_groups,
                           engine=engine, n_classes=n_classes, noise_std=float(noise_std), cell=cell,
                           combinator=combinator, norm=norm, mask_update=mask_update,
                           gate_decoder_to_encoder=bool(gate_decoder_to_encoder), head_norm=head_norm,
                           zero_bias_init=bool(zero_bias_init), likelihood=likelihood,
                           flip_prob=float(flip_prob), initial_z=float(initial_z))
        self.likelihood, self.flip_prob, self.initial_z = likelihood, float(flip_prob), float(initial_z)
        self.mask_update, self.head_norm = mask_update, head_norm
        self.input_shape, self.n_groups, self.engine_kind = input_shape, n_groups, engine
        self.n_classes, self.noise_std = n_classes, float(noise_std)
        self.z_head = nn.Conv2d(4 * C, C, 1)      # d_0 -> new z_k
        self.mask_head = nn.Conv2d(4 * C, 1, 1)   # d_0 -> logit of the new m_k
        self.v_raw = nn.Parameter(torch.tensor(math.log(math.expm1(INITIAL_V))))
        if head_norm == "tagger":
            self.z_scale = nn.Parameter(torch.ones(C, H, W))     # c_1
            self.z_shift = nn.Parameter(torch.zeros(C, H, W))    # b_1
            self.mask_scale = nn.Parameter(torch.tensor(1.0))    # c_2

    @property
    def v(self) -> torch.Tensor:
        """The learned variance ``v = softplus(v_raw) > 0``."""
        return F.softplus(self.v_raw)

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def initial_masks(self, batch_size: int, height: int, width: int, generator=None, device=None):
        """``m`` at the start: a softmax over groups of standard normal noise, ``(B, K, H, W)``."""
        noise = torch.randn(batch_size, self.n_groups, height, width, generator=generator,
                            device=device if generator is None else generator.device)
        return noise.to(device).softmax(dim=1)

    def _engine_inputs(self, x, z, m, z_input=None):
        """Per-group inputs ``(B*K, 4C, H, W)`` from ``x`` (B, C, H, W), ``z`` (B, K, C, H, W), ``m`` (B, K, H, W);
        ``z_input`` (binary data: the pre-sigmoid ``z``) replaces ``z`` as the first input where given."""
        B, K, C, H, W = z.shape
        xk = x[:, None]                                            # (B, 1, C, H, W)
        mk = m[:, :, None].expand(B, K, C, H, W)
        if self.likelihood == "bernoulli":
            n = self.flip_prob
            zt = n + (1 - 2 * n) * z                                # P(observed bit = 1 | z_k)
            log_lik = -_binary_cross_entropy(zt, xk).sum(2)         # (B, K, H, W)
            xi = (mk * zt).sum(1, keepdim=True)
            z_lik = mk * (1 - 2 * n) / (xi - 1 + xk)                # d log(sum_j m_j zt_j) / d z_k
        else:
            var = self.noise_std ** 2 + self.v                      # variance of x around z_k
            log_lik = -0.5 * (torch.log(var) + ((z - xk) ** 2).sum(2) / var) - 0.5 * (C - 1) * torch.log(var)
            z_lik = mk * (xk - z)
        mask_lik = log_lik.softmax(dim=1)                           # (B, K, H, W): L(m)
        parts = [z if z_input is None else z_input, z_lik, mk, mask_lik[:, :, None].expand(B, K, C, H, W)]
        return torch.cat(parts, dim=2).reshape(B * K, 4 * C, H, W)

    def _check_x(self, x, what="x"):
        if not torch.is_tensor(x):
            raise TypeError(f"{what} must be a torch tensor, got {type(x).__name__}")
        shape = ", ".join(map(str, self.input_shape))
        if x.dim() not in (4, 5) or tuple(x.shape[-3:]) != self.input_shape:
            raise ValueError(f"expected {what} of shape (batch, {shape}) for an image or (batch, iterations, "
                             f"{shape}) for a sequence, got {tuple(x.shape)}")

    def forward(self, x, n_iterations=None, n_generate: int = 0, initial_masks=None, initial_z=None,
                generator=None, hold_masks: bool = False) -> dict:
        """Run the Tagger loop.

        Parameters
        ----------
        x : tensor ``(B, C, H, W)`` (an image, the same input at every iteration) or ``(B, I, C, H, W)``
            (a sequence: iteration ``i`` sees frame ``i``; its outputs predict frame ``i + 1``).
        n_iterations : int — iterations for an image (required); for a sequence None or ``I``.
        n_generate : int — further iterations whose input is the model's own prediction
            ``sum_k m_k z_k`` of the last iteration (future frames; Figure 7).
        initial_masks : tensor ``(B, K, H, W)`` or None — the starting masks (None: :meth:`initial_masks`).
        initial_z : tensor ``(B, K, C, H, W)`` or None — the starting reconstructions (None: 0.5).
        generator : torch.Generator or None — for the initial mask noise (None: the global RNG).
        hold_masks : bool — keep the starting masks at every iteration (the mask head unused): a diagnostic
            that measures the cost a split is worth to the engine (:func:`starting_masks` gives the split).

        Returns
        -------
        dict with ``z`` ``(B, I', K, C, H, W)``, ``masks`` ``(B, I', K, H, W)``, ``prediction``
        ``(B, I', C, H, W)`` (``sum_k m_k z_k``), ``class_probs`` ``(B, I', n_classes)`` or None,
        ``v`` (a scalar tensor) and ``likelihood`` (the model's), where ``I' = I + n_generate``.
        """
        self._check_x(x)
        if not isinstance(hold_masks, bool):
            raise TypeError(f"hold_masks must be True or False, got {hold_masks!r}")
        if not isinstance(n_generate, int) or n_generate < 0:
            raise ValueError(f"n_generate must be a non-negative integer, got {n_generate!r}")
        if x.dim() == 4:
            if not isinstance(n_iterations, int) or n_iterations < 1:
                raise ValueError(f"for an image x (B, C, H, W) give n_iterations >= 1, got {n_iterations!r}")
            frames = [x] * n_iterations
        else:
            if n_iterations is not None and n_iterations != x.shape[1]:
                raise ValueError(f"a sequence x of {x.shape[1]} frames runs {x.shape[1]} iterations, "
                                 f"not n_iterations={n_iterations}")
            frames = list(x.unbind(1))
        B, K = x.shape[0], self.n_groups
        C, H, W = self.input_shape
        m = self.initial_masks(B, H, W, generator, x.device) if initial_masks is None else initial_masks
        z = x.new_full((B, K, C, H, W), self.initial_z) if initial_z is None else initial_z
        if tuple(m.shape) != (B, K, H, W):
            raise ValueError(f"initial_masks must have shape {(B, K, H, W)}, got {tuple(m.shape)}")
        if tuple(z.shape) != (B, K, C, H, W):
            raise ValueError(f"initial_z must have shape {(B, K, C, H, W)}, got {tuple(z.shape)}")
        state, zs, ms, probs, preds, z_input = None, [], [], [], [], None
        for i in range(len(frames) + n_generate):
            x_i = frames[i] if i < len(frames) else preds[-1]
            if self.engine_kind == "ladder":
                state = None                                        # Tagger: a fresh feed-forward pass
            out, state = self.engine.step(self._engine_inputs(x_i, z, m, z_input), state)
            d0 = out["bottom"]                                      # (B*K, 4C, H, W)
            z = self.z_head(d0).reshape(B, K, C, H, W)
            if self.head_norm == "tagger":
                z = self.z_scale * _normalise_over_batch_and_groups(z) + self.z_shift
            if self.likelihood == "bernoulli":
                z_input, z = z, torch.sigmoid(z)                    # the next input, and a probability
            if not hold_masks:
                logits = self.mask_head(d0).reshape(B, K, H, W)
                if self.head_norm == "tagger":
                    logits = self.mask_scale * _normalise_over_batch_and_groups(logits)
                if self.mask_update == "residual":                     # a change of the current masks
                    logits = logits + torch.log(m.clamp_min(1e-6))
                m = logits.softmax(dim=1)
            zs.append(z)
            ms.append(m)
            preds.append((m[:, :, None] * z).sum(1))                # (B, C, H, W)
            if out["logits"] is not None:
                probs.append(group_class_probabilities(out["logits"].reshape(B, K, -1)))
        return {"z": torch.stack(zs, 1), "masks": torch.stack(ms, 1), "prediction": torch.stack(preds, 1),
                "class_probs": torch.stack(probs, 1) if probs else None, "v": self.v, "likelihood": self.likelihood}


STARTS = ("random", "ground_truth", "one_group")   # the starting masks of a diagnostic run (see starting_masks)


def check_start(start) -> str:
    """``start`` if it is one of :data:`STARTS`, else a ValueError that lists them."""
    if start not in STARTS:
        raise ValueError(f"unknown start {start!r}: expected one of {STARTS}")
    return start


def starting_masks(start: str, true_masks, n_groups: int, eps: float = 1e-3):
    """Starting masks ``(B, K, H, W)`` that hold a given segmentation, or None for the usual random start.

    A diagnostic: would a trained model keep a correct split if handed one? ``start`` is ``'random'``
    (None: the model draws its own, :meth:`Tagger.initial_masks`), ``'ground_truth'`` (true group ``j`` in model
    group ``j``, the remaining model groups empty) or ``'one_group'`` (everything in group 0). ``true_masks``
    is ``(B, J, H, W)`` with ``J <= n_groups``; every group gets at least ``eps`` before normalising, so
    the logarithms the model takes stay finite. Introduced in *Perceptual grouping with Tagger and RTagger*.
    """
    if check_start(start) == "random":
        return None
    true_masks = torch.as_tensor(true_masks, dtype=torch.float32)
    if true_masks.dim() != 4 or true_masks.shape[1] > n_groups:
        raise ValueError(f"true_masks must be (B, J, H, W) with J <= n_groups = {n_groups}, "
                         f"got {tuple(true_masks.shape)}")
    B, J, H, W = true_masks.shape
    masks = torch.zeros(B, n_groups, H, W)
    if start == "ground_truth":
        masks[:, :J] = true_masks
    else:
        masks[:, 0] = 1.0
    masks = masks.clamp_min(0) + eps
    return masks / masks.sum(dim=1, keepdim=True)


def _normalise_over_batch_and_groups(t, eps=1e-5):
    """Zero mean and unit variance per pixel (and channel) over the first two dimensions (batch, groups)."""
    mean = t.mean(dim=(0, 1), keepdim=True)
    var = t.var(dim=(0, 1), unbiased=False, keepdim=True)
    return (t - mean) / torch.sqrt(var + eps)


def group_class_probabilities(logits) -> torch.Tensor:
    """Class probabilities ``(B, n_classes)`` from per-group logits ``(B, K, n_classes + 1)``.

    Per group a softmax, the last ("none") unit dropped, a sum over the groups, normalised to one.
    Introduced in *Perceptual grouping with Tagger and RTagger*.
    """
    p = logits.softmax(dim=-1)[..., :-1].sum(dim=1)                 # (B, n_classes)
    return p / p.sum(dim=-1, keepdim=True).clamp_min(1e-12)


def _check_cost_inputs(x_target, z, masks):
    """``x_target`` as ``(B, 1 or I, C, H, W)`` after checking it, ``z`` and ``masks`` against each other."""
    if z.dim() != 6 or masks.dim() != 5 or tuple(masks.shape) != tuple(z.shape[:3]) + tuple(z.shape[4:]):
        raise ValueError(f"expected z (B, I, K, C, H, W) and masks (B, I, K, H, W), got {tuple(z.shape)} "
                         f"and {tuple(masks.shape)}")
    if x_target.dim() == 4:
        x_target = x_target[:, None]
    if x_target.dim() != 5 or x_target.shape[0] != z.shape[0] or tuple(x_target.shape[2:]) != tuple(z.shape[3:]) \
            or x_target.shape[1] not in (1, z.shape[1]):
        raise ValueError(f"x_target must be (B, C, H, W) or (B, I, C, H, W) matching z {tuple(z.shape)}, "
                         f"got {tuple(x_target.shape)}")
    return x_target


def tagger_cost(x_target, z, masks, v) -> torch.Tensor:
    """The Tagger's continuous cost per example and iteration, ``(B, I)``.

    ``-log sum_k m_k N(x | z_k, v)`` up to the constant ``0.5 log(2 pi)`` per channel:
    ``-log sum_k m_k exp(-0.5 sum_c (log v + (x_c - z_kc)^2 / v))``, averaged over the pixels.
    ``x_target`` is ``(B, C, H, W)`` (the same clean image at every iteration) or ``(B, I, C, H, W)``
    (iteration ``i``'s target, e.g. frame ``i + 1``); ``z`` ``(B, I, K, C, H, W)``; ``masks``
    ``(B, I, K, H, W)``; ``v`` a positive scalar (tensor). Introduced in *Perceptual grouping with Tagger
    and RTagger*.
    """
    x_target = _check_cost_inputs(x_target, z, masks)
    v = torch.as_tensor(v, dtype=z.dtype, device=z.device)
    log_gauss = -0.5 * (torch.log(v) + (x_target[:, :, None] - z) ** 2 / v).sum(3)   # (B, I, K, H, W)
    per_pixel = -torch.logsumexp(torch.log(masks.clamp_min(1e-12)) + log_gauss, dim=2)  # (B, I, H, W)
    return per_pixel.mean(dim=(2, 3))


def _binary_cross_entropy(p, x, eps: float = 1e-4):
    """``-[x log p + (1 - x) log(1 - p)]`` elementwise, ``p`` clipped to ``[eps, 1 - eps]`` (as the released code)."""
    p = p.clamp(eps, 1 - eps)
    return -(x * torch.log(p) + (1 - x) * torch.log1p(-p))


def bernoulli_tagger_cost(x_target, z, masks) -> torch.Tensor:
    """The Tagger's cost for binary data per example and iteration, ``(B, I)``: the cross-entropy of the
    clean image under the mixture's probability ``sum_k m_k z_k`` (a mixture of Bernoullis is the Bernoulli
    of that probability), averaged over the pixels. Shapes as in :func:`tagger_cost`; ``z`` holds
    probabilities. Introduced in *Perceptual grouping by texture* (Tagger's Shapes).
    """
    x_target = _check_cost_inputs(x_target, z, masks)
    p = (masks[:, :, :, None] * z).sum(2)                              # (B, I, C, H, W)
    return _binary_cross_entropy(p, x_target).sum(2).mean(dim=(2, 3))


def mixture_cost(likelihood: str, x_target, z, masks, v=None) -> torch.Tensor:
    """The Tagger cost per example and iteration ``(B, I)`` of a loop with ``likelihood``:
    :func:`bernoulli_tagger_cost` for ``'bernoulli'``, :func:`tagger_cost` with the variance ``v`` for
    ``'gaussian'``. Introduced in *Perceptual grouping by texture* (Tagger's Shapes).
    """
    if likelihood == "bernoulli":
        return bernoulli_tagger_cost(x_target, z, masks)
    if likelihood == "gaussian":
        if v is None:
            raise ValueError("the Gaussian cost needs the learned variance v (the model's .v)")
        return tagger_cost(x_target, z, masks, v)
    raise ValueError(f"unknown likelihood {likelihood!r}: expected one of {LIKELIHOODS}")


def corrupt_input(x, likelihood: str, flip_prob: float, noise_std: float, generator=None) -> torch.Tensor:
    """The corruption a loop with ``likelihood`` assumes: ``x`` with bits flipped with probability ``flip_prob``
    (``'bernoulli'``, :func:`~rladder_nb.data.shapes.flip_bits`) or plus Gaussian noise of std ``noise_std``
    (``'gaussian'``). Introduced in *Perceptual grouping by texture* (Tagger's Shapes).
    """
    if likelihood == "bernoulli":
        return flip_bits(x, flip_prob, generator)
    if likelihood == "gaussian":
        return x + noise_std * torch.randn(x.shape, generator=generator).to(x.device)
    raise ValueError(f"unknown likelihood {likelihood!r}: expected one of {LIKELIHOODS}")


def tagger_loss(out, x_target, labels=None, class_weight: float = 1.0):
    """Training loss: the cost averaged over iterations and examples, plus ``class_weight`` x the class
    cross-entropy at the last iteration on the labelled examples (label -1: unlabelled, ignored). The cost
    is :func:`tagger_cost`, or :func:`bernoulli_tagger_cost` for a model with ``likelihood='bernoulli'``.

    Returns ``(loss, {"tagger_cost", "class_ce"})``. Introduced in *Perceptual grouping with Tagger and RTagger*.
    """
    cost = mixture_cost(out.get("likelihood", "gaussian"), x_target, out["z"], out["masks"], out["v"]).mean()
    loss, parts = cost, {"tagger_cost": float(cost.detach())}
    if labels is not None and out["class_probs"] is not None and class_weight > 0:
        labelled = labels >= 0
        if labelled.any():
            p = out["class_probs"][:, -1][labelled]                  # (n, n_classes)
            ce = F.nll_loss(torch.log(p.clamp_min(1e-12)), labels[labelled])
            loss = loss + class_weight * ce
            parts["class_ce"] = float(ce.detach())
    return loss, parts
