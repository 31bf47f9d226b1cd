"""FS geodesic distance (eq. 3.2): metric axioms, scale invariance, stability near 0, projector embedding."""

import numpy as np
import pytest

from hpcflow.geometry import Hypersurface, fs_distance, fs_distance_paired, projector_features
from hpcflow.geometry.distance import chordal_to_fs
from roundoff import U, fs_distance_error


def _rand(rng, n, d=5):
    return rng.normal(size=(n, d)) + 1j * rng.normal(size=(n, d))


def test_axioms_on_random_points():
    rng = np.random.default_rng(0)
    z = _rand(rng, 300)
    d = fs_distance(z, tile=64)
    assert np.all(np.diag(d) == 0.0)
    err = fs_distance_error(d)  # d(i, j) and d(j, i) come from different entries of one matrix product
    assert np.all(np.abs(d - d.T) <= 2 * err)
    assert d.min() >= 0 and d.max() <= np.pi / 2 + 4 * U
    i, j, k = rng.integers(0, 300, size=(3, 5000))
    assert np.all(d[i, k] <= d[i, j] + d[j, k] + err[i, k] + err[i, j] + err[j, k])


def test_invariant_under_complex_rescaling():
    rng = np.random.default_rng(1)
    z1, z2 = _rand(rng, 50), _rand(rng, 60)
    lam1 = rng.normal(size=(50, 1)) + 1j * rng.normal(size=(50, 1))
    lam2 = 1e-3 * (rng.normal(size=(60, 1)) + 1j * rng.normal(size=(60, 1)))
    d = fs_distance(z1, z2)
    assert np.all(np.abs(fs_distance(lam1 * z1, lam2 * z2) - d) <= 2 * fs_distance_error(d))


def test_known_distances():
    # (1,0) and (cos t, sin t e^{i phi}) in P^1 are at distance t
    t = np.linspace(0, np.pi / 2, 11)
    z1 = np.array([[1.0, 0.0]], dtype=complex)
    z2 = np.stack([np.cos(t), np.sin(t) * np.exp(0.3j)], axis=1)
    assert np.all(np.abs(fs_distance(z1, z2)[0] - t) <= fs_distance_error(t) + 4 * U)  # + cos t, sin t stored
    np.testing.assert_allclose(fs_distance_paired(np.repeat(z1, 11, 0), z2), t, atol=1e-14)


@pytest.mark.parametrize("eps", [1e-4, 1e-7, 1e-10])
def test_stable_for_nearly_equal_points(eps):
    """z' = z + eps e with e orthogonal to z: d = arctan(eps |e| / |z|) exactly (naive arccos fails here)."""
    rng = np.random.default_rng(2)
    z = _rand(rng, 40)
    e = _rand(rng, 40)
    e -= (np.sum(np.conj(z) * e, axis=1) / np.sum(np.abs(z) ** 2, axis=1))[:, None] * z
    exact = np.arctan(eps * np.linalg.norm(e, axis=1) / np.linalg.norm(z, axis=1))
    # atol: z + eps e itself is only stored to ~1e-16 absolute; the naive arccos form errs by ~1e-8
    np.testing.assert_allclose(fs_distance_paired(z, z + eps * e), exact, rtol=1e-8, atol=1e-15)
    np.testing.assert_allclose(np.diag(fs_distance(z, z + eps * e)), exact, rtol=1e-8, atol=1e-15)


def test_noise_floor_sets_tiny_distances_to_zero():
    rng = np.random.default_rng(3)
    z = _rand(rng, 10)
    z2 = z * (1 + 1e-16j)
    assert np.all(np.diag(fs_distance(z, z2)) == 0.0)
    assert np.all(fs_distance_paired(z, z + 1e-14 * _rand(rng, 10), noise_floor=1e-12) == 0.0)


def test_tile_size_does_not_change_result():
    rng = np.random.default_rng(4)
    z1, z2 = _rand(rng, 257), _rand(rng, 100)
    d = fs_distance(z1, z2, tile=1000)
    assert np.all(np.abs(fs_distance(z1, z2, tile=7) - d) <= 2 * fs_distance_error(d))


def test_projector_features_distance_is_sqrt2_sin_d():
    ps = Hypersurface.fermat(3).sample(200, seed=5)
    f = projector_features(ps.points)
    e = np.linalg.norm(f[:, None, :] - f[None, :, :], axis=-1)
    d = fs_distance(ps.points)
    # e: 25 differences of projector entries (each ~2 ulps) under a square root; d: its own rounding
    assert np.all(np.abs(e - np.sqrt(2) * np.sin(d)) <= np.sqrt(2) * fs_distance_error(d) + 100 * U)
    np.testing.assert_allclose(chordal_to_fs(e), d, atol=1e-6)


@pytest.mark.parametrize("lam", [1e160, 1e-170, 1e300 * np.exp(0.7j), 1e-300j, 2.0 ** -1070])
def test_a_point_at_any_scale_is_at_distance_zero(lam):
    """d(z, lambda z) = 0 for every complex lambda != 0 (eq. 3.2), also where |lambda z|^2 over- or underflows
    (2^-1070 z: subnormal coordinates, exact for these z)."""
    z = np.array([[1, 2, 0.5], [1j, -0.25, 3]])
    both = np.vstack([z, lam * z])
    d = fs_distance(both)
    same = np.abs(np.subtract.outer(np.arange(4) % 2, np.arange(4) % 2)) == 0
    assert np.all(d[same] == 0.0)
    assert np.all(fs_distance_paired(z, lam * z) == 0.0)
    # the other point: the distance of the unscaled pair
    d0 = fs_distance(z)[0, 1]
    assert np.all(np.abs(d[~same] - d0) <= 2 * fs_distance_error(d0))
    assert np.abs(fs_distance_paired(z[:1], lam * z[1:]) - d0) <= 2 * fs_distance_error(d0)
    f, f0 = projector_features(both), projector_features(z)
    assert np.all(np.abs(f - np.vstack([f0, f0])) <= 8 * U)  # entries of P = u u^H, |u_k| <= 1


@pytest.mark.parametrize("lam", [(1e200, 1e-200), (1e-160j, 1e170), (1e300, 1.0)])
def test_known_distances_at_extreme_scales(lam):
    # (1,0) and (cos t, sin t e^{i phi}) in P^1 are at distance t, whatever the scale of either representative
    t = np.linspace(0, np.pi / 2, 11)
    z1 = lam[0] * np.array([[1.0, 0.0]], dtype=complex)
    z2 = lam[1] * np.stack([np.cos(t), np.sin(t) * np.exp(0.3j)], axis=1)
    err = fs_distance_error(t) + 8 * U  # + cos t, sin t and their scaling stored
    assert np.all(np.abs(fs_distance(z1, z2)[0] - t) <= err)
    assert np.all(np.abs(fs_distance_paired(np.repeat(z1, 11, 0), z2) - t) <= err)
    f1, f2 = projector_features(z1), projector_features(z2)
    assert np.all(np.abs(np.linalg.norm(f1 - f2, axis=1) - np.sqrt(2) * np.sin(t)) <= np.sqrt(2) * err + 100 * U)


@pytest.mark.parametrize("fill, what", [(0.0, "has all coordinates 0"), (np.nan, "has a nan or inf coordinate"),
                                        (np.inf, "has a nan or inf coordinate")])
def test_a_zero_or_non_finite_row_is_refused_naming_the_argument_and_row(fill, what):
    """Such rows gave NaN distances without a word; rows at 1e-170 beside them are points and are taken."""
    z = Hypersurface.fermat(3).sample(20, seed=1).points
    bad = z * 1e-170
    bad[[7, 11]] = 0.0
    if fill != 0.0:
        bad[7, 2] = fill
    for call, name in ((lambda: fs_distance(z, bad), "z2"), (lambda: fs_distance(bad), "z1"),
                       (lambda: fs_distance_paired(bad, z), "z1"), (lambda: fs_distance_paired(z, bad), "z2"),
                       (lambda: projector_features(bad), "z")):
        with pytest.raises(ValueError, match=rf"^{name} row 7 {what}"):
            call()


def test_arrays_that_are_not_points_are_refused_naming_the_argument():
    """Strings gave NumPy's "could not convert string to float", a single point projector_features' IndexError: one
    line naming the argument and the fix."""
    z = Hypersurface.fermat(3).sample(10, seed=1).points
    text = np.array([["a", "b", "c", "d", "e"]])
    for call, name in ((lambda: fs_distance(text), "z1"), (lambda: fs_distance(z, text), "z2"),
                       (lambda: fs_distance_paired(text, z[:1]), "z1"), (lambda: fs_distance_paired(z[:1], text), "z2"),
                       (lambda: projector_features(text), "z"), (lambda: fs_distance(z[:3].astype(object)), "z1")):
        with pytest.raises(TypeError, match=rf"^{name} has dtype (<U1|object); pass points as numbers, one row of "
                                            r"homogeneous coordinates per point$"):
            call()
    for call, name in ((lambda: projector_features(z[0]), "z"), (lambda: fs_distance(z[0]), "z1"),
                       (lambda: fs_distance(z, z[0]), "z2")):
        with pytest.raises(ValueError, match=rf"^{name} has shape \(5,\); pass points as a 2-D array \(N, n\+1\).*"
                                             rf"\(one point: {name}\[None\]\)$"):
            call()


def test_point_sets_are_taken_as_their_points():
    """fs_distance(ps) raised numpy's 'setting an array element with a sequence' for a PointSet, which the clustering
    functions take as its points: all three take it so, with the values of eq. 3.2 on its points."""
    a, b = Hypersurface.fermat(3).sample(30, seed=1), Hypersurface.fermat(3).sample(20, seed=2)
    u = a.points / np.linalg.norm(a.points, axis=1, keepdims=True)
    v = b.points / np.linalg.norm(b.points, axis=1, keepdims=True)
    want = np.arccos(np.minimum(np.abs(np.conj(u) @ v.T), 1.0))
    d = fs_distance(a, b)
    assert np.all(np.abs(d - want) <= fs_distance_error(want) + 4 * U)
    assert np.array_equal(fs_distance(a), fs_distance(a.points)) and np.array_equal(d, fs_distance(a.points, b))
    paired = fs_distance_paired(a[:20], b)
    assert np.array_equal(paired, fs_distance_paired(a.points[:20], b.points))
    assert np.all(np.abs(paired - np.diag(want[:20])) <= fs_distance_error(np.diag(want[:20])) + 4 * U)
    assert np.array_equal(projector_features(a), projector_features(a.points))


def _mp_distance(z, w):
    """FS distance of two points from the definition (eq. 3.2) in 50-digit arithmetic: arccos of |<z, w>|/(|z||w|)."""
    import mpmath

    with mpmath.workdps(50):
        zs, ws = [mpmath.mpc(complex(a)) for a in z], [mpmath.mpc(complex(b)) for b in w]
        inner = abs(mpmath.fsum(mpmath.conj(a) * b for a, b in zip(zs, ws)))
        norm = mpmath.sqrt(mpmath.fsum(abs(a) ** 2 for a in zs) * mpmath.fsum(abs(b) ** 2 for b in ws))
        return float(mpmath.acos(min(inner / norm, mpmath.mpf(1))))


def test_single_precision_points_give_float64_distances():
    """complex64 / float32 points are points like any other: their distances are float64 and accurate to float64
    roundoff (of the single-precision values given), d(z, z) exactly 0, in every function (as fs_distance)."""
    rng = np.random.default_rng(7)
    z = _rand(rng, 12).astype(np.complex64)
    w = np.concatenate([_rand(rng, 6), z[6:] + 1e-4 * _rand(rng, 6)]).astype(np.complex64)  # far and near pairs
    ref = np.array([_mp_distance(a, b) for a, b in zip(z, w)])
    paired = fs_distance_paired(z, w)
    assert paired.dtype == np.float64
    np.testing.assert_allclose(paired, ref, rtol=1e-12, atol=64 * U)
    self_d = fs_distance_paired(z, z)
    assert self_d.dtype == np.float64 and np.all(self_d == 0.0)
    real = fs_distance_paired(z.real, w.real)  # float32 real coordinates
    assert real.dtype == np.float64
    np.testing.assert_allclose(real, [_mp_distance(a, b) for a, b in zip(z.real, w.real)], rtol=1e-12, atol=64 * U)
    full = fs_distance(z, w)
    assert full.dtype == np.float64
    np.testing.assert_allclose(np.diag(full), ref, rtol=1e-12, atol=64 * U)
    f = projector_features(z)
    assert f.dtype == np.float64
    # |P(z) - P(w)|_F = sqrt(2) sin d (the projector embedding) to float64 roundoff
    np.testing.assert_allclose(np.linalg.norm(f - projector_features(w), axis=1), np.sqrt(2) * np.sin(ref),
                               rtol=1e-10, atol=1e-14)


def test_points_without_coordinates_are_refused_naming_the_argument():
    """np.zeros((3, 0)) gave NumPy's "zero-size array to reduction operation maximum which has no identity": no
    coordinates is no point of any P^n (P^n has n+1 >= 1 homogeneous coordinates); one ValueError naming the argument
    and its shape, before any work."""
    from hpcflow.kernels import make_kernel, real_features

    z, none = Hypersurface.fermat(3).sample(4, seed=1).points, np.zeros((3, 0))
    gauss = make_kernel("gaussian", width=0.5)
    for call, name, shape in ((lambda: fs_distance(none), "z1", (3, 0)), (lambda: fs_distance(np.zeros((0, 0))), "z1",
                                                                          (0, 0)),
                              (lambda: fs_distance(none, none), "z1", (3, 0)),
                              (lambda: fs_distance_paired(none, none), "z1", (3, 0)),
                              (lambda: fs_distance_paired(np.ones(1), np.zeros(0)), "z1", None),  # shapes differ
                              (lambda: projector_features(none), "z", (3, 0)),
                              (lambda: real_features(none), "z", (3, 0)),
                              (lambda: gauss.block(none, none), "x1", (3, 0))):
        with pytest.raises(ValueError, match=rf"^{name} ") as exc:
            call()
        if shape is not None:
            assert str(exc.value).startswith(f"{name} has shape {shape}, no homogeneous coordinates; pass points as a "
                                             "2-D array (N, n+1)"), exc.value
        assert "zero-size" not in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(ValueError, match=r"^z1 has shape \(2, 0\), no homogeneous coordinates"):
        fs_distance_paired(np.zeros((2, 0)), np.zeros((2, 0)))
    with pytest.raises(ValueError, match=r"^z1 has shape \(\), a number, not a point"):
        fs_distance_paired(1.0, 2.0)
    assert fs_distance(z).shape == (4, 4)


def test_points_of_p0_are_all_at_distance_zero():
    """P^0 (one homogeneous coordinate) is a single point: any two non-zero numbers are the same point, at FS distance
    0 (|<z, w>| = |z| |w| for scalars), which every distance function gives."""
    rng = np.random.default_rng(3)
    a, b = _rand(rng, 4, d=1) * 10.0 ** rng.uniform(-100, 100, (4, 1)), _rand(rng, 3, d=1)
    assert np.array_equal(fs_distance(a, b), np.zeros((4, 3))) and np.array_equal(fs_distance(a), np.zeros((4, 4)))
    assert np.array_equal(fs_distance_paired(a[:3], b), np.zeros(3))
    assert np.all(np.abs(projector_features(a) - 1.0) <= 4 * U)  # P = u u^dagger = |u|^2 = 1 for every point
