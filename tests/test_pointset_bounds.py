"""The roundoff bounds PointSet.load checks a file's g_FS, |Omega|^2 and weights against hold: the sampler's float64
data differ from the same quantities computed in extended precision by an independent formula (g_FS = J P J^H with
the Fubini-Study projector P, det by the Leibniz sum) by less than one evaluation's bound, on manifolds whose
gradients cancel (Dwork near its conifold, large psi, a random dense quintic) as well as on Fermat ones."""

import itertools

import numpy as np
import pytest

from hpcflow.geometry import Hypersurface
from hpcflow.geometry.charts import local_indices
from hpcflow.geometry.pointcheck import agreement_tolerances, hermitian_tolerance

CLD = np.clongdouble


def _dense_quintic():
    rng = np.random.default_rng(1)
    rows = [e for e in itertools.product(range(6), repeat=5) if sum(e) == 5]
    pick = rng.choice(len(rows), 40, replace=False)
    mon = [rows[k] for k in pick] + [tuple(5 * np.eye(5, dtype=int)[k]) for k in range(5)]
    coef = np.concatenate([3 * (rng.standard_normal(40) + 1j * rng.standard_normal(40)), np.ones(5)])
    return Hypersurface.from_monomials(mon, coef)


MANIFOLDS = {"fermat1": Hypersurface.fermat(1), "fermat2": Hypersurface.fermat(2), "quintic": Hypersurface.fermat(3),
             "fermat4": Hypersurface.fermat(4), "dwork": Hypersurface.dwork(3, 0.3 + 0.2j),
             "conifold": Hypersurface.dwork(3, 1.0001), "large_psi": Hypersurface.dwork(3, 100.0),
             "imaginary_psi": Hypersurface.dwork(2, -30j), "dense": _dense_quintic()}


def extended(X, z, chart):
    """(g_FS, |Omega|^2, weights) at chart-normalised z in long double: dp/dz term by term, J from it, g = J P J^H
    with P = (1 - zbar z^T/|z|^2)/|z|^2 (d dbar log|z|^2), det g as the sum over permutations."""
    z = z.astype(CLD)
    n, m, N = X.n, X.dim, len(z)
    dp = np.zeros(z.shape, CLD)
    for e, c in zip(X.monomials, X.coefficients.astype(CLD)):
        for k in np.flatnonzero(e):
            term = np.full(N, c * e[k], CLD)
            for l in range(n + 1):
                term = term * z[:, l] ** (e[l] - (l == k))
            dp[:, k] += term
    rows, j = np.arange(N), chart[:, 1]
    loc = local_indices(n, chart[:, 0], j)
    J = np.zeros((N, m, n + 1), CLD)
    for a in range(m):
        J[rows, a, loc[:, a]] = 1
        J[rows, a, j] = -dp[rows, loc[:, a]] / dp[rows, j]
    nz2 = np.sum(np.abs(z) ** 2, axis=1)[:, None, None]
    P = (np.eye(n + 1) - np.conj(z)[:, :, None] * z[:, None, :] / nz2) / nz2
    g = np.einsum("nak,nkl,nbl->nab", J, P, np.conj(J))
    det = sum(np.prod([g[:, a, s[a]] for a in range(m)], axis=0) * np.linalg.det(np.eye(m)[list(s)])
              for s in itertools.permutations(range(m)))
    omega2 = 1 / np.abs(dp[rows, j]) ** 2
    return g, omega2, omega2 / det.real


def test_long_double_is_extended_precision():
    assert np.finfo(np.longdouble).eps < 1e-18  # else the reference below is no more exact than float64


@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_float64_point_data_lie_within_one_evaluations_roundoff_bound(name):
    X = MANIFOLDS[name]
    ps = X.sample(1000, seed=3)
    tol = agreement_tolerances(X, ps.points, ps.chart, X.point_set(ps.points, chart=ps.chart))
    g, omega2, weights = extended(X, ps.points, ps.chart)
    worst = {}
    for key, got, exact in (("g_fs", ps.g_fs, g), ("omega2", ps.omega2, omega2), ("weights", ps.weights, weights)):
        ratio = (np.abs(got - exact) / (tol[key] / 4)).astype(np.float64)  # tol: 4 x one evaluation's bound
        assert ratio.max() <= 1.0, f"{name} {key}: error {ratio.max():.3g} x the bound"
        worst[key] = ratio.max()
    assert max(worst.values()) > 1e-3, worst  # the bound is not loose by orders of magnitude
    defect = np.abs(ps.g_fs - np.conj(np.swapaxes(ps.g_fs, -1, -2)))
    assert np.all(defect <= hermitian_tolerance(ps.points, ps.g_fs))
