"""Temporal hierarchical Gaussian model: the Kalman filter (as messages) against batch conditioning.

The independent reference is ``batch_posterior``: the joint Gaussian of the whole sequence, built from
marginal covariances with no recursion, conditioned directly. ``sample`` is checked against that joint
by Monte Carlo.
"""
import numpy as np
import pytest

from rladder_nb.gaussian import TemporalGaussianModel, batch_posterior, condition_gaussian, kalman_filter

CONFIGS = [dict(seed=0), dict(dx=3, dy=4, dz=1, seed=1), dict(dx=5, dy=2, dz=3, x_noise=0.8, seed=2)]


@pytest.mark.parametrize("config", CONFIGS)
def test_kalman_filter_matches_batch_conditioning(config):
    model = TemporalGaussianModel.random(**config)
    dx, dy, dz = model.dims
    T = 7
    x = model.sample(4, T, seed=11)["x"]
    kf = kalman_filter(model, x)
    assert kf["filtered_mean"].shape == (4, T, dy + dz) and kf["filtered_cov"].shape == (T, dy + dz, dy + dz)
    for t in range(T):
        # filter at t: condition on x_0..x_t; one step ahead: the joint of t + 2 steps
        bp = batch_posterior(model, x, n_observed=t + 1, n_steps=t + 2)
        np.testing.assert_allclose(kf["filtered_mean"][:, t], bp["state_mean"][:, t], atol=1e-8)
        np.testing.assert_allclose(kf["filtered_cov"][t], bp["state_cov"][t], atol=1e-8)
        np.testing.assert_allclose(kf["next_obs_mean"][:, t], bp["obs_mean"][:, t + 1], atol=1e-8)
        np.testing.assert_allclose(kf["next_obs_cov"][t], bp["obs_cov"][t + 1], atol=1e-8)
        prior = batch_posterior(model, x, n_observed=t, n_steps=t + 1)
        np.testing.assert_allclose(kf["predicted_obs_mean"][:, t], prior["obs_mean"][:, t], atol=1e-8)
        np.testing.assert_allclose(kf["predicted_obs_cov"][t], prior["obs_cov"][t], atol=1e-8)
        np.testing.assert_allclose(kf["predicted_mean"][:, t], prior["state_mean"][:, t], atol=1e-8)
        np.testing.assert_allclose(kf["predicted_cov"][t], prior["state_cov"][t], atol=1e-8)


def test_messages_add_up_to_the_filtered_mean():
    model = TemporalGaussianModel.random(seed=3)
    dx, dy, dz = model.dims
    x = model.sample(3, 9, seed=0)["x"]
    kf = kalman_filter(model, x)
    m = kf["messages"]
    np.testing.assert_allclose(m["past_y"] + m["top_down"] + m["bottom_up_y"], kf["filtered_mean"][..., :dy],
                               atol=1e-12)
    np.testing.assert_allclose(m["past_z"] + m["bottom_up_z"], kf["filtered_mean"][..., dy:], atol=1e-12)
    # the top-down message is z's predicted value pushed through C
    np.testing.assert_allclose(m["top_down"], m["past_z"] @ model.C.T, atol=1e-12)


def test_last_smoothed_step_equals_last_filtered_step():
    model = TemporalGaussianModel.random(seed=4)
    x = model.sample(2, 6, seed=1)["x"]
    kf, smooth = kalman_filter(model, x), batch_posterior(model, x)
    np.testing.assert_allclose(smooth["state_mean"][:, -1], kf["filtered_mean"][:, -1], atol=1e-8)
    np.testing.assert_allclose(smooth["obs_mean"], x)
    # earlier steps: the smoother sees the future, so its variance is no larger than the filter's
    assert np.all(np.trace(smooth["state_cov"], axis1=1, axis2=2)
                  <= np.trace(kf["filtered_cov"], axis1=1, axis2=2) + 1e-10)


def test_sample_matches_joint_moments():
    model = TemporalGaussianModel.random(dx=3, dy=2, dz=1, seed=5)
    T = 4
    s = model.sample(60_000, T, seed=6)
    states = np.concatenate([s["y"], s["z"]], axis=2).reshape(len(s["x"]), -1)   # (n, T*ds)
    stacked = np.hstack([states, s["x"].reshape(len(s["x"]), -1)])
    mean, cov = model.joint(T)
    np.testing.assert_allclose(stacked.mean(0), mean, atol=0.03)
    np.testing.assert_allclose(np.cov(stacked.T), cov, atol=0.05 * np.abs(cov).max())


def test_joint_conditioning_agrees_with_condition_gaussian_on_a_prefix():
    # batch_posterior with n_observed=0 is the prior: zero mean and the joint's marginal covariances
    model = TemporalGaussianModel.random(seed=2)
    ds = sum(model.dims[1:])
    x = model.sample(1, 3, seed=0)["x"]
    prior = batch_posterior(model, x, n_observed=0)
    mean, cov = model.joint(3)
    np.testing.assert_allclose(prior["state_mean"], 0.0, atol=1e-14)
    np.testing.assert_allclose(prior["state_cov"][2], cov[2 * ds:3 * ds, 2 * ds:3 * ds], atol=1e-12)
    cm, _ = condition_gaussian(mean, cov, np.arange(3 * ds, 3 * ds + model.dims[0]), x[:, 0])
    np.testing.assert_allclose(batch_posterior(model, x, n_observed=1)["state_mean"].reshape(1, -1),
                               cm[:, :3 * ds], atol=1e-10)


def test_random_model_is_stable_with_a_slow_top_level():
    model = TemporalGaussianModel.random(seed=0)
    radius = lambda M: np.max(np.abs(np.linalg.eigvals(M)))  # noqa: E731
    assert radius(model.Fz) < 1 and radius(model.Fy) < 1
    assert radius(model.state_space()["F"]) < 1
    # slow top level: z's autocorrelation at lag 1 is higher than y's own dynamics allow
    assert radius(model.Fz) > radius(model.Fy)
    s = model.sample(2000, 40, seed=0)
    lag1 = lambda a: np.mean(a[:, 1:] * a[:, :-1]) / np.mean(a**2)  # noqa: E731
    assert lag1(s["z"]) > lag1(s["y"] - s["z"] @ model.C.T)


def test_sample_is_deterministic_and_single_sequences_work():
    model = TemporalGaussianModel.random(seed=0)
    a, b = model.sample(3, 5, seed=9), model.sample(3, 5, seed=9)
    for key, d in (("x", 6), ("y", 4), ("z", 2)):
        assert a[key].shape == (3, 5, d)
        np.testing.assert_array_equal(a[key], b[key])
    kf_batch, kf_one = kalman_filter(model, a["x"]), kalman_filter(model, a["x"][1])
    assert kf_one["filtered_mean"].shape == (5, 6) and kf_one["messages"]["top_down"].shape == (5, 4)
    np.testing.assert_allclose(kf_one["next_obs_mean"], kf_batch["next_obs_mean"][1], atol=1e-12)
    assert batch_posterior(model, a["x"][1])["state_mean"].shape == (5, 6)


# ------------------------------------------------------------------------------------------ bad input


def _kwargs():
    return dict(Fz=0.9 * np.eye(2), Fy=0.5 * np.eye(3), C=np.ones((3, 2)), B=np.ones((4, 3)), Qz=np.eye(2),
                Qy=np.eye(3), R=np.eye(4), z0_cov=np.eye(2), y0_cov=np.eye(3))


@pytest.mark.parametrize("field,value,match", [
    ("Fz", np.eye(3), "Fz must have shape"),
    ("B", np.ones((4, 2)), "B must have shape"),
    ("R", np.diag([1.0, 1.0, -1.0, 1.0]), "positive-definite"),
    ("Qy", np.zeros((3, 3)), "positive-definite"),
    ("z0_cov", np.array([[1.0, 0.3], [0.0, 1.0]]), "symmetric"),
    ("C", np.ones(3), "matrices"),
])
def test_model_rejects_bad_parameters(field, value, match):
    kwargs = _kwargs()
    kwargs[field] = value
    with pytest.raises(ValueError, match=match):
        TemporalGaussianModel(**kwargs)


def test_bad_arguments_raise_clear_errors():
    model = TemporalGaussianModel.random(seed=0)
    x = model.sample(2, 4, seed=0)["x"]
    with pytest.raises(ValueError, match="non-negative"):
        model.sample(-1, 4)
    with pytest.raises(ValueError, match="non-negative"):
        model.sample(2, -4)
    with pytest.raises(ValueError, match="z_decay"):
        TemporalGaussianModel.random(z_decay=1.0)
    with pytest.raises(ValueError, match="positive"):
        TemporalGaussianModel.random(x_noise=0.0)
    with pytest.raises(ValueError, match="dx = 6"):
        kalman_filter(model, np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="shape"):
        kalman_filter(model, np.zeros(6))
    with pytest.raises(ValueError, match="at least one time step"):
        kalman_filter(model, np.zeros((2, 0, 6)))
    with pytest.raises(TypeError, match="TemporalGaussianModel"):
        kalman_filter(object(), x)
    with pytest.raises(ValueError, match="exceeds"):
        batch_posterior(model, x, n_observed=5)
    with pytest.raises(ValueError, match="n_steps"):
        batch_posterior(model, x, n_observed=3, n_steps=2)
    with pytest.raises(ValueError, match="n_steps"):
        model.joint(0)


def test_chapter_figures_draw_and_check_their_arguments():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rladder_nb.plots import gaussian as gplots

    model = TemporalGaussianModel.random(seed=0)
    s = model.sample(2, 5, seed=0)
    kf = kalman_filter(model, s["x"])
    figs = [gplots.plot_temporal_sample(s), gplots.plot_next_step_prediction(s["x"], kf, dims=(0,)),
            gplots.temporal_message_figure(s, kf, 0), gplots.temporal_message_figure(s, kf, 4, ("top-down",))]
    with pytest.raises(ValueError, match="message kinds"):
        gplots.temporal_message_figure(s, kf, 1, show=("sideways",))
    with pytest.raises(ValueError, match="t must lie"):
        gplots.temporal_message_figure(s, kf, 5)
    for f in figs:
        plt.close(f)
    plt.close("all")
