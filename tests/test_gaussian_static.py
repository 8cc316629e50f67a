"""Static hierarchical Gaussian model: closed-form posterior, message passing, convergence analysis.

Every check compares with an independent computation: direct conditioning of the joint Gaussian
(``condition_gaussian`` on ``joint()``, itself checked against a brute-force linear solve), the
canonical correlations of the conditioned covariance, and Monte Carlo moments of ``sample``.
"""
import numpy as np
import pytest

from rladder_nb.gaussian import (StaticGaussianModel, condition_gaussian, convergence_rate, iteration_matrix,
                                 iterations_needed, message_passing, relative_errors, two_sweep_inference)

# (dx, dy, dz, x_noise, y_noise, seed): includes dx < dy (B has no left inverse) and strong coupling
MODELS = [(8, 4, 2, 0.5, 0.5, 0), (5, 3, 3, 0.3, 0.8, 1), (3, 5, 2, 0.7, 0.3, 2), (10, 6, 1, 1.0, 0.4, 3)]


def direct_posterior(model, x):
    """Posterior of (y, z) given x by conditioning the joint of (z, y, x) directly; returned in (y, z) order."""
    dx, dy, dz = model.dims
    mean, cov = model.joint()
    cond_mean, cond_cov = condition_gaussian(mean, cov, np.arange(dz + dy, dz + dy + dx), x)
    order = np.r_[dz:dz + dy, 0:dz]                      # (z, y) -> (y, z)
    return cond_mean[:, order], cond_cov[np.ix_(order, order)]


def test_condition_gaussian_matches_brute_force_solve():
    rng = np.random.default_rng(0)
    L = rng.standard_normal((5, 5))
    cov = L @ L.T + 0.5 * np.eye(5)
    mean = rng.standard_normal(5)
    values = rng.standard_normal((3, 2))
    cm, cc = condition_gaussian(mean, cov, [4, 1], values)
    # brute force: the conditional of a Gaussian from its precision matrix
    prec = np.linalg.inv(cov)
    free, obs = [0, 2, 3], [4, 1]
    expected_cov = np.linalg.inv(prec[np.ix_(free, free)])
    expected_mean = mean[free] - (values - mean[obs]) @ (expected_cov @ prec[np.ix_(free, obs)]).T
    np.testing.assert_allclose(cc, expected_cov, atol=1e-12)
    np.testing.assert_allclose(cm, expected_mean, atol=1e-12)


@pytest.mark.parametrize("dims", MODELS)
def test_posterior_equals_direct_conditioning(dims):
    dx, dy, dz, xn, yn, seed = dims
    model = StaticGaussianModel.random(dx, dy, dz, x_noise=xn, y_noise=yn, seed=seed)
    x = model.sample(7, seed=seed + 10)["x"]
    post = model.posterior(x)
    mean, cov = direct_posterior(model, x)
    np.testing.assert_allclose(post["y_mean"], mean[:, :dy], atol=1e-10)
    np.testing.assert_allclose(post["z_mean"], mean[:, dy:], atol=1e-10)
    np.testing.assert_allclose(post["cov"], cov, atol=1e-10)
    single = model.posterior(x[0])
    assert single["y_mean"].shape == (dy,) and single["z_mean"].shape == (dz,)
    np.testing.assert_allclose(single["y_mean"], post["y_mean"][0], atol=1e-12)


def test_joint_matches_monte_carlo_moments():
    model = StaticGaussianModel.random(6, 3, 2, seed=4)
    s = model.sample(200_000, seed=5)
    stacked = np.hstack([s["z"], s["y"], s["x"]])
    mean, cov = model.joint()
    np.testing.assert_allclose(stacked.mean(0), mean, atol=0.02)
    np.testing.assert_allclose(np.cov(stacked.T), cov, atol=0.03)


def test_sample_is_deterministic_by_seed():
    model = StaticGaussianModel.random(seed=0)
    a, b, c = model.sample(5, seed=3), model.sample(5, seed=3), model.sample(5, seed=4)
    for key, shape in (("x", (5, 8)), ("y", (5, 4)), ("z", (5, 2))):
        assert a[key].shape == shape and a[key].dtype == np.float64
        np.testing.assert_array_equal(a[key], b[key])
        assert not np.allclose(a[key], c[key])
    assert model.sample(0, seed=0)["x"].shape == (0, 8)
    gen = np.random.default_rng(1)
    assert model.sample(2, seed=gen)["x"].shape == (2, 8)


def test_random_models_share_weights_across_noise_levels():
    a = StaticGaussianModel.random(seed=7, x_noise=0.1)
    b = StaticGaussianModel.random(seed=7, x_noise=1.0, y_noise=2.0)
    np.testing.assert_array_equal(a.A, b.A)
    np.testing.assert_array_equal(a.B, b.B)
    s = np.linalg.svd(a.A, compute_uv=False)
    assert s.min() >= 0.8 - 1e-12 and s.max() <= 1.25 + 1e-12


@pytest.mark.parametrize("schedule", ["ladder", "parallel"])
@pytest.mark.parametrize("dims", MODELS)
def test_message_passing_converges_to_exact_posterior(dims, schedule):
    dx, dy, dz, xn, yn, seed = dims
    model = StaticGaussianModel.random(dx, dy, dz, x_noise=xn, y_noise=yn, seed=seed)
    x = model.sample(20, seed=seed + 1)["x"]
    mean, _ = direct_posterior(model, x)
    n_iter = iterations_needed(model, 1e-9, schedule) + 20
    assert n_iter < 2000, "test model converges too slowly to be a quick test"
    history = message_passing(model, x, n_iter, schedule=schedule)
    assert len(history) == n_iter + 1
    final = np.hstack([history[-1]["y_mean"], history[-1]["z_mean"]])
    rel = np.linalg.norm(final - mean) / np.linalg.norm(mean)
    assert rel <= 1e-6
    errors = relative_errors(history, dict(y_mean=mean[:, :dy], z_mean=mean[:, dy:]))
    assert errors[-1] < 1e-3 * errors[0]


@pytest.mark.parametrize("dims", MODELS)
def test_ladder_schedule_error_never_increases_in_the_posterior_norm(dims):
    # each ladder half-step minimises the negative log posterior exactly over one layer, so the error
    # in the norm of the posterior precision, e^T Lambda e, cannot increase
    dx, dy, dz, xn, yn, seed = dims
    model = StaticGaussianModel.random(dx, dy, dz, x_noise=xn, y_noise=yn, seed=seed)
    x = model.sample(10, seed=seed)["x"]
    mean, cov = direct_posterior(model, x)
    precision = np.linalg.inv(cov)
    history = message_passing(model, x, 30)
    energy = []
    for h in history:
        e = np.hstack([h["y_mean"], h["z_mean"]]) - mean
        energy.append(np.einsum("ni,ij,nj->", e, precision, e))
    energy = np.asarray(energy)
    assert np.all(np.diff(energy) <= 1e-12 * energy[0])
    assert energy[-1] < energy[0]


@pytest.mark.parametrize("dims", MODELS)
def test_convergence_rate_is_squared_canonical_correlation(dims):
    dx, dy, dz, xn, yn, seed = dims
    model = StaticGaussianModel.random(dx, dy, dz, x_noise=xn, y_noise=yn, seed=seed)
    _, cov = direct_posterior(model, np.zeros((1, dx)))
    syy, szz, szy = cov[:dy, :dy], cov[dy:, dy:], cov[dy:, :dy]
    # squared canonical correlations of (y, z) under the posterior, from the covariance alone
    sq_canon = np.linalg.eigvals(np.linalg.solve(szz, szy) @ np.linalg.solve(syy, szy.T)).real
    rho2 = sq_canon.max()
    assert convergence_rate(model, "ladder") == pytest.approx(rho2, rel=1e-9)
    assert convergence_rate(model, "parallel") == pytest.approx(np.sqrt(rho2), rel=1e-9)
    # and the observed per-iteration error ratio approaches it
    x = model.sample(5, seed=seed)["x"]
    mean, _ = direct_posterior(model, x)
    errors = relative_errors(message_passing(model, x, 12), dict(y_mean=mean[:, :dy], z_mean=mean[:, dy:]))
    assert errors[12] / errors[11] == pytest.approx(rho2, rel=0.05)


def test_error_follows_the_iteration_matrix():
    model = StaticGaussianModel.random(seed=1)
    dx, dy, dz = model.dims
    x = model.sample(4, seed=2)["x"]
    mean, _ = direct_posterior(model, x)
    for schedule in ("ladder", "parallel"):
        M = iteration_matrix(model, schedule)
        history = message_passing(model, x, 5, schedule=schedule)
        errs = [np.hstack([h["y_mean"], h["z_mean"]]) - mean for h in history]
        for prev, nxt in zip(errs[:-1], errs[1:]):
            np.testing.assert_allclose(nxt, prev @ M.T, atol=1e-10)


def test_noise_controls_the_number_of_iterations():
    # weak evidence from x and a tight y-z link make y and z strongly coupled a posteriori: slow
    slow = StaticGaussianModel.random(seed=0, x_noise=2.0, y_noise=0.1)
    fast = StaticGaussianModel.random(seed=0, x_noise=0.1, y_noise=2.0)
    assert iterations_needed(slow) > 10 * iterations_needed(fast)


@pytest.mark.parametrize("dims", MODELS)
def test_two_sweep_inference_is_exact(dims):
    dx, dy, dz, xn, yn, seed = dims
    model = StaticGaussianModel.random(dx, dy, dz, x_noise=xn, y_noise=yn, seed=seed)
    x = model.sample(6, seed=seed)["x"]
    mean, cov = direct_posterior(model, x)
    out = two_sweep_inference(model, x)
    np.testing.assert_allclose(out["y_mean"], mean[:, :dy], atol=1e-10)
    np.testing.assert_allclose(out["z_mean"], mean[:, dy:], atol=1e-10)
    # the upward message's precision is what x alone says about z: Cov(z | x)^-1 = Sz^-1 + J_up
    np.testing.assert_allclose(np.linalg.inv(cov[dy:, dy:]) - np.linalg.inv(model.prior_cov),
                               out["z_upward_precision"], atol=1e-9)


def test_single_example_message_passing_shapes():
    model = StaticGaussianModel.random(seed=0)
    x = model.sample(1, seed=0)["x"][0]
    history = message_passing(model, x, 3)
    assert len(history) == 4 and history[0]["y_mean"].shape == (4,) and history[0]["z_mean"].shape == (2,)
    np.testing.assert_array_equal(history[0]["z_mean"], 0.0)


# ------------------------------------------------------------------------------------------ bad input


def _model_kwargs():
    return dict(A=np.ones((3, 2)), B=np.ones((4, 3)), prior_cov=np.eye(2), y_noise_cov=np.eye(3),
                x_noise_cov=np.eye(4))


@pytest.mark.parametrize("field,value,match", [
    ("B", np.ones((4, 2)), "B must have shape"),
    ("A", np.ones(3), "matrices"),
    ("prior_cov", np.eye(3), "prior_cov must have shape"),
    ("y_noise_cov", -np.eye(3), "positive-definite"),
    ("x_noise_cov", np.diag([1.0, 1.0, 0.0, 1.0]), "positive-definite"),
    ("y_noise_cov", np.array([[1.0, 0.5, 0], [0, 1, 0], [0, 0, 1]]), "symmetric"),
    ("A", np.full((3, 2), np.nan), "NaN"),
])
def test_model_rejects_bad_parameters(field, value, match):
    kwargs = _model_kwargs()
    kwargs[field] = value
    with pytest.raises(ValueError, match=match):
        StaticGaussianModel(**kwargs)


def test_bad_arguments_raise_clear_errors():
    model = StaticGaussianModel.random(seed=0)
    with pytest.raises(ValueError, match="positive"):
        StaticGaussianModel.random(x_noise=0.0)
    with pytest.raises(ValueError, match="positive"):
        StaticGaussianModel.random(y_noise=-1.0)
    with pytest.raises(ValueError, match="at least 1"):
        StaticGaussianModel.random(dz=0)
    with pytest.raises(ValueError, match="non-negative"):
        model.sample(-1)
    with pytest.raises(TypeError, match="integer"):
        model.sample(2.5)
    with pytest.raises(ValueError, match="seed"):
        model.sample(2, seed=-3)
    with pytest.raises(ValueError, match="dx = 8"):
        model.posterior(np.zeros((3, 7)))
    with pytest.raises(ValueError, match="shape"):
        model.posterior(np.zeros((2, 3, 8)))
    with pytest.raises(ValueError, match="NaN"):
        model.posterior(np.full(8, np.nan))
    with pytest.raises(ValueError, match="schedule"):
        message_passing(model, np.zeros(8), 3, schedule="random")
    with pytest.raises(ValueError, match="non-negative"):
        message_passing(model, np.zeros(8), -1)
    with pytest.raises(TypeError, match="StaticGaussianModel"):
        message_passing("not a model", np.zeros(8), 1)
    with pytest.raises(ValueError, match="tol"):
        iterations_needed(model, tol=2.0)
    with pytest.raises(ValueError, match="observed_idx"):
        condition_gaussian(np.zeros(3), np.eye(3), [3], [1.0])
    with pytest.raises(ValueError, match="repeat"):
        condition_gaussian(np.zeros(3), np.eye(3), [1, 1], [1.0, 2.0])
    with pytest.raises(ValueError, match="values"):
        condition_gaussian(np.zeros(3), np.eye(3), [0, 1], np.zeros((2, 3)))


def test_chapter_figures_draw_and_check_their_arguments():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rladder_nb.plots import gaussian as gplots

    model = StaticGaussianModel.random(seed=0)
    s = model.sample(3, seed=0)
    post = model.posterior(s["x"])
    history = message_passing(model, s["x"], 4)
    errors = {"ladder": relative_errors(history, post)}
    figs = [gplots.plot_convergence(errors, {"ladder": convergence_rate(model)}, tol=1e-6),
            gplots.plot_rladder_mapping(),
            gplots.plot_iterations_needed([0.1, 1.0], {"a": [10, 2]}, xlabel="noise")]
    fig, ax = plt.subplots()
    gplots.draw_static_estimates(ax, s, post, history, iteration=4, index=2)
    assert len(ax.lines) >= 2
    with pytest.raises(ValueError, match="iteration"):
        gplots.draw_static_estimates(ax, s, post, history, iteration=5)
    with pytest.raises(ValueError, match="index"):
        gplots.draw_static_estimates(ax, s, post, history, iteration=0, index=3)
    for f in figs + [fig]:
        plt.close(f)
