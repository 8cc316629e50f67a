"""Textured MNIST: masks, texture placement, determinism, splits, figures."""
import time

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from rladder_nb.data import textured_mnist as tm  # noqa: E402
from rladder_nb.data.textures import free_textures  # noqa: E402
from rladder_nb.plots import grouping  # noqa: E402

DARK, LIGHT = 0.2, 0.8
CONSTANT_TEXTURES = [np.full((100, 100), DARK), np.full((100, 100), LIGHT)]


def _digits(n=12, seed=0):
    """Synthetic 'digits': a bar and a dot at random places, uint8, with a soft edge."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for i in range(n):
        r, c = rng.integers(4, 18, 2)
        images[i, r:r + 8, c:c + 3] = 255
        images[i, r + 9, c + 5] = 140                    # a faint pixel: thickening decides about it
    return images, rng.integers(0, 10, n)


def _thicken_by_hand(img, radius):
    """Brute-force grey dilation: max over a (2r+1)^2 square of shifts, zero outside."""
    padded = np.pad(img, radius)
    h, w = img.shape
    return np.max([padded[dy:dy + h, dx:dx + w] for dy in range(2 * radius + 1)
                   for dx in range(2 * radius + 1)], axis=0)


def test_hard_masks_and_texture_placement():
    images, labels = _digits()
    data = tm.generate_textured_mnist(images, labels, CONSTANT_TEXTURES, n=12, seed=0,
                                      digit_indices=np.arange(12))
    x, masks, ids = data["images"], data["masks"], data["texture_ids"]
    assert x.shape == (12, 1, 28, 28) and masks.shape == (12, 2, 28, 28) and x.dtype == np.float32
    np.testing.assert_array_equal(masks.sum(1), 1.0)
    assert set(np.unique(masks)) == {0.0, 1.0}
    for i in range(12):
        thick = _thicken_by_hand(images[i].astype(float) / 255, 1)
        np.testing.assert_array_equal(masks[i, tm.DIGIT_GROUP], (thick > 0.5).astype(float))
        assert ids[i, 0] != ids[i, 1]
        values = np.array([DARK, LIGHT])
        digit_value, background_value = values[ids[i, tm.DIGIT_GROUP]], values[ids[i, tm.BACKGROUND_GROUP]]
        np.testing.assert_allclose(x[i, 0][masks[i, tm.DIGIT_GROUP] == 1], digit_value, atol=1e-6)
        np.testing.assert_allclose(x[i, 0][masks[i, tm.BACKGROUND_GROUP] == 1], background_value, atol=1e-6)
    np.testing.assert_array_equal(data["labels"], labels)


def test_soft_masks_blend_the_textures():
    images, labels = _digits(4)
    data = tm.generate_textured_mnist(images, labels, CONSTANT_TEXTURES, seed=3, soft_masks=True,
                                      thicken=0, digit_indices=np.arange(4))
    alpha = images.astype(np.float64) / 255
    np.testing.assert_allclose(data["masks"][:, tm.DIGIT_GROUP], alpha, atol=1e-6)
    np.testing.assert_allclose(data["masks"].sum(1), 1.0, atol=1e-6)
    values = np.array([DARK, LIGHT])[data["texture_ids"]]                 # (4, 2)
    digit, background = values[:, tm.DIGIT_GROUP, None, None], values[:, tm.BACKGROUND_GROUP, None, None]
    expected = alpha * digit + (1 - alpha) * background
    np.testing.assert_allclose(data["images"][:, 0], expected, atol=1e-6)


def test_determinism_labels_and_texture_choice():
    images, labels = _digits(50)
    bank = free_textures(20)
    a = tm.generate_textured_mnist(images, labels, bank, n=400, seed=7)
    b = tm.generate_textured_mnist(images, labels, bank, n=400, seed=7)
    c = tm.generate_textured_mnist(images, labels, bank, n=400, seed=8)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["images"], c["images"])
    np.testing.assert_array_equal(a["labels"], labels[a["digit_indices"]])
    # the first 50 use every digit once, then digits are reused
    assert sorted(a["digit_indices"][:50]) == list(range(50))
    ids = a["texture_ids"]
    assert (ids[:, 0] != ids[:, 1]).all()
    assert np.bincount(ids.ravel(), minlength=20).min() > 15                # every texture is used
    assert 0 <= a["images"].min() and a["images"].max() <= 1
    once = tm.generate_textured_mnist(images, labels, bank, seed=7)
    assert len(once["labels"]) == 50 and sorted(once["digit_indices"]) == list(range(50))


def test_canvas_and_speed():
    images, labels = _digits(20)
    data = tm.generate_textured_mnist(images, labels, CONSTANT_TEXTURES, n=20, seed=0, canvas_size=34)
    assert data["images"].shape == (20, 1, 34, 34)
    assert (data["masks"][:, tm.BACKGROUND_GROUP, :3] == 1).all()          # padding is background
    bank = free_textures(20)
    start = time.perf_counter()
    tm.generate_textured_mnist(images, labels, bank, n=2000, seed=0)
    assert time.perf_counter() - start < 5.0                               # thousands per second


def test_bad_inputs():
    images, labels = _digits(4)
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        tm.generate_textured_mnist(images[0], labels, CONSTANT_TEXTURES)
    with pytest.raises(ValueError, match="labels"):
        tm.generate_textured_mnist(images, labels[:2], CONSTANT_TEXTURES)
    with pytest.raises(ValueError, match="uint8"):
        tm.generate_textured_mnist(images.astype(float), labels, CONSTANT_TEXTURES)   # 0..255 floats
    with pytest.raises(ValueError, match="at least 2 textures"):
        tm.generate_textured_mnist(images, labels, CONSTANT_TEXTURES[:1])
    with pytest.raises(ValueError, match="mask_threshold"):
        tm.generate_textured_mnist(images, labels, CONSTANT_TEXTURES, mask_threshold=1.5)
    with pytest.raises(ValueError, match="canvas_size"):
        tm.generate_textured_mnist(images, labels, CONSTANT_TEXTURES, canvas_size=20)
    with pytest.raises(ValueError, match="n must"):
        tm.generate_textured_mnist(images, labels, CONSTANT_TEXTURES, n=-1)
    with pytest.raises(ValueError, match="digit_indices"):
        tm.generate_textured_mnist(images, labels, CONSTANT_TEXTURES, digit_indices=np.array([4]))
    with pytest.raises(ValueError, match="thicken"):
        tm.generate_textured_mnist(images, labels, CONSTANT_TEXTURES, thicken=-1)
    with pytest.raises(ValueError, match="n_test"):
        tm.make_splits(1, 1, -2, images, labels, images, labels, CONSTANT_TEXTURES)


def test_splits_are_disjoint_and_hide_unlabelled_labels(capsys):
    train_images, _ = _digits(30, seed=1)
    test_images, _ = _digits(10, seed=2)
    train_labels, test_labels = np.arange(30) % 5, 5 + np.arange(10) % 5       # tell the sources apart
    splits = tm.make_splits(8, 20, 10, train_images, train_labels, test_images, test_labels,
                            CONSTANT_TEXTURES, seed=0)
    lab, unl, test = splits["labelled"], splits["unlabelled"], splits["test"]
    assert (len(lab), len(unl), len(test)) == (8, 20, 10)
    assert not set(lab.digit_indices.tolist()) & set(unl.digit_indices.tolist())
    assert (unl.labels == tm.UNLABELLED).all() and (unl.hidden_labels < 5).all()
    assert (test.labels >= 5).all() and (lab.labels < 5).all()
    image, masks, label = lab[0]
    assert image.shape == (1, 28, 28) and masks.shape == (2, 28, 28) and label.dtype == torch.int64
    batch = next(iter(torch.utils.data.DataLoader(unl, batch_size=4)))
    assert batch[0].shape == (4, 1, 28, 28) and (batch[2] == -1).all()
    again = tm.make_splits(8, 20, 10, train_images, train_labels, test_images, test_labels,
                           CONSTANT_TEXTURES, seed=0)
    assert torch.equal(again["unlabelled"].images, unl.images)
    tm.make_splits(20, 20, 0, train_images, train_labels, test_images, test_labels, CONSTANT_TEXTURES)
    assert "reused" in capsys.readouterr().out


def test_sizes_per_scale():
    assert set(tm.SIZES) == {"smoke", "book", "paper"}
    for scale in tm.SIZES.values():
        assert set(scale) == {"supervised", "semi_supervised"}
    paper = tm.SIZES["paper"]
    assert paper["supervised"]["n_labelled"] == 50000
    assert (paper["semi_supervised"]["n_labelled"], paper["semi_supervised"]["n_unlabelled"]) == (1000, 49000)


def test_load_textured_mnist_smoke():
    pytest.importorskip("rladder_nb.data.mnist")
    splits = tm.load_textured_mnist("semi_supervised", scale="smoke", texture_source="free")
    sizes = tm.SIZES["smoke"]["semi_supervised"]
    assert len(splits["labelled"]) == sizes["n_labelled"] and len(splits["test"]) == sizes["n_test"]
    with pytest.raises(ValueError, match="setting"):
        tm.load_textured_mnist("weakly", scale="smoke")


# --- figures ------------------------------------------------------------------------------------------

def test_colorize_groups_is_the_mask_weighted_colour():
    masks = np.zeros((3, 2, 2))
    masks[0, 0, 0] = masks[1, 0, 1] = masks[2, 1, :] = 1.0
    colors = grouping.group_colors(3)
    rgb = grouping.colorize_groups(masks)
    np.testing.assert_allclose(rgb[0, 0], colors[0])
    np.testing.assert_allclose(rgb[0, 1], colors[1])
    np.testing.assert_allclose(rgb[1, 1], colors[2])
    shaded = grouping.colorize_groups(masks, image=np.zeros((2, 2)), shade=0.5)
    np.testing.assert_allclose(shaded, rgb * 0.5)
    with pytest.raises(ValueError):
        grouping.colorize_groups(np.ones((2, 2)))
    with pytest.raises(ValueError, match="pixels"):
        grouping.colorize_groups(masks, image=np.zeros((3, 3)))


def test_figures_have_the_promised_panels():
    images, labels = _digits(6)
    data = tm.generate_textured_mnist(images, labels, free_textures(4), seed=0)
    fig = grouping.plot_textured_examples(data["images"], data["masks"], data["labels"], n=6, ncols=3)
    assert len(fig.axes) == 2 * 2 * 3
    plt.close(fig)
    pred = np.random.default_rng(0).random((6, 3, 28, 28))
    recon = np.random.default_rng(1).random((6, 3, 1, 28, 28))
    fig = grouping.plot_grouping(data["images"], pred, recon, n=2, true_masks=data["masks"])
    assert len(fig.axes) == 2 * (1 + 3 + 1 + 1)
    plt.close(fig)
    fig = grouping.plot_grouping(torch.as_tensor(data["images"]), pred, n=2)
    assert len(fig.axes) == 2 * 2
    plt.close(fig)
    with pytest.raises(ValueError, match="recon"):
        grouping.plot_grouping(data["images"], pred, recon[:, :2])
    with pytest.raises(ValueError, match="masks_pred"):
        grouping.plot_grouping(data["images"], pred[:, :, :10])
