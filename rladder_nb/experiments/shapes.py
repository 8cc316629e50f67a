"""Experiment ``shapes``: a sanity check of the Tagger loop on Tagger's own *Shapes* (Greff et al. 2016).

Introduced in *Perceptual grouping by texture* (Part III), in the section on this check.

* **Why.** On textured MNIST our Tagger and RTagger do not group at book scale. Shapes is the data set on
  which Tagger's released code groups most easily (binary 20x20 images, three shapes each,
  :mod:`rladder_nb.data.shapes`): if our loop groups anywhere at a CPU budget, it should be here.
* **Data.** A fixed training split of ``n_train`` images and a test split of ``n_test``
  (:func:`~rladder_nb.data.shapes.generate_shapes`, seeds :data:`DATA_SEED` and :data:`TEST_DATA_SEED`; the
  training seed changes the initialisation and the batch order only). The input is the image with each
  bit flipped with probability ``flip_prob`` (0.2, as the released code); the target the clean image.
* **Models.** ``tagger`` / ``rtagger``: :class:`~rladder_nb.models.tagger.Tagger` with
  ``likelihood='bernoulli'`` (the released code's binary variant: sigmoid reconstructions, the binary
  likelihood terms and the cross-entropy of the mixture as the cost), engine ``ladder`` / ``rladder``, K = 4
  groups, 3 iterations, no labels (the released run has no class cost), ``z`` starting at the data's mean.
  The engine is fully connected, as the released Tagger's (which is 2000-1000-500 units with batch
  normalisation; ours at book scale 500-250-100 with LayerNorm in the cells, our choice).
* **Control** (``--set likelihood=gaussian``, a study run): the textured MNIST treatment of the same images
  -- Gaussian noise of std ``noise_std`` (0.2) instead of bit flips, and the Gaussian loop and cost
  (:func:`~rladder_nb.models.tagger.tagger_cost`, with ``z`` starting at 0.5). A noise of 0.2 on a binary
  pixel can be undone from the pixel's own value (it stays on its side of 0.5 but for about 0.6 % of pixels),
  so no group needs to know what shape it holds.
* **Metrics** (lists, one value per iteration, on the test split): ``ami`` -- the AMI between the true and
  predicted segmentation on the pixels covered by exactly one shape (the background and overlaps left out,
  as the released masks do), the input *clean* (the released code scores its clean path);
  ``ami_corrupted`` -- the same with the bit-flipped input the model was trained on; ``cost`` -- the
  Tagger cost (nats per pixel) of the bit-flipped input against the clean image. Bit flips and starting
  masks are seeded by :data:`TEST_SEED`.
* **Measured at book scale** (seed 0, 5,000 steps, 20 and 23 minutes on one thread; 1,000 test images; per
  iteration): Tagger AMI 0.102 / 0.171 / 0.174 (bit-flipped input 0.065 / 0.099 / 0.106), cost 0.197 /
  0.183 / 0.181; RTagger AMI 0.109 / 0.155 / 0.188 (0.093 / 0.149 / 0.168), cost 0.163 / 0.151 / 0.150.
  Weak grouping (most shape pixels still shared between groups), rising with each iteration, where every
  textured MNIST run stays at 0.00-0.03. Seed 1 (recorded): Tagger AMI 0.383 / 0.459 / 0.471 (clearly
  grouped; cost 0.201 / 0.164 / 0.159); RTagger 0.019 / 0.025 / 0.031 (hardly grouped, yet the lowest cost,
  0.162 / 0.150 / 0.149). The Gaussian control (study runs, same seed, steps and test
  images): Tagger AMI -0.003 / 0.010 / 0.007, RTagger -0.002 / 0.004 / 0.008 (with the background counted:
  0.002 / 0.003 / 0.002 and -0.000 / 0.004 / 0.005) -- no grouping. With noise a
  pixel's own value can undo, the groups need not know what they hold; with bit flips they must.
* **Matched noise** (study runs, ``--set likelihood=gaussian --set noise_std=0.6``, 5,000 steps, 17-19 minutes
  each, 1,000 test images, AMI per iteration with clean input): Gaussian noise of std 0.6 puts a pixel on
  the wrong side of 0.5 for about 20 % of pixels, as often as the bit flips. Tagger seed 0: 0.070 / 0.175 /
  0.157 (bit flips: 0.102 / 0.171 / 0.174); seed 1: 0.071 / 0.111 / 0.077 (0.383 / 0.459 / 0.471).
  RTagger seed 0: 0.062 / 0.072 / 0.152 (0.109 / 0.155 / 0.188); seed 1: 0.022 / 0.042 / 0.044 (0.019 /
  0.025 / 0.031). The Gaussian loop groups again, close to the bit flips in three runs of four. With the
  background counted as a group (:func:`ami_per_iteration` with ``count_background=True``, textured MNIST's
  way), in the same order: 0.063 / 0.109 / 0.115, 0.167 / 0.140 / 0.292, 0.024 / 0.036 / 0.089 and 0.009 /
  0.024 / 0.035, against the recorded bit-flip runs' 0.032 / 0.053 / 0.055, 0.158 / 0.169 / 0.168, 0.031 /
  0.044 / 0.054 and 0.005 / 0.007 / 0.008: the Tagger's seed 1 splits the background from the shapes
  rather than the shapes from one another. The corruption's strength, more than the loop's likelihood,
  decides whether a split pays.
* **Not in the RLadder paper.** Tagger's paper reports AMI on Shapes for its own, much longer training
  (the released run: 100 epochs of 50,000 images, batch 100, lr 4e-4); the ``paper`` scale is that run's
  size, not a number to match here.
"""
from __future__ import annotations

import copy
import functools

import numpy as np
import torch

from .. import settings
from ..data.shapes import N_SHAPES, SIZE, generate_shapes
from ..metrics import adjusted_mutual_information
from ..models.tagger import Tagger, corrupt_input, mixture_cost, tagger_loss
from ..training import train

NAME = "shapes"
MODELS = ("tagger", "rtagger")
DATA_SEED = 0              # the training split
TEST_DATA_SEED = 1         # the test split
TEST_SEED = 20_161_205     # the test bit flips and starting masks
FLIP_PROB = 0.2
NOISE_STD = 0.2            # the control's Gaussian noise
LIKELIHOODS = ("bernoulli", "gaussian")   # the released binary variant; the control (textured MNIST's treatment)
N_GROUPS = 4               # three shapes and the background
INITIAL_Z = 0.27           # the mean pixel of our Shapes images (the released code starts z at its data's mean)
INITIAL_Z_GAUSSIAN = 0.5   # the control starts z where the textured MNIST runs do
AMI_CONVENTION = "pixels of exactly one shape (background and overlaps left out)"
EVAL_CHUNK = 250
# our reconstruction; "book": one run about 20 minutes on one thread of a 2-core CPU
SCALES = {
    "smoke": dict(layers=[["dense", 16, 1, 3], ["dense", 8, 1, 3]], n_iterations=2, batch_size=8, n_steps=3,
                  lr=1e-3, n_train=64, n_test=32),
    "book": dict(layers=[["dense", 500, 1, 3], ["dense", 250, 1, 3], ["dense", 100, 1, 3]], n_iterations=3,
                 batch_size=32, n_steps=5000, lr=1e-3, n_train=50_000, n_test=1000),
    "paper": dict(layers=[["dense", 2000, 1, 3], ["dense", 1000, 1, 3], ["dense", 500, 1, 3]], n_iterations=3,
                  batch_size=100, n_steps=50_000, lr=4e-4, n_train=50_000, n_test=10_000),
}


def config(model: str, scale: str) -> dict:
    """Every choice of a ``shapes`` run of ``model`` at ``scale``."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r} for experiment {NAME!r}: expected one of {', '.join(MODELS)}")
    scale = settings.check_scale(scale)
    return dict(model=model, scale=scale, data_seed=DATA_SEED, test_data_seed=TEST_DATA_SEED,
                likelihood="bernoulli", flip_prob=FLIP_PROB, noise_std=NOISE_STD, n_groups=N_GROUPS, n_shapes=N_SHAPES, size=SIZE, initial_z=INITIAL_Z,
                engine={"rtagger": "rladder", "tagger": "ladder"}[model], cell="lstm", combinator="vanilla",
                norm="layer", head_norm="tagger", ami_convention=AMI_CONVENTION, **copy.deepcopy(SCALES[scale]))


def _check_config(cfg):
    if not isinstance(cfg, dict) or cfg.get("model") not in MODELS or "flip_prob" not in cfg:
        raise ValueError("cfg must be a dict made by shapes.config(model, scale)")
    if cfg.get("likelihood", "bernoulli") not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {cfg['likelihood']!r}: expected one of {LIKELIHOODS}")
    return cfg


def _binary(cfg) -> bool:
    return cfg.get("likelihood", "bernoulli") == "bernoulli"


def corrupt(x, cfg, generator=None):
    """The input a run sees: ``x`` with bits flipped (``flip_prob``), or with Gaussian noise (``noise_std``)
    in the control (``likelihood='gaussian'``)."""
    cfg = _check_config(cfg)
    return corrupt_input(x, cfg.get("likelihood", "bernoulli"), cfg["flip_prob"], cfg.get("noise_std", NOISE_STD),
                         generator)   # entries recorded before the control have no noise_std


def build(cfg: dict) -> Tagger:
    """The untrained Tagger (``tagger``) or RTagger (``rtagger``) of a config."""
    cfg = _check_config(cfg)
    binary = _binary(cfg)
    return Tagger((1, cfg["size"], cfg["size"]), cfg["layers"], n_groups=cfg["n_groups"], engine=cfg["engine"],
                  n_classes=None, noise_std=0.0 if binary else cfg["noise_std"], cell=cfg["cell"],
                  combinator=cfg["combinator"], norm=cfg["norm"], head_norm=cfg["head_norm"],
                  likelihood=cfg.get("likelihood", "bernoulli"), flip_prob=cfg["flip_prob"],
                  initial_z=cfg["initial_z"] if binary else INITIAL_Z_GAUSSIAN)


@functools.lru_cache(maxsize=4)
def _split(n, seed, n_shapes, size):
    return generate_shapes(n, seed, n_shapes=n_shapes, size=size)


def load_data(cfg: dict) -> dict:
    """The ``{"train", "test"}`` splits of a run (:class:`~rladder_nb.data.shapes.ShapesData`, cached per process)."""
    cfg = _check_config(cfg)
    return {"train": _split(cfg["n_train"], cfg["data_seed"], cfg["n_shapes"], cfg["size"]),
            "test": _split(cfg["n_test"], cfg["test_data_seed"], cfg["n_shapes"], cfg["size"])}


def train_model(model: str, cfg: dict, seed: int = 0, progress=True, checkpoint_path=None,
                max_seconds: float | None = None):
    """Train one ``shapes`` model (the Tagger cost alone); returns ``(net, TrainResult)``.

    Batches and their bit flips are a pure function of ``(seed, step)``, so a resumed run sees the same data.
    """
    cfg = _check_config(cfg)
    if model != cfg["model"]:
        raise ValueError(f"model {model!r} does not match the config's {cfg['model']!r}")
    settings.seed_everything(seed)
    device = settings.get_device()
    images = load_data(cfg)["train"].images
    net = build(cfg).to(device)
    n = cfg["batch_size"]
    per_epoch = max(1, len(images) // n)

    def make_batch(step):
        epoch, k = divmod(step, per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(len(images))
        x = images[torch.as_tensor(np.resize(order[k * n:], n))]
        g = torch.Generator().manual_seed(int(np.random.default_rng([seed, step, 2]).integers(2**62)))
        return x.to(device), corrupt(x, cfg, g).to(device), g

    def loss_fn(net, batch):
        x, x_corrupted, g = batch
        return tagger_loss(net(x_corrupted, cfg["n_iterations"], generator=g), x)

    result = train(net, make_batch, loss_fn, cfg["n_steps"], lr=cfg["lr"], checkpoint_path=checkpoint_path,
                   progress=progress, max_seconds=max_seconds, description=f"{NAME}/{model}")
    return net, result


@torch.no_grad()
def predict(net, cfg: dict, n: int | None = None, corrupted: bool = True, seed: int = TEST_SEED) -> dict:
    """The network's outputs on the first ``n`` test images (numpy), for metrics and figures.

    Returns ``images`` (n, 1, S, S), ``inputs`` (the corrupted images -- bit flips, or noise in the
    control -- or, with ``corrupted=False``, the clean ones), ``true_masks`` (n, 3, S, S), ``scored``
    (n, S, S), ``z`` (n, I, K, 1, S, S) (probabilities in the binary loop), ``masks`` (n, I, K, S, S) and
    ``cost`` (I,), the Tagger cost against the clean image. The corruption and the starting masks are
    seeded by ``seed`` (the same masks for both inputs).
    Introduced in *Perceptual grouping by texture*.
    """
    cfg = _check_config(cfg)
    data = load_data(cfg)["test"]
    n = len(data) if n is None else n
    if not isinstance(n, int) or not 1 <= n <= len(data):
        raise ValueError(f"n must be an integer in 1..{len(data)}, got {n!r}")
    device = next(net.parameters()).device
    net.eval()
    x = data.images[:n]
    flips = torch.Generator().manual_seed(int(seed))
    inputs = corrupt(x, cfg, flips) if corrupted else x
    g = torch.Generator().manual_seed(int(seed) + 1)
    zs, ms = [], []
    for begin in range(0, n, EVAL_CHUNK):
        out = net(inputs[begin:begin + EVAL_CHUNK].to(device), cfg["n_iterations"], generator=g)
        zs.append(out["z"].cpu())
        ms.append(out["masks"].cpu())
    z, masks = torch.cat(zs), torch.cat(ms)
    cost = mixture_cost(net.likelihood, x, z, masks, net.v.detach().cpu()).mean(0)
    return {"images": x.numpy(), "inputs": inputs.numpy(), "true_masks": data.masks[:n].numpy(),
            "scored": data.scored[:n].numpy(), "z": z.numpy(), "masks": masks.numpy(), "cost": cost.numpy()}


def ami_per_iteration(out, count_background: bool = False) -> list:
    """The AMI after each iteration of :func:`predict`'s output ``out``.

    ``count_background=False`` is the experiment's metric: the pixels of exactly one shape are scored.
    With ``True`` the background is a group of its own and is scored too (only overlaps are left out),
    as textured MNIST's Tagger convention counts it, so that the two data sets' numbers compare.
    Introduced in *Perceptual grouping by texture* (Tagger's Shapes).
    """
    if not isinstance(count_background, bool):
        raise TypeError(f"count_background must be True or False, got {count_background!r}")
    true = out["true_masks"]
    valid = out["scored"]
    if count_background:
        background = (true.sum(1, keepdims=True) == 0).astype(true.dtype)
        true, valid = np.concatenate([background, true], 1), true.sum(1) <= 1
    return [round(adjusted_mutual_information(true, out["masks"][:, i], convention="all", valid=valid), 6)
            for i in range(out["masks"].shape[1])]


def evaluate(model_name: str, net, cfg: dict, seed: int = 0) -> dict:
    """Per-iteration ``ami`` (clean input), ``ami_corrupted`` and ``cost`` (bit-flipped input) on the test
    split (see the module docstring). Deterministic: ``seed`` is unused."""
    cfg = _check_config(cfg)
    clean, corrupted = predict(net, cfg, corrupted=False), predict(net, cfg, corrupted=True)
    return {"ami": ami_per_iteration(clean), "ami_corrupted": ami_per_iteration(corrupted),
            "cost": [round(float(c), 6) for c in corrupted["cost"]], "ami_convention": AMI_CONVENTION,
            "n_test": int(len(corrupted["images"]))}
