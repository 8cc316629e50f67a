"""Figures of Part III (rladder_nb.plots.grouping): what they draw, and that they refuse bad input."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rladder_nb.plots import grouping  # noqa: E402


def one_hot_masks(labels, k):
    """(..., H, W) integer labels -> (..., K, H, W) one-hot masks, built independently of the package."""
    return (labels[..., None, :, :] == np.arange(k)[:, None, None]).astype(float)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_segmentation_over_iterations_grid_and_colours():
    rng = np.random.default_rng(0)
    n, n_iter, k, h, w = 3, 4, 3, 6, 5
    labels = rng.integers(0, k, size=(n, n_iter, h, w))
    masks = one_hot_masks(labels, k)                                      # (N, I, K, H, W)
    images = np.ones((n, 1, h, w))
    fig = grouping.plot_segmentation_over_iterations(images, masks, n=2, true_masks=masks[:, 0])
    axes = np.array(fig.axes).reshape(2, n_iter + 1)
    assert [a.get_title() for a in axes[0]] == [f"iteration {i + 1}" for i in range(n_iter)] + ["true groups"]
    colours = grouping.group_colors(k)
    shown = axes[1, 2].get_images()[0].get_array()                        # example 1, iteration 3
    np.testing.assert_allclose(shown, colours[labels[1, 2]])              # a white image: pure group colours
    fig = grouping.plot_segmentation_over_iterations(images, masks, n=10)  # n is capped at N
    assert len(fig.axes) == n * n_iter


def test_segmentation_over_iterations_rejects_bad_shapes():
    images = np.zeros((2, 6, 6))
    with pytest.raises(ValueError, match=r"\(N, I, K, H, W\)"):
        grouping.plot_segmentation_over_iterations(images, np.zeros((2, 3, 6, 6)))
    with pytest.raises(ValueError, match="pixels"):
        grouping.plot_segmentation_over_iterations(images, np.zeros((2, 2, 3, 5, 6)))
    with pytest.raises(ValueError, match="n must be a positive integer"):
        grouping.plot_segmentation_over_iterations(images, np.zeros((2, 2, 3, 6, 6)), n=0)


def test_iteration_curves_draw_ours_and_the_papers():
    ax = grouping.plot_iteration_curves({"RTagger": [0.1, 0.5, 0.7], "ConvNet": [12.0]},
                                        paper={"RTagger": [0.55, 0.75, 0.80], "Tagger": [0.73]}, ylabel="AMI")
    lines = {line.get_label(): line for line in ax.get_lines()}
    np.testing.assert_allclose(lines["RTagger (ours)"].get_ydata(), [0.1, 0.5, 0.7])
    np.testing.assert_allclose(lines["RTagger (paper)"].get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(lines["Tagger (paper)"].get_xdata(), [3])   # one value: at the last iteration
    np.testing.assert_allclose(lines["ConvNet (ours)"].get_ydata(), [12.0, 12.0])  # a horizontal line
    assert lines["RTagger (ours)"].get_color() == lines["RTagger (paper)"].get_color()
    assert ax.get_ylabel() == "AMI" and list(ax.get_xticks()) == [1, 2, 3]
    ax = grouping.plot_iteration_curves({"ConvNet": [10.0]}, colors={"ConvNet": "tab:green"})
    assert ax.get_lines()[0].get_color() == "tab:green"                   # a fixed colour across panels


def test_iteration_curves_reject_bad_input():
    with pytest.raises(ValueError, match="non-empty dict"):
        grouping.plot_iteration_curves({})
    with pytest.raises(TypeError, match="paper must be a dict"):
        grouping.plot_iteration_curves({"a": [1, 2]}, paper=[1, 2])
    with pytest.raises(ValueError, match="non-empty sequence"):
        grouping.plot_iteration_curves({"a": []})
    with pytest.raises(TypeError, match="colors must be a dict"):
        grouping.plot_iteration_curves({"a": [1.0]}, colors=["red"])


def test_sequence_grouping_layout():
    rng = np.random.default_rng(1)
    f, k, h, w = 6, 3, 8, 8
    frames = rng.uniform(size=(f, h, w))
    true_labels = rng.integers(0, k, size=(f, h, w))
    pred = one_hot_masks(true_labels[1:], k)                              # predictions of frames 1..5
    fig = grouping.plot_sequence_grouping(frames, pred, np.ones((f - 1, h, w)), n_observed=3,
                                          true_masks=one_hot_masks(true_labels, k))
    axes = np.array(fig.axes).reshape(3, f)
    assert [a.get_title() for a in axes[0]] == ["frame 0", "frame 1", "frame 2", "future 3", "future 4", "future 5"]
    assert [a.get_title() for a in axes[1, 1:]] == ["predicted"] * 2 + ["generated"] * 3
    assert not axes[1, 0].axison                                          # no prediction of frame 0
    shown = axes[1, 4].get_images()[0].get_array()                        # prediction of frame 4, all-ones shade
    np.testing.assert_allclose(shown, grouping.group_colors(k)[true_labels[4]])
    fig = grouping.plot_sequence_grouping(frames, pred[:2], np.ones((2, h, w)), n_observed=2)
    assert len(fig.axes) == 2 * f


def test_sequence_grouping_rejects_bad_input():
    frames = np.zeros((5, 8, 8))
    good_masks, good_pred = np.zeros((4, 3, 8, 8)), np.zeros((4, 8, 8))
    with pytest.raises(ValueError, match=r"frames must be \(F, H, W\)"):
        grouping.plot_sequence_grouping(frames[None], good_masks, good_pred, 2)
    with pytest.raises(ValueError, match="pred_masks"):
        grouping.plot_sequence_grouping(frames, np.zeros((5, 3, 8, 8)), np.zeros((5, 8, 8)), 2)
    with pytest.raises(ValueError, match="predictions"):
        grouping.plot_sequence_grouping(frames, good_masks, np.zeros((4, 7, 8)), 2)
    with pytest.raises(ValueError, match="n_observed"):
        grouping.plot_sequence_grouping(frames, good_masks, good_pred, 6)
    with pytest.raises(ValueError, match="true_masks"):
        grouping.plot_sequence_grouping(frames, good_masks, good_pred, 2, true_masks=np.zeros((4, 3, 8, 8)))
