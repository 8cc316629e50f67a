"""Piano-roll NLL (rladder_nb.metrics) and the music baselines (rladder_nb.models.baselines).

Expected values are computed by hand with ``math.log`` or by torch's binary cross-entropy, never taken
from the code under test; the Bernoulli floor is checked against the reference values of the paper notes.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from rladder_nb.metrics import per_step_nll, piano_roll_nll
from rladder_nb.models.baselines import BernoulliFloor, MusicLSTM

SHARED_MUSIC = Path(__file__).resolve().parents[2] / "shared" / "data" / "music"
LOG2 = math.log(2.0)


def two_note_case():
    """A roll where only notes 0 and 1 carry information; the 86 others are coin flips that stay off."""
    probs = np.full((2, 88), 0.5)
    probs[0, :2] = [0.9, 0.2]
    probs[1, :2] = [0.3, 0.6]
    target = np.zeros((2, 88), dtype=np.uint8)
    target[0, 0] = 1  # on with p 0.9, note 1 off with p 0.2
    target[1, 1] = 1  # note 0 off with p 0.3, on with p 0.6
    step0 = -math.log(0.9) - math.log(1 - 0.2) + 86 * LOG2
    step1 = -math.log(1 - 0.3) - math.log(0.6) + 86 * LOG2
    return probs, target, step0, step1


def test_hand_computed_two_notes():
    probs, target, step0, step1 = two_note_case()
    np.testing.assert_allclose(per_step_nll(probs, target), [step0, step1], rtol=1e-12)
    assert piano_roll_nll(probs, target) == pytest.approx((step0 + step1) / 2, rel=1e-12)
    assert piano_roll_nll(probs, target, score_first_step=False) == pytest.approx(step1, rel=1e-12)


def test_pooled_over_steps_not_averaged_over_sequences():
    probs, target, step0, step1 = two_note_case()
    short_p, short_t = np.full((1, 88), 0.5), np.zeros((1, 88))  # one step of 88 log 2
    value = piano_roll_nll([probs, short_p], [target, short_t])
    assert value == pytest.approx((step0 + step1 + 88 * LOG2) / 3, rel=1e-12)
    # first step dropped: the one-step sequence contributes nothing, the other only step 1
    assert piano_roll_nll([probs, short_p], [target, short_t], score_first_step=False) == pytest.approx(step1)


def test_logits_agree_with_probabilities_and_torch():
    rng = np.random.default_rng(0)
    logits = [rng.normal(0, 3, (t, 88)) for t in (5, 9)]
    targets = [(rng.random((t, 88)) < 0.1).astype(np.uint8) for t in (5, 9)]
    probs = [1 / (1 + np.exp(-z)) for z in logits]
    from_logits = piano_roll_nll(logits, targets, from_logits=True)
    assert piano_roll_nll(probs, targets) == pytest.approx(from_logits, rel=1e-9)
    bce = sum(torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(z), torch.tensor(x, dtype=torch.float64), reduction="sum").item()
        for z, x in zip(logits, targets))
    assert from_logits == pytest.approx(bce / 14, rel=1e-12)
    assert piano_roll_nll([torch.tensor(z) for z in logits], [torch.tensor(x) for x in targets],
                          from_logits=True) == pytest.approx(from_logits, rel=1e-12)


def test_padded_batch_with_lengths_matches_list():
    rng = np.random.default_rng(1)
    probs = [rng.random((t, 88)) for t in (3, 6)]
    targets = [(rng.random((t, 88)) < 0.2).astype(np.uint8) for t in (3, 6)]
    batch_p = np.full((2, 6, 88), 7.0)  # padding holds values that would be invalid if scored
    batch_t = np.full((2, 6, 88), 3)
    for b, (p, t) in enumerate(zip(probs, targets)):
        batch_p[b, : len(p)], batch_t[b, : len(t)] = p, t
    for first in (True, False):
        expected = piano_roll_nll(probs, targets, score_first_step=first)
        assert piano_roll_nll(batch_p, batch_t, lengths=[3, 6], score_first_step=first) == pytest.approx(expected)
        assert piano_roll_nll(torch.tensor(batch_p), torch.tensor(batch_t), lengths=torch.tensor([3, 6]),
                              score_first_step=first) == pytest.approx(expected)


def test_extreme_values_stay_finite():
    target = np.zeros((1, 88))
    target[0, 0] = 1
    probs = np.zeros((1, 88))  # p = 0 for a note that sounds: clamped, large but finite
    value = piano_roll_nll(probs, target)
    assert math.isfinite(value) and value == pytest.approx(-math.log(1e-7), rel=1e-6)
    logits = np.full((1, 88), -1000.0)
    logits[0, 0] = 1000.0  # perfectly confident and right
    assert piano_roll_nll(logits, target, from_logits=True) == pytest.approx(0.0, abs=1e-12)
    logits[0, 0] = -1000.0  # confidently wrong: -log sigmoid(-1000) = 1000
    assert piano_roll_nll(logits, target, from_logits=True) == pytest.approx(1000.0)


@pytest.mark.parametrize("call, error, message", [
    (lambda: piano_roll_nll(np.zeros((3, 88)), np.zeros((3, 87))), ValueError, "same shape"),
    (lambda: piano_roll_nll(np.full((3, 88), 1.5), np.zeros((3, 88))), ValueError, "from_logits"),
    (lambda: piano_roll_nll(np.full((3, 88), 0.5), np.full((3, 88), 0.5)), ValueError, "binary"),
    (lambda: piano_roll_nll(np.full((3, 88), np.nan), np.zeros((3, 88))), ValueError, "NaN"),
    (lambda: piano_roll_nll([], []), ValueError, "non-empty"),
    (lambda: piano_roll_nll([np.zeros((3, 88))], np.zeros((3, 88))), TypeError, "both as lists"),
    (lambda: piano_roll_nll(np.zeros((2, 4, 88)), np.zeros((2, 4, 88)), lengths=[3, 5]), ValueError, "0..4"),
    (lambda: piano_roll_nll(np.zeros((2, 4, 88)), np.zeros((2, 4, 88)), lengths=[3]), ValueError, "2 integers"),
    (lambda: piano_roll_nll([np.zeros((1, 88))], [np.zeros((1, 88))], score_first_step=False), ValueError,
     "no time step"),
])
def test_bad_inputs(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------------------------------------------
# the independent Bernoulli floor on the four benchmarks (reference values: paper notes, §4)
# ---------------------------------------------------------------------------------------------------

FLOORS = {"JSB_Chorales.mat": 11.06, "Nottingham.mat": 10.25, "MuseData.mat": 11.51, "Piano_midi.mat": 11.05}


def read_mat_splits(filename):
    path = SHARED_MUSIC / filename
    if not path.is_file():
        pytest.skip(f"benchmark data not available ({path})")
    data = scipy.io.loadmat(str(path))
    return [np.asarray(c) for c in data["traindata"].ravel()], [np.asarray(c) for c in data["testdata"].ravel()]


def test_floor_probabilities_are_smoothed_frequencies():
    rolls = [np.zeros((3, 88), np.uint8), np.zeros((1, 88), np.uint8)]
    rolls[0][:, 5] = 1
    rolls[1][0, 6] = 1
    floor = BernoulliFloor(smoothing=0.5).fit(rolls)
    assert floor.probabilities_[5] == pytest.approx((3 + 0.5) / (4 + 1))
    assert floor.probabilities_[6] == pytest.approx((1 + 0.5) / (4 + 1))
    assert floor.probabilities_[0] == pytest.approx(0.5 / 5)
    with pytest.raises(RuntimeError, match="fit"):
        BernoulliFloor().predict_proba(rolls)
    with pytest.raises(ValueError, match="smoothing"):
        BernoulliFloor(smoothing=0)


@pytest.mark.parametrize("filename", list(FLOORS))
def test_bernoulli_floor_reproduces_reference(filename):
    """Convention that reproduces all four values: Laplace smoothing (1) and the first step scored."""
    train, test = read_mat_splits(filename)
    value = BernoulliFloor(smoothing=1.0).fit(train).score(test, score_first_step=True)
    print(f"Bernoulli floor {filename}: {value:.4f} nats/step (reference {FLOORS[filename]})")
    assert abs(value - FLOORS[filename]) < 0.05
    assert round(value, 2) == FLOORS[filename]  # the reference's two decimals, exactly
    # independent closed form: sum over test steps of the Bernoulli NLL under the train frequencies
    x = np.concatenate(test).astype(np.float64)  # (steps, 88)
    counts, n = np.concatenate(train).sum(axis=0), sum(len(r) for r in train)
    p = (counts + 1.0) / (n + 2.0)
    assert value == pytest.approx(-(x @ np.log(p) + (1 - x) @ np.log(1 - p)).sum() / len(x), rel=1e-10)


def test_dropping_first_step_misses_jsb_reference():
    train, test = read_mat_splits("JSB_Chorales.mat")
    value = BernoulliFloor().fit(train).score(test, score_first_step=False)
    assert round(value, 2) != 11.06  # 11.09: the reference scores the first step


# ---------------------------------------------------------------------------------------------------
# MusicLSTM
# ---------------------------------------------------------------------------------------------------


@pytest.fixture
def one_torch_thread():
    """Tiny LSTMs run ~50x slower with 2 threads on busy shared cores; use one, then restore."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)



def test_music_lstm_shape_and_parameter_count(one_torch_thread):
    model = MusicLSTM(hidden_size=16)
    x = torch.zeros(3, 7, 88)
    assert model(x).shape == (3, 7, 88) and model.aligned_logits(x).shape == (3, 7, 88)
    hidden = 16  # LSTM: 4 gates x (input weights + recurrent weights + two biases); readout: weights + bias
    assert model.n_parameters() == 4 * (hidden * 88 + hidden * hidden + 2 * hidden) + (hidden * 88 + 88)
    with pytest.raises(ValueError, match=r"\(batch, steps, 88\)"):
        model(torch.zeros(7, 88))
    with pytest.raises(ValueError, match="hidden_size"):
        MusicLSTM(hidden_size=0)


def test_music_lstm_is_causal(one_torch_thread):
    torch.manual_seed(0)
    model = MusicLSTM(hidden_size=12, num_layers=2).eval()
    x = (torch.rand(2, 10, 88) < 0.1).float()
    t = 4
    future = x.clone()
    future[:, t + 1:] = 1 - future[:, t + 1:]  # change every input after step t
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, : t + 1], model(future)[:, : t + 1])
        assert not torch.allclose(model(x)[:, t + 1:], model(future)[:, t + 1:])  # the future does matter later
        present = x.clone()
        present[:, t] = 1 - present[:, t]
        assert not torch.allclose(model(x)[:, t], model(present)[:, t])  # output t sees input t
        # aligned: output t predicts x_t from x_<t, so flipping x_t must not change it
        torch.testing.assert_close(model.aligned_logits(x)[:, : t + 1], model.aligned_logits(present)[:, : t + 1])


def test_music_lstm_loss_matches_metric_and_training_reduces_it(one_torch_thread):
    torch.manual_seed(0)
    model = MusicLSTM(hidden_size=32)
    pattern = torch.zeros(4, 12, 88)  # a repeating two-chord progression: learnable from the past
    pattern[:, 0::2, [39, 43, 46]] = 1
    pattern[:, 1::2, [41, 45, 48]] = 1
    lengths = [12, 10, 8, 12]
    with torch.no_grad():
        logits = model.aligned_logits(pattern).numpy()
    expected = piano_roll_nll(logits, pattern.numpy(), from_logits=True, lengths=lengths)
    assert model.loss(pattern, lengths=lengths).item() == pytest.approx(expected, rel=1e-5)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    before = model.loss(pattern).item()
    for _ in range(40):
        optimizer.zero_grad()
        loss = model.loss(pattern)
        loss.backward()
        optimizer.step()
    assert model.loss(pattern).item() < 0.3 * before
