"""The static three-level linear-Gaussian hierarchy and its exact posterior.

Introduced in *Message passing in a static hierarchical Gaussian model* (Part I, chapter 2), the model
of the paper's Figure 1b without the corruption of the input:

* ``z ~ N(0, prior_cov)`` at the top, ``y | z ~ N(A z, y_noise_cov)`` in the middle and
  ``x | y ~ N(B y, x_noise_cov)`` observed at the bottom;
* :meth:`StaticGaussianModel.posterior` gives the exact posterior of ``(y, z)`` given ``x`` in closed
  form, from the posterior precision matrix (vectorised over examples: the covariance does not depend
  on ``x``);
* :func:`condition_gaussian` conditions any joint Gaussian directly; the tests use it on
  :meth:`StaticGaussianModel.joint` as an independent check of the closed form;
* the iterative message passing of the chapter lives in :mod:`rladder_nb.gaussian.messages`
  and is re-exported here as :func:`message_passing`.

All arrays are numpy float64. The validation helpers at the top are shared with ``temporal.py``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg

# ---------------------------------------------------------------------------------------------------
# validation and small linear-algebra helpers (shared with temporal.py and message_passing.py)
# ---------------------------------------------------------------------------------------------------


def as_matrix(name: str, value, shape: tuple[int, int]) -> np.ndarray:
    """``value`` as a finite float64 matrix of the given shape, or a ValueError naming ``name``."""
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric array of shape {shape}, got {type(value).__name__}") from err
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return arr


def check_covariance(name: str, cov: np.ndarray) -> np.ndarray:
    """Return ``cov`` if it is symmetric positive-definite, else raise a ValueError that says why."""
    scale = max(1.0, float(np.max(np.abs(cov))))
    if not np.allclose(cov, cov.T, atol=1e-10 * scale, rtol=0):
        raise ValueError(f"{name} must be symmetric; use (M + M.T) / 2 if it is only off by rounding")
    try:
        np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        smallest = float(np.linalg.eigvalsh((cov + cov.T) / 2).min())
        raise ValueError(
            f"{name} must be positive-definite (all variances > 0), but its smallest eigenvalue is "
            f"{smallest:.3g}; e.g. pass std**2 * np.eye(d) with std > 0"
        ) from None
    return (cov + cov.T) / 2


def spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix through its Cholesky factor (kept symmetric)."""
    inv = linalg.cho_solve(linalg.cho_factor(matrix), np.eye(len(matrix)))
    return (inv + inv.T) / 2


def check_count(name: str, n) -> int:
    """``n`` as a non-negative Python int, or a clear error."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{name} must be a non-negative integer, got {n!r}")
    if n < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {n}")
    return int(n)


def check_positive(name: str, value) -> float:
    """``value`` as a float > 0 (a standard deviation, say), or a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value}")
    return float(value)


def make_rng(seed) -> np.random.Generator:
    """A numpy Generator from ``None``, a non-negative int, or a Generator (used as is)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be None, a non-negative integer or a numpy Generator, got {seed!r}")
    return np.random.default_rng(int(seed))


def as_observations(x, dim: int, trailing_ndim: int = 1, name: str = "x") -> tuple[np.ndarray, bool]:
    """Observations as a float64 batch, plus whether a single example was given.

    ``trailing_ndim`` is 1 for static data (``(n, dim)`` or ``(dim,)``) and 2 for sequences
    (``(n, T, dim)`` or ``(T, dim)``).
    """
    arr = np.asarray(x, dtype=np.float64)
    expected = "(n, dx)" if trailing_ndim == 1 else "(n, T, dx)"
    if arr.ndim == trailing_ndim:
        arr, single = arr[None], True
    elif arr.ndim == trailing_ndim + 1:
        single = False
    else:
        raise ValueError(f"{name} must have shape {expected} with dx = {dim} (or one example), got {arr.shape}")
    if arr.shape[-1] != dim:
        raise ValueError(f"{name} must have shape {expected} with dx = {dim}, got last dimension {arr.shape[-1]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite entries")
    return arr, single


def random_well_conditioned(rng: np.random.Generator, rows: int, cols: int,
                            singular_values=(0.8, 1.25)) -> np.ndarray:
    """A random ``(rows, cols)`` matrix with singular values drawn uniformly in ``singular_values``."""
    k = min(rows, cols)
    u, _ = np.linalg.qr(rng.standard_normal((rows, k)))          # (rows, k), orthonormal columns
    v, _ = np.linalg.qr(rng.standard_normal((cols, k)))          # (cols, k)
    s = rng.uniform(*singular_values, size=k)
    return (u * s) @ v.T


# ---------------------------------------------------------------------------------------------------
# the model
# ---------------------------------------------------------------------------------------------------


@dataclass
class StaticGaussianModel:
    """Three-level linear-Gaussian hierarchy: z ~ N(0, prior_cov); y|z ~ N(A z, y_noise_cov); x|y ~ N(B y, x_noise_cov).

    Introduced in *Message passing in a static hierarchical Gaussian model* (Part I).

    Parameters
    ----------
    A : array (dy, dz)
        How the top latent ``z`` generates the middle latent ``y``.
    B : array (dx, dy)
        How ``y`` generates the observation ``x``.
    prior_cov : array (dz, dz)
        Prior covariance of ``z`` (its mean is zero).
    y_noise_cov, x_noise_cov : arrays (dy, dy), (dx, dx)
        Covariances of the Gaussian noise added at the middle and the bottom level.
    """

    A: np.ndarray            # (dy, dz)
    B: np.ndarray            # (dx, dy)
    prior_cov: np.ndarray    # (dz, dz)
    y_noise_cov: np.ndarray  # (dy, dy)
    x_noise_cov: np.ndarray  # (dx, dx)

    def __post_init__(self):
        try:
            A, B = np.array(self.A, dtype=np.float64), np.array(self.B, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError("A and B must be numeric matrices") from err
        if A.ndim != 2 or B.ndim != 2:
            raise ValueError(f"A and B must be matrices (2-d arrays), got shapes {A.shape} and {B.shape}")
        dy, dz = A.shape
        dx = B.shape[0]
        if B.shape[1] != dy:
            raise ValueError(f"B must have shape (dx, dy) with dy = A.shape[0] = {dy}, got {B.shape}")
        self.A = as_matrix("A", A, (dy, dz))
        self.B = as_matrix("B", B, (dx, dy))
        self.prior_cov = check_covariance("prior_cov", as_matrix("prior_cov", self.prior_cov, (dz, dz)))
        self.y_noise_cov = check_covariance("y_noise_cov", as_matrix("y_noise_cov", self.y_noise_cov, (dy, dy)))
        self.x_noise_cov = check_covariance("x_noise_cov", as_matrix("x_noise_cov", self.x_noise_cov, (dx, dx)))

    @property
    def dims(self) -> tuple[int, int, int]:
        """``(dx, dy, dz)``."""
        return self.B.shape[0], self.A.shape[0], self.A.shape[1]

    @classmethod
    def random(cls, dx: int = 8, dy: int = 4, dz: int = 2, x_noise: float = 0.5, y_noise: float = 0.5,
               seed: int = 0) -> "StaticGaussianModel":
        """A random model with well-conditioned ``A``, ``B`` (singular values in [0.8, 1.25]),
        ``prior_cov = I`` and isotropic noises of standard deviations ``x_noise``, ``y_noise``.

        The random draws do not depend on the noise levels, so models with the same ``seed`` and
        different noises share ``A`` and ``B`` (the chapter's widget relies on this).
        """
        for name, d in (("dx", dx), ("dy", dy), ("dz", dz)):
            if check_count(name, d) < 1:
                raise ValueError(f"{name} must be at least 1, got {d}")
        x_noise, y_noise = check_positive("x_noise", x_noise), check_positive("y_noise", y_noise)
        rng = make_rng(seed)
        A = random_well_conditioned(rng, dy, dz)
        B = random_well_conditioned(rng, dx, dy)
        return cls(A=A, B=B, prior_cov=np.eye(dz), y_noise_cov=y_noise**2 * np.eye(dy),
                   x_noise_cov=x_noise**2 * np.eye(dx))

    def sample(self, n: int, seed=None) -> dict:
        """Draw ``n`` independent examples (ancestral sampling, top to bottom).

        Returns ``dict(x=(n, dx), y=(n, dy), z=(n, dz))``; the same ``seed`` gives the same draws.
        """
        n = check_count("n", n)
        rng = make_rng(seed)
        dx, dy, dz = self.dims
        z = rng.standard_normal((n, dz)) @ np.linalg.cholesky(self.prior_cov).T                # (n, dz)
        y = z @ self.A.T + rng.standard_normal((n, dy)) @ np.linalg.cholesky(self.y_noise_cov).T  # (n, dy)
        x = y @ self.B.T + rng.standard_normal((n, dx)) @ np.linalg.cholesky(self.x_noise_cov).T  # (n, dx)
        return dict(x=x, y=y, z=z)

    def joint(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(D,)`` and covariance ``(D, D)`` of the stacked vector ``(z, y, x)``, ``D = dz + dy + dx``."""
        A, B = self.A, self.B
        czz = self.prior_cov
        cyz = A @ czz                                   # Cov(y, z)
        cyy = A @ czz @ A.T + self.y_noise_cov          # Cov(y)
        cxz = B @ cyz                                   # Cov(x, z)
        cxy = B @ cyy                                   # Cov(x, y)
        cxx = B @ cyy @ B.T + self.x_noise_cov          # Cov(x)
        cov = np.block([[czz, cyz.T, cxz.T],
                        [cyz, cyy, cxy.T],
                        [cxz, cxy, cxx]])
        return np.zeros(len(cov)), (cov + cov.T) / 2

    def posterior_precision(self) -> np.ndarray:
        """The posterior precision of the stacked ``(y, z)`` given ``x`` (it does not depend on ``x``).

        ``[[Sy^-1 + B^T Sx^-1 B, -Sy^-1 A], [-A^T Sy^-1, Sz^-1 + A^T Sy^-1 A]]`` (chapter 2, eq-post-prec).
        """
        A, B = self.A, self.B
        sy_inv, sx_inv, sz_inv = (spd_inverse(c) for c in (self.y_noise_cov, self.x_noise_cov, self.prior_cov))
        return np.block([[sy_inv + B.T @ sx_inv @ B, -sy_inv @ A],
                         [-A.T @ sy_inv, sz_inv + A.T @ sy_inv @ A]])

    def posterior(self, x) -> dict:
        """Exact posterior of ``(y, z)`` given ``x``, in closed form.

        Parameters
        ----------
        x : array (n, dx) or (dx,)

        Returns
        -------
        dict with ``y_mean`` (n, dy), ``z_mean`` (n, dz) and ``cov`` (dy + dz, dy + dz), the posterior
        covariance of the stacked ``(y, z)`` (shared by all examples). A single example ``(dx,)``
        gives means of shapes ``(dy,)`` and ``(dz,)``.
        """
        dx, dy, dz = self.dims
        x, single = as_observations(x, dx)
        precision = self.posterior_precision()
        factor = linalg.cho_factor(precision)
        info = np.zeros((len(x), dy + dz))                              # (n, dy + dz) information vector
        info[:, :dy] = x @ spd_inverse(self.x_noise_cov) @ self.B       # B^T Sx^-1 x, row-wise
        mean = linalg.cho_solve(factor, info.T).T                       # (n, dy + dz)
        cov = linalg.cho_solve(factor, np.eye(dy + dz))
        out = dict(y_mean=mean[:, :dy], z_mean=mean[:, dy:], cov=(cov + cov.T) / 2)
        if single:
            out["y_mean"], out["z_mean"] = out["y_mean"][0], out["z_mean"][0]
        return out


# ---------------------------------------------------------------------------------------------------
# conditioning any joint Gaussian (the independent check)
# ---------------------------------------------------------------------------------------------------


def condition_gaussian(mean, cov, observed_idx, values) -> tuple[np.ndarray, np.ndarray]:
    """Condition ``N(mean, cov)`` on the coordinates ``observed_idx`` taking ``values``.

    The textbook formula ``m_u + C_uo C_oo^-1 (v - m_o)``, ``C_uu - C_uo C_oo^-1 C_ou``, introduced in
    *Message passing in a static hierarchical Gaussian model* (Part I) as a direct check of message passing.

    Parameters
    ----------
    mean : array (D,)
    cov : array (D, D), symmetric positive-definite
    observed_idx : sequence of distinct ints in [0, D)
    values : array (n, k) or (k,), with k = len(observed_idx)

    Returns
    -------
    cond_mean : array (n, D - k) or (D - k,), over the unobserved coordinates in increasing order
    cond_cov : array (D - k, D - k)
    """
    mean = np.asarray(mean, dtype=np.float64)
    if mean.ndim != 1:
        raise ValueError(f"mean must be a vector (D,), got shape {mean.shape}")
    D = len(mean)
    cov = check_covariance("cov", as_matrix("cov", cov, (D, D)))
    idx = np.asarray(observed_idx)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValueError(f"observed_idx must be a 1-d sequence of integer indices, got {observed_idx!r}")
    idx = idx.astype(int)
    if idx.size and (idx.min() < 0 or idx.max() >= D):
        raise ValueError(f"observed_idx must lie in [0, {D}), got {idx.tolist()}")
    if len(np.unique(idx)) != len(idx):
        raise ValueError("observed_idx must not repeat an index")
    free = np.setdiff1d(np.arange(D), idx)
    vals = np.asarray(values, dtype=np.float64)
    single = vals.ndim == 1
    vals = np.atleast_2d(vals)
    if vals.ndim != 2 or vals.shape[1] != len(idx):
        raise ValueError(f"values must have shape (n, {len(idx)}) or ({len(idx)},), got {np.shape(values)}")
    if len(idx) == 0:
        cond_mean = np.broadcast_to(mean, (len(vals), D)).copy()
        return (cond_mean[0] if single else cond_mean), cov.copy()
    factor = linalg.cho_factor(cov[np.ix_(idx, idx)])
    c_fo = cov[np.ix_(free, idx)]                                       # (D - k, k)
    gain = linalg.cho_solve(factor, c_fo.T).T                           # C_fo C_oo^-1
    cond_mean = mean[free] + (vals - mean[idx]) @ gain.T                # (n, D - k)
    cond_cov = cov[np.ix_(free, free)] - gain @ c_fo.T
    cond_cov = (cond_cov + cond_cov.T) / 2
    return (cond_mean[0] if single else cond_mean), cond_cov


from .messages import message_passing  # noqa: E402  (re-exported: the API names it here)
