"""Hypersurface.point_set(chart=...) in a chart badly conditioned at some point loses accuracy there (the weights
and eta do not depend on the chart in exact arithmetic): one RuntimeWarning a call says so, where the roundoff bound
of the weights exceeds sqrt(eps); the canonical charts, given or not, draw none."""

import warnings

import mpmath
import numpy as np
import pytest

from hpcflow.geometry import Hypersurface
from hpcflow.geometry.pointcheck import CHART_WARN_RTOL, weight_error_bounds


@pytest.fixture(scope="module")
def quintic():
    X = Hypersurface.fermat(3)
    return X, X.sample(200, seed=0, threads=1)


def _exact_weight(z, i, j):
    """|Omega|^2 / det g_FS at z (exact complex numbers) in chart (i, j), in 60 digits: z / z_i, c_a = -dp_a/dp_j,
    g = J G J^H with J = d(z)/d(x) (rows e_a + c_a e_j) and the ambient G = 1/|z|^2 - zbar z^T/|z|^4 (Fermat quintic,
    dp_k = 5 z_k^4)."""
    with mpmath.workdps(60):
        z = [mpmath.mpc(complex(a)) for a in z]
        z = [a / z[i] for a in z]
        dp = [5 * a ** 4 for a in z]
        loc = [k for k in range(5) if k not in (i, j)]
        J = mpmath.matrix(3, 5)
        for r, a in enumerate(loc):
            J[r, a] = 1
            J[r, j] = -dp[a] / dp[j]
        n2 = mpmath.fsum(abs(a) ** 2 for a in z)
        G = mpmath.matrix(5, 5)
        for k in range(5):
            for m in range(5):
                G[k, m] = (1 if k == m else 0) / n2 - mpmath.conj(z[k]) * z[m] / n2 ** 2
        g = J * G * J.transpose_conj()
        return float(mpmath.re((1 / abs(dp[j]) ** 2) / mpmath.det(g)))


def test_a_badly_conditioned_chart_warns_once_and_is_as_bad_as_it_says(quintic):
    X, ps = quintic
    forced = np.tile([0, 1], (len(ps), 1))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        bad = X.point_set(ps.points, chart=forced)
    assert len(said) == 1 and said[0].category is RuntimeWarning
    text = str(said[0].message)
    assert "\n" not in text and "ill-conditioned" in text and "chart=None" in text
    bound = weight_error_bounds(X, bad.points, bad.chart, bad)
    k = int(np.argmax(bound))
    assert f" at {int((bound > CHART_WARN_RTOL).sum())} of 200 points" in text and f"point {k} in chart (0, 1)" in text
    exact = _exact_weight(ps.points[k], 0, 1)
    assert abs(ps.weights[k] / exact - 1) < 1e-13  # the canonical chart: the weight of the point itself
    err = abs(bad.weights[k] / exact - 1)
    assert CHART_WARN_RTOL < err <= bound[k]  # the chart's float64 loss is real, and within its bound
    rel = np.abs(bad.weights / ps.weights - 1)  # (canonical weights: exact to ~1e-15)
    assert (rel <= bound + 1e-13).all()
    with warnings.catch_warnings(record=True) as said:  # jacobian=False: the same warning
        warnings.simplefilter("always")
        X.point_set(ps.points, chart=forced, jacobian=False)
    assert [str(w.message) for w in said] == [text]


def test_the_canonical_charts_given_draw_no_warning(quintic):
    X, ps = quintic
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = X.point_set(ps.points, chart=ps.chart)
        X.point_set(ps.points)
        X.point_set(ps.points, chart=np.tile([0, 1], (len(ps), 1)), check=False)  # the caller's: unchecked
    np.testing.assert_array_equal(again.weights, ps.weights)
    assert weight_error_bounds(X, ps.points, ps.chart, ps).max() < 1e-12


def test_a_file_of_such_charts_saves_and_loads_without_the_warning(quintic, tmp_path):
    """Its save and load check its rows against the data they give, within bounds that carry the conditioning."""
    from hpcflow.geometry import PointSet

    X, ps = quintic
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bad = X.point_set(ps.points, chart=np.tile([0, 1], (len(ps), 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bad.save(tmp_path / "bad.h5")
        back = PointSet.load(tmp_path / "bad.h5")
    np.testing.assert_array_equal(back.weights, bad.weights)


def test_a_singular_metric_has_no_bound_and_leaves_the_others_theirs(quintic):
    X, ps = quintic
    odd = ps[:4]
    odd.g_fs = odd.g_fs.copy()
    odd.g_fs[2] = 0  # singular in float64: np.linalg.inv refuses it
    bound = weight_error_bounds(X, odd.points, odd.chart, odd)
    assert np.isinf(bound[2])
    np.testing.assert_allclose(bound[[0, 1, 3]], weight_error_bounds(X, ps.points, ps.chart, ps)[[0, 1, 3]], rtol=1e-12)
