"""Hypersurface.point_set forms data only where they exist: at points on X (p = 0 within roundoff, at any scale of
the coordinates) in charts (I, J) with z_I != 0 and dp/dz_J != 0; otherwise one ConfigError naming the first such row
and the fix, where it returned NaN, inf or the weights of a point that is not on X. PointSet.load refuses such rows
by the same rule."""

import h5py
import numpy as np
import pytest

from hpcflow.errors import ConfigError, InputFileError
from hpcflow.geometry import Hypersurface, PointSet

QUINTIC = Hypersurface.fermat(3)


@pytest.fixture(scope="module")
def sampled():
    return QUINTIC.sample(200, seed=3)


def _moved(X, z, delta):
    """z moved by delta |z| along conj(grad p)/|grad p|, so that to first order p changes by delta |z| |grad p|."""
    g = X.grad(z)
    return z + delta * np.linalg.norm(z, axis=1, keepdims=True) * np.conj(g) / np.linalg.norm(g, axis=1, keepdims=True)


def _refusal(X, points, **kw):
    with pytest.raises(ConfigError) as info:
        X.point_set(points, **kw)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith("Hypersurface.point_set: ")
    return msg


def test_points_that_are_not_numbers_are_refused_naming_them(sampled):
    """X.point_set("abc") was complex()'s "complex() arg is a malformed string", object and boolean arrays were cast:
    one TypeError naming points."""
    for bad, dtype in (("abc", "<U3"), (np.array([["1", "2", "3", "4", "5"]]), "<U1"),
                       (sampled.points[:3].astype(object), "object"), (np.ones((3, 5), dtype=bool), "bool")):
        with pytest.raises(TypeError, match=rf"^points has dtype {dtype}; pass points as numbers, one row of "
                                            r"homogeneous coordinates per point$"):
            QUINTIC.point_set(bad)


def test_a_point_off_x_is_refused_naming_its_row(sampled):
    """p(1, 2, 3, 4, 5) = 1 + 2^5 + ... + 5^5 = 4425, all its terms of one sign: far from X. It was given a weight."""
    assert QUINTIC.p(np.array([1, 2, 3, 4, 5], complex)) == sum(k ** 5 for k in range(1, 6))
    z = sampled.points[:5].copy()
    z[3] = [1, 2, 3, 4, 5]
    msg = _refusal(QUINTIC, z)
    assert "point 3 is not on X" in msg and "pass points on X" in msg


@pytest.mark.parametrize("X", [QUINTIC, Hypersurface.dwork(3, 0.7), Hypersurface.fermat(8), Hypersurface.dwork(2, 50j)],
                         ids=["quintic", "dwork", "fermat8", "dwork-psi50j"])
def test_points_moved_off_x_beyond_roundoff_are_refused_and_those_within_it_kept(X):
    """A point moved by delta from X has |p| = delta |z| |dp| to first order: refused at delta = 1e-7 (its data
    those of another point, 1e-7 away), kept at 1e-14 (the roundoff of a point placed on X), at any scale of the
    coordinates."""
    ps = X.sample(100, seed=1)
    near, far = _moved(X, ps.points, 1e-14), ps.points.copy()
    far[7:] = _moved(X, far[7:], 1e-7)
    for scale in (1.0, 1e-120 * (1 + 1j), 3e150):
        np.testing.assert_allclose(X.point_set(near * scale).weights, ps.weights, rtol=1e-6)
        assert "point 7 is not on X" in _refusal(X, far * scale)


def test_a_chart_whose_dp_dz_j_vanishes_is_refused():
    """z = (1, -1, 0, 0, 0) is on the Fermat quintic, where dp/dz_2 = 5 z_2^4 = 0: chart (0, 2) cannot solve for z_2
    (weight NaN before); chart (2, 0) divides by z_2 = 0. Chart (0, 1) covers it: dp/dz_1 = 5."""
    z = np.array([[1, -1, 0, 0, 0]], complex)
    assert QUINTIC.p(z[0]) == 0 and QUINTIC.grad(z)[0, 2] == 0
    msg = _refusal(QUINTIC, z, chart=[[0, 2]])
    assert "chart (0, 2) does not cover point 0" in msg and "dp/dz_J" in msg and "chart=None" in msg
    assert "chart (2, 0) does not cover point 0 (z_I = 0" in _refusal(QUINTIC, z, chart=[[2, 0]])
    ps = QUINTIC.point_set(z, chart=[[0, 1]])
    assert ps.omega2[0] == 1 / 25 and np.isfinite(ps.weights[0]) and ps.weights[0] > 0


def test_rows_without_a_point_are_refused(sampled):
    for row, what in ((0, "all coordinates 0"), (np.nan, "a nan or inf"), (np.inf, "a nan or inf")):
        z = sampled.points[:4].copy()
        z[2] = row
        assert f"point 2 has {what}" in _refusal(QUINTIC, z)


def test_the_checks_change_no_bit_of_accepted_data(sampled):
    """Sampled points in their own and in other admissible charts: every field the same bits as check=False."""
    z = sampled.points
    rows = np.arange(len(z))
    i2 = np.argsort(-np.abs(z), axis=1)[:, 1]  # the second-largest coordinate and the second-best dp/dz_J
    g = np.abs(QUINTIC.grad(z / z[rows, i2][:, None]))
    g[rows, i2] = -1
    other = np.stack([i2, np.argsort(-g, axis=1)[:, 1]], axis=1)
    for chart in (None, sampled.chart, other):
        a = QUINTIC.point_set(sampled.points, chart=chart)
        b = QUINTIC.point_set(sampled.points, chart=chart, check=False)
        for name in ("points", "weights", "omega2", "g_fs", "chart", "jacobian"):
            assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name


def test_load_refuses_a_point_off_x_that_its_absolute_residual_let_through(tmp_path, sampled):
    """A point moved 1e-9 off X in a file whose data are those it gives: |p|/|z|^5 is below the file check's 1e-8,
    so it loaded (and point_set, which the refusals of such files name, now refuses it)."""
    path = tmp_path / "off.h5"
    sampled.save(path)
    z = sampled.points.copy()
    z[5:6] = _moved(QUINTIC, z[5:6], 1e-9)
    z[5] /= z[5, sampled.chart[5, 0]]
    moved = QUINTIC.point_set(z, chart=sampled.chart, check=False)
    assert QUINTIC.residual(z[5:6])[0] < 1e-8
    with h5py.File(path, "r+") as f:
        for name in ("points", "weights", "omega2", "g_fs"):
            f[name][...] = getattr(moved, name)
    with pytest.raises(InputFileError, match=r"off\.h5: dataset 'points' row 5 is not on X"):
        PointSet.load(path)


def test_charts_other_than_one_integer_pair_per_point_are_refused_naming_chart(sampled):
    """`chart` is one (i, j) per point, an integer array (N, 2): a single pair failed in NumPy's reshape ("cannot
    reshape array of size 2 into shape (N,2)"), another row count likewise, and float indices were truncated
    (0.5 -> 0). Each is one ConfigError naming chart and the shape; a pair tiled over the points is taken."""
    z = sampled.points[:50]
    for chart, match in [(np.array([0, 1]), r"chart has shape \(2,\); pass one chart \(i, j\) per point, an integer "
                                            r"array of shape \(50, 2\) \(one pair for every point: np\.tile\(chart, "
                                            r"\(50, 1\)\); only=\(I, J\)"),
                         ((0, 1), r"chart has shape \(2,\)"),
                         (sampled.chart[:49], r"chart has shape \(49, 2\); pass one chart \(i, j\) per point"),
                         (sampled.chart[:50] + 0.5, r"chart has dtype float64; pass integer indices"),
                         (sampled.chart[:50].astype(float), r"chart has dtype float64")]:
        with pytest.raises(ConfigError, match=match):
            QUINTIC.point_set(z, chart=chart)
    mine = sampled.chart[:50]
    same = np.all(mine == mine[0], axis=1)
    tiled = QUINTIC.point_set(z[same], chart=np.tile(mine[0], (int(same.sum()), 1)))
    # bitwise the data of one chart per point on the same module (NumPy here; the sampler's are CuPy's on a GPU,
    # equal to roundoff)
    per_point = QUINTIC.point_set(z[same], chart=mine[same])
    assert np.array_equal(tiled.chart, mine[same]) and np.array_equal(tiled.weights, per_point.weights)
    np.testing.assert_allclose(tiled.weights, sampled.weights[:50][same], rtol=1e-13)
