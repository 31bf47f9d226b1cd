"""Charts, embedding Jacobians, pulled-back FS metric, Omega and Monte Carlo weights at points of X.

Chart of a point (sec. 3.1): scale so that the coordinate of largest modulus is exactly 1 (scale index i),
eliminate j = argmax_{k != i} |dp/dz_k| (smallest |Omega|^2); the other n-1 coordinates are local ones.
Points whose i or j is ambiguous within rounding (relative gap < CHART_TIE_RTOL) are dropped and counted.
"""

from __future__ import annotations

import numpy as np

from hpcflow.errors import ConfigError
from hpcflow.geometry.hermitian import det_hermitian

CHART_TIE_RTOL = 1e-12


def canonical_charts(surface, z, *, return_scaled=False):
    """Canonical (i, j) per point and a mask of unambiguous points, for homogeneous z (N, n+1).

    With return_scaled, also returns the scaled points z/z_i and dp/dz there (reused by point_data).
    """
    rows = np.arange(z.shape[0])
    az = np.abs(z)
    i = np.argmax(az, axis=1)
    top = az[rows, i]
    az[rows, i] = -1.0
    ok = az.max(axis=1) < top * (1.0 - CHART_TIE_RTOL)
    zs = z / z[rows, i][:, None]
    zs[rows, i] = 1.0  # exactly, not 1 +- ulp
    dp = surface.grad(zs)
    ag = np.abs(dp)
    ag[rows, i] = -1.0
    j = np.argmax(ag, axis=1)
    gtop = ag[rows, j]
    ag[rows, j] = -1.0
    ok &= ag.max(axis=1) < gtop * (1.0 - CHART_TIE_RTOL)
    chart = np.stack([i, j], axis=1)
    return (chart, ok, zs, dp) if return_scaled else (chart, ok)


def local_indices(n: int, i, j):
    """The n-1 local-coordinate indices (ascending, without i and j) per point, shape (N, n-1)."""
    allk = np.arange(n + 1)
    keep = (allk[None, :] != i[:, None]) & (allk[None, :] != j[:, None])
    return np.nonzero(keep)[1].reshape(len(i), n - 1)


def point_data(surface, z, *, chart=None) -> dict:
    """All PointSet fields for points z (N, n+1) on X, in the canonical or the given charts."""
    n = surface.n
    z = np.asarray(z, dtype=np.complex128)
    if chart is None:
        chart, ok, zs, dp = canonical_charts(surface, z, return_scaled=True)
        zs, dp, chart = zs[ok], dp[ok], chart[ok]
        n_dropped = int((~ok).sum())
    else:
        chart = np.asarray(chart, dtype=np.int64).reshape(len(z), 2)
        n_dropped = 0
        if np.any(chart[:, 0] == chart[:, 1]) or np.any((chart < 0) | (chart > n)):
            raise ConfigError(f"chart indices must satisfy 0 <= i, j <= {n} and i != j")
        zs = z / z[np.arange(len(z)), chart[:, 0]][:, None]
        zs[np.arange(len(z)), chart[:, 0]] = 1.0
        dp = surface.grad(zs)
    i, j = chart[:, 0], chart[:, 1]
    rows = np.arange(len(zs))
    loc = local_indices(n, i, j)
    # Embedding Jacobian J[a, k] = dz_k/dx_a: 1 at the local coordinate, c_a = -dp/dx_a / dp/dz_j at z_j.
    dpj = dp[rows, j]
    c = -dp[rows[:, None], loc] / dpj[:, None]
    jac = np.zeros((len(zs), n - 1, n + 1), dtype=np.complex128)
    a = np.arange(n - 1)
    jac[rows[:, None], a[None, :], loc] = 1.0
    jac[rows[:, None], a[None, :], j[:, None]] = c
    # g_FS = J G J^dag with J J^dag = 1 + c c^dag and J zbar = zbar_loc + c zbar_j (no small matmuls)
    nz2 = np.sum(zs.real**2 + zs.imag**2, axis=1)[:, None, None]
    w = np.conj(zs[rows[:, None], loc]) + c * np.conj(zs[rows, j])[:, None]
    g_fs = (c[:, :, None] * np.conj(c)[:, None, :] - w[:, :, None] * np.conj(w)[:, None, :] / nz2) / nz2
    g_fs[:, a, a] += 1.0 / nz2[:, :, 0]
    omega2 = 1.0 / np.abs(dpj) ** 2
    det = det_hermitian(g_fs)
    return dict(points=zs, weights=omega2 / det, omega2=omega2, g_fs=g_fs, chart=chart, jacobian=jac,
                n_dropped=n_dropped)


def ambient_fs(z):
    """Ambient FS metric G_{k lbar} = d_k dbar_l log|z|^2 = delta_kl/|z|^2 - zbar_k z_l/|z|^4 (N, n+1, n+1)."""
    nz2 = np.sum(np.abs(z) ** 2, axis=1)
    g = -np.conj(z)[:, :, None] * z[:, None, :] / nz2[:, None, None] ** 2
    idx = np.arange(z.shape[1])
    g[:, idx, idx] += 1.0 / nz2[:, None]
    return g


def pullback_fs(z, jac):
    """g_FS = J G J^dagger: (J J^dag)/|z|^2 - (J zbar)(J zbar)^dag/|z|^4, shape (N, n-1, n-1)."""
    nz2 = np.sum(np.abs(z) ** 2, axis=1)
    jz = (jac @ np.conj(z)[:, :, None])[:, :, 0]
    jj = jac @ np.conj(jac).transpose(0, 2, 1)
    return jj / nz2[:, None, None] - jz[:, :, None] * np.conj(jz)[:, None, :] / nz2[:, None, None] ** 2
