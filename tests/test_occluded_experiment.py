"""The ``occluded_mnist`` experiment (Table 1): every model trains and evaluates, the ablation switches are
really off, the metrics agree with independent computations, bad input is reported."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rladder_nb.data.occluded_mnist import (generate_occluded_sequences, occlusion_grid,
                                            optimal_reconstruction_from_frames)
from rladder_nb.experiments import check_model, get_experiment
from rladder_nb.experiments import occluded_mnist as om
from rladder_nb.models.video import StaticClassifier, TemporalBaseline
from rladder_nb.training import load_checkpoint, save_checkpoint

SMALL_LAYERS = [["conv", 4, 2, 3], ["conv", 8, 2, 3], ["dense", 16, 1, 3]]


@pytest.fixture(scope="module")
def smoke_runs():
    """Every model trained for a few steps at smoke scale, and its metrics."""
    runs = {}
    for model in om.MODELS:
        cfg = om.config(model, "smoke")
        net, result = om.train_model(model, cfg, seed=0, progress=False)
        runs[model] = (cfg, net, result, om.evaluate(model, net, cfg, seed=0))
    return runs


@pytest.mark.parametrize("model", om.MODELS)
def test_every_model_trains_and_reports_its_metrics(smoke_runs, model):
    cfg, net, result, metrics = smoke_runs[model]
    assert result.steps == cfg["n_steps"] and all(np.isfinite(h["loss"]) for h in result.history)
    T = cfg["data"]["n_frames"]
    assert metrics["n_test"] == cfg["n_test"]
    has_class, has_prediction = model != "rladder_no_classification", model in (
        "rladder", "rladder_no_decoder_to_encoder", "rladder_no_classification")
    assert ("classification_error" in metrics) == has_class
    assert ("prediction_error" in metrics) == has_prediction
    if has_class:
        assert 0 <= metrics["classification_error"] <= 100
        if model != "gold_standard":
            assert len(metrics["classification_error_per_frame"]) == T
            assert metrics["classification_error_per_frame"][-1] == metrics["classification_error"]
    if has_prediction:
        assert len(metrics["prediction_error_per_frame"]) == T - 1
        assert np.isclose(np.mean(metrics["prediction_error_per_frame"]), metrics["prediction_error"], rtol=1e-4)


def test_experiment_is_registered_and_deterministic(smoke_runs):
    exp = get_experiment("occluded_mnist")
    assert exp.MODELS == om.MODELS and check_model(exp, "rladder") == "rladder"
    cfg, net, _, metrics = smoke_runs["rladder"]
    assert om.evaluate("rladder", net, cfg, seed=0) == metrics
    again, _ = om.train_model("rladder", cfg, seed=0, progress=False)
    assert om.evaluate("rladder", again, cfg, seed=0) == metrics


def test_a_run_records_which_training_digits_it_saw(smoke_runs, tmp_path, monkeypatch):
    from test_mnist import write_fake_mnist
    cfg = smoke_runs["gold_standard"][0]
    images, labels = om.train_digits(cfg)
    assert cfg["train_digits"] == om.train_digits(cfg, with_fingerprint=True)[2]   # recorded by train_model
    assert f"({len(labels)} digits, sha256 " in cfg["train_digits"]
    write_fake_mnist(tmp_path / "mnist", n_train=50, n_test=12)     # other digits: another fingerprint
    monkeypatch.setenv("RLADDER_NB_DATA", str(tmp_path))
    found = om.train_digits(dict(cfg, n_train=None), with_fingerprint=True)[2]
    assert found.startswith("MNIST training IDX files, split 'train' (45 digits, sha256 ")
    assert found != cfg["train_digits"]


@pytest.mark.parametrize("model", om.MODELS)
def test_paper_scale_configs_build_and_take_a_training_step(model):
    cfg = dict(om.config(model, "paper"), batch_size=2, n_steps=1, n_train=8)
    net, result = om.train_model(model, cfg, seed=0, progress=False)
    assert result.steps == 1 and np.isfinite(result.history[-1]["loss"])
    if cfg["kind"] == "rladder":
        assert [s[0] for s in net.shapes[1:]] == [layer[1] for layer in cfg["layers"]]
    if cfg["prediction_weight"] > 0:  # and the prediction cost, as it is once its warm-up is over
        _, make_batch, loss_fn = om.training_setup(cfg, seed=0)
        loss, parts = loss_fn(net, make_batch(cfg["prediction_warmup"][1]))
        assert "prediction_sse" in parts and np.isfinite(loss.item())


# --------------------------------------------------------------------------------------------------
# the ablation switches
# --------------------------------------------------------------------------------------------------

def _built(model, **override):
    return om.build(dict(om.config(model, "smoke"), **override))


def test_hierarchical_rnn_has_no_decoder_and_no_prediction_head():
    net = _built("hierarchical_rnn")
    names = [n for n, _ in net.named_parameters()]
    assert not any(n.startswith(("combinators", "down", "top_down", "readout")) for n in names)
    assert net.classifier is not None
    x = torch.rand(2, 5, 1, 32, 32)
    assert net(x)["bottom"] is None


def test_decoder_to_encoder_switch_changes_the_encoder_inputs():
    full, ablated = _built("rladder"), _built("rladder_no_decoder_to_encoder")
    assert full.decoder_to_encoder and not ablated.decoder_to_encoder
    # the encoder cell of layer l reads [up(e_{l-1}), d_l(t-1)] with the links, only up(e_{l-1}) without
    n_in = lambda cell: cell.in_channels if hasattr(cell, "in_channels") else cell.input_size  # noqa: E731
    for layer, a, b in zip(full.layers, full.cells, ablated.cells):
        assert (n_in(a), n_in(b)) == (2 * layer.size, layer.size)
    x = torch.rand(2, 3, 1, 32, 32)  # and the ablated encoder ignores the decoder entirely
    base = ablated(x, return_states=True)["encoder"]
    with torch.no_grad():
        for p in ablated.combinators.parameters():
            p.add_(0.5)
    assert all(torch.equal(a, b) for a, b in zip(base, ablated(x, return_states=True)["encoder"]))


def _grads_after_loss(model):
    cfg = om.config(model, "smoke")
    net = om.build(cfg)
    x = torch.rand(3, 5, 1, 32, 32)
    loss, _ = om.loss_terms(cfg, net(x), x, torch.tensor([1, 2, 3]))
    loss.backward()
    return net, {n: p.grad for n, p in net.named_parameters()}


def test_prediction_weight_zero_sends_no_gradient_through_the_prediction_head():
    net, grads = _grads_after_loss("rladder_no_prediction")
    head = [n for n in grads if n.startswith(("combinators.0.", "down.0."))]
    assert head and all(grads[n] is None for n in head)
    assert grads["classifier.weight"] is not None
    _, full = _grads_after_loss("rladder")  # the same head does learn in the full model
    assert all(full[n] is not None for n in head)
    # (down.0 starts with zero gradient: the combinators' top-down weights start at 0)
    assert sum(full[n].abs().sum() for n in head if n.startswith("combinators.0.")) > 0


def test_class_weight_zero_has_no_classifier_and_no_class_gradient():
    net, grads = _grads_after_loss("rladder_no_classification")
    assert net.classifier is None and net(torch.rand(1, 5, 1, 32, 32))["logits"] is None
    assert grads["combinators.0.b0"] is not None


# --------------------------------------------------------------------------------------------------
# loss and metrics against independent computations
# --------------------------------------------------------------------------------------------------

def test_loss_terms_match_a_direct_computation():
    torch.manual_seed(0)
    cfg = om.config("rladder", "smoke")
    x, labels = torch.rand(4, 5, 1, 32, 32), torch.tensor([0, 3, 3, 9])
    out = {"logits": torch.randn(4, 5, 10), "bottom": torch.rand(4, 5, 1, 32, 32)}
    loss, parts = om.loss_terms(cfg, out, x, labels)
    ce = np.mean([F.cross_entropy(out["logits"][:, t], labels).item() for t in range(5)])
    sse = np.mean([((out["bottom"][b, t] - x[b, t + 1]) ** 2).sum().item() for b in range(4) for t in range(4)])
    assert np.isclose(parts["class_ce"], ce, rtol=1e-5) and np.isclose(parts["prediction_sse"], sse, rtol=1e-5)
    assert np.isclose(loss.item(), ce + om.PREDICTION_WEIGHT * sse, rtol=1e-5)
    last = dict(cfg, class_frames="last")
    assert np.isclose(om.loss_terms(last, out, x, labels)[1]["class_ce"],
                      F.cross_entropy(out["logits"][:, -1], labels).item(), rtol=1e-6)


def test_prediction_weight_ramps_in_after_the_class_cost_starts():
    torch.manual_seed(0)
    cfg = dict(om.config("rladder", "smoke"), prediction_warmup=[100, 300])
    x, labels = torch.rand(2, 5, 1, 32, 32), torch.tensor([1, 2])
    out = {"logits": torch.randn(2, 5, 10), "bottom": torch.rand(2, 5, 1, 32, 32)}
    full = cfg["prediction_weight"]
    assert [om.prediction_weight_at(cfg, s) for s in (0, 100, 200, 300, 10_000, None)] == \
        [0.0, 0.0, full / 2, full, full, full]
    early, parts = om.loss_terms(cfg, out, x, labels, step=50)
    assert "prediction_sse" not in parts and np.isclose(early.item(), parts["class_ce"])
    mid, parts = om.loss_terms(cfg, out, x, labels, step=200)
    assert np.isclose(mid.item(), parts["class_ce"] + full / 2 * parts["prediction_sse"], rtol=1e-5)
    # a row without the class cost has nothing to ramp against: full weight from the first step
    no_class = dict(om.config("rladder_no_classification", "smoke"), prediction_warmup=[100, 300])
    assert om.prediction_weight_at(no_class, 0) == no_class["prediction_weight"]
    # the training batches carry their step, so a run's loss follows the schedule
    net, make_batch, loss_fn = om.training_setup(cfg, seed=0)
    assert make_batch(7)[2] == 7 and "prediction_sse" not in loss_fn(net, make_batch(7))[1]


class _Oracle(torch.nn.Module):
    """A fake model: a fixed class, and as prediction either the true next frame (peeking) or zeros."""

    def __init__(self, klass, peek):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))
        self.klass, self.peek = klass, peek

    def forward(self, x):  # (B, T, 1, H, W)
        logits = F.one_hot(torch.full(x.shape[:2], self.klass), 10).float()
        nxt = torch.cat([x[:, 1:], x[:, -1:]], dim=1) if self.peek else torch.zeros_like(x)
        return {"logits": logits, "bottom": nxt}


def test_metrics_of_fake_models_match_independent_values():
    cfg = om.config("rladder", "smoke")
    seqs = om.test_set(cfg)
    frames, labels = seqs["frames"].astype(np.float64), seqs["label"]
    peek = om.evaluate("rladder", _Oracle(3, peek=True), cfg)
    assert peek["prediction_error"] == 0 and peek["classification_error"] == pytest.approx(100 * np.mean(labels != 3))
    blank = om.evaluate("rladder", _Oracle(7, peek=False), cfg)
    assert blank["prediction_error"] == pytest.approx((frames[:, 1:] ** 2).mean() * 1e5, rel=1e-5)
    assert blank["prediction_error"] == pytest.approx(om.reference_prediction_errors(cfg)["background"], rel=1e-5)


def test_test_set_is_fixed_and_mixes_classes():
    cfg = om.config("rladder", "smoke")
    a, b = om.test_set(cfg), om.test_set(cfg)
    assert np.array_equal(a["frames"], b["frames"]) and len(np.unique(a["label"])) > 3


def test_seen_fraction_matches_the_optimal_observer():
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8), np.arange(6)
    seqs = generate_occluded_sequences(images, labels, n=6, white_background=False, seed=3)
    grid = occlusion_grid()
    fraction = om.seen_fraction(seqs["positions"], 14, grid)  # (6, 5)
    for i in range(6):
        _, seen = optimal_reconstruction_from_frames(seqs["frames"][i], seqs["positions"][i], grid, 14, False)
        assert np.allclose(fraction[i], seen.mean(axis=(1, 2)))
    assert np.allclose(fraction[:, -1], seqs["optimal_seen_mask"].mean(axis=(1, 2)))
    ink = rng.random((6, 14, 14))
    weighted = om.seen_fraction(seqs["positions"], 14, grid, ink=ink)
    assert np.allclose(weighted[:, -1], (seqs["optimal_seen_mask"] * ink).sum((1, 2)) / ink.sum((1, 2)))


def test_place_on_canvas_reproduces_the_clean_frame():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    seqs = generate_occluded_sequences(images, np.arange(3), n=3, white_background=False, seed=5,
                                       bar_width=0)  # no bars: the reconstruction is the whole digit
    placed = om.place_on_canvas(seqs["optimal_reconstruction"], 32, seqs["positions"][:, -1])
    assert np.allclose(placed[:, 0].numpy(), seqs["clean_frames"][:, -1])
    centred = om.place_on_canvas(seqs["optimal_reconstruction"], 32)
    assert np.allclose(centred[:, 0, 9:23, 9:23].numpy(), seqs["optimal_reconstruction"])
    assert centred.sum().item() == pytest.approx(float(seqs["optimal_reconstruction"].sum()), rel=1e-5)


@pytest.mark.parametrize("rnn_input", ["features", "top"])
def test_temporal_baseline_is_causal(rnn_input):
    torch.manual_seed(0)
    net = TemporalBaseline((1, 32, 32), SMALL_LAYERS, rnn_input=rnn_input)
    x = torch.rand(2, 5, 1, 32, 32)
    y = x.clone()
    y[:, 3:] = torch.rand(2, 2, 1, 32, 32)
    a, b = net(x)["logits"], net(y)["logits"]
    assert torch.allclose(a[:, :3], b[:, :3]) and not torch.allclose(a[:, 3:], b[:, 3:])


# --------------------------------------------------------------------------------------------------
# checkpoints and bad input
# --------------------------------------------------------------------------------------------------

def test_temporal_baseline_rnn_sits_on_the_gold_standards_network():
    """rnn_input='top': per frame exactly the gold standard's feed-forward network, then the RNN on top."""
    torch.manual_seed(0)
    top = TemporalBaseline((1, 32, 32), SMALL_LAYERS, rnn_input="top")
    gold = StaticClassifier((1, 32, 32), SMALL_LAYERS)
    assert [type(m) for m in top.encoder.modules()] == [type(m) for m in gold.encoder.modules()]
    assert top.rnn.input_size == SMALL_LAYERS[-1][1] == top.rnn.hidden_size
    feats = TemporalBaseline((1, 32, 32), SMALL_LAYERS)          # the first version: the RNN replaces the top layer
    assert feats.rnn.input_size == math.prod(feats.encoder.shapes[-1]) != top.rnn.input_size
    # the experiments use 'top'; a config recorded before the option builds the first version
    built = om.build(om.config("temporal_baseline", "smoke"))
    assert built.rnn.input_size == top.rnn.input_size and built.residual
    old_cfg = {k: v for k, v in om.config("temporal_baseline", "smoke").items()
               if k not in ("rnn_input", "rnn_residual")}
    assert om.build(old_cfg).config["rnn_input"] == "features"
    with pytest.raises(ValueError, match="unknown rnn_input"):
        TemporalBaseline((1, 32, 32), SMALL_LAYERS, rnn_input="bottom")
    with pytest.raises(ValueError, match="needs rnn_input='top'"):
        TemporalBaseline((1, 32, 32), SMALL_LAYERS, residual=True)


def test_residual_temporal_baseline_adds_the_rnn_to_the_feed_forward_output():
    torch.manual_seed(0)
    net = TemporalBaseline((1, 32, 32), SMALL_LAYERS, rnn_input="top", residual=True)
    x = torch.rand(2, 5, 1, 32, 32)
    f = net.encoder(x.reshape(10, 1, 32, 32)).reshape(2, 5, -1)
    expected = net.classifier(f + net.rnn(f)[0])
    assert torch.allclose(net(x)["logits"], expected, atol=1e-6)
    plain = TemporalBaseline((1, 32, 32), SMALL_LAYERS, rnn_input="top")
    plain.load_state_dict(net.state_dict())            # same weights, no residual: a different output
    assert not torch.allclose(plain(x)["logits"], expected)


@pytest.mark.parametrize("net, x", [(StaticClassifier((1, 32, 32), SMALL_LAYERS), torch.rand(2, 1, 32, 32)),
                                    (TemporalBaseline((1, 32, 32), SMALL_LAYERS), torch.rand(2, 5, 1, 32, 32)),
                                    (TemporalBaseline((1, 32, 32), SMALL_LAYERS, rnn_input="top"),
                                     torch.rand(2, 5, 1, 32, 32))])
def test_baselines_round_trip_through_checkpoints(tmp_path, net, x):
    path = save_checkpoint(tmp_path / "net.pt", net)
    loaded, _ = load_checkpoint(path)
    net.eval()
    assert type(loaded) is type(net) and torch.allclose(loaded(x)["logits"], net(x)["logits"])


def test_corrupt_checkpoint_is_reported(tmp_path, smoke_runs):
    path = save_checkpoint(tmp_path / "rladder.pt", smoke_runs["rladder"][1])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path)


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="unknown model"):
        om.config("rladder_deluxe", "smoke")
    with pytest.raises(ValueError, match="unknown scale"):
        om.config("rladder", "huge")
    with pytest.raises(ValueError, match="expected x of shape"):
        _built("rladder")(torch.rand(2, 5, 1, 28, 28))
    with pytest.raises(ValueError, match="expected x of shape"):
        StaticClassifier((1, 32, 32), SMALL_LAYERS)(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError, match="expected x of shape"):
        TemporalBaseline((1, 32, 32), SMALL_LAYERS)(torch.rand(2, 1, 32, 32))
    with pytest.raises(ValueError, match="dense top layer"):
        TemporalBaseline((1, 32, 32), SMALL_LAYERS[:2])
    with pytest.raises(ValueError, match="class_frames"):
        om.build(dict(om.config("rladder", "smoke"), class_frames="first"))
    with pytest.raises(ValueError, match="does not match"):
        om.train_model("rladder", om.config("hierarchical_rnn", "smoke"), progress=False)
    with pytest.raises(ValueError, match="reconstruction must be"):
        om.place_on_canvas(np.zeros((2, 40, 40)), 32)
    with pytest.raises(ValueError, match="positions must have shape"):
        om.seen_fraction(np.zeros((3, 2)))
