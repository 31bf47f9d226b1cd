"""det_hermitian against independent determinants: known eigenvalues, LAPACK, chart independence of the weights."""
from __future__ import annotations

import numpy as np

from hpcflow.geometry import Hypersurface
from hpcflow.geometry.hermitian import det_hermitian

EPS = np.finfo(np.float64).eps


def _unitaries(n, m, rng):
    q, r = np.linalg.qr(rng.normal(size=(n, m, m)) + 1j * rng.normal(size=(n, m, m)))
    return q * (np.diagonal(r, axis1=1, axis2=2) / np.abs(np.diagonal(r, axis1=1, axis2=2)))[:, None, :]


def test_ill_conditioned_3x3_keeps_its_digits():
    """g = U diag(1e9, 0.3, 0.2) U^H: det = 6e7 up to the rounding of g's entries (~eps 1e9 each), which moves det by
    at most ~eps |g| sum(1/lambda) relative; the cofactor expansion's ~1e27 terms left ~1e3 relative error."""
    rng = np.random.default_rng(7)
    lam = np.array([1e9, 0.3, 0.2])
    u = _unitaries(500, 3, rng)
    g = np.einsum("nij,j,nkj->nik", u, lam, u.conj())
    g = 0.5 * (g + g.conj().transpose(0, 2, 1))
    bound = 64 * EPS * lam.max() * np.sum(1 / lam)
    rel = np.abs(det_hermitian(g) / np.prod(lam) - 1)
    assert rel.max() <= bound, (rel.max(), bound)


def test_well_conditioned_matches_lapack_and_a_zero_pivot_is_exact():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(200, 3, 3)) + 1j * rng.normal(size=(200, 3, 3))
    g = a @ a.conj().transpose(0, 2, 1) + np.eye(3)
    ref = np.linalg.det(g).real
    cond = np.linalg.cond(g)
    assert np.all(np.abs(det_hermitian(g) / ref - 1) <= 64 * EPS * cond)
    swap = np.array([[0, 1, 0], [1, 0, 0], [0, 0, 2]], complex)  # indefinite, first pivot 0: det -2 exactly
    assert det_hermitian(swap) == -2.0
    assert det_hermitian(np.stack([swap, g[0]]))[0] == -2.0


def test_weights_do_not_depend_on_the_chart():
    """|Omega|^2 / det g_FS is chart independent (both carry |dz/dz'|^2): in the chart (0, 1) where dp/dz_1 is 1e-6
    of the largest, g_FS has entries ~1e9 and the weight must still equal the best chart's to eps cond(g_FS)."""
    x = Hypersurface.fermat(3)
    small = 1e-6
    z2, z3 = 0.5, 0.7
    z4 = (-(1 + z2**5 + z3**5 + small) + 0j) ** 0.2
    z = np.array([[1, small**0.2, z2, z3, z4]], complex)
    bad = x.point_set(z, chart=np.array([[0, 1]]), check=False)
    good = x.point_set(z, check=False)
    assert tuple(good.chart[0]) != (0, 1)
    cond = np.linalg.cond(bad.g_fs[0])
    assert cond > 1e8
    rel = abs(bad.weights[0] / good.weights[0] - 1)
    assert rel <= 64 * EPS * cond, (rel, cond)
