"""Charts, embedding Jacobians, pulled-back FS metric, Omega and Monte Carlo weights at points of X.

Chart of a point (sec. 3.1): scale so that the coordinate of largest modulus is exactly 1 (scale index i),
eliminate j = argmax_{k != i} |dp/dz_k| (smallest |Omega|^2); the other n-1 coordinates are local ones.
Points whose i or j is ambiguous within rounding (relative gap < CHART_TIE_RTOL) are dropped and counted.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from hpcflow.backend import array_module
from hpcflow.errors import ConfigError
from hpcflow.geometry import admissible
from hpcflow.geometry.hermitian import det_hermitian

CHART_TIE_RTOL = 1e-12


def canonical_charts(surface, z, *, return_scaled=False):
    """Canonical (i, j) per point and a mask of unambiguous points, for homogeneous z (N, n+1).

    With return_scaled, also returns the scaled points z/z_i and dp/dz there (reused by point_data).
    """
    xp = array_module(z)
    rows = xp.arange(z.shape[0])
    az = xp.abs(z)
    i = xp.argmax(az, axis=1)
    top = az[rows, i]
    az[rows, i] = -1.0
    ok = az.max(axis=1) < top * (1.0 - CHART_TIE_RTOL)
    zs = scaled_to(z, i)
    dp = surface.grad(zs)
    ag = xp.abs(dp)
    ag[rows, i] = -1.0
    j = xp.argmax(ag, axis=1)
    gtop = ag[rows, j]
    ag[rows, j] = -1.0
    ok &= ag.max(axis=1) < gtop * (1.0 - CHART_TIE_RTOL)
    chart = xp.stack([i, j], axis=1)
    return (chart, ok, zs, dp) if return_scaled else (chart, ok)


def scaled_to(z, i):
    """z / z_i row by row, with z_i exactly 1 (not 1 +- ulp): the coordinates of scale index i (one per row)."""
    rows = array_module(z).arange(z.shape[0])
    zs = z / z[rows, i][:, None]
    zs[rows, i] = 1.0
    return zs


def chart_normalised(z, name: str = "z"):
    """The chart representatives of points z (N, n+1) at any scale: each row divided by its coordinate of largest
    modulus (the first such on a tie), which becomes exactly 1, the scale convention of the sampler's points (sec.
    3.1). Rows whose coordinate of largest modulus is already exactly 1 keep their bits; z itself is returned when
    every row does (a sampled or loaded set: no copy). A row of zeros (no point of P^n) or with a nan/inf coordinate
    is refused naming `name` (`distance.check_rows`), where the division gave NaN without a word. O(N (n+1))."""
    from hpcflow.geometry.distance import check_rows

    xp = array_module(z)
    i = xp.argmax(xp.abs(z), axis=1)  # a nan is the largest: such rows are refused below
    pivot = z[xp.arange(z.shape[0]), i]
    off = pivot != 1
    if not bool(xp.any(off)):
        return z
    check_rows(name, z, off, xp.abs(pivot[off]), xp)
    out = z.astype(np.result_type(z.dtype, np.float64))  # a copy; integers and float32 as float64
    out[off] = scaled_to(out[off], i[off])
    return out


def local_indices(n: int, i, j):
    """The n-1 local-coordinate indices (ascending, without i and j) per point, shape (N, n-1); needs i != j.

    Read from a table of the (n+1)^2 charts (a gather, instead of a mask and nonzero over all points)."""
    xp = array_module(i)
    if bool(xp.any(i == j)):
        raise ValueError("local_indices: a chart (i, j) has i == j; pass charts with i != j")
    return xp.asarray(_local_table(n))[i, j]


@lru_cache(maxsize=None)
def _local_table(n: int) -> np.ndarray:
    """(n+1, n+1, n-1) int64: entry [i, j] the ascending indices other than i and j (zeros where i == j)."""
    table = np.zeros((n + 1, n + 1, n - 1), dtype=np.int64)
    for i in range(n + 1):
        for j in range(n + 1):
            if i != j:
                table[i, j] = [k for k in range(n + 1) if k not in (i, j)]
    return table


def given_charts(chart, n_points: int, n: int, xp=np):
    """Charts given per point as an int64 array (n_points, 2) of pairs (i, j), 0 <= i, j <= n, i != j; else one
    ConfigError naming `chart` and the fix. A single pair is refused, not broadcast (`only=(I, J)` keeps the points
    whose canonical chart it is), and float indices are refused, not truncated."""
    got = xp.asarray(chart)
    if got.shape != (n_points, 2):
        one = f" (one pair for every point: np.tile(chart, ({n_points}, 1)); only=(I, J) keeps the points whose " \
              "canonical chart is (I, J))" if got.shape == (2,) else ""
        raise ConfigError(f"chart has shape {got.shape}; pass one chart (i, j) per point, an integer array of shape "
                          f"({n_points}, 2){one}")
    if got.dtype.kind not in "iu" and got.size:
        raise ConfigError(f"chart has dtype {got.dtype}; pass integer indices (i, j), an integer array of shape "
                          f"({n_points}, 2)")
    if bool(xp.any(got[:, 0] == got[:, 1])) or bool(xp.any((got < 0) | (got > n))):
        raise ConfigError(f"chart indices must satisfy 0 <= i, j <= {n} and i != j")
    return got.astype(np.int64, copy=False)


def point_data(surface, z, *, chart=None, only=None, jacobian: bool = True, check: bool = True) -> dict:
    """All PointSet fields for points z (N, n+1) on X, in the canonical or the given charts. only=(I, J): just the
    points whose canonical chart is (I, J), the rest of the data formed for them alone (row by row the same
    values); n_dropped still counts the ambiguous points among all of z. jacobian=False: no Jacobian is formed
    (None), every other field bitwise the same. check: `admissible.UnfitPoint` for the first row off X, in a chart
    that does not cover it, or whose data are not finite; check=False forms whatever the formulas give."""
    xp = array_module(z)
    n = surface.n
    z = z.astype(np.complex128, copy=False)
    kept = None
    if chart is None:
        if check:
            admissible.check_coordinates(z)
        chart, ok, zs, dp = canonical_charts(surface, z, return_scaled=True)
        if check:
            admissible.check_fit(surface, zs, dp, chart, given=False)
        n_dropped = int((~ok).sum())
        if only is not None:
            ok = ok & (chart[:, 0] == int(only[0])) & (chart[:, 1] == int(only[1]))
        zs, dp, chart, kept = zs[ok], dp[ok], chart[ok], xp.flatnonzero(ok)
    else:
        chart = given_charts(chart, len(z), n, xp)
        n_dropped = 0
        if check:
            admissible.check_coordinates(z, chart)
        zs = scaled_to(z, chart[:, 0])
        dp = surface.grad(zs)
        if check:
            admissible.check_fit(surface, zs, dp, chart, given=True)
    i, j = chart[:, 0], chart[:, 1]
    rows = xp.arange(len(zs))
    loc = local_indices(n, i, j)
    # Embedding Jacobian J[a, k] = dz_k/dx_a: 1 at the local coordinate, c_a = -dp/dx_a / dp/dz_j at z_j.
    dpj = dp[rows, j]
    c = -dp[rows[:, None], loc] / dpj[:, None]
    a = xp.arange(n - 1)
    jac = None
    if jacobian:
        jac = xp.zeros((len(zs), n - 1, n + 1), dtype=np.complex128)
        jac[rows[:, None], a[None, :], loc] = 1.0
        jac[rows[:, None], a[None, :], j[:, None]] = c
    # g_FS = J G J^dag with J J^dag = 1 + c c^dag and J zbar = zbar_loc + c zbar_j (no small matmuls)
    nz2 = xp.sum(zs.real**2 + zs.imag**2, axis=1)[:, None, None]
    w = xp.conj(zs[rows[:, None], loc]) + c * xp.conj(zs[rows, j])[:, None]
    g_fs = (c[:, :, None] * xp.conj(c)[:, None, :] - w[:, :, None] * xp.conj(w)[:, None, :] / nz2) / nz2
    g_fs[:, a, a] += 1.0 / nz2[:, :, 0]
    g_fs[:, a, a] = g_fs[:, a, a].real  # exactly Hermitian: no round-off imaginary parts on the diagonal
    omega2 = 1.0 / xp.abs(dpj) ** 2
    weights = omega2 / det_hermitian(g_fs)
    if check:
        admissible.check_data(weights, omega2, chart, kept)
    return dict(points=zs, weights=weights, omega2=omega2, g_fs=g_fs, chart=chart, jacobian=jac,
                n_dropped=n_dropped)
