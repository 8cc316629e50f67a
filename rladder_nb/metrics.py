"""Metrics used across the book: classification and prediction errors, piano-roll NLL, AMI.

Each function validates its inputs and says what it expected. The chapter that introduces a metric is
named in its docstring.
"""
from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------------------------------
# classification and prediction (Part I and the Occluded Moving MNIST chapters)
# ---------------------------------------------------------------------------------------------------


def _as_numpy(a):
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def classification_error(logits_or_labels, targets) -> float:
    """Classification error in percent.

    Parameters
    ----------
    logits_or_labels : array (N, C) of scores, or (N,) of predicted labels
    targets : array (N,) of integer labels

    Introduced in *Occluded Moving MNIST* (Part II).
    """
    pred = _as_numpy(logits_or_labels)
    targets = _as_numpy(targets)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    if pred.ndim != 1 or targets.ndim != 1 or len(pred) != len(targets):
        raise ValueError(
            f"expected predictions (N, C) or (N,) and targets (N,); got {pred.shape} and {targets.shape}"
        )
    if len(targets) == 0:
        raise ValueError("classification_error needs at least one example")
    return float(100.0 * np.mean(pred != targets))


def mean_squared_error(estimate, target) -> float:
    """Mean of squared differences over every element; shapes must match."""
    estimate, target = _as_numpy(estimate), _as_numpy(target)
    if estimate.shape != target.shape:
        raise ValueError(f"shapes differ: estimate {estimate.shape} vs target {target.shape}")
    if estimate.size == 0:
        raise ValueError("mean_squared_error needs at least one element")
    return float(np.mean((estimate.astype(np.float64) - target.astype(np.float64)) ** 2))


# ---------------------------------------------------------------------------------------------------
# piano-roll negative log-likelihood (Part II, polyphonic music)
# ---------------------------------------------------------------------------------------------------

# Conventions (chapter *Polyphonic music*): ``prediction[t]`` is the model's distribution for
# ``target[t]`` given ``target[:t]`` (same length T, aligned). Step t = 0 has no context; we score it
# by default: only then does the independent Bernoulli floor reproduce the reference values
# (11.06 / 10.25 / 11.51 / 11.05 nats on JSB / Nottingham / MuseData / Piano-midi.de).
PROB_CLIP = 1e-7  # probabilities are clamped to [PROB_CLIP, 1 - PROB_CLIP] (float64) before the log


def _bernoulli_nll_per_step(pred, target, from_logits: bool, where: str) -> np.ndarray:
    """(T, K) prediction and (T, K) binary target -> (T,) NLL in nats, summed over the K notes."""
    pred = np.asarray(pred, dtype=np.float64)  # (T, K)
    target = np.asarray(target)
    if pred.ndim != 2 or pred.shape != target.shape:
        raise ValueError(
            f"{where}: expected prediction and target of the same shape (T, notes); "
            f"got {pred.shape} and {target.shape}"
        )
    if not np.all(np.isfinite(pred)):
        raise ValueError(f"{where}: the prediction holds NaN or infinite values")
    if not np.all((target == 0) | (target == 1)):
        raise ValueError(f"{where}: targets must be a binary piano roll (0/1 or bool)")
    x = target.astype(np.float64)
    if from_logits:
        # -log sigmoid(z) = softplus(-z), -log(1 - sigmoid(z)) = softplus(z): softplus(z) - x z, stable
        nll = np.logaddexp(0.0, pred) - x * pred
    else:
        if pred.min(initial=0.0) < 0 or pred.max(initial=0.0) > 1:
            raise ValueError(
                f"{where}: probabilities must lie in [0, 1]; pass from_logits=True if these are logits"
            )
        p = np.clip(pred, PROB_CLIP, 1.0 - PROB_CLIP)
        nll = -(x * np.log(p) + (1.0 - x) * np.log1p(-p))
    return nll.sum(axis=1)  # (T,)


def per_step_nll(probs_or_logits, targets, from_logits: bool = False) -> np.ndarray:
    """Negative log-likelihood of each time step of one piano roll, in nats.

    Each note is an independent Bernoulli given the model's prediction, so a step's NLL is the sum
    over the notes of ``-[x log p + (1 - x) log(1 - p)]``.

    Parameters
    ----------
    probs_or_logits : array (T, 88)
        ``[t]`` predicts ``targets[t]`` from ``targets[:t]``: probabilities in [0, 1] (clamped to
        ``[PROB_CLIP, 1 - PROB_CLIP]``), or logits when ``from_logits=True`` (computed stably).
    targets : array (T, 88) of 0/1
    from_logits : bool

    Returns
    -------
    numpy array (T,) of nats per step.

    Introduced in *Polyphonic music* (Part II).
    """
    return _bernoulli_nll_per_step(_as_numpy(probs_or_logits), _as_numpy(targets), from_logits, "per_step_nll")


def piano_roll_nll(probs_or_logits, targets, from_logits: bool = False, score_first_step: bool = True,
                   lengths=None) -> float:
    """Average negative log-likelihood per time step (nats), pooled over all steps of all sequences.

    The benchmark's metric (Boulanger-Lewandowski et al. 2012; the paper's Table 3): sum the Bernoulli
    NLL over the 88 notes of each step, sum over every scored step of every sequence, divide by the
    number of scored steps (long pieces weigh more than short ones; it is not a mean of per-piece means).

    Parameters
    ----------
    probs_or_logits, targets
        Either lists of per-sequence arrays ``(T_i, 88)``, a single ``(T, 88)`` array, or padded batches
        ``(B, T, 88)`` (numpy or torch) with ``lengths``. Predictions are aligned with targets:
        ``[t]`` is the distribution of ``targets[t]`` given ``targets[:t]``.
    from_logits : bool
        True when the predictions are logits (numerically stable path); else probabilities, clamped
        to ``[PROB_CLIP, 1 - PROB_CLIP]``.
    score_first_step : bool
        Step t = 0 has no context (a model predicts it from its initial state alone). True (default)
        scores it (the convention that reproduces the reference Bernoulli floors); False drops step 0 of
        every sequence (its prediction is ignored), scoring T_i - 1 steps.
    lengths : sequence of int, optional
        Valid lengths of a padded batch; positions ``t >= lengths[b]`` are ignored. Default: full length.

    Returns
    -------
    float, nats per scored time step.

    Introduced in *Polyphonic music* (Part II).
    """
    preds, targs = _as_sequence_list(probs_or_logits, targets, lengths)
    total, n_steps = 0.0, 0
    for i, (pred, targ) in enumerate(zip(preds, targs)):
        nll = _bernoulli_nll_per_step(pred, targ, from_logits, f"piano_roll_nll, sequence {i}")  # (T_i,)
        if not score_first_step:
            nll = nll[1:]
        total += float(nll.sum())
        n_steps += len(nll)
    if n_steps == 0:
        raise ValueError(
            "piano_roll_nll: no time step to score (empty sequences, or only length-1 sequences with "
            "score_first_step=False)"
        )
    return total / n_steps


def _as_sequence_list(preds, targets, lengths):
    """Normalise (list | (T, K) | padded (B, T, K) with lengths) inputs to two lists of (T_i, K) arrays."""
    if isinstance(preds, (list, tuple)) or isinstance(targets, (list, tuple)):
        if not isinstance(preds, (list, tuple)) or not isinstance(targets, (list, tuple)):
            raise TypeError("pass predictions and targets both as lists of (T_i, 88) arrays, or both as arrays")
        if lengths is not None:
            raise ValueError("lengths is for padded (B, T, 88) batches; lists carry their own lengths")
        if len(preds) != len(targets) or len(preds) == 0:
            raise ValueError(
                f"expected equally long, non-empty lists; got {len(preds)} predictions, {len(targets)} targets"
            )
        return [_as_numpy(p) for p in preds], [_as_numpy(t) for t in targets]
    preds, targets = _as_numpy(preds), _as_numpy(targets)
    if preds.shape != targets.shape or preds.ndim not in (2, 3):
        raise ValueError(
            "expected predictions and targets of the same shape, (T, 88) or padded (B, T, 88); "
            f"got {preds.shape} and {targets.shape}"
        )
    if preds.ndim == 2:
        if lengths is not None:
            raise ValueError("lengths is for padded (B, T, 88) batches, not a single (T, 88) sequence")
        return [preds], [targets]
    batch, steps = preds.shape[:2]
    if lengths is None:
        lengths = [steps] * batch
    lengths = _as_numpy(lengths)
    if lengths.shape != (batch,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"lengths must be {batch} integers (one per sequence); got {lengths!r}")
    if lengths.min(initial=0) < 0 or lengths.max(initial=0) > steps:
        raise ValueError(f"lengths must lie in 0..{steps} (the padded length); got {lengths.tolist()}")
    return ([preds[b, : lengths[b]] for b in range(batch)], [targets[b, : lengths[b]] for b in range(batch)])


# ---------------------------------------------------------------------------------------------------
# adjusted mutual information of segmentations (Part III, perceptual grouping)
# ---------------------------------------------------------------------------------------------------

AMI_CONVENTIONS = ("tagger", "exclude_background", "all")


def adjusted_mutual_information(true_masks, pred_masks, convention="tagger", threshold=0.9,
                                background_index=0, valid=None, average_method="arithmetic",
                                reduction="mean", group_axis=1):
    """Adjusted mutual information (AMI) between true and predicted segmentations, per image.

    Each pixel's true group is the argmax of ``true_masks`` over groups, its predicted group the
    argmax of ``pred_masks``; per image, :func:`sklearn.metrics.adjusted_mutual_info_score` compares
    the two labelings on the *scored* pixels. AMI is 1 for identical segmentations (whatever the
    numbering of the groups) and about 0 for random ones.

    Which pixels are scored is the ``convention`` (say which one a number uses):

    * ``"tagger"`` (Greff et al. 2016; the paper's Table 4, textured MNIST) — pixels whose largest
      true mask value exceeds ``threshold`` (0.9), the background counting as a group. With hard
      masks every pixel is scored; with soft masks, ambiguous (e.g. boundary) pixels are not.
    * ``"exclude_background"`` (Neural-EM style; the paper's Section 4.3, Moving MNIST, AMI 0.75) —
      pixels whose true group is not ``background_index``. Add overlaps of objects of the same
      colour to ``valid=False`` to follow the paper there.
    * ``"all"`` — every pixel.

    Degenerate images — fewer than 2 scored pixels, or a single true group among them — have no
    meaningful AMI (sklearn would return 1 or 0 depending only on the prediction's number of
    groups): they get NaN per image and are left out of the mean. If every image is degenerate the
    mean is NaN.

    Parameters
    ----------
    true_masks : array (N, K_true, H, W), or (N, K_true, T, H, W) for video; values in [0, 1].
    pred_masks : array (N, K_pred, ...) with the same N and spatial shape; any finite scores.
    convention : ``"tagger"``, ``"exclude_background"`` or ``"all"``.
    threshold : float in [0, 1) — the tagger convention's minimum largest-true-mask value (strict).
    background_index : int — the background group of ``true_masks`` (negative counts from the end);
        0 fits the package's data sets (textured MNIST and two-digit Moving MNIST put it first).
    valid : bool array (N, ...spatial) or None — further pixels to leave out (False), for any convention.
    average_method : sklearn's normaliser: ``"arithmetic"`` (sklearn >= 0.22 default) or ``"max"``
        (sklearn < 0.22, which the 2016-17 Tagger/RTagger code will have used), ``"min"``, ``"geometric"``.
    reduction : ``"mean"`` (a float, NaN-images skipped) or ``"none"`` (an array (N,)).
    group_axis : 1 (masks (N, K, ...)) or, for video, 2 (masks (N, T, K, H, W), as Moving MNIST's).

    Returns
    -------
    float, or float64 array (N,) with ``reduction="none"``.

    Introduced in *Perceptual grouping with Tagger and RTagger* (Part III).
    """
    from sklearn.metrics import adjusted_mutual_info_score

    true_masks, pred_masks = _as_numpy(true_masks), _as_numpy(pred_masks)
    if group_axis not in (1, 2) or (group_axis == 2 and true_masks.ndim != 5):
        raise ValueError(f"group_axis must be 1, or 2 for video masks (N, T, K, H, W); got {group_axis!r} "
                         f"for masks of shape {true_masks.shape}")
    if group_axis == 2 and pred_masks.ndim == 5:               # (N, T, K, H, W) -> (N, K, T, H, W)
        true_masks, pred_masks = np.moveaxis(true_masks, 2, 1), np.moveaxis(pred_masks, 2, 1)
    if true_masks.ndim not in (4, 5) or pred_masks.ndim != true_masks.ndim:
        raise ValueError(f"expected masks (N, K, H, W) or (N, K, T, H, W) for both; "
                         f"got true {true_masks.shape} and predicted {pred_masks.shape}")
    if true_masks.shape[0] != pred_masks.shape[0] or true_masks.shape[2:] != pred_masks.shape[2:]:
        raise ValueError(f"true {true_masks.shape} and predicted {pred_masks.shape} masks must agree in N "
                         "and in their spatial shape (the group counts K may differ)")
    if true_masks.shape[0] == 0 or true_masks.shape[1] == 0 or pred_masks.shape[1] == 0:
        raise ValueError("need at least one image and one group in each of the masks")
    if not np.isfinite(true_masks).all() or true_masks.min() < -1e-6 or true_masks.max() > 1 + 1e-6:
        raise ValueError("true_masks must hold values in [0, 1] (one mask per group, e.g. one-hot)")
    if not np.isfinite(pred_masks).all():
        raise ValueError("pred_masks must be finite (NaN or inf found)")
    if convention not in AMI_CONVENTIONS:
        raise ValueError(f"unknown AMI convention {convention!r}: "
                         f"expected one of {', '.join(AMI_CONVENTIONS)}")
    if not 0 <= float(threshold) < 1:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    n_true = true_masks.shape[1]
    if not isinstance(background_index, (int, np.integer)) or not -n_true <= background_index < n_true:
        raise ValueError(f"background_index must be an integer in {-n_true}..{n_true - 1}, "
                         f"got {background_index!r}")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if average_method not in ("arithmetic", "max", "min", "geometric"):
        raise ValueError("average_method must be 'arithmetic', 'max', 'min' or 'geometric', "
                         f"got {average_method!r}")

    n = true_masks.shape[0]
    true_labels = true_masks.argmax(axis=1).reshape(n, -1)        # (N, pixels)
    pred_labels = pred_masks.argmax(axis=1).reshape(n, -1)        # (N, pixels)
    scored = np.ones_like(true_labels, dtype=bool)
    if convention == "tagger":
        scored &= true_masks.max(axis=1).reshape(n, -1) > threshold
    elif convention == "exclude_background":
        scored &= true_labels != background_index % n_true
    if valid is not None:
        valid = _as_numpy(valid)
        if valid.dtype != bool or valid.shape != (n, *true_masks.shape[2:]):
            raise ValueError(f"valid must be a boolean array of shape {(n, *true_masks.shape[2:])}, "
                             f"got {valid.dtype} {valid.shape}")
        scored &= valid.reshape(n, -1)

    scores = np.full(n, np.nan)
    for i in range(n):
        t, p = true_labels[i, scored[i]], pred_labels[i, scored[i]]
        if t.size >= 2 and np.unique(t).size >= 2:      # else degenerate: NaN (see docstring)
            scores[i] = adjusted_mutual_info_score(t, p, average_method=average_method)
    if reduction == "none":
        return scores
    return float(np.nanmean(scores)) if np.isfinite(scores).any() else float("nan")
