"""Which rows point data can be formed for: finite coordinates, not all 0, on X, in a chart (I, J) that covers them.

A row is on X when p(z) vanishes within ROUNDOFF_FACTOR times the float64 roundoff of p at z:
|p(z)| <= ROUNDOFF_FACTOR gamma (T + |z| |dp(z)|), T = sum_m |c_m z^e_m| (the sizes of p's terms, which bound the
error of evaluating p), |z| |dp| (the change of p when z is rounded), gamma = (2 deg + M + 4) eps as in
`pointcheck.agreement_tolerances`. Both sides are homogeneous of degree deg: any scale of z gives the same answer.
Measured: sampled points lie below 0.2 gamma (T + |z| |dp|) once chart-normalised, below 12 gamma as their lines give
them (Fermat dim 1-16, Dwork dim 3 at |psi| up to 1e5); the same points rounded to 8 decimals lie at a median 7e4 to
6e5 gamma. A chart covers a point when z_I != 0 and dp/dz_J is not zero within the same factor of its roundoff
(|dp/dz_J| > ROUNDOFF_FACTOR gamma A_J, A = `Hypersurface.grad_majorant`): |Omega|^2 = 1/|dp/dz_J|^2.
"""

from __future__ import annotations

import numpy as np

from hpcflow.backend import array_module, to_host
from hpcflow.errors import ConfigError

#: how many times its float64 roundoff p(z) or dp/dz_J may be and still count as 0
ROUNDOFF_FACTOR = 1e4
EPS = float(np.finfo(np.float64).eps)
#: what to pass instead of an unfit row
FIX_POINTS = "pass points on X (Hypersurface.sample, or Newton-projected onto p = 0 in float64)"
FIX_CHART = "pass a chart (I, J) with z_I != 0 and dp/dz_J != 0 at the point, or chart=None for the canonical one"


class UnfitPoint(ConfigError):
    """A row for which no point data exist: its point (field "points") or its chart (field "chart", `pair`) is
    unfit, for the reason `why`."""

    def __init__(self, row: int, field: str, why: str, pair: tuple | None = None):
        self.row, self.field, self.why, self.pair = row, field, why, pair
        if field == "points":
            super().__init__(f"Hypersurface.point_set: point {row} {why}; {FIX_POINTS}")
        else:
            super().__init__(f"Hypersurface.point_set: chart {pair} does not cover point {row} ({why}); {FIX_CHART}")


def gamma(surface) -> float:
    """Relative float64 roundoff of evaluating p and dp/dz_k against their majorants: (2 deg + M + 4) eps."""
    return (2 * surface.degree + len(surface.coefficients) + 4) * EPS


def check_coordinates(z, chart=None) -> None:
    """UnfitPoint for the first row of z (N, n+1) with a nan/inf coordinate or all coordinates 0, or, with charts
    (N, 2), z_I = 0 (the chart does not contain the point)."""
    xp = array_module(z)
    zf = xp.ascontiguousarray(z).view(np.float64)
    suspect = xp.flatnonzero(~(xp.einsum("ij,ij->i", zf, zf) > 0) | ~xp.isfinite(xp.sum(zf, axis=1)))
    if suspect.size:  # |z|^2 is 0, inf or nan: a zero or non-finite row, or one that only over- or underflows
        w = z[suspect]
        bad = ~xp.isfinite(w).all(axis=1)
        if bool(xp.any(bad)):
            raise UnfitPoint(int(suspect[_first(bad)]), "points", "has a nan or inf coordinate")
        zero = ~xp.any(w != 0, axis=1)
        if bool(xp.any(zero)):
            raise UnfitPoint(int(suspect[_first(zero)]), "points", "has all coordinates 0 (no point of P^n)")
    if chart is not None:
        lost = z[xp.arange(len(z)), chart[:, 0]] == 0
        if bool(xp.any(lost)):
            k = _first(lost)
            raise UnfitPoint(k, "chart", "z_I = 0 there", _pair(chart[k]))


def check_fit(surface, zs, dp, chart, *, given: bool) -> None:
    """UnfitPoint for the first row of the chart-normalised points zs (N, n+1), with dp = dp/dz there and charts
    (N, 2), that is off X or whose dp/dz_J vanishes (module docstring): a chart `given` by the caller does not
    cover the point, a canonical one (dp/dz_J the largest for J != I) only at a singular point of X."""
    xp = array_module(zs)
    at = xp.arange(len(zs))
    g = gamma(surface) * ROUNDOFF_FACTOR
    T = surface.term_sizes(zs)
    p = xp.einsum("ij,ij->i", zs, dp) / surface.degree  # p(z) by Euler's relation, within gamma T
    zf, df = (xp.ascontiguousarray(a).view(np.float64) for a in (zs, dp))
    size = T + xp.sqrt(xp.einsum("ij,ij->i", zf, zf) * xp.einsum("ij,ij->i", df, df))  # T + |z| |dp|
    off = ~(xp.abs(p) <= g * size)
    j = chart[:, 1]
    adp_j = xp.abs(dp[at, j])
    # A_J <= deg T / |z_J| (Euler: sum_k |z_k| A_k = deg T): A_J itself only where that bound does not clear dp/dz_J
    flat = ~(adp_j * xp.abs(zs[at, j]) > g * surface.degree * T)
    near = xp.flatnonzero(flat)
    if near.size:
        flat[near] = ~(adp_j[near] > g * surface.grad_majorant(zs[near])[xp.arange(near.size), j[near]])
    if not bool(xp.any(off | flat)):
        return
    k = _first(off | flat)
    if bool(off[k]):
        raise UnfitPoint(k, "points", f"is not on X: |p(z)| is {float(xp.abs(p[k]) / size[k]):.3g} times "
                         f"sum_m |c_m z^e_m| + |z| |dp/dz|, above the {g:.3g} that roundoff allows")
    if given:
        raise UnfitPoint(k, "chart", f"|dp/dz_J| = {float(adp_j[k]):.3g} there, 0 within roundoff: "
                         "|Omega|^2 = 1/|dp/dz_J|^2 is not defined", _pair(chart[k]))
    raise UnfitPoint(k, "points", "is a singular point of X (dp/dz = 0 there within roundoff): no chart covers it")


def check_data(weights, omega2, chart, rows=None) -> None:
    """UnfitPoint for the first row whose |Omega|^2 or weight is not a finite number > 0: a chart so ill-conditioned
    at the point (dp/dz_J or z_I tiny against the other components) that float64 g_FS is not positive definite."""
    xp = array_module(weights)
    bad = ~((weights > 0) & (omega2 > 0) & xp.isfinite(weights) & xp.isfinite(omega2))
    if bool(xp.any(bad)):
        k = _first(bad)
        raise UnfitPoint(k if rows is None else int(rows[k]), "chart", f"its weight there is {float(weights[k]):.3g} "
                         f"and |Omega|^2 {float(omega2[k]):.3g}, not finite numbers > 0: dp/dz_J or z_I is too small "
                         "against the other components for float64", _pair(chart[k]))


def _first(mask) -> int:
    return int(np.argmax(to_host(mask)))


def _pair(c) -> tuple:
    return tuple(int(x) for x in to_host(c))
