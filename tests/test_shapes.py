"""Tagger's Shapes and the Tagger's binary variant: the generator's geometry and determinism, bit flips,
the binary likelihood inputs and cost against direct computations, the experiment at smoke and paper size,
and bad input."""
import numpy as np
import pytest
import torch

from rladder_nb.data.shapes import SHAPE_NAMES, flip_bits, generate_shapes, shape_templates
from rladder_nb.experiments import shapes as sx
from rladder_nb.metrics import adjusted_mutual_information
from rladder_nb.models.tagger import Tagger, bernoulli_tagger_cost, tagger_cost, tagger_loss

DENSE = [["dense", 12, 1, 3], ["dense", 6, 1, 3]]


def test_templates_have_the_released_sizes_and_shapes():
    t = shape_templates()
    assert tuple(t) == SHAPE_NAMES
    assert t["square"].shape == (7, 7) and t["up-triangle"].shape == (7, 12) and t["down-triangle"].shape == (7, 12)
    square = t["square"]
    assert square.sum() == 49 - 9 and square[2:5, 2:5].sum() == 0          # a ring two pixels thick
    assert np.array_equal(t["down-triangle"], t["up-triangle"][::-1])
    up = t["up-triangle"]
    assert up[5:].all() and up[0].sum() < up[5].sum() and up[0, [0, -1]].sum() == 0   # the base at the bottom
    assert np.array_equal(up, up[:, ::-1])                                  # symmetric about its axis


def test_generator_geometry_masks_and_scored_pixels():
    d = generate_shapes(300, seed=5)
    sizes = {name: int(t.sum()) for name, t in shape_templates().items()}
    assert d.images.shape == (300, 1, 20, 20) and d.masks.shape == (300, 3, 20, 20) and d.scored.shape == (300, 20, 20)
    # every shape lies fully inside the canvas: its mask holds the whole template
    counts = d.masks.sum(dim=(2, 3)).numpy()
    want = np.vectorize(lambda k: sizes[SHAPE_NAMES[k]])(d.shapes.numpy())
    np.testing.assert_array_equal(counts, want)
    cover = d.masks.sum(1)
    assert torch.equal(d.images[:, 0], (cover > 0).float())               # the image is the union of the shapes
    assert torch.equal(d.scored, cover == 1)                               # scored: exactly one shape
    assert set(np.unique(d.images.numpy())) <= {0.0, 1.0}
    assert 0 < d.scored.float().mean() < d.images.mean()                   # some overlaps exist and are left out
    assert set(np.unique(d.shapes.numpy())) == {0, 1, 2}


def test_generator_is_deterministic_by_seed_and_checks_its_arguments():
    a, b, c = generate_shapes(20, 3), generate_shapes(20, 3), generate_shapes(20, 4)
    assert torch.equal(a.images, b.images) and torch.equal(a.masks, b.masks)
    assert not torch.equal(a.images, c.images)
    with pytest.raises(ValueError, match="positive integer"):
        generate_shapes(0, 1)
    with pytest.raises(ValueError, match="size must be an integer >= 12"):
        generate_shapes(2, 1, size=10)


def test_flip_bits():
    x = generate_shapes(200, 0).images
    g = torch.Generator().manual_seed(0)
    assert torch.equal(flip_bits(x, 0.0, g), x) and torch.equal(flip_bits(x, 1.0, g), 1 - x)
    y = flip_bits(x, 0.2, g)
    assert set(np.unique(y.numpy())) <= {0.0, 1.0}
    assert abs(float((y != x).float().mean()) - 0.2) < 0.01
    with pytest.raises(ValueError, match="flip probability"):
        flip_bits(x, 1.5)


def _binary_net(**kw):
    torch.manual_seed(0)
    return Tagger((1, 20, 20), DENSE, n_groups=4, engine="ladder", noise_std=0.0, head_norm="tagger",
                  likelihood="bernoulli", flip_prob=0.2, initial_z=0.27, **kw).eval()


def test_bernoulli_cost_is_the_mixture_of_bernoullis_likelihood():
    rng = np.random.default_rng(1)
    B, I, K, C, H, W = 2, 2, 3, 1, 4, 5
    x = (rng.random((B, C, H, W)) < 0.4).astype(float)
    z = rng.random((B, I, K, C, H, W))
    m = rng.random((B, I, K, H, W))
    m /= m.sum(2, keepdims=True)
    want = np.zeros((B, I))
    for b in range(B):
        for i in range(I):
            lik = [sum(m[b, i, k, h, w] * (z[b, i, k, 0, h, w] if x[b, 0, h, w] else 1 - z[b, i, k, 0, h, w])
                       for k in range(K)) for h in range(H) for w in range(W)]
            want[b, i] = -np.mean(np.log(lik))
    got = bernoulli_tagger_cost(torch.tensor(x), torch.tensor(z), torch.tensor(m)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError, match="expected z"):
        bernoulli_tagger_cost(torch.tensor(x), torch.tensor(z)[:, 0], torch.tensor(m))


def test_binary_likelihood_inputs_are_the_gradient_and_the_posterior():
    """The z input's partner is d log(sum_j m_j zt_j(x)) / d z_k, the mask input the posterior of each group."""
    net = _binary_net()
    x = generate_shapes(2, 0).images
    z = torch.rand(2, 4, 1, 20, 20, dtype=torch.float32, generator=torch.Generator().manual_seed(1)).requires_grad_()
    m = torch.rand(2, 4, 20, 20, generator=torch.Generator().manual_seed(2)).softmax(1)
    n = 0.2
    inputs = net._engine_inputs(x, z, m).reshape(2, 4, 4, 20, 20)
    zt = n + (1 - 2 * n) * z
    p_obs = torch.where(x[:, None] > 0.5, zt, 1 - zt)                      # p(observed bit | group k)
    torch.log((m[:, :, None] * p_obs).sum(1)).sum().backward()
    torch.testing.assert_close(inputs[:, :, 1:2], z.grad, rtol=1e-4, atol=1e-5)
    posterior = (p_obs[:, :, 0].log()).softmax(1)
    torch.testing.assert_close(inputs[:, :, 3], posterior.detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(inputs[:, :, 0], z.detach()[:, :, 0])
    torch.testing.assert_close(inputs[:, :, 2], m)


def test_binary_forward_gives_probabilities_and_the_loss_uses_the_binary_cost():
    net = _binary_net()
    x = generate_shapes(3, 0).images
    out = net(flip_bits(x, 0.2, torch.Generator().manual_seed(0)), 3, generator=torch.Generator().manual_seed(1))
    assert out["likelihood"] == "bernoulli" and out["z"].shape == (3, 3, 4, 1, 20, 20)
    assert (out["z"] > 0).all() and (out["z"] < 1).all()
    torch.testing.assert_close(out["masks"].sum(2), torch.ones(3, 3, 20, 20))
    loss, parts = tagger_loss(out, x)
    assert np.isclose(parts["tagger_cost"], float(bernoulli_tagger_cost(x, out["z"], out["masks"]).mean().detach()))
    assert not np.isclose(parts["tagger_cost"], float(tagger_cost(x, out["z"], out["masks"], out["v"]).mean().detach()))


def test_binary_tagger_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown likelihood"):
        Tagger((1, 20, 20), DENSE, likelihood="poisson")
    with pytest.raises(ValueError, match="flip_prob"):
        Tagger((1, 20, 20), DENSE, likelihood="bernoulli", flip_prob=0.5)
    with pytest.raises(ValueError, match="probability in"):
        Tagger((1, 20, 20), DENSE, likelihood="bernoulli", initial_z=1.0)


def test_experiment_trains_and_evaluates_at_smoke_scale():
    cfg = sx.config("tagger", "smoke")
    net, result = sx.train_model("tagger", cfg, seed=0, progress=False)
    assert result.steps == cfg["n_steps"]
    metrics = sx.evaluate("tagger", net, cfg)
    assert len(metrics["ami"]) == len(metrics["ami_corrupted"]) == len(metrics["cost"]) == cfg["n_iterations"]
    assert metrics["n_test"] == cfg["n_test"] and metrics["ami_convention"] == sx.AMI_CONVENTION
    assert metrics == sx.evaluate("tagger", net, cfg)                      # deterministic
    out = sx.predict(net, cfg)
    want = adjusted_mutual_information(out["true_masks"], out["masks"][:, -1], convention="all", valid=out["scored"])
    assert np.isclose(want, metrics["ami_corrupted"][-1], atol=1e-5)
    np.testing.assert_allclose(out["cost"], metrics["cost"], atol=1e-5)
    assert out["inputs"].shape == out["images"].shape and not np.array_equal(out["inputs"], out["images"])
    clean = sx.predict(net, cfg, n=8, corrupted=False)
    assert np.array_equal(clean["inputs"], clean["images"])


@pytest.mark.parametrize("model", sx.MODELS)
def test_paper_configs_take_a_training_step(model):
    cfg = dict(sx.config(model, "paper"), batch_size=2, n_steps=1, n_train=4, n_test=2)
    assert cfg["layers"][0] == ["dense", 2000, 1, 3] and cfg["lr"] == 4e-4 and cfg["n_groups"] == 4
    net, result = sx.train_model(model, cfg, seed=0, progress=False)
    assert result.steps == 1 and np.isfinite(result.history[-1]["loss"])


def test_experiment_reports_bad_input():
    with pytest.raises(ValueError, match="unknown model"):
        sx.config("convnet", "smoke")
    with pytest.raises(ValueError, match="unknown scale|scale"):
        sx.config("tagger", "huge")
    with pytest.raises(ValueError, match="shapes.config"):
        sx.build({"model": "tagger"})
    cfg = sx.config("rtagger", "smoke")
    with pytest.raises(ValueError, match="does not match"):
        sx.train_model("tagger", cfg)
    net = sx.build(cfg)
    with pytest.raises(ValueError, match="n must be an integer"):
        sx.predict(net, cfg, n=10_000)


def test_the_gaussian_control_uses_noise_and_the_gaussian_cost():
    cfg = dict(sx.config("tagger", "smoke"), likelihood="gaussian")
    x = sx.load_data(cfg)["test"].images[:4]
    noisy = sx.corrupt(x, cfg, torch.Generator().manual_seed(0))
    assert not set(np.unique(noisy.numpy())) <= {0.0, 1.0}                 # noise, not flips
    assert abs(float((noisy - x).std()) - cfg["noise_std"]) < 0.05
    net, _ = sx.train_model("tagger", cfg, seed=0, progress=False)
    assert net.likelihood == "gaussian" and net.noise_std == cfg["noise_std"]
    out = sx.predict(net, cfg, n=4)
    want = tagger_cost(torch.as_tensor(out["images"]), torch.as_tensor(out["z"]), torch.as_tensor(out["masks"]),
                       net.v.detach()).mean(0)
    np.testing.assert_allclose(out["cost"], want.numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="unknown likelihood"):
        sx.build(dict(cfg, likelihood="poisson"))


def test_ami_can_count_the_background_as_textured_mnist_does():
    data = generate_shapes(40, seed=3)
    true = data.masks.numpy()                                          # (n, 3, S, S), the shapes only
    background = (true.sum(1, keepdims=True) == 0).astype(np.float32)
    out = {"true_masks": true, "scored": data.scored.numpy()}
    # the background merged with the first shape: perfect on the shapes alone, not with the background counted
    merged = np.concatenate([background + true[:, :1], true[:, 1:], np.zeros_like(background)], 1)   # K = 4
    exact = np.concatenate([background, true], 1)
    out["masks"] = np.stack([merged, exact], 1)                        # (n, I=2, K=4, S, S)
    shapes_only = sx.ami_per_iteration(out)
    counted = sx.ami_per_iteration(out, count_background=True)
    assert shapes_only == [1.0, 1.0]
    assert counted[1] == 1.0 and counted[0] < 0.9
    # direct: sklearn on the labels of the pixels covered by at most one shape
    from sklearn.metrics import adjusted_mutual_info_score
    labels = exact.argmax(1)
    direct = np.mean([adjusted_mutual_info_score(labels[i][true[i].sum(0) <= 1], merged.argmax(1)[i][true[i].sum(0) <= 1])
                      for i in range(len(true))])
    assert np.isclose(counted[0], direct, atol=1e-6)
    with pytest.raises(TypeError, match="count_background must be True or False"):
        sx.ami_per_iteration(out, count_background="yes")
