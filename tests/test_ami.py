"""Adjusted mutual information of segmentations, against sklearn on hand-selected pixels."""
import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_mutual_info_score

from rladder_nb.metrics import adjusted_mutual_information as ami


def _one_hot(labels, k):
    """(N, *spatial) integer labels -> (N, K, *spatial) one-hot float masks."""
    return np.moveaxis(np.eye(k)[labels], -1, 1)


def _noisy_copy(labels, k, flip, rng):
    """Labels with a fraction ``flip`` of pixels set to random groups."""
    out = labels.copy()
    where = rng.random(labels.shape) < flip
    out[where] = rng.integers(0, k, where.sum())
    return out


def test_perfect_segmentation_scores_one_whatever_the_group_numbering():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, (5, 12, 12))                       # 3 true groups
    permuted = np.array([4, 0, 2])[truth]                          # renamed, among 5 predicted groups
    pred = _one_hot(permuted, 5) + 0.1 * rng.random((5, 5, 12, 12))   # soft scores, same argmax
    for convention in ("tagger", "all", "exclude_background"):
        per_image = ami(_one_hot(truth, 3), pred, convention=convention, reduction="none")
        np.testing.assert_allclose(per_image, 1.0)
    assert ami(torch.as_tensor(_one_hot(truth, 3)), torch.as_tensor(pred)) == pytest.approx(1.0)


def test_random_prediction_scores_about_zero():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, (40, 24, 24))
    pred = rng.random((40, 4, 24, 24))
    assert abs(ami(_one_hot(truth, 3), pred)) < 0.01


def test_each_convention_selects_the_right_pixels():
    rng = np.random.default_rng(2)
    n, k, h, w = 4, 3, 10, 10
    truth = rng.integers(0, k, (n, h, w))
    true_masks = _one_hot(truth, k)
    # make some pixels ambiguous: largest true value 0.85 (tagger drops them) or 0.95 (kept)
    for i in range(n):
        for (r, c) in rng.integers(0, 10, (15, 2)):
            top = 0.85 if rng.random() < 0.5 else 0.95
            true_masks[i, :, r, c] = (1 - top) / (k - 1)
            true_masks[i, truth[i, r, c], r, c] = top
    pred_labels = _noisy_copy(truth, 4, 0.4, rng)
    pred = _one_hot(pred_labels, 4)
    valid = rng.random((n, h, w)) < 0.8

    def expected(keep_pixel):
        scores = []
        for i in range(n):
            t, p = [], []
            for r in range(h):
                for c in range(w):
                    if keep_pixel(i, r, c):
                        t.append(truth[i, r, c])
                        p.append(pred_labels[i, r, c])
            scores.append(adjusted_mutual_info_score(t, p))
        return np.array(scores)

    got = ami(true_masks, pred, convention="all", reduction="none")
    np.testing.assert_allclose(got, expected(lambda i, r, c: True))
    got = ami(true_masks, pred, convention="tagger", threshold=0.9, reduction="none")
    np.testing.assert_allclose(got, expected(lambda i, r, c: true_masks[i, :, r, c].max() > 0.9))
    for background, index in ((0, 0), (2, -1)):
        got = ami(true_masks, pred, convention="exclude_background", background_index=index, reduction="none")
        np.testing.assert_allclose(got, expected(lambda i, r, c: truth[i, r, c] != background))
    got = ami(true_masks, pred, convention="tagger", valid=valid, reduction="none")
    np.testing.assert_allclose(
        got, expected(lambda i, r, c: true_masks[i, :, r, c].max() > 0.9 and valid[i, r, c]))
    assert ami(true_masks, pred, convention="all") == pytest.approx(expected(lambda i, r, c: True).mean())
    got = ami(true_masks, pred, convention="all", average_method="max", reduction="none")
    want = [adjusted_mutual_info_score(truth[i].ravel(), pred_labels[i].ravel(), average_method="max")
            for i in range(n)]
    np.testing.assert_allclose(got, want)


def test_video_masks_score_each_sequence_as_one_segmentation():
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, (3, 5, 8, 8))                       # (N, T, H, W)
    pred_labels = _noisy_copy(truth, 3, 0.5, rng)
    got = ami(_one_hot(truth, 3), _one_hot(pred_labels, 3), convention="all", reduction="none")
    want = [adjusted_mutual_info_score(truth[i].ravel(), pred_labels[i].ravel()) for i in range(3)]
    np.testing.assert_allclose(got, want)
    time_first = ami(np.moveaxis(_one_hot(truth, 3), 1, 2), np.moveaxis(_one_hot(pred_labels, 3), 1, 2),
                     convention="all", reduction="none", group_axis=2)     # (N, T, K, H, W)
    np.testing.assert_allclose(time_first, want)
    with pytest.raises(ValueError, match="group_axis"):
        ami(_one_hot(truth[:, 0], 3), _one_hot(pred_labels[:, 0], 3), group_axis=2)


def test_degenerate_images_are_nan_and_left_out_of_the_mean():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 2, (3, 6, 6))
    truth[1] = 0                                                   # a single true group
    pred_labels = _noisy_copy(truth, 2, 0.3, rng)
    true_masks, pred = _one_hot(truth, 2), _one_hot(pred_labels, 2)
    per_image = ami(true_masks, pred, convention="all", reduction="none")
    assert np.isnan(per_image[1]) and np.isfinite(per_image[[0, 2]]).all()
    assert ami(true_masks, pred, convention="all") == pytest.approx(per_image[[0, 2]].mean())
    # fewer than two scored pixels: every pixel ambiguous but one
    soft = np.full((1, 2, 6, 6), 0.5)
    soft[0, :, 0, 0] = (1.0, 0.0)
    assert np.isnan(ami(soft, pred[:1], convention="tagger"))
    # a digit on a background, background excluded: one group left, nothing to score
    assert np.isnan(ami(true_masks[:1], pred[:1], convention="exclude_background", background_index=1))


def test_bad_inputs_are_explained():
    good_true, good_pred = _one_hot(np.zeros((2, 4, 4), int), 2), np.zeros((2, 3, 4, 4))
    cases = [
        (dict(true_masks=good_true[0], pred_masks=good_pred[0]), "expected masks"),
        (dict(true_masks=good_true, pred_masks=good_pred[:1]), "agree"),
        (dict(true_masks=good_true, pred_masks=good_pred[..., :3]), "agree"),
        (dict(true_masks=2 * good_true, pred_masks=good_pred), r"\[0, 1\]"),
        (dict(true_masks=good_true, pred_masks=np.full_like(good_pred, np.nan)), "finite"),
        (dict(true_masks=good_true, pred_masks=good_pred, convention="neural-em"), "convention"),
        (dict(true_masks=good_true, pred_masks=good_pred, threshold=1.0), "threshold"),
        (dict(true_masks=good_true, pred_masks=good_pred, background_index=2), "background_index"),
        (dict(true_masks=good_true, pred_masks=good_pred, background_index=-3), "background_index"),
        (dict(true_masks=good_true, pred_masks=good_pred, valid=np.ones((2, 4, 4))), "valid"),
        (dict(true_masks=good_true, pred_masks=good_pred, reduction="sum"), "reduction"),
        (dict(true_masks=good_true, pred_masks=good_pred, average_method="median"), "average_method"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            ami(**kwargs)
