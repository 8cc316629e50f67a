"""The temporal two-level hierarchy and the Kalman filter read as messages.

Introduced in *Message passing in time* (Part I, chapter 3), the model of the paper's Figure 1c:

* a slow top level ``z_t = Fz z_{t-1} + w_t``, a faster middle level
  ``y_t = Fy y_{t-1} + C z_t + v_t`` driven by it, observations ``x_t = B y_t + e_t`` at the bottom;
* :meth:`TemporalGaussianModel.state_space` stacks ``s_t = (y_t, z_t)`` into a standard linear
  state-space model ``s_t = F s_{t-1} + noise``, ``x_t = H s_t + noise``;
* :func:`kalman_filter` is written as the chapter derives it, as three kinds of messages per step:
  past-to-future (the dynamics, which carry the top-down prediction ``C z_t`` of ``y_t``), bottom-up
  from ``x_t`` to ``y_t`` (a precision-weighted lateral combination) and bottom-up from ``y_t`` to
  ``z_t``. It returns each message's contribution, vectorised over examples (covariances do not
  depend on the data, so they are shared);
* :func:`batch_posterior` conditions the joint Gaussian of a whole sequence directly (the independent
  check, and the smoother for teaching).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from scipy import linalg

from .static import (as_matrix, as_observations, check_count, check_covariance, check_positive,
                     condition_gaussian, make_rng, random_well_conditioned)

# sizes of chapter 3's experiments per scale (exact computations: cheap at every scale)
CHAPTER_SIZES = {
    "smoke": dict(n_sequences=50, T=40, n_frames=4, n_check=2, T_check=6),
    "book": dict(n_sequences=1_000, T=60, n_frames=16, n_check=5, T_check=12),
    "paper": dict(n_sequences=1_000, T=60, n_frames=16, n_check=5, T_check=12),
}


def _rotation(rng: np.random.Generator, d: int, angle: float) -> np.ndarray:
    """A random rotation of ``R^d`` whose largest turning angle per application is ``angle``."""
    if d == 1:
        return np.ones((1, 1))
    k = rng.standard_normal((d, d))
    k = k - k.T                                                       # skew-symmetric generator
    k = k / np.max(np.abs(np.linalg.eigvals(k)))
    return linalg.expm(angle * k)


@dataclass
class TemporalGaussianModel:
    """Two-level latent dynamics, observations at the bottom:
       z_t = Fz z_{t-1} + w_t,          w ~ N(0, Qz)
       y_t = Fy y_{t-1} + C z_t + v_t,  v ~ N(0, Qy)
       x_t = B y_t + e_t,               e ~ N(0, R)
       with z_0 ~ N(0, z0_cov) and y_0 = C z_0 + v_0, v_0 ~ N(0, y0_cov).

    Introduced in *Message passing in time* (Part I). Time runs ``t = 0, ..., T-1``; the initial
    distribution is the same hierarchy with ``y_{-1} = z_{-1} = 0`` and its own covariances.
    """

    Fz: np.ndarray      # (dz, dz) dynamics of the top level
    Fy: np.ndarray      # (dy, dy) dynamics of the middle level
    C: np.ndarray       # (dy, dz) top-down link z_t -> y_t
    B: np.ndarray       # (dx, dy) observation matrix y_t -> x_t
    Qz: np.ndarray      # (dz, dz) covariance of w_t
    Qy: np.ndarray      # (dy, dy) covariance of v_t
    R: np.ndarray       # (dx, dx) covariance of e_t
    z0_cov: np.ndarray  # (dz, dz) covariance of z_0
    y0_cov: np.ndarray  # (dy, dy) covariance of v_0

    def __post_init__(self):
        try:
            C, B = np.array(self.C, dtype=np.float64), np.array(self.B, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError("C and B must be numeric matrices") from err
        if C.ndim != 2 or B.ndim != 2:
            raise ValueError(f"C and B must be matrices (2-d arrays), got shapes {C.shape} and {B.shape}")
        dy, dz = C.shape
        dx = B.shape[0]
        shapes = dict(Fz=(dz, dz), Fy=(dy, dy), C=(dy, dz), B=(dx, dy), Qz=(dz, dz), Qy=(dy, dy),
                      R=(dx, dx), z0_cov=(dz, dz), y0_cov=(dy, dy))
        for f in fields(self):
            value = as_matrix(f.name, getattr(self, f.name), shapes[f.name])
            if f.name in ("Qz", "Qy", "R", "z0_cov", "y0_cov"):
                value = check_covariance(f.name, value)
            setattr(self, f.name, value)

    @property
    def dims(self) -> tuple[int, int, int]:
        """``(dx, dy, dz)``."""
        return self.B.shape[0], self.C.shape[0], self.C.shape[1]

    @classmethod
    def random(cls, dx: int = 6, dy: int = 4, dz: int = 2, x_noise: float = 0.3, y_noise: float = 0.3,
               z_decay: float = 0.97, z_angle: float = 2 * np.pi / 40, y_decay: float = 0.5,
               y_angle: float = 2 * np.pi / 6, seed: int = 0) -> "TemporalGaussianModel":
        """A random stable model with a slow top level (our choice of defaults).

        ``Fz = z_decay * rotation(z_angle)`` and ``Fy = y_decay * rotation(y_angle)`` (spectral radii
        ``z_decay``, ``y_decay`` < 1); ``Qz = (1 - z_decay**2) I`` so that ``z`` is stationary with
        covariance ``I = z0_cov``; ``Qy = y_noise**2 I``, ``y0_cov = Qy / (1 - y_decay**2)``,
        ``R = x_noise**2 I``; ``C`` and ``B`` are well-conditioned random matrices.
        """
        for name, d in (("dx", dx), ("dy", dy), ("dz", dz)):
            if check_count(name, d) < 1:
                raise ValueError(f"{name} must be at least 1, got {d}")
        x_noise, y_noise = check_positive("x_noise", x_noise), check_positive("y_noise", y_noise)
        for name, decay in (("z_decay", z_decay), ("y_decay", y_decay)):
            if not 0 <= decay < 1:
                raise ValueError(f"{name} must lie in [0, 1) for stable dynamics, got {decay}")
        rng = make_rng(seed)
        Fz = z_decay * _rotation(rng, dz, z_angle)
        Fy = y_decay * _rotation(rng, dy, y_angle)
        C = random_well_conditioned(rng, dy, dz)
        B = random_well_conditioned(rng, dx, dy)
        Qy = y_noise**2 * np.eye(dy)
        return cls(Fz=Fz, Fy=Fy, C=C, B=B, Qz=max(1 - z_decay**2, 1e-6) * np.eye(dz), Qy=Qy,
                   R=x_noise**2 * np.eye(dx), z0_cov=np.eye(dz), y0_cov=Qy / (1 - y_decay**2))

    def state_space(self) -> dict:
        """The stacked state ``s_t = (y_t, z_t)`` as ``s_t = F s_{t-1} + u_t``, ``x_t = H s_t + e_t``.

        Returns ``dict(F=(ds, ds), Q=(ds, ds), H=(dx, ds), R=(dx, dx), m0=(ds,), P0=(ds, ds))`` with
        ``ds = dy + dz``: ``F = [[Fy, C Fz], [0, Fz]]``, ``Q = [[C Qz C^T + Qy, C Qz], [Qz C^T, Qz]]``,
        ``H = [B, 0]``, and ``s_0 ~ N(m0 = 0, P0)`` (chapter 3, eq-stacked).
        """
        dx, dy, dz = self.dims
        C = self.C
        F = np.block([[self.Fy, C @ self.Fz], [np.zeros((dz, dy)), self.Fz]])
        Q = np.block([[C @ self.Qz @ C.T + self.Qy, C @ self.Qz], [self.Qz @ C.T, self.Qz]])
        P0 = np.block([[C @ self.z0_cov @ C.T + self.y0_cov, C @ self.z0_cov], [self.z0_cov @ C.T, self.z0_cov]])
        H = np.hstack([self.B, np.zeros((dx, dz))])
        return dict(F=F, Q=(Q + Q.T) / 2, H=H, R=self.R.copy(), m0=np.zeros(dy + dz), P0=(P0 + P0.T) / 2)

    def sample(self, n: int, T: int, seed=None) -> dict:
        """Draw ``n`` independent sequences of length ``T`` (ancestral sampling through time; chapter 3).

        Returns ``dict(x=(n, T, dx), y=(n, T, dy), z=(n, T, dz))``; the same ``seed`` gives the same draws.
        """
        n, T = check_count("n", n), check_count("T", T)
        rng = make_rng(seed)
        dx, dy, dz = self.dims
        chol = {name: np.linalg.cholesky(getattr(self, name)) for name in ("Qz", "Qy", "R", "z0_cov", "y0_cov")}
        x, y, z = np.zeros((n, T, dx)), np.zeros((n, T, dy)), np.zeros((n, T, dz))
        y_prev, z_prev = np.zeros((n, dy)), np.zeros((n, dz))
        for t in range(T):
            lz, ly = (chol["z0_cov"], chol["y0_cov"]) if t == 0 else (chol["Qz"], chol["Qy"])
            z_prev = z_prev @ self.Fz.T + rng.standard_normal((n, dz)) @ lz.T                        # (n, dz)
            y_prev = y_prev @ self.Fy.T + z_prev @ self.C.T + rng.standard_normal((n, dy)) @ ly.T    # (n, dy)
            z[:, t], y[:, t] = z_prev, y_prev
            x[:, t] = y_prev @ self.B.T + rng.standard_normal((n, dx)) @ chol["R"].T
        return dict(x=x, y=y, z=z)

    def joint(self, n_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of ``(s_0, ..., s_{N-1}, x_0, ..., x_{N-1})``, ``N = n_steps``, ``s_t = (y_t, z_t)``.

        Built from the marginal covariances ``P_t = F P_{t-1} F^T + Q`` and ``Cov(s_t, s_u) = F^(t-u) P_u``
        (``t >= u``); no filtering involved. Chapter 3 conditions it in :func:`batch_posterior`.
        """
        N = check_count("n_steps", n_steps)
        if N < 1:
            raise ValueError("n_steps must be at least 1")
        ss = self.state_space()
        F, H = ss["F"], ss["H"]
        ds, dx = F.shape[0], H.shape[0]
        marginal = [ss["P0"]]
        for _ in range(1, N):
            marginal.append(F @ marginal[-1] @ F.T + ss["Q"])
        cov_s = np.zeros((N * ds, N * ds))
        for u in range(N):
            block = marginal[u]
            for t in range(u, N):
                cov_s[t * ds:(t + 1) * ds, u * ds:(u + 1) * ds] = block          # Cov(s_t, s_u)
                cov_s[u * ds:(u + 1) * ds, t * ds:(t + 1) * ds] = block.T
                block = F @ block
        H_all = np.kron(np.eye(N), H)                                             # (N dx, N ds)
        cov_xs = H_all @ cov_s
        cov_xx = cov_xs @ H_all.T + np.kron(np.eye(N), ss["R"])
        cov = np.block([[cov_s, cov_xs.T], [cov_xs, cov_xx]])
        return np.zeros(N * (ds + dx)), (cov + cov.T) / 2


def kalman_filter(model: TemporalGaussianModel, x) -> dict:
    """The Kalman filter on ``s_t = (y_t, z_t)``, computed as messages (chapter 3, equations ``eq-kf-...``).

    At each step: **past-to-future** ``z_t^- = Fz z_{t-1}``, ``y_t^- = Fy y_{t-1} + C z_t^-`` (the last
    term is the **top-down** prediction of ``y_t`` by ``z_t``); **bottom-up x -> y**
    ``y_t = y_t^- + K (x_t - B y_t^-)`` with ``K = P_yy^- B^T S^-1``, ``S = B P_yy^- B^T + R``;
    **bottom-up y -> z** ``z_t = z_t^- + G (y_t - y_t^-)`` with ``G = P_zy^- (P_yy^-)^-1``.

    Parameters
    ----------
    model : TemporalGaussianModel
    x : array (n, T, dx) or (T, dx)

    Returns
    -------
    dict with ``filtered_mean`` (n, T, ds), ``filtered_cov`` (T, ds, ds), ``predicted_mean`` (n, T, ds)
    and ``predicted_cov`` (T, ds, ds) (of ``s_t`` given ``x_{<t}``), ``predicted_obs_mean`` (n, T, dx)
    and ``predicted_obs_cov`` (T, dx, dx) (``x_t`` given ``x_{<t}``; t = 0 uses the prior),
    ``next_obs_mean`` (n, T, dx) and ``next_obs_cov`` (T, dx, dx) (``x_{t+1}`` given ``x_{<=t}``), and
    ``messages``: a dict of each message's additive contribution, ``past_y`` (n, T, dy) = ``Fy y_{t-1}``,
    ``top_down`` (n, T, dy) = ``C z_t^-``, ``bottom_up_y`` (n, T, dy), ``past_z`` (n, T, dz) =
    ``Fz z_{t-1}``, ``bottom_up_z`` (n, T, dz); so ``y_t = past_y + top_down + bottom_up_y`` and
    ``z_t = past_z + bottom_up_z``. A single sequence ``(T, dx)`` drops the leading ``n``.
    """
    if not isinstance(model, TemporalGaussianModel):
        raise TypeError(f"model must be a TemporalGaussianModel, got {type(model).__name__}")
    dx, dy, dz = model.dims
    x, single = as_observations(x, dx, trailing_ndim=2)
    n, T = x.shape[:2]
    if T < 1:
        raise ValueError("x must contain at least one time step")
    ss = model.state_space()
    F, Q, H = ss["F"], ss["Q"], ss["H"]
    ds = dy + dz
    out = {k: np.zeros((n, T, ds)) for k in ("filtered_mean", "predicted_mean")}
    out.update({k: np.zeros((T, ds, ds)) for k in ("filtered_cov", "predicted_cov")})
    out.update({k: np.zeros((n, T, dx)) for k in ("predicted_obs_mean", "next_obs_mean")})
    out.update({k: np.zeros((T, dx, dx)) for k in ("predicted_obs_cov", "next_obs_cov")})
    msg = dict(past_y=np.zeros((n, T, dy)), top_down=np.zeros((n, T, dy)), bottom_up_y=np.zeros((n, T, dy)),
               past_z=np.zeros((n, T, dz)), bottom_up_z=np.zeros((n, T, dz)))
    y, z, P = np.zeros((n, dy)), np.zeros((n, dz)), None          # filtered estimates of step t-1
    for t in range(T):
        # past -> future (and the top-down prediction of y_t carried by the predicted z_t)
        past_z = z @ model.Fz.T                                    # (n, dz)
        past_y = y @ model.Fy.T                                    # (n, dy)
        top_down = past_z @ model.C.T                              # (n, dy)
        y_pred, z_pred = past_y + top_down, past_z
        P_pred = ss["P0"] if t == 0 else F @ P @ F.T + Q           # (ds, ds)
        Pyy, Pzy = P_pred[:dy, :dy], P_pred[dy:, :dy]
        # bottom-up x_t -> y_t: precision-weighted combination of the prediction with the evidence
        S = model.B @ Pyy @ model.B.T + model.R                    # (dx, dx) predicted observation cov
        obs_pred = y_pred @ model.B.T                              # (n, dx)
        K = linalg.solve(S, model.B @ Pyy, assume_a="pos").T       # (dy, dx) = Pyy B^T S^-1
        bottom_up_y = (x[:, t] - obs_pred) @ K.T                   # (n, dy)
        y = y_pred + bottom_up_y
        # bottom-up y_t -> z_t: regress the change of y onto z under the prediction
        G = linalg.solve(Pyy, Pzy.T, assume_a="pos").T             # (dz, dy) = Pzy Pyy^-1
        bottom_up_z = bottom_up_y @ G.T                            # (n, dz)
        z = z_pred + bottom_up_z
        Pyy_f = Pyy - K @ model.B @ Pyy
        Pyy_f = (Pyy_f + Pyy_f.T) / 2
        Pzy_f = G @ Pyy_f
        Pzz_f = P_pred[dy:, dy:] - G @ (Pyy - Pyy_f) @ G.T
        P = np.block([[Pyy_f, Pzy_f.T], [Pzy_f, (Pzz_f + Pzz_f.T) / 2]])
        # record
        out["predicted_mean"][:, t] = np.hstack([y_pred, z_pred])
        out["predicted_cov"][t] = P_pred
        out["filtered_mean"][:, t] = np.hstack([y, z])
        out["filtered_cov"][t] = P
        out["predicted_obs_mean"][:, t], out["predicted_obs_cov"][t] = obs_pred, S
        P_next = F @ P @ F.T + Q
        out["next_obs_mean"][:, t] = np.hstack([y, z]) @ F.T @ H.T
        out["next_obs_cov"][t] = H @ P_next @ H.T + model.R
        for name, value in (("past_y", past_y), ("top_down", top_down), ("bottom_up_y", bottom_up_y),
                            ("past_z", past_z), ("bottom_up_z", bottom_up_z)):
            msg[name][:, t] = value
    out["messages"] = msg
    if single:
        for key in ("filtered_mean", "predicted_mean", "predicted_obs_mean", "next_obs_mean"):
            out[key] = out[key][0]
        out["messages"] = {k: v[0] for k, v in msg.items()}
    return out


def batch_posterior(model: TemporalGaussianModel, x, n_observed: int | None = None,
                    n_steps: int | None = None) -> dict:
    """Condition the joint Gaussian of a whole sequence directly on its first observations.

    Introduced in *Message passing in time* (Part I) as the independent check of :func:`kalman_filter`:
    the posterior of every ``s_t`` and ``x_t``, ``t < n_steps``, given ``x_0, ..., x_{k-1}`` with
    ``k = n_observed``. ``n_observed = T`` (the default) gives the smoother; ``n_observed = t + 1``
    gives the filter at step ``t``; ``n_steps > T`` also predicts beyond the data.

    Parameters
    ----------
    model : TemporalGaussianModel
    x : array (n, T, dx) or (T, dx)
    n_observed : int in [0, T], default T
    n_steps : int >= max(n_observed, 1), default T

    Returns
    -------
    dict with ``state_mean`` (n, n_steps, ds), ``state_cov`` (n_steps, ds, ds), ``obs_mean``
    (n, n_steps, dx) and ``obs_cov`` (n_steps, dx, dx) (observed steps: the data, covariance 0).
    """
    if not isinstance(model, TemporalGaussianModel):
        raise TypeError(f"model must be a TemporalGaussianModel, got {type(model).__name__}")
    dx, dy, dz = model.dims
    x, single = as_observations(x, dx, trailing_ndim=2)
    n, T = x.shape[:2]
    k = T if n_observed is None else check_count("n_observed", n_observed)
    N = T if n_steps is None else check_count("n_steps", n_steps)
    if k > T:
        raise ValueError(f"n_observed = {k} exceeds the {T} time steps of x")
    if N < max(k, 1):
        raise ValueError(f"n_steps must be at least max(n_observed, 1) = {max(k, 1)}, got {N}")
    ds = dy + dz
    mean, cov = model.joint(N)
    observed_idx = N * ds + np.arange(k * dx)                             # x_0 .. x_{k-1}
    cond_mean, cond_cov = condition_gaussian(mean, cov, observed_idx, x[:, :k].reshape(n, k * dx))
    state_mean = cond_mean[:, :N * ds].reshape(n, N, ds)
    state_cov = np.stack([cond_cov[t * ds:(t + 1) * ds, t * ds:(t + 1) * ds] for t in range(N)])
    obs_mean = np.concatenate([x[:, :k], cond_mean[:, N * ds:].reshape(n, N - k, dx)], axis=1)
    free_obs = cond_cov[N * ds:, N * ds:]
    obs_cov = np.zeros((N, dx, dx))
    for t in range(k, N):
        i = (t - k) * dx
        obs_cov[t] = free_obs[i:i + dx, i:i + dx]
    out = dict(state_mean=state_mean, state_cov=state_cov, obs_mean=obs_mean, obs_cov=obs_cov)
    if single:
        out["state_mean"], out["obs_mean"] = state_mean[0], obs_mean[0]
    return out
