"""The ``music`` experiment (Table 3): configs, models, training, evaluation, data provenance, bad input."""
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from rladder_nb import zoo
from rladder_nb.data.music import load_music
from rladder_nb.experiments import get_experiment, music
from rladder_nb.metrics import piano_roll_nll
from rladder_nb.models.baselines import BernoulliFloor
from rladder_nb.models.music import PianoRollBernoulli, PianoRollLSTM, PianoRollRLadder, sample_continuation
from rladder_nb.training import load_checkpoint, save_checkpoint, train

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def benchmark_dir(shared_data, monkeypatch):
    """Point the data directory at ``../shared/data`` (skips when absent)."""
    monkeypatch.setenv("RLADDER_NB_DATA", str(shared_data))
    return shared_data


@pytest.fixture
def empty_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("RLADDER_NB_DATA", str(tmp_path))
    return tmp_path


@pytest.fixture(scope="module")
def smoke_runs():
    """The three models trained at smoke scale on the JSB benchmark (once for the module)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RLADDER_NB_DATA", str(SHARED_DATA))
        runs = {m: zoo.train("music", m, "smoke", seed=0, dataset="jsb", progress=False) for m in music.MODELS}
        yield runs


def tiny_rladder(**kwargs):
    return PianoRollRLadder([["conv", 2, [1, 1], [1, 5]], ["conv", 2, [1, 2], [1, 3]], ["dense", 6]], **kwargs)


# --------------------------------------------------------------------------------------------------
# the experiment end to end
# --------------------------------------------------------------------------------------------------


def test_registered_and_configs_record_their_data(benchmark_dir):
    exp = get_experiment("music")
    assert exp.MODELS == ("rladder", "lstm", "bernoulli")
    for dataset in music.DATASETS:
        cfg = music.config("rladder", "book", dataset=dataset)
        assert cfg["dataset"] == dataset and cfg["data_source"] == "benchmark"
    assert music.config("lstm", "smoke")["dataset"] == "jsb"


def test_smoke_training_and_evaluation(benchmark_dir, smoke_runs):
    data = load_music("jsb")
    pieces = sorted(data.test, key=len)[::8]  # 10 pieces of every length
    for model, (net, entry) in smoke_runs.items():
        metrics = entry["metrics"]
        assert set(metrics) == {"nll", "valid_nll", "n_parameters"}
        assert entry["config"]["data_source"] == "benchmark" and entry["dataset"] == "jsb"
        assert metrics["nll"] < 20  # far below 61 nats (88 fair coins): training starts at the floor
        # an independent evaluation: piece by piece, no length buckets, probabilities instead of logits
        with torch.no_grad():
            probs = [torch.sigmoid(net.aligned_logits(torch.as_tensor(r[None], dtype=torch.float32)))[0].numpy()
                     for r in pieces]
        assert music.nll(net, pieces) == pytest.approx(piano_roll_nll(probs, pieces), rel=1e-5)
    floor = BernoulliFloor(1.0).fit(data.train).score(data.test)
    assert smoke_runs["bernoulli"][1]["metrics"]["nll"] == pytest.approx(floor, rel=1e-6)
    assert round(floor, 2) == 11.06
    curves = smoke_runs["rladder"][0].valid_curve
    assert curves.shape[1] == 2 and len(curves) >= 2  # validation every eval_every steps and at the end


def test_evaluate_is_deterministic_and_matches_the_record(benchmark_dir, smoke_runs):
    net, entry = smoke_runs["rladder"]  # entry["metrics"] came from an earlier call of evaluate
    assert music.evaluate("rladder", net, entry["config"], 0) == entry["metrics"]


def test_checkpoint_roundtrip_keeps_weights_and_learning_curves(benchmark_dir, smoke_runs, tmp_path):
    x = torch.as_tensor(load_music("jsb").test[0][None], dtype=torch.float32)  # (1, T, 88)
    for model, (net, entry) in smoke_runs.items():
        save_checkpoint(tmp_path / f"{model}.pt", net)
        loaded, _ = load_checkpoint(tmp_path / f"{model}.pt")
        with torch.no_grad():
            torch.testing.assert_close(loaded.aligned_logits(x), net.aligned_logits(x))
        if model != "bernoulli":
            torch.testing.assert_close(loaded.valid_curve, net.valid_curve)
            torch.testing.assert_close(loaded.train_curve, net.train_curve)


def test_paper_scale_configs_build_and_train_a_few_steps(benchmark_dir):
    data = load_music("jsb")
    for model in ("rladder", "lstm"):
        cfg = music.config(model, "paper", "jsb")
        net = music.build(cfg)
        if model == "rladder":  # five convolutional LSTMs and one fully-connected LSTM
            kinds = [layer["kind"] for layer in net.config["layers"]]
            assert kinds == ["conv"] * 5 + ["dense"]
        rng = np.random.default_rng(0)

        def batch(step):
            x, lengths = music.crop_batch(data.train, 2, 6, rng)
            return torch.as_tensor(x), torch.as_tensor(lengths)

        result = train(net, batch, lambda m, b: (m.loss(*b), {}), 2, lr=cfg["lr"], progress=False)
        assert result.steps == 2 and np.isfinite(result.history[-1]["loss"])


# --------------------------------------------------------------------------------------------------
# data provenance and bad input
# --------------------------------------------------------------------------------------------------


def test_missing_benchmark_is_reported_clearly(empty_data_dir):
    with pytest.raises(FileNotFoundError, match="Nottingham.mat"):
        music.config("rladder", "book", "nottingham")
    assert music.config("lstm", "smoke", "jsb")["data_source"] == "music21"  # JSB falls back offline
    cfg = dict(model="lstm", dataset="jsb", data_source="benchmark", max_pieces=None)
    assert "JSB_Chorales.mat" in music.evaluation_requirements(cfg)
    with pytest.raises(FileNotFoundError, match="RLADDER_NB_DATA"):
        music.evaluate("lstm", PianoRollLSTM(8), cfg)
    assert music.evaluation_requirements(dict(cfg, data_source="music21")) is None


def test_bad_names_give_clear_errors(benchmark_dir):
    with pytest.raises(ValueError, match="unknown model 'transformer'.*rladder, lstm, bernoulli"):
        music.config("transformer", "book")
    with pytest.raises(ValueError, match="unknown music dataset 'bach'.*jsb, nottingham"):
        music.config("rladder", "book", dataset="bach")
    with pytest.raises(ValueError, match="unknown scale"):
        music.config("rladder", "huge")
    with pytest.raises(ValueError, match="unknown model"):
        zoo.train("music", "gru", "smoke", dataset="jsb", progress=False)
    with pytest.raises(ValueError, match=r"\(batch, steps, 88\)"):
        tiny_rladder()(torch.zeros(3, 88))
    with pytest.raises(ValueError, match="input_dropout"):
        tiny_rladder(input_dropout=1.0)
    with pytest.raises(ValueError, match="prime"):
        sample_continuation(PianoRollBernoulli(), np.zeros((4, 12)), 3)
    with pytest.raises(ValueError, match="n_steps"):
        sample_continuation(PianoRollBernoulli(), np.zeros((4, 88)), 0)


# --------------------------------------------------------------------------------------------------
# pieces: buckets, crops, causality, sampling
# --------------------------------------------------------------------------------------------------


def _split_cost(sorted_lengths, cuts, overhead):
    bounds = [0, *cuts, len(sorted_lengths)]
    return sum(sorted_lengths[j - 1] * (overhead + j - i) for i, j in zip(bounds[:-1], bounds[1:]))


def test_length_buckets_cover_every_piece_and_are_optimal():
    rng = np.random.default_rng(1)
    for _ in range(5):
        lengths = rng.integers(1, 300, size=7)
        buckets = music.length_buckets(lengths, overhead_steps=20.0)
        assert sorted(np.concatenate(buckets).tolist()) == list(range(7))
        s = np.sort(lengths)
        brute = min(_split_cost(s, cuts, 20.0) for r in range(7) for cuts in itertools.combinations(range(1, 7), r))
        got = sum(lengths[b].max() * (20.0 + len(b)) for b in buckets)
        assert got == pytest.approx(brute)


def test_crop_batch_takes_real_windows_and_pads_short_pieces():
    rng = np.random.default_rng(0)
    rolls = [(rng.random((n, 88)) < 0.1).astype(np.uint8) for n in (5, 40, 100)]
    x, lengths = music.crop_batch(rolls, 64, 20, np.random.default_rng(3))
    assert x.shape == (64, 20, 88) and x.dtype == np.float32
    for crop, n in zip(x, lengths):
        assert n in (5, 20)
        assert not crop[n:].any()
        windows = [r[s:s + n] for r in rolls if len(r) >= n for s in range(len(r) - n + 1)]
        assert any(np.array_equal(crop[:n], w) for w in windows)
    assert (lengths == 5).mean() < 0.25  # pieces are drawn in proportion to their length (5/145)


def test_rladder_is_causal_and_aligned():
    torch.manual_seed(0)
    net = tiny_rladder().eval()
    x = (torch.rand(2, 9, 88) < 0.1).float()
    changed = x.clone()
    changed[:, 5:] = 1 - changed[:, 5:]
    with torch.no_grad():
        a, b = net.aligned_logits(x), net.aligned_logits(changed)
        torch.testing.assert_close(a[:, :6], b[:, :6])  # aligned step t sees x[:, :t] only
        assert not torch.allclose(a[:, 6:], b[:, 6:])
        torch.testing.assert_close(net.aligned_logits(x)[:, 1:], net(x)[:, :-1])


def test_sample_continuation_is_seeded_and_follows_the_marginals():
    floor = PianoRollBernoulli()
    rolls = [np.zeros((50, 88), np.uint8)]
    rolls[0][:, 40] = 1
    rolls[0][::2, 43] = 1
    floor.fit(rolls)
    prime = rolls[0][:3]
    a, probs = sample_continuation(floor, prime, 20, seed=5, n_samples=100)
    b, _ = sample_continuation(floor, prime, 20, seed=5, n_samples=100)
    assert np.array_equal(a, b) and a.shape == (100, 23, 88)
    assert np.array_equal(a[:, :3], np.broadcast_to(prime, (100, 3, 88)))
    np.testing.assert_allclose(probs[0, 0], floor.probabilities.numpy(), rtol=1e-6)
    freq = a[:, 3:].mean(axis=(0, 1))  # 2000 draws per note
    assert abs(freq[43] - 26 / 52) < 0.05 and freq[40] > 0.9 and freq[10] < 0.05
    net = tiny_rladder()
    c, _ = sample_continuation(net, prime, 4, seed=0)
    assert c.shape == (1, 7, 88) and set(np.unique(c)) <= {0, 1}
