"""Two-digit Moving MNIST: digits where they should be, masks, motion, determinism, bad input."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rladder_nb.data.moving_mnist import combine_layers, generate_moving_mnist  # noqa: E402


def sparse_digits(n=12, size=28, seed=0):
    """Random digit-like images: mostly zero, some ink, some saturated (255) pixels for ties."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size)).astype(np.uint8)
    images[rng.uniform(size=images.shape) < 0.6] = 0
    images[rng.uniform(size=images.shape) < 0.1] = 255
    return images, rng.integers(0, 10, size=n)


def redraw(images, out, i, canvas, digit_size):
    """Each digit of sequence i drawn alone, from the returned positions: (T, K, H, W)."""
    ink = images.astype(np.float64) / 255.0
    positions = out["positions"][i]  # (K, T, 2)
    layers = np.zeros((positions.shape[1], positions.shape[0], canvas, canvas))
    for k, index in enumerate(out["digit_index"][i]):
        for t, (y, x) in enumerate(positions[k]):
            layers[t, k, y:y + digit_size, x:x + digit_size] = ink[index]
    return layers


def test_shapes_and_ranges():
    images, labels = sparse_digits()
    out = generate_moving_mnist(images, labels, n=3)
    assert out["frames"].shape == (3, 20, 64, 64) and out["frames"].dtype == np.float32
    assert out["masks"].shape == (3, 20, 3, 64, 64)
    assert out["segmentation"].shape == (3, 20, 64, 64) and out["label"].shape == (3, 2)
    assert out["positions"].shape == (3, 2, 20, 2) and out["velocity"].shape == (3, 2, 2)
    assert 0 <= out["frames"].min() and out["frames"].max() <= 1
    assert np.array_equal(out["label"], labels[out["digit_index"]])


@pytest.mark.parametrize("overlap", ["argmax", "split"])
def test_digits_and_masks_where_they_should_be(overlap):
    images, labels = sparse_digits()
    out = generate_moving_mnist(images, labels, n=4, n_frames=6, canvas=40, digit_size=28,
                                speed_range=(0.0, 1.0), overlap=overlap, seed=2)  # slow: lots of overlap
    assert out["overlap_mask"].any()
    np.testing.assert_allclose(out["masks"].sum(axis=2), 1.0, atol=1e-6)
    for i in range(4):
        layers = redraw(images, out, i, 40, 28)  # (T, K, H, W)
        np.testing.assert_allclose(out["frames"][i], layers.max(axis=1), atol=1e-6)  # combined by max
        background = (layers == 0).all(axis=1)
        assert np.array_equal(out["masks"][i][:, 0] == 1, background)
        assert np.array_equal(out["overlap_mask"][i], (layers > 0).sum(axis=1) >= 2)
        for t in range(6):
            for y, x in zip(*np.nonzero(~background[t])):
                values = layers[t, :, y, x]
                if overlap == "argmax":
                    winners = np.flatnonzero(values == values.max())
                    expected = np.zeros(2)
                    expected[winners] = 1 / len(winners)
                else:
                    expected = values / values.sum()
                np.testing.assert_allclose(out["masks"][i, t, 1:, y, x], expected, atol=1e-6)
        assert np.array_equal(out["segmentation"][i], out["masks"][i].argmax(axis=1))


def test_combine_layers_hand_case():
    layers = np.zeros((2, 1, 3), np.float32)  # K=2 digits, a 1x3 image
    layers[0, 0] = [0.5, 0.8, 0.0]
    layers[1, 0] = [0.5, 0.2, 0.0]
    frames, masks, seg, overlapped = combine_layers(layers)
    np.testing.assert_allclose(frames, [[0.5, 0.8, 0.0]])
    np.testing.assert_allclose(masks[:, 0], [[0, 0, 1], [0.5, 1, 0], [0.5, 0, 0]])  # tie split equally
    assert seg.tolist() == [[1, 1, 0]] and overlapped.tolist() == [[True, True, False]]
    _, split, _, _ = combine_layers(layers, overlap="split")
    np.testing.assert_allclose(split[:, 0], [[0, 0, 1], [0.5, 0.8, 0], [0.5, 0.2, 0]], atol=1e-6)
    _, thresholded, _, _ = combine_layers(layers, background_threshold=0.3)
    np.testing.assert_allclose(thresholded[:, 0], [[0, 0, 1], [0.5, 1, 0], [0.5, 0, 0]])


def test_motion_bounces_inside_with_speeds_in_range():
    images, labels = sparse_digits(size=14)
    out = generate_moving_mnist(images, labels, n=100, n_frames=50, canvas=32, digit_size=14,
                                speed_range=(1.0, 2.5), seed=4)
    positions = out["positions"]
    assert positions.min() == 0 and positions.max() == 32 - 14  # reaches the walls, never beyond
    speed = np.linalg.norm(out["velocity"], axis=-1)
    assert (speed >= 1.0).all() and (speed <= 2.5).all()
    steps = np.abs(np.diff(positions, axis=2))  # (n, K, T-1, 2) per-axis displacement
    assert (steps <= np.ceil(np.abs(out["velocity"]))[:, :, None, :] + 1).all()
    digits_28 = generate_moving_mnist(*sparse_digits(), n=2, canvas=32, digit_size=14)  # downscaled
    assert digits_28["frames"].shape == (2, 20, 32, 32)


def test_determinism_by_seed():
    images, labels = sparse_digits()
    a = generate_moving_mnist(images, labels, n=4, seed=7)
    b = generate_moving_mnist(images, labels, n=4, seed=7, chunk_size=3)
    c = generate_moving_mnist(images, labels, n=4, seed=8)
    for key in a:
        assert np.array_equal(a[key], b[key])
    assert not np.array_equal(a["positions"], c["positions"])


def test_bad_inputs():
    images, labels = sparse_digits()
    with pytest.raises(ValueError, match="overlap"):
        generate_moving_mnist(images, labels, n=1, overlap="max")
    with pytest.raises(ValueError, match="speed_range"):
        generate_moving_mnist(images, labels, n=1, speed_range=(3, 1))
    with pytest.raises(ValueError, match="fit"):
        generate_moving_mnist(images, labels, n=1, canvas=20)
    with pytest.raises(ValueError, match="n_digits"):
        generate_moving_mnist(images, labels, n=1, n_digits=0)
    with pytest.raises(ValueError, match="labels"):
        generate_moving_mnist(images, labels[:-1], n=1)
    with pytest.raises(ValueError, match="digit_size"):
        generate_moving_mnist(images[:, :20, :20], labels, n=1)
    with pytest.raises(ValueError, match="background_threshold"):
        combine_layers(np.zeros((2, 3, 3)), background_threshold=1.5)


def test_plot_frames_colours_by_group():
    from rladder_nb.plots.video import group_colours, plot_frames

    images, labels = sparse_digits()
    out = generate_moving_mnist(images, labels, n=1, n_frames=6, canvas=32, digit_size=14)
    fig = plot_frames(out["frames"][0], out["masks"][0], time_offset=10, title="ground truth")
    assert len(fig.axes) == 6 and fig.axes[0].get_title() == "10"
    shown = fig.axes[0].images[0].get_array()  # (H, W, 3)
    expected = np.einsum("khw,kc->hwc", out["masks"][0, 0], group_colours(3)) * out["frames"][0, 0][..., None]
    np.testing.assert_allclose(np.asarray(shown), expected, atol=1e-6)
    assert len(plot_frames(out["frames"][0], out["segmentation"][0], ncols=4).axes) == 8
    assert len(plot_frames(out["frames"][0]).axes) == 6
    with pytest.raises(ValueError, match="masks"):
        plot_frames(out["frames"][0], out["masks"][0, :3])
    with pytest.raises(ValueError, match="frames"):
        plot_frames(out["frames"])
    import matplotlib.pyplot as plt

    plt.close("all")
