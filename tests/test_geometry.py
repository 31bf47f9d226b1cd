"""Geometry against independent math: p = 0, chart rule, tangency, FS restriction, chart independence, sigma."""

import itertools

import numpy as np
import pytest

from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface, fs_distance_paired
from hpcflow.geometry.charts import CHART_TIE_RTOL
from hpcflow.geometry.roots import aberth
from roundoff import U, gamma


@pytest.fixture(scope="module")
def quintic():
    return Hypersurface.fermat(3)


@pytest.fixture(scope="module")
def big_sample(quintic):
    return quintic.sample(100_000, seed=12345)


def test_fermat_polynomial_and_gradient_match_closed_forms(quintic):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(50, 5)) + 1j * rng.normal(size=(50, 5))
    # sum of 5 terms: rounding relative to sum |z_k|^5 (the sum may cancel), each power a few products
    assert np.all(np.abs(quintic.p(z) - np.sum(z**5, axis=1)) <= 2 * gamma(30) * np.sum(np.abs(z) ** 5, axis=1))
    np.testing.assert_allclose(quintic.grad(z), 5 * z**4, rtol=1e-13)


def test_dwork_gradient_matches_finite_differences():
    X = Hypersurface.dwork(3, 0.7 - 0.2j)
    rng = np.random.default_rng(1)
    z = rng.normal(size=(20, 5)) + 1j * rng.normal(size=(20, 5))
    h = 1e-6
    fd = np.stack([(X.p(z + h * e) - X.p(z - h * e)) / (2 * h) for e in np.eye(5)], axis=1)
    np.testing.assert_allclose(X.grad(z), fd, rtol=1e-7, atol=1e-7)
    ref = np.sum(z**5, axis=1) - 5 * (0.7 - 0.2j) * np.prod(z, axis=1)
    scale = np.sum(np.abs(z) ** 5, axis=1) + 5 * abs(0.7 - 0.2j) * np.prod(np.abs(z), axis=1)
    assert np.all(np.abs(X.p(z) - ref) <= 2 * gamma(40) * scale)


def test_aberth_recovers_known_roots():
    rng = np.random.default_rng(2)
    roots = rng.normal(size=(200, 5)) + 1j * rng.normal(size=(200, 5))
    coeffs = np.array([np.poly(r)[::-1] for r in roots])  # lowest order first
    found, ok = aberth(coeffs)
    assert ok.all()
    for r, f in zip(roots, found):
        d = np.abs(r[:, None] - f[None, :])
        assert d.min(axis=1).max() < 1e-9


@pytest.mark.parametrize("X", [Hypersurface.fermat(1), Hypersurface.fermat(2), Hypersurface.fermat(3),
                               Hypersurface.dwork(3, 0.3 + 0.4j),
                               Hypersurface.from_monomials([[5, 0, 0, 0, 0], [0, 5, 0, 0, 0], [0, 0, 5, 0, 0],
                                                            [0, 0, 0, 5, 0], [0, 0, 0, 0, 5], [2, 1, 1, 1, 0]],
                                                           [1, 1, 1, 1, 1, 0.5 - 1j])],
                         ids=["torus", "K3", "quintic", "dwork", "general"])
def test_points_on_X_and_charts_follow_rule(X):
    ps = X.sample(3000, seed=3)
    z = ps.points
    assert z.dtype == np.complex128 and ps.g_fs.dtype == np.complex128 and ps.weights.dtype == np.float64
    assert np.all(np.abs(X.p(z)) / np.linalg.norm(z, axis=1) ** X.degree < 1e-10)
    i, j = ps.chart[:, 0], ps.chart[:, 1]
    rows = np.arange(len(z))
    # scale coordinate is exactly 1 and is the largest modulus
    assert np.all(z[rows, i] == 1.0)
    assert np.all(np.abs(z) <= 1.0 + 1e-15)
    # eliminated coordinate maximises |dp/dz_k| over k != i (gradient by central finite differences)
    h = 1e-7
    fd = np.stack([(X.p(z + h * e) - X.p(z - h * e)) / (2 * h) for e in np.eye(X.n + 1)], axis=1)
    ag = np.abs(fd)
    ag[rows, i] = -1
    assert np.all(ag[rows, j] >= ag.max(axis=1) * (1 - 1e-6))
    assert np.all(i != j)


def test_jacobian_is_tangent_and_matches_moving_along_chart(quintic):
    ps = quintic.sample(200, seed=4)
    grad = 5 * ps.points**4
    tang = np.einsum("nak,nk->na", ps.jacobian, grad)
    assert np.abs(tang).max() < 1e-10 * np.abs(grad).max()
    # move local coordinate a by eps, re-solve p = 0 for z_j by Newton: (z(eps) - z)/eps -> J_a
    eps = 1e-7
    for n in range(20):
        z0 = ps.points[n]
        i, j = ps.chart[n]
        loc = [k for k in range(5) if k not in (i, j)]
        for a, k in enumerate(loc):
            z = z0.copy()
            z[k] += eps
            for _ in range(5):
                z[j] -= np.sum(z**5) / (5 * z[j] ** 4)
            np.testing.assert_allclose((z - z0) / eps, ps.jacobian[n, a], rtol=0, atol=1e-5)


def test_g_fs_is_ambient_fs_metric_restricted(quintic):
    """c^T g cbar = lim d_FS(z, z + eps v)^2 / eps^2 for v = sum_a c_a J_a (the ambient FS line element)."""
    ps = quintic.sample(300, seed=5)
    rng = np.random.default_rng(6)
    c = rng.normal(size=(300, 3)) + 1j * rng.normal(size=(300, 3))
    v = np.einsum("na,nak->nk", c, ps.jacobian)
    eps = 1e-6
    d = fs_distance_paired(ps.points, ps.points + eps * v, noise_floor=0.0)
    quad = np.einsum("na,nab,nb->n", c, ps.g_fs, np.conj(c)).real
    np.testing.assert_allclose(d**2 / eps**2, quad, rtol=1e-5)
    # Hermitian and positive definite
    # entries g_ab and conj(g_ba) are the same products, rounded apart only by a fused multiply-add
    scale = np.abs(ps.g_fs).max(axis=(1, 2))[:, None, None]
    assert np.all(np.abs(ps.g_fs - np.conj(np.transpose(ps.g_fs, (0, 2, 1)))) <= 16 * U * scale)
    assert np.all(np.linalg.eigvalsh(ps.g_fs) > 0)


def _other_chart(X, z):
    """A second admissible chart per point: second-largest scale coordinate, second-best eliminated one."""
    az = np.abs(z)
    i2 = np.argsort(-az, axis=1)[:, 1]
    rows = np.arange(len(z))
    g = np.abs(X.grad(z / z[rows, i2][:, None]))
    g[rows, i2] = -1
    j2 = np.argsort(-g, axis=1)[:, 1]
    return np.stack([i2, j2], axis=1)


def test_chart_independence_of_eta_and_weights(quintic):
    ps = quintic.sample(2000, seed=7)
    other = quintic.point_set(ps.points, chart=_other_chart(quintic, ps.points))
    assert np.all(other.chart != ps.chart)
    np.testing.assert_allclose(other.weights, ps.weights, rtol=1e-10)
    np.testing.assert_allclose(other.eta(), ps.eta(), rtol=1e-10)
    # a different intrinsic metric: pull-back of the ambient Kaehler metric ddbar log(sum a_k |z_k|^2)
    a = np.array([1.0, 2.0, 0.5, 3.0, 1.5])

    def pulled_back(p):
        z = p.points
        s = np.sum(a * np.abs(z) ** 2, axis=1)
        az = a * np.conj(z)
        H = np.einsum("k,kl->kl", a, np.eye(5))[None] / s[:, None, None] - az[:, :, None] * np.conj(az)[:, None, :] / s[:, None, None] ** 2
        return p.jacobian @ H @ np.conj(np.transpose(p.jacobian, (0, 2, 1)))

    np.testing.assert_allclose(other.eta(pulled_back(other)), ps.eta(pulled_back(ps)), rtol=1e-10)


def test_sigma_of_fs_metric_on_fermat_quintic(big_sample):
    """Literature value sigma_FS ~ 0.37-0.38 (0.373 +- 0.005 at >= 1e5 points)."""
    s = big_sample.sigma()
    assert abs(s - 0.373) < 0.005, s
    # kappa for g_FS is N / sum(w): eta = 1/w exactly
    np.testing.assert_allclose(big_sample.eta() * big_sample.weights, 1.0, rtol=1e-12)


def test_fermat_symmetry_charts_and_moments(big_sample):
    n = len(big_sample)
    counts = np.zeros((5, 5))
    np.add.at(counts, (big_sample.chart[:, 0], big_sample.chart[:, 1]), 1)
    off = counts[~np.eye(5, dtype=bool)]
    expected = n / 20
    sd = np.sqrt(n * (1 / 20) * (19 / 20))
    assert np.all(np.abs(off - expected) < 5 * sd), off
    assert np.all(np.diag(counts) == 0)
    z = big_sample.points
    r = np.abs(z) ** 2 / np.sum(np.abs(z) ** 2, axis=1, keepdims=True)
    mean, err = r.mean(axis=0), r.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(mean - 0.2) < 5 * err), (mean, err)


def test_phase_symmetry_of_fermat_sample(big_sample):
    """z_k -> exp(2 pi i/5) z_k is a symmetry, so E[(u_k conj(u_l))^m] = 0 for k != l, m = 1, 2 (u = z/|z|)."""
    z = big_sample.points
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    for k, l in itertools.combinations(range(5), 2):
        for m in (1, 2):
            val = (u[:, k] * np.conj(u[:, l])) ** m
            assert abs(val.mean()) < 5 * val.std() / np.sqrt(len(val))


def test_seed_reproducible_and_thread_independent(quintic):
    a = quintic.sample(20_000, seed=11, threads=1)
    b = quintic.sample(20_000, seed=11, threads=2)
    c = quintic.sample(20_000, seed=12, threads=2)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points[:10], c.points[:10])


def test_single_chart_sampling(quintic):
    ps = quintic.sample(500, seed=13, chart=(2, 4))
    assert len(ps) == 500 and np.all(ps.chart == [2, 4])
    assert np.all(np.abs(quintic.p(ps.points)) < 1e-10)


def test_chart_ties_are_dropped_and_counted(quintic):
    ps = quintic.sample(10, seed=14)
    z = ps.points.copy()
    # a point of the quintic with two coordinates of modulus 1: (1, e^{i pi/5}, 0, 0, 0), as 1 + e^{i pi} = 0
    tie = np.array([[1.0, np.exp(1j * np.pi / 5), 0.0, 0.0, 0.0]], dtype=complex)
    assert abs(quintic.p(tie)[0]) < 1e-14
    both = quintic.point_set(np.concatenate([z, tie]))
    assert len(both) == len(z) and both.n_dropped == 1
    assert CHART_TIE_RTOL < 1e-10


@pytest.mark.parametrize("bad", [
    lambda: Hypersurface.fermat(0),
    lambda: Hypersurface.from_monomials([[4, 0, 0, 0, 0], [0, 4, 0, 0, 0]], [1, 1]),
    lambda: Hypersurface.from_monomials([[3, 0, 0], [0, 3, 0], [1, 1, 0]], [1, 1]),
    lambda: Hypersurface.from_monomials([[2, 0], [0, 2]], [1, 1]),
    lambda: Hypersurface.fermat(3).sample(0),
    lambda: Hypersurface.fermat(3).sample(10, chart=(3, 3)),
    lambda: Hypersurface.fermat(3).sample(10, chart=(0, 5)),
])
def test_bad_manifold_input_raises_config_error(bad):
    with pytest.raises(ConfigError):
        bad()


@pytest.mark.parametrize("bad, match", [
    (lambda: Hypersurface("a", "b"), r"^monomials='a' is invalid: .*pass one exponent row per term$"),
    (lambda: Hypersurface(np.eye(5, dtype=np.int64) * 5, ["x"] * 5),
     r"^coefficients=\['x', .* is invalid: not complex numbers; pass one complex .*coefficient per monomial$"),
    (lambda: Hypersurface.from_monomials([[5, 0, 0, 0, 0], [1, 1, 1]], [1, 1]), r"^monomials=\[\[5, 0, 0, 0, 0\], "),
    (lambda: Hypersurface.from_monomials([["5", "0", "0"]], [1]),
     r"^monomials=\[\[.5., .0., .0.\]\] is invalid: exponents must be non-negative integers; pass int "),
    (lambda: Hypersurface.fermat(17), r"^dim=17 is invalid; pass an integer in \[1, 16\]"),
    (lambda: Hypersurface.fermat(100), r"^dim=100 is invalid; pass an integer in \[1, 16\]"),
    (lambda: Hypersurface.dwork(17, 0.1), r"^dim=17 is invalid; pass an integer in \[1, 16\]"),
])
def test_bad_definitions_and_dimensions_are_one_line_naming_the_argument(bad, match):
    """Arguments that are not a definition are one ConfigError line naming them and the fix (not complex()'s
    "malformed string"); dim is bounded to [1, 16] as the command line's --dim and job files' [geometry].dim."""
    with pytest.raises(ConfigError, match=match) as info:
        bad()
    assert "\n" not in str(info.value)


def test_the_largest_dimension_is_accepted_and_definitions_hold_python_numbers():
    assert Hypersurface.fermat(16).dim == 16 and Hypersurface.dwork(16, 0.5).n == 17
    d = Hypersurface.dwork(3, 0.1 + 0.2j).definition()
    for re, im in d["coefficients"]:
        assert type(re) is float and type(im) is float
    assert d["coefficients"][-1] == [-0.5, -1.0] and d["coefficients"][0] == [1.0, 0.0]
    assert all(type(e) is int for row in d["monomials"] for e in row) and type(d["params"]["dim"]) is int


def test_all_twenty_quintic_charts_listed(quintic):
    assert sorted(quintic.charts) == sorted(itertools.permutations(range(5), 2))


@pytest.mark.parametrize("k", [-560, 530, -1000, 1000])
def test_residual_is_the_same_at_any_scale_of_the_coordinates(quintic, k):
    """|p(z)|/|z|^5 is homogeneous of degree 0: at 2^k z (exact) it is bitwise the value at z, where p(z) and
    |z|^5 overflowed or underflowed (NaN); at 1e-170 z and 1e160 z (rounded) within the round-off of p."""
    rng = np.random.default_rng(5)
    z = quintic.sample(100, seed=4).points
    z = np.concatenate([z, z + 1e-3 * (rng.standard_normal(z.shape) + 1j * rng.standard_normal(z.shape))])
    ref = quintic.residual(z)
    w = z * 2.0 ** k
    w[::3] = z[::3]  # rows at scale 1 beside the others
    assert np.array_equal(quintic.residual(w), ref)
    for scale in (1e-170, 1e160):
        bound = 8 * gamma(quintic.degree + 2) * (quintic.grad_majorant(z) * np.abs(z)).sum(axis=1) / \
            np.linalg.norm(z, axis=1) ** quintic.degree + 4 * U * ref
        assert np.all(np.abs(quintic.residual(z * scale) - ref) <= bound)


def test_a_point_set_file_of_a_family_above_the_dim_bound_still_loads(tmp_path):
    """Files written before fermat/dwork bounded dim to [1, 16] (the API took 17) load: the family a file names is
    rebuilt without the bound, which only new hypersurfaces get."""
    from hpcflow.geometry import PointSet

    with pytest.raises(ConfigError, match=r"dim=17"):
        Hypersurface.fermat(17)
    # 4 points on both families: z = (1, t, c, 0, ..., 0) with c^19 = -(1 + t^19), so the sum of the 19th powers is 0
    # and the product of the coordinates (Dwork's psi term) is 0; |c| > 1 > t: one canonical chart each (a sampled
    # set took a batch of lines with 19 roots each, ~5 s per family)
    t = np.array([0.3, 0.5, 0.7, 0.9])
    z = np.zeros((4, 19), dtype=complex)
    z[:, 0], z[:, 1], z[:, 2] = 1.0, t, (1 + t ** 19) ** (1 / 19) * np.exp(1j * np.pi / 19)
    for name, psi in (("fermat", 0.0), ("dwork", 0.25)):
        X = Hypersurface.dwork(17, psi, _name=name, _bounded=False)  # (as an earlier version built it)
        path = tmp_path / f"{name}.h5"
        X.point_set(z).save(path)
        ps = PointSet.load(path)
        assert ps.manifold == X and ps.manifold.dim == 17 and len(ps) == 4
