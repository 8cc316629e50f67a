"""The Tagger loop: its cost against numpy, the masks, weight sharing across groups, the engine switch,
class probabilities, video forward/generation and bad input."""
import numpy as np
import pytest
import torch

from rladder_nb.models.tagger import (INITIAL_Z, Tagger, bernoulli_tagger_cost, group_class_probabilities,
                                      mixture_cost, starting_masks, tagger_cost, tagger_loss)
from rladder_nb.training import load_checkpoint, save_checkpoint

LAYERS = [["conv", 4, 2, 3], ["conv", 8, 2, 3], ["dense", 12, 1, 3]]
SHAPE = (1, 8, 8)


def _net(engine="rladder", n_classes=5, **kw):
    torch.manual_seed(0)
    return Tagger(SHAPE, LAYERS, n_groups=3, engine=engine, n_classes=n_classes, **kw).eval()


def test_cost_matches_a_direct_numpy_computation():
    rng = np.random.default_rng(0)
    B, I, K, C, H, W = 2, 3, 4, 2, 5, 6
    x = rng.random((B, C, H, W))
    z = rng.random((B, I, K, C, H, W))
    logits = rng.normal(size=(B, I, K, H, W))
    m = np.exp(logits) / np.exp(logits).sum(2, keepdims=True)
    v = 0.07
    want = np.zeros((B, I))
    for b in range(B):
        for i in range(I):
            total = 0.0
            for h in range(H):
                for w in range(W):
                    gauss = [np.prod([np.exp(-0.5 * (np.log(v) + (x[b, c, h, w] - z[b, i, k, c, h, w]) ** 2 / v))
                                      for c in range(C)]) for k in range(K)]
                    mix = sum(m[b, i, k, h, w] * gauss[k] for k in range(K))
                    total += -np.log(mix)
            want[b, i] = total / (H * W)
    got = tagger_cost(torch.tensor(x), torch.tensor(z), torch.tensor(m), torch.tensor(v)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-7)
    # per-iteration targets (video) give the same when every target is x
    got_seq = tagger_cost(torch.tensor(x)[:, None].expand(B, I, C, H, W), torch.tensor(z), torch.tensor(m), v)
    np.testing.assert_allclose(got_seq.numpy(), want, rtol=1e-7)


def test_loss_adds_the_class_cost_of_labelled_examples_only():
    net = _net()
    x = torch.rand(4, *SHAPE)
    out = net(x, 2, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([1, -1, 3, -1])
    loss, parts = tagger_loss(out, x, labels)
    cost = tagger_cost(x, out["z"], out["masks"], out["v"]).mean()
    p = out["class_probs"][:, -1]
    ce = -(torch.log(p[0, 1]) + torch.log(p[2, 3])) / 2
    assert torch.allclose(loss, cost + ce, atol=1e-6)
    loss_unlabelled, parts_u = tagger_loss(out, x, torch.full((4,), -1))
    assert torch.allclose(loss_unlabelled, cost) and "class_ce" not in parts_u


def test_masks_sum_to_one_and_outputs_have_the_documented_shapes():
    net = _net()
    out = net(torch.rand(3, *SHAPE), 4)
    assert out["z"].shape == (3, 4, 3, *SHAPE) and out["masks"].shape == (3, 4, 3, 8, 8)
    assert out["prediction"].shape == (3, 4, *SHAPE) and out["class_probs"].shape == (3, 4, 5)
    assert torch.allclose(out["masks"].sum(2), torch.ones(3, 4, 8, 8), atol=1e-6)
    assert (out["masks"] >= 0).all() and out["v"] > 0
    pred = (out["masks"][:, :, :, None] * out["z"]).sum(2)
    assert torch.allclose(out["prediction"], pred, atol=1e-6)
    start = net.initial_masks(2, 8, 8, torch.Generator().manual_seed(0))
    assert torch.allclose(start.sum(1), torch.ones(2, 8, 8), atol=1e-6)


def test_class_probabilities_drop_the_none_unit_and_are_normalised():
    logits = torch.randn(2, 3, 6)
    got = group_class_probabilities(logits)
    soft = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(-1, keepdims=True)
    want = soft[..., :5].sum(1)
    want /= want.sum(-1, keepdims=True)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5)
    assert torch.allclose(got.sum(-1), torch.ones(2))


@pytest.mark.parametrize("engine", ["rladder", "ladder"])
def test_groups_share_weights_permuting_initial_masks_permutes_outputs(engine):
    net = _net(engine)
    x = torch.rand(2, *SHAPE)
    m0 = net.initial_masks(2, 8, 8, torch.Generator().manual_seed(3))
    perm = torch.tensor([2, 0, 1])
    with torch.no_grad():
        a = net(x, 3, initial_masks=m0)
        b = net(x, 3, initial_masks=m0[:, perm])
    assert torch.allclose(a["masks"][:, :, perm], b["masks"], atol=1e-5)
    assert torch.allclose(a["z"][:, :, perm], b["z"], atol=1e-5)
    assert torch.allclose(a["class_probs"], b["class_probs"], atol=1e-5)   # a sum over groups


def test_engine_switch_ladder_restarts_every_iteration_rladder_remembers():
    x = torch.rand(2, *SHAPE)
    m0 = torch.rand(2, 3, 8, 8).softmax(1)
    for engine, memoryless in (("ladder", True), ("rladder", False)):
        net = _net(engine)
        with torch.no_grad():  # away from the initialisation, where the bottom combinator ignores the top-down path
            for p in net.engine.combinators.parameters():
                p.add_(0.5 * torch.randn_like(p))
        with torch.no_grad():
            two = net(x, 2, initial_masks=m0)
            fresh = net(x, 1, initial_masks=two["masks"][:, 0], initial_z=two["z"][:, 0])
        same = torch.allclose(two["z"][:, 1], fresh["z"][:, 0], atol=1e-6) and \
            torch.allclose(two["masks"][:, 1], fresh["masks"][:, 0], atol=1e-6)
        assert same == memoryless, engine
    assert not _net("ladder").engine.decoder_to_encoder and _net("rladder").engine.decoder_to_encoder


def test_video_forward_and_generation():
    net = _net(n_classes=None)
    frames = torch.rand(2, 5, *SHAPE)
    with torch.no_grad():
        out = net(frames, generator=torch.Generator().manual_seed(0))
        gen = net(frames, n_generate=3, generator=torch.Generator().manual_seed(0))
    assert out["z"].shape == (2, 5, 3, *SHAPE) and out["class_probs"] is None
    assert gen["masks"].shape == (2, 8, 3, 8, 8)
    assert torch.allclose(gen["masks"][:, :5], out["masks"], atol=1e-6)   # the observed part is unchanged
    # a generated iteration is the same as observing the model's own prediction
    with torch.no_grad():
        fed = net(torch.cat([frames, gen["prediction"][:, 4:5]], 1), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(fed["z"][:, 5], gen["z"][:, 5], atol=1e-6)


def test_default_start_and_checkpoint_roundtrip(tmp_path):
    net = _net("ladder")
    x = torch.rand(1, *SHAPE)
    torch.manual_seed(5)
    a = net(x, 1)
    torch.manual_seed(5)
    b = net(x, 1, initial_z=torch.full((1, 3, *SHAPE), INITIAL_Z))
    assert torch.allclose(a["z"], b["z"])
    save_checkpoint(tmp_path / "t.pt", net)
    again, _ = load_checkpoint(tmp_path / "t.pt")
    g = torch.Generator
    assert torch.allclose(again(x, 2, generator=g().manual_seed(0))["z"], net(x, 2, generator=g().manual_seed(0))["z"])


def test_bad_input_is_reported():
    with pytest.raises(ValueError, match="unknown engine"):
        Tagger(SHAPE, LAYERS, engine="transformer")
    with pytest.raises(ValueError, match="n_groups"):
        Tagger(SHAPE, LAYERS, n_groups=1)
    with pytest.raises(ValueError, match="input_shape"):
        Tagger((8, 8), LAYERS)
    with pytest.raises(ValueError, match="unknown mask_update"):
        Tagger(SHAPE, LAYERS, mask_update="sticky")
    with pytest.raises(ValueError, match="noise_std"):
        Tagger(SHAPE, LAYERS, noise_std=-1)
    with pytest.raises(ValueError, match="unknown head_norm"):
        Tagger(SHAPE, LAYERS, head_norm="layer")
    net = _net()
    with pytest.raises(ValueError, match="expected x of shape"):
        net(torch.rand(2, 1, 9, 8), 2)
    with pytest.raises(TypeError, match="torch tensor"):
        net(np.zeros((2, *SHAPE)), 2)
    with pytest.raises(ValueError, match="n_iterations"):
        net(torch.rand(2, *SHAPE))
    with pytest.raises(ValueError, match="sequence"):
        net(torch.rand(2, 3, *SHAPE), n_iterations=2)
    with pytest.raises(ValueError, match="initial_masks"):
        net(torch.rand(2, *SHAPE), 2, initial_masks=torch.rand(2, 2, 8, 8))
    with pytest.raises(ValueError, match="x_target"):
        tagger_cost(torch.rand(2, 1, 7, 8), torch.rand(2, 1, 3, 1, 8, 8), torch.rand(2, 1, 3, 8, 8), 0.1)


def test_residual_mask_update_adds_the_log_of_the_current_masks():
    torch.manual_seed(0)
    direct = Tagger(SHAPE, LAYERS, n_groups=3, mask_update="direct").eval()
    residual = Tagger(**dict(direct.config, mask_update="residual")).eval()
    residual.load_state_dict(direct.state_dict())
    x, m0 = torch.rand(2, *SHAPE), torch.rand(2, 3, 8, 8).softmax(1)
    with torch.no_grad():
        a, b = direct(x, 1, initial_masks=m0), residual(x, 1, initial_masks=m0)
    want = (torch.log(a["masks"][:, 0]) + torch.log(m0)).softmax(1)   # softmax(head + log m0)
    assert torch.allclose(b["masks"][:, 0], want, atol=1e-5) and torch.allclose(a["z"], b["z"])


def test_tagger_head_norm_normalises_over_batch_and_groups_then_rescales():
    torch.manual_seed(0)
    net = Tagger(SHAPE, LAYERS, n_groups=3, head_norm="tagger").eval()
    raw = {}
    net.z_head.register_forward_hook(lambda mod, inp, out: raw.__setitem__("z", out))
    net.mask_head.register_forward_hook(lambda mod, inp, out: raw.__setitem__("m", out))
    x, m0 = torch.rand(4, *SHAPE), torch.rand(4, 3, 8, 8).softmax(1)

    def normalised(t):
        return (t - t.mean((0, 1), keepdim=True)) / torch.sqrt(t.var((0, 1), unbiased=False, keepdim=True) + 1e-5)

    with torch.no_grad():
        out = net(x, 1, initial_masks=m0)
        z, logits = raw["z"].reshape(4, 3, *SHAPE), raw["m"].reshape(4, 3, 8, 8)
        assert torch.allclose(out["z"][:, 0], normalised(z), atol=1e-4)   # c_1 = 1, b_1 = 0 at the start
        assert torch.allclose(out["masks"][:, 0], normalised(logits).softmax(1), atol=1e-4)
        net.mask_scale.fill_(0.0)                                           # c_2 = 0: uniform masks
        assert torch.allclose(net(x, 1, initial_masks=m0)["masks"], torch.full((4, 1, 3, 8, 8), 1 / 3))
    plain = Tagger(SHAPE, LAYERS, n_groups=3)
    assert net.config["head_norm"] == "tagger" and plain.config["head_norm"] is None
    assert set(net.state_dict()) - set(plain.state_dict()) == {"z_scale", "z_shift", "mask_scale"}


def test_starting_masks_hold_the_given_segmentation():
    rng = np.random.default_rng(0)
    seg = rng.integers(0, 2, size=(3, 6, 6))                         # two true groups
    true = np.stack([seg == 0, seg == 1], axis=1).astype(np.float32)  # (3, 2, 6, 6)
    assert starting_masks("random", true, 3) is None
    m = starting_masks("ground_truth", true, 3)
    assert m.shape == (3, 3, 6, 6) and torch.allclose(m.sum(1), torch.ones(3, 6, 6))
    assert (m.argmax(1).numpy() == seg).all() and (m > 0).all()      # group j holds true group j; logs finite
    assert float(m[:, 2].max()) < 0.01                                # the spare group starts empty
    one = starting_masks("one_group", true, 3)
    assert (one.argmax(1) == 0).all() and float(one[:, 0].min()) > 0.99
    # a trained model run from the given masks sees them (the forward pass takes them as they are)
    net = _net(n_classes=None)
    seg8 = rng.integers(0, 2, size=(3, 8, 8))
    true8 = np.stack([seg8 == 0, seg8 == 1], axis=1).astype(np.float32)
    x = torch.rand(3, *SHAPE)
    a = net(x, 2, initial_masks=starting_masks("ground_truth", true8, 3))
    b = net(x, 2, initial_masks=starting_masks("one_group", true8, 3))
    assert not torch.allclose(a["masks"], b["masks"])
    with pytest.raises(ValueError, match="unknown start"):
        starting_masks("oracle", true, 3)
    with pytest.raises(ValueError, match="J <= n_groups"):
        starting_masks("ground_truth", true, 1)


@pytest.mark.parametrize("engine", ["ladder", "rladder"])
def test_hold_masks_keeps_the_starting_masks_and_still_reconstructs(engine):
    torch.manual_seed(0)
    net = _net(engine=engine, n_classes=None)
    rng = np.random.default_rng(1)
    seg = rng.integers(0, 2, size=(3, 8, 8))
    start = starting_masks("ground_truth", np.stack([seg == 0, seg == 1], axis=1).astype(np.float32), 3)
    x = torch.rand(3, *SHAPE)
    held = net(x, 3, initial_masks=start, hold_masks=True)
    assert all(torch.equal(held["masks"][:, i], start) for i in range(3))     # every iteration: the start
    free = net(x, 3, initial_masks=start)
    assert not torch.allclose(free["masks"][:, 0], start)                    # without it the head moves them
    assert torch.allclose(held["z"][:, 0], free["z"][:, 0])                  # same first reconstruction
    assert not torch.allclose(held["z"][:, 2], held["z"][:, 1])              # the engine still iterates
    # the cost trains the reconstruction only: no gradient reaches the mask head
    tagger_cost(x, held["z"], held["masks"], held["v"]).mean().backward()
    assert net.mask_head.weight.grad is None and net.z_head.weight.grad.abs().sum() > 0
    with pytest.raises(TypeError, match="hold_masks must be True or False"):
        net(x, 1, hold_masks="yes")


def test_mixture_cost_picks_the_likelihoods_cost_and_reports_bad_input():
    x, z, m = torch.rand(2, 1, 4, 4).round(), torch.rand(2, 3, 2, 1, 4, 4), torch.rand(2, 3, 2, 4, 4).softmax(2)
    assert torch.equal(mixture_cost("bernoulli", x, z, m), bernoulli_tagger_cost(x, z, m))
    assert torch.equal(mixture_cost("gaussian", x, z, m, 0.3), tagger_cost(x, z, m, 0.3))
    with pytest.raises(ValueError, match="needs the learned variance v"):
        mixture_cost("gaussian", x, z, m)
    with pytest.raises(ValueError, match="unknown likelihood 'laplace'"):
        mixture_cost("laplace", x, z, m, 0.3)


def test_corrupt_input_flips_bits_or_adds_noise_after_the_likelihood():
    from rladder_nb.models.tagger import corrupt_input
    x = torch.rand(64, 1, 8, 8).round()
    flipped = corrupt_input(x, "bernoulli", 0.3, 0.2, torch.Generator().manual_seed(0))
    assert set(flipped.unique().tolist()) <= {0.0, 1.0} and 0.2 < (flipped != x).float().mean() < 0.4
    noisy = corrupt_input(x, "gaussian", 0.3, 0.2, torch.Generator().manual_seed(0))
    assert abs(float((noisy - x).std()) - 0.2) < 0.02
    with pytest.raises(ValueError, match="unknown likelihood 'laplace'"):
        corrupt_input(x, "laplace", 0.3, 0.2)
