"""Stopped-gradient probes: the network stays frozen, a probe recovers known linear targets and reaches the
least-squares optimum (computed independently with numpy), shapes, and clear errors for bad input."""
import numpy as np
import pytest
import torch

from rladder_nb import probe as P
from rladder_nb.experiments import occluded_mnist as om


@pytest.fixture(scope="module")
def setup():
    """An untrained smoke-size RLadder (frozen weights need not be trained) and its config."""
    torch.manual_seed(0)
    cfg = om.config("rladder", "smoke")
    return om.build(cfg), cfg


@pytest.fixture(scope="module")
def sequences(setup):
    _, cfg = setup
    return P.make_probe_sequences(cfg, 12, seed=3)  # (12, T + 1, 32, 32)


def _snapshot(net):
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def test_the_network_is_frozen_while_the_probe_trains(setup):
    net, cfg = setup
    net.train()
    before = _snapshot(net)
    for p in net.parameters():
        p.grad = None
    probe, history = P.train_probe(net, cfg, layer=("decoder", 1), n_steps=25, n_sequences=8, scale="smoke")
    after = net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a weight of the network changed"
    assert all(p.grad is None for p in net.parameters()), "the network received a gradient"
    assert net.training, "the network's train/eval mode was not restored"
    losses = [h["loss"] for h in history if "loss" in h]
    assert losses[-1] < losses[0], "the probe itself did not learn"
    assert history[-1]["n_sequences"] == 8 and history[-1]["n_pairs"] == 8 * cfg["data"]["n_frames"]


def test_a_probe_of_the_input_learns_the_identity(setup, sequences):
    """Encoder layer 0 is the observed frame itself, so reading the observed frame (time_shift 0) has the
    exact linear answer 'copy the centre pixel'."""
    net, cfg = setup
    probe, _ = P.train_probe(net, cfg, layer=("encoder", 0), target="frames", time_shift=0, n_steps=300,
                             sequences=sequences, scale="smoke")
    seen = {"frames": sequences["frames"][:, :cfg["data"]["n_frames"]], "label": sequences["label"]}
    readout = P.apply_probe(probe, net, cfg, seen)
    assert readout.shape == seen["frames"].shape
    assert np.abs(readout - seen["frames"]).max() < 1e-3
    effective = probe.readout.weight.detach()[0, 0] / probe.std[0]  # (3, 3) weights on the raw input
    expected = torch.zeros(3, 3)
    expected[1, 1] = 1.0
    assert torch.allclose(effective, expected, atol=1e-3)
    wide, _ = P.train_probe(net, cfg, layer=("encoder", 0), target="frames", time_shift=0, n_steps=2,
                            sequences=sequences, scale="smoke", kernel_size=5)
    assert wide.readout.kernel_size == (5, 5)


def test_fit_probe_recovers_a_known_linear_readout(setup, sequences):
    net, cfg = setup
    states = P.layer_states(net, cfg, {k: sequences[k] for k in ("frames", "label")}, ("decoder", 1))
    assert states.shape == (12, cfg["data"]["n_frames"] + 1, 4, 16, 16)
    torch.manual_seed(1)
    teacher = P.Probe(states.shape[2:], (32, 32), kernel_size=3)  # random weights: an exact linear target
    with torch.no_grad():
        targets = teacher(states.flatten(0, 1)).view(12, -1, 32, 32)
    student, history = P.fit_probe(states, targets, time_shift=0, n_steps=800, batch_size=32, lr=2e-2)
    with torch.no_grad():
        fitted = student(states.flatten(0, 1)).view_as(targets)
    relative = ((fitted - targets) ** 2).mean() / targets.var()
    assert relative < 1e-4, f"relative error {float(relative):.2e}"
    assert history[-1]["loss"] < history[0]["loss"]


def _least_squares_mse(states, targets, kernel_size=3):
    """The optimal MSE of a conv + pixel-shuffle readout, by numpy least squares on explicit patches."""
    s = states.numpy().astype(np.float64)  # (M, C, h, w)
    y = targets.numpy().astype(np.float64)  # (M, H, W)
    M, C, h, w = s.shape
    sy, sx = y.shape[1] // h, y.shape[2] // w
    r = kernel_size // 2
    padded = np.pad(s, ((0, 0), (0, 0), (r, r), (r, r)))
    patches = np.stack([padded[:, :, i:i + h, j:j + w] for i in range(kernel_size) for j in range(kernel_size)],
                       axis=-1)  # (M, C, h, w, k*k)
    X = patches.transpose(0, 2, 3, 1, 4).reshape(M * h * w, -1)
    X = np.hstack([X, np.ones((len(X), 1))])
    Y = y.reshape(M, h, sy, w, sx).transpose(0, 1, 3, 2, 4).reshape(M * h * w, sy * sx)
    coef, *_ = np.linalg.lstsq(X, Y, rcond=None)
    return float(((X @ coef - Y) ** 2).mean())


def test_the_trained_probe_reaches_the_least_squares_optimum(setup, sequences):
    net, cfg = setup
    states = P.layer_states(net, cfg, {k: sequences[k] for k in ("frames", "label")}, ("decoder", 1))
    probe, _ = P.fit_probe(states, sequences["clean_frames"], time_shift=1, n_steps=1500, batch_size=64, lr=1e-2)
    x = states[:, :-1].flatten(0, 1)  # state at t reads the clean frame at t + 1
    y = torch.as_tensor(sequences["clean_frames"][:, 1:]).flatten(0, 1)
    with torch.no_grad():
        mse = float(((probe(x) - y) ** 2).mean())
    optimum = _least_squares_mse(x, y)
    assert optimum <= mse * (1 + 1e-6) and mse < 1.1 * optimum, (mse, optimum)


def test_pixel_shuffle_places_each_block_under_its_state_position():
    probe = P.Probe((1, 2, 3), (4, 9), kernel_size=1)  # blocks of 2 x 3 pixels
    with torch.no_grad():
        probe.readout.weight.zero_()
        probe.readout.bias.copy_(torch.arange(6.0))  # channel a * 3 + b -> pixel offset (a, b)
        probe.readout.weight[:, 0, 0, 0] = 100.0  # plus 100 x the state value at (i, j)
    state = torch.arange(6.0).view(1, 1, 2, 3)  # value i * 3 + j
    out = probe(state)[0]
    for i in range(2):
        for j in range(3):
            for a in range(2):
                for b in range(3):
                    assert out[i * 2 + a, j * 3 + b] == 100 * (i * 3 + j) + a * 3 + b


def test_dense_layers_get_a_linear_readout_and_shapes_are_right(setup, sequences):
    net, cfg = setup
    top = len(cfg["layers"])
    probe, history = P.train_probe(net, cfg, layer=("encoder", top), n_steps=5, sequences=sequences, scale="smoke")
    assert probe.block is None and isinstance(probe.readout, torch.nn.Linear)
    test = {k: sequences[k][:5, :cfg["data"]["n_frames"]] for k in ("frames", "clean_frames")}
    test["label"] = sequences["label"][:5]
    readout = P.apply_probe(probe, net, cfg, test)
    assert readout.shape == (5, cfg["data"]["n_frames"], 32, 32)
    errors = P.probe_error(readout, test, "clean_frames", time_shift=1)
    assert errors.shape == (cfg["data"]["n_frames"] - 1,)
    brute = [((readout[:, t] - test["clean_frames"][:, t + 1]) ** 2).mean() * 1e5 for t in range(4)]
    assert np.allclose(errors, brute)
    bars = np.zeros((32, 32), bool)
    bars[8:12] = True
    masked = P.probe_error(readout, test, "clean_frames", time_shift=1, mask=bars)
    brute = [((readout[:, t, 8:12] - test["clean_frames"][:, t + 1, 8:12]) ** 2).mean() * 1e5 for t in range(4)]
    assert np.allclose(masked, brute)
    with pytest.raises(ValueError, match="mask"):
        P.probe_error(readout, test, mask=np.zeros((32, 32), bool))
    assert "seconds" in history[-1]


def test_bad_layers_and_arguments_are_reported(setup):
    net, cfg = setup
    with pytest.raises(ValueError, match="out of range"):
        P.train_probe(net, cfg, layer=("decoder", 9), n_steps=1, n_sequences=2, scale="smoke")
    for bad in (("middle", 1), "decoder", ("decoder",), ("decoder", 1.5), ("decoder", True)):
        with pytest.raises(ValueError, match="pair"):
            P.train_probe(net, cfg, layer=bad, n_steps=1, n_sequences=2, scale="smoke")
    with pytest.raises(ValueError, match="target"):
        P.train_probe(net, cfg, target="labels", n_steps=1, n_sequences=2, scale="smoke")
    with pytest.raises(ValueError, match="time_shift"):
        P.train_probe(net, cfg, time_shift=2, n_steps=1, n_sequences=2, scale="smoke")
    hierarchical = om.build(om.config("hierarchical_rnn", "smoke"))
    with pytest.raises(ValueError, match="no decoder"):
        P.train_probe(hierarchical, om.config("hierarchical_rnn", "smoke"), layer=("decoder", 1), n_steps=1,
                      n_sequences=2, scale="smoke")
    gold_cfg = om.config("gold_standard", "smoke")
    with pytest.raises(TypeError, match="RLadder"):
        P.train_probe(om.build(gold_cfg), gold_cfg, n_steps=1, n_sequences=2, scale="smoke")
    with pytest.raises(TypeError, match="Probe"):
        P.apply_probe("not a probe", net, cfg, {"frames": np.zeros((1, 5, 32, 32)), "label": np.zeros(1, int)})
    with pytest.raises(ValueError, match="kernel_size"):
        P.train_probe(net, cfg, kernel_size=4, n_steps=1, n_sequences=2, scale="smoke")
    with pytest.raises(ValueError, match="n_steps"):
        P.fit_probe(torch.zeros(2, 3, 4, 16, 16), np.zeros((2, 4, 32, 32)), n_steps=0)


def test_changes_of_mind_against_a_brute_force_reading():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 0.1, size=(40, 5, 10))
    labels = rng.integers(0, 10, 40)
    decisions = rng.integers(0, 10, size=(40, 5))
    decisions[:, -1] = np.where(rng.random(40) < 0.7, labels, decisions[:, -1])
    decisions[:5] = labels[:5, None]  # five sequences that never change their mind
    logits[np.arange(40)[:, None], np.arange(5)[None], decisions] += rng.uniform(2, 6, size=(40, 5))
    found = P.changes_of_mind(logits, labels, min_confidence=0.0)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = set()
    for i in range(40):
        d = probs[i].argmax(-1)
        if d[-1] == labels[i] and len(set(d.tolist())) > 1:
            expected.add(i)
    assert {r["index"] for r in found} == expected and not expected & set(range(5))
    for r in found:
        d = probs[r["index"]].argmax(-1)
        last_other = max(t for t in range(5) if d[t] != d[-1])
        assert r["frame"] == last_other + 2 and r["from"] == d[last_other] and r["to"] == labels[r["index"]]
    swings = [r["swing"] for r in found]
    assert swings == sorted(swings, reverse=True)
    strict = P.changes_of_mind(logits, labels, min_confidence=0.9)
    assert {r["index"] for r in strict} <= expected
    with pytest.raises(ValueError, match="N, T, C"):
        P.changes_of_mind(np.zeros((3, 10)))
