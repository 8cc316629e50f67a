"""The RLadder module: shapes, ablation switches, causality, combinators, bad input."""
import pytest
import torch

from rladder_nb.models.cells import ConvLSTMCell, GaussianCombinator, LSTMCell, VanillaCombinator
from rladder_nb.models.rladder import RLadder, conv, dense
from rladder_nb.training import load_checkpoint, save_checkpoint


def test_dense_rladder_shapes():
    net = RLadder((8,), [dense(16), dense(8)], n_classes=3)
    out = net(torch.randn(4, 5, 8), return_states=True)
    assert out["bottom"].shape == (4, 5, 8)
    assert out["logits"].shape == (4, 5, 3)
    assert [tuple(d.shape) for d in out["decoder"]] == [(4, 5, 8), (4, 5, 16), (4, 5, 8)]


def test_conv_rladder_shapes_and_mixed_layers():
    net = RLadder((1, 16, 16), [conv(4), conv(8, stride=2), dense(12)], n_classes=10)
    assert net.shapes == [(1, 16, 16), (4, 16, 16), (8, 8, 8), (12,)]
    out = net(torch.rand(2, 3, 1, 16, 16))
    assert out["bottom"].shape == (2, 3, 1, 16, 16)
    assert out["logits"].shape == (2, 3, 10)


def test_causality_outputs_at_t_ignore_the_future():
    torch.manual_seed(0)
    net = RLadder((6,), [dense(10), dense(5)], n_classes=2)
    x = torch.randn(2, 6, 6)
    y = x.clone()
    y[:, 4:] += 10.0
    a, b = net(x), net(y)
    assert torch.allclose(a["bottom"][:, :4], b["bottom"][:, :4])
    assert not torch.allclose(a["bottom"][:, 4:], b["bottom"][:, 4:])


def _uses_previous_decoder(net):
    """Does the encoder at t=1 depend on the decoder output at t=0 (beyond the encoder state)?"""
    torch.manual_seed(1)
    x = torch.randn(3, 2, 6)
    base = net(x, return_states=True)["encoder"][1][:, 1]
    with torch.no_grad():  # change only the decoder's weights
        for p in net.combinators.parameters():
            p.add_(0.5)
    return not torch.allclose(base, net(x, return_states=True)["encoder"][1][:, 1])


def test_decoder_to_encoder_switch_removes_exactly_those_links():
    torch.manual_seed(0)
    assert _uses_previous_decoder(RLadder((6,), [dense(8), dense(4)]))
    assert not _uses_previous_decoder(RLadder((6,), [dense(8), dense(4)], decoder_to_encoder=False))


def test_no_decoder_is_the_hierarchical_rnn():
    net = RLadder((6,), [dense(8), dense(4)], decoder=False, bottom_output=False, n_classes=3)
    assert not hasattr(net, "combinators")
    out = net(torch.randn(2, 3, 6))
    assert out["bottom"] is None and out["logits"].shape == (2, 3, 3)
    full = RLadder((6,), [dense(8), dense(4)], n_classes=3)
    assert net.n_parameters() < full.n_parameters()


def test_vanilla_combinator_initialisation():
    comb = VanillaCombinator((5,))
    z, u = torch.randn(7, 5), torch.randn(7, 5)
    assert torch.allclose(comb(z, u), z + torch.sigmoid(z))


def test_gaussian_combinator_formula():
    comb = GaussianCombinator((3,))
    with torch.no_grad():
        for i in range(1, 11):
            getattr(comb, f"a{i}").fill_(0.1 * i)
    z, u = torch.randn(4, 3), torch.randn(4, 3)
    a = [None] + [0.1 * i for i in range(1, 11)]
    mu = a[1] * torch.sigmoid(a[2] * u + a[3]) + a[4] * u + a[5]
    v = a[6] * torch.sigmoid(a[7] * u + a[8]) + a[9] * u + a[10]
    assert torch.allclose(comb(z, u), (z - mu) * v + mu, atol=1e-6)


def test_lstm_cell_matches_torch_lstm_cell_without_norm():
    torch.manual_seed(0)
    ours, ref = LSTMCell(5, 7), torch.nn.LSTMCell(5, 7)
    with torch.no_grad():  # same weights: ours is Linear([x, h]) with gates i, f, g, o like torch's
        ref.weight_ih.copy_(ours.linear.weight[:, :5]); ref.weight_hh.copy_(ours.linear.weight[:, 5:])
        ref.bias_ih.copy_(ours.linear.bias); ref.bias_hh.zero_()
    x, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
    h1, (_, c1) = ours(x, (h, c))
    h2, c2 = ref(x, (h, c))
    assert torch.allclose(h1, h2, atol=1e-6) and torch.allclose(c1, c2, atol=1e-6)


def test_conv_lstm_cell_keeps_spatial_shape():
    cell = ConvLSTMCell(2, 6)
    h, (h2, c) = cell(torch.randn(2, 2, 9, 11))
    assert h.shape == c.shape == (2, 6, 9, 11)


@pytest.mark.parametrize("kwargs, match", [
    (dict(input_shape=(8, 8), layers=[dense(4)]), "input_shape"),
    (dict(input_shape=(8,), layers=[]), "at least one layer"),
    (dict(input_shape=(8,), layers=[conv(4)]), "conv layer must sit"),
    (dict(input_shape=(8,), layers=[("sparse", 4)]), "'dense' or 'conv'"),
    (dict(input_shape=(8,), layers=[("dense", 0)]), "positive integer"),
    (dict(input_shape=(8,), layers=[dense(4)], combinator="magic"), "unknown combinator"),
    (dict(input_shape=(8,), layers=[dense(4)], cell="transformer"), "unknown encoder cell"),
    (dict(input_shape=(8,), layers=[dense(4)], n_classes=1), "n_classes"),
    (dict(input_shape=(8,), layers=[dense(4)], decoder_hidden=0), "decoder_hidden must be a positive integer"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        RLadder(**kwargs)


def test_decoder_hidden_adds_a_hidden_layer_to_the_convolutional_top_down_maps(tmp_path):
    layers = [conv(4, stride=2), conv(8, stride=2), dense(12)]
    plain = RLadder((1, 16, 16), layers, n_classes=3)
    hidden = RLadder((1, 16, 16), layers, n_classes=3, decoder_hidden=6)
    # the default keeps the single transposed convolution, so recorded checkpoints keep their keys
    assert "down.0.weight" in plain.state_dict() and "down.0.up.weight" in hidden.state_dict()
    assert [tuple(m.up.weight.shape) for m in hidden.down[:2]] == [(4, 6, 3, 3), (8, 6, 3, 3)]
    assert [tuple(m.refine[1].weight.shape) for m in hidden.down[:2]] == [(1, 6, 3, 3), (4, 6, 3, 3)]
    x = torch.rand(2, 3, 1, 16, 16)
    assert hidden(x)["bottom"].shape == plain(x)["bottom"].shape == (2, 3, 1, 16, 16)
    assert hidden.config["decoder_hidden"] == 6 and plain.config["decoder_hidden"] is None
    save_checkpoint(tmp_path / "hidden.pt", hidden)  # and it comes back from a checkpoint
    back, _ = load_checkpoint(tmp_path / "hidden.pt")
    assert type(back) is RLadder and torch.equal(back(x)["bottom"], hidden.eval()(x)["bottom"])


def test_bad_input_shape_says_what_was_expected():
    net = RLadder((8,), [dense(4)])
    with pytest.raises(ValueError, match=r"expected x of shape \(batch, time, 8\)"):
        net(torch.randn(2, 8))
    with pytest.raises(TypeError, match="torch tensor"):
        net([[0.0] * 8])


def test_gated_decoder_to_encoder_links_start_closed_and_learn_to_open():
    torch.manual_seed(0)
    net = RLadder((6,), [dense(8), dense(4)], n_classes=3, gate_decoder_to_encoder=True)
    assert torch.equal(net.d2e_gates.detach(), torch.zeros(2))
    assert not _uses_previous_decoder(net)          # closed: the decoder cannot reach the encoder yet
    out = net(torch.randn(3, 4, 6))
    out["logits"].sum().backward()
    assert net.d2e_gates.grad is not None and net.d2e_gates.grad.abs().sum() > 0  # but its gates learn
    with torch.no_grad():
        net.d2e_gates.fill_(1.0)                    # open, it is the plain RLadder again
    assert _uses_previous_decoder(net)
    assert RLadder((6,), [dense(8)], decoder_to_encoder=False, gate_decoder_to_encoder=True).d2e_gates is None


def test_normalised_links_pass_the_decoder_output_at_zero_mean_and_unit_variance():
    torch.manual_seed(0)
    net = RLadder((6,), [dense(8), dense(4)], n_classes=3, normalize_decoder_to_encoder=True)
    seen = []
    net.cells[0].register_forward_pre_hook(lambda module, args: seen.append(args[0][:, 8:].detach().clone()))
    net(torch.randn(3, 2, 6))
    link = seen[1]  # the link's input at t = 1 (at t = 0 it carries the all-zero d(-1))
    assert torch.allclose(link.mean(1), torch.zeros(3), atol=1e-5)
    assert torch.allclose(link.var(1, unbiased=False), torch.ones(3), atol=0.02)  # layer norm's eps
    assert _uses_previous_decoder(net)


def test_detached_links_send_no_gradient_back_into_the_decoder():
    torch.manual_seed(0)
    x = torch.randn(3, 3, 6)
    for detach in (False, True):
        net = RLadder((6,), [dense(8), dense(4)], n_classes=3, bottom_output=False, detach_decoder_to_encoder=detach)
        net(x)["logits"].sum().backward()  # the class cost reaches the decoder only through the links
        reached = any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.combinators.parameters())
        assert reached is not detach


@pytest.mark.parametrize("cell", ["lstm", "reslstm"])
def test_zero_initialised_links_start_as_the_hierarchical_rnn_and_learn(cell):
    torch.manual_seed(0)
    net = RLadder((6,), [dense(8), dense(4)], cell=cell, n_classes=3, zero_init_decoder_to_encoder=True)
    assert net.d2e_gates is None and not _uses_previous_decoder(net)  # no gate, but nothing comes through yet
    first = net.cells[0].feedforward[0] if cell == "reslstm" else net.cells[0].linear
    assert torch.count_nonzero(first.weight[:, 8:16]) == 0 and torch.count_nonzero(first.weight[:, :8]) > 0
    net.zero_grad()
    net(torch.randn(3, 4, 6))["logits"].sum().backward()
    assert first.weight.grad[:, 8:16].abs().sum() > 0   # the links' weights learn from the first step
    with pytest.raises(ValueError, match="supports the 'reslstm' and 'lstm' cells"):
        RLadder((6,), [dense(8)], cell="gru", zero_init_decoder_to_encoder=True)


@pytest.mark.parametrize("cell", ["lstm", "reslstm"])
def test_zero_bias_init_zeroes_exactly_the_bottom_up_biases(cell):
    layers = [conv(4, stride=2), dense(6)]
    torch.manual_seed(0)
    default = RLadder((1, 8, 8), layers, cell=cell, n_classes=3)
    torch.manual_seed(0)
    zeroed = RLadder((1, 8, 8), layers, cell=cell, n_classes=3, zero_bias_init=True)
    assert zeroed.config["zero_bias_init"] and not default.config["zero_bias_init"]
    changed = {n for n, p in zeroed.named_parameters() if not torch.equal(p, dict(default.named_parameters())[n])}
    expected = {"up.0.bias", "up.1.1.bias"} | ({"cells.0.feedforward.0.bias", "cells.1.feedforward.0.bias"}
                                                if cell == "reslstm" else set())
    assert changed == expected   # the same draws otherwise: only these biases differ, and they are 0
    assert all(torch.count_nonzero(dict(zeroed.named_parameters())[n]) == 0 for n in expected)
    assert all(torch.count_nonzero(dict(default.named_parameters())[n]) > 0 for n in expected)


def test_step_by_step_equals_forward():
    torch.manual_seed(0)
    net = RLadder((1, 8, 8), [conv(4, stride=2), dense(6)], n_classes=3, cell="reslstm",
                  gate_decoder_to_encoder=True)
    with torch.no_grad():
        net.d2e_gates.fill_(0.7)
    x = torch.rand(2, 3, 1, 8, 8)
    full, state, steps = net(x), None, []
    for t in range(3):
        out, state = net.step(x[:, t], state)
        steps.append(out["bottom"])
    assert torch.allclose(torch.stack(steps, 1), full["bottom"], atol=1e-6)
    with pytest.raises(ValueError, match="expected x_t of shape"):
        net.step(torch.rand(2, 1, 9, 9))


@pytest.mark.parametrize("conv_cell", [True, False])
def test_residual_lstm_cell_adds_memory_to_a_feedforward_layer(conv_cell):
    from rladder_nb.models.cells import ResidualLSTMCell
    torch.manual_seed(0)
    cell = ResidualLSTMCell(3, 8, conv=conv_cell)
    x = torch.randn(2, 3, 5, 5) if conv_cell else torch.randn(2, 3)
    h, state = cell(x)
    f = cell.feedforward(x)
    assert h.shape == f.shape == state[0].shape
    assert torch.allclose(h, f + cell.lstm(f)[0])   # the feed-forward path plus an LSTM on top of it
    h2, _ = cell(x, state)
    assert not torch.allclose(h, h2)                # and the state matters
