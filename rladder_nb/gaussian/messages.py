"""Message passing for the static hierarchy ``z -> y -> x``: iterative, and exact in two sweeps.

Introduced in *Message passing in a static hierarchical Gaussian model* (Part I, chapter 2). This is
**our derivation** of the idea of the paper's Appendix B (the appendix itself is not available):

* **bottom-up messages** carry evidence from below: ``x`` tells ``y`` the information vector
  ``B^T Sx^-1 x`` with precision ``B^T Sx^-1 B``; the current estimate of ``y`` tells ``z``
  ``A^T Sy^-1 y_hat`` with precision ``A^T Sy^-1 A``;
* **top-down messages** carry predictions from above: ``z`` predicts ``y`` to be ``A z_hat`` with
  precision ``Sy^-1``; the prior predicts ``z`` to be 0 with precision ``Sz^-1``;
* the **lateral combination** at each layer is the precision-weighted average of the two, i.e. the
  exact conditional mean of the layer given its neighbours' current estimates;
* :func:`message_passing` iterates these updates (a block Gauss-Seidel solve of the posterior's
  linear system); its error shrinks by the factor :func:`convergence_rate` per iteration, the largest
  squared canonical correlation between ``y`` and ``z`` under the posterior;
* :func:`two_sweep_inference` is Gaussian belief propagation on the chain: the upward message
  carries a whole Gaussian (it integrates ``y`` out), so one up-sweep and one down-sweep are exact.
"""
from __future__ import annotations

import numpy as np

from .static import as_observations, check_count, spd_inverse

SCHEDULES = ("ladder", "parallel")

# sizes of chapter 2's experiments per scale (exact computations: cheap at every scale)
CHAPTER_SIZES = {
    "smoke": dict(n_examples=50, n_iterations=25, n_noise_levels=5, n_regression=2_000),
    "book": dict(n_examples=500, n_iterations=40, n_noise_levels=15, n_regression=20_000),
    "paper": dict(n_examples=500, n_iterations=40, n_noise_levels=15, n_regression=20_000),
}


def _check_model(model):
    # duck-typed so that this module does not import the model class (static.py re-exports us)
    if not all(hasattr(model, name) for name in ("A", "B", "prior_cov", "y_noise_cov", "x_noise_cov")):
        raise TypeError(f"model must be a StaticGaussianModel, got {type(model).__name__}")


def _check_schedule(schedule: str) -> str:
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    return schedule


def local_operators(model) -> dict:
    """The matrices every layer's update uses (they do not depend on the data). Chapter 2.

    Returns a dict with ``sy_inv``, ``sx_inv``, ``sz_inv`` (inverse covariances), ``Py``
    (``Sy^-1 + B^T Sx^-1 B``, the precision of ``y`` given ``x`` and ``z``), ``Pz``
    (``Sz^-1 + A^T Sy^-1 A``, the precision of ``z`` given ``y``), and the two gains of the iteration,
    ``Gy = Py^-1 Sy^-1 A`` (how a change of ``z_hat`` moves ``y_hat``) and
    ``Gz = Pz^-1 A^T Sy^-1`` (how a change of ``y_hat`` moves ``z_hat``).
    """
    _check_model(model)
    A, B = model.A, model.B
    sy_inv, sx_inv, sz_inv = (spd_inverse(c) for c in (model.y_noise_cov, model.x_noise_cov, model.prior_cov))
    Py = sy_inv + B.T @ sx_inv @ B                         # (dy, dy)
    Pz = sz_inv + A.T @ sy_inv @ A                         # (dz, dz)
    Gy = np.linalg.solve(Py, sy_inv @ A)                   # (dy, dz)
    Gz = np.linalg.solve(Pz, A.T @ sy_inv)                 # (dz, dy)
    return dict(sy_inv=sy_inv, sx_inv=sx_inv, sz_inv=sz_inv, Py=Py, Pz=Pz, Gy=Gy, Gz=Gz)


def combine(info_bottom_up, precision_bottom_up, mean_top_down, precision_top_down):
    """The lateral combination: the precision-weighted average of a bottom-up and a top-down message.

    Returns ``(P_bu + P_td)^-1 (h_bu + P_td m_td)`` for a batch, where the bottom-up message is in
    information form (``h_bu`` (n, d), ``P_bu`` (d, d)) and the top-down one is a prediction ``m_td``
    (n, d) with precision ``P_td`` (d, d). Chapter 2, eq-lateral.
    """
    precision = precision_bottom_up + precision_top_down
    return np.linalg.solve(precision, (info_bottom_up + mean_top_down @ precision_top_down.T).T).T


def message_passing(model, x, n_iterations: int, schedule: str = "ladder") -> list:
    """Iterative message passing towards the posterior mean of ``(y, z)`` given ``x``.

    Our derivation of the paper's Appendix B idea (chapter 2). Start from the prior mean ``z_0 = 0``
    and ``y_0`` = the combination of the evidence from ``x`` with the top-down prediction ``A z_0``;
    then, at each iteration ``t``,

    * ``schedule="ladder"`` (RLadder order: up, then down):
      ``z_t = Pz^-1 A^T Sy^-1 y_{t-1}`` (bottom-up message from ``y`` combined with the prior),
      ``y_t = Py^-1 (B^T Sx^-1 x + Sy^-1 A z_t)`` (evidence from ``x`` combined with the new top-down
      prediction ``A z_t``);
    * ``schedule="parallel"``: both layers update at once from the previous iteration's estimates
      (``A z_{t-1}`` in the ``y`` update). It needs about twice as many iterations.

    Parameters
    ----------
    model : StaticGaussianModel
    x : array (n, dx) or (dx,)
    n_iterations : int >= 0
    schedule : ``"ladder"`` or ``"parallel"``

    Returns
    -------
    list of ``n_iterations + 1`` dicts ``dict(y_mean=(n, dy), z_mean=(n, dz))``; index 0 is the initial
    estimate. A single example ``(dx,)`` gives vectors instead.
    """
    _check_model(model)
    n_iterations = check_count("n_iterations", n_iterations)
    _check_schedule(schedule)
    dx, dy, dz = model.dims
    x, single = as_observations(x, dx)
    ops = local_operators(model)
    A = model.A
    info_from_x = x @ ops["sx_inv"] @ model.B              # (n, dy)  bottom-up message x -> y, B^T Sx^-1 x
    precision_from_x = model.B.T @ ops["sx_inv"] @ model.B  # (dy, dy)
    precision_from_y = A.T @ ops["sy_inv"] @ A              # (dz, dz) bottom-up message y -> z (its precision)

    def update_y(z):        # lateral combination at y: evidence from x + top-down prediction A z
        return combine(info_from_x, precision_from_x, z @ A.T, ops["sy_inv"])

    def update_z(y):        # lateral combination at z: evidence from y_hat + the prior's prediction 0
        info_from_y = y @ ops["sy_inv"] @ A                 # (n, dz)  A^T Sy^-1 y_hat
        return combine(info_from_y, precision_from_y, np.zeros((len(y), dz)), ops["sz_inv"])

    z = np.zeros((len(x), dz))                              # (n, dz)  prior mean
    y = update_y(z)                                         # (n, dy)
    history = [dict(y_mean=y, z_mean=z)]
    for _ in range(n_iterations):
        if schedule == "ladder":
            z = update_z(y)
            y = update_y(z)
        else:
            y, z = update_y(z), update_z(y)
        history.append(dict(y_mean=y, z_mean=z))
    if single:
        history = [dict(y_mean=h["y_mean"][0], z_mean=h["z_mean"][0]) for h in history]
    return history


def iteration_matrix(model, schedule: str = "ladder") -> np.ndarray:
    """The matrix ``M`` with ``error_t = M error_{t-1}`` for the stacked error ``(y_hat - y*, z_hat - z*)``.

    ``ladder``: ``[[Gy Gz, 0], [Gz, 0]]``; ``parallel``: ``[[0, Gy], [Gz, 0]]`` (chapter 2, eq-error).
    """
    _check_schedule(schedule)
    ops = local_operators(model)
    Gy, Gz = ops["Gy"], ops["Gz"]
    dy, dz = Gy.shape
    if schedule == "ladder":
        return np.block([[Gy @ Gz, np.zeros((dy, dz))], [Gz, np.zeros((dz, dz))]])
    return np.block([[np.zeros((dy, dy)), Gy], [Gz, np.zeros((dz, dz))]])


def convergence_rate(model, schedule: str = "ladder") -> float:
    """Spectral radius of :func:`iteration_matrix`: the factor by which the error shrinks per iteration.

    For ``"ladder"`` it equals the largest squared canonical correlation between ``y`` and ``z`` under the
    posterior; for ``"parallel"`` its square root (chapter 2, eq-canonical).
    """
    return float(np.max(np.abs(np.linalg.eigvals(iteration_matrix(model, schedule)))))


def iterations_needed(model, tol: float = 1e-6, schedule: str = "ladder") -> int:
    """The asymptotic number of iterations that shrink the error by ``tol``: ``ceil(log tol / log rate)``.

    Chapter 2 (*How many iterations, and why*).
    """
    if not 0 < tol < 1:
        raise ValueError(f"tol must lie in (0, 1), got {tol}")
    rate = convergence_rate(model, schedule)
    if rate == 0:
        return 1
    if rate >= 1:
        raise ValueError(f"the iteration does not converge (rate {rate:.3g} >= 1)")
    return int(np.ceil(np.log(tol) / np.log(rate)))


def two_sweep_inference(model, x) -> dict:
    """Gaussian belief propagation on the chain ``x - y - z``: exact after one up- and one down-sweep.

    Chapter 2. Up: ``x`` sends ``y`` the information ``h = B^T Sx^-1 x`` with precision ``J = B^T Sx^-1 B``;
    ``y`` integrates itself out and sends ``z`` the information ``A^T Sy^-1 Py^-1 h`` with precision
    ``A^T (Sy^-1 - Sy^-1 Py^-1 Sy^-1) A``, smaller than ``A^T Sy^-1 A`` because ``y`` is uncertain.
    Down: ``y``'s lateral combination of ``h`` with the top-down prediction ``A z_hat``.

    Returns ``dict(y_mean=(n, dy), z_mean=(n, dz), z_upward_precision=(dz, dz))``.
    """
    _check_model(model)
    dx, dy, dz = model.dims
    x, single = as_observations(x, dx)
    ops = local_operators(model)
    A, sy_inv = model.A, ops["sy_inv"]
    info_from_x = x @ ops["sx_inv"] @ model.B                                  # (n, dy)
    precision_from_x = model.B.T @ ops["sx_inv"] @ model.B                     # (dy, dy)
    Py_inv = spd_inverse(ops["Py"])
    upward_info = info_from_x @ Py_inv @ sy_inv @ A                            # (n, dz)
    upward_precision = A.T @ (sy_inv - sy_inv @ Py_inv @ sy_inv) @ A           # (dz, dz)
    upward_precision = (upward_precision + upward_precision.T) / 2
    z = combine(upward_info, upward_precision, np.zeros((len(x), dz)), ops["sz_inv"])
    y = combine(info_from_x, precision_from_x, z @ A.T, sy_inv)
    if single:
        y, z = y[0], z[0]
    return dict(y_mean=y, z_mean=z, z_upward_precision=upward_precision)


def relative_errors(history: list, posterior: dict) -> np.ndarray:
    """``||estimate_t - exact|| / ||exact||`` over all examples and both layers, one per iteration (chapter 2).

    ``history`` is :func:`message_passing`'s list, ``posterior`` a dict with ``y_mean`` and ``z_mean``.
    """
    exact = np.concatenate([np.atleast_2d(posterior["y_mean"]), np.atleast_2d(posterior["z_mean"])], axis=-1)
    norm = np.linalg.norm(exact)
    if norm == 0:
        raise ValueError("the exact posterior mean is zero; relative errors are undefined")
    errors = []
    for h in history:
        est = np.concatenate([np.atleast_2d(h["y_mean"]), np.atleast_2d(h["z_mean"])], axis=-1)
        if est.shape != exact.shape:
            raise ValueError(f"estimate shape {est.shape} does not match the posterior's {exact.shape}")
        errors.append(np.linalg.norm(est - exact) / norm)
    return np.asarray(errors)
