"""What a user of sampled sets relies on, checked independently of the sampler's own formulas: the points lie on X
to float64 rounding (p evaluated exactly, in rational arithmetic, at the stored float64 coordinates), the weights
|Omega|^2 / det g_FS do not depend on the chart they are formed in, the Fermat sample has the symmetry of X, odd
seeds (huge, NumPy integers, a file's) reproduce their points, and a NumPy Generator as seed is refused saying what
to pass."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface, PointSet

EPS = np.finfo(np.float64).eps


def exact_p(X, z) -> complex:
    """p(z) at the float64 point z, computed exactly (Fractions), rounded once at the end."""
    zr = [(Fraction(float(c.real)), Fraction(float(c.imag))) for c in z]
    total_re, total_im = Fraction(0), Fraction(0)
    for m, c in zip(X.monomials, X.coefficients):
        re, im = Fraction(float(c.real)), Fraction(float(c.imag))
        for k, e in enumerate(m):
            for _ in range(int(e)):
                re, im = re * zr[k][0] - im * zr[k][1], re * zr[k][1] + im * zr[k][0]
        total_re, total_im = total_re + re, total_im + im
    return complex(float(total_re), float(total_im))


@pytest.mark.parametrize("X", [Hypersurface.fermat(3), Hypersurface.dwork(3, 0.5), Hypersurface.dwork(3, 50.0),
                               Hypersurface.fermat(1), Hypersurface.dwork(2, 0.2 + 0.3j)],
                         ids=lambda X: f"{X.name}{dict(X.params)}")
def test_the_points_lie_on_x_to_float64_rounding(X):
    """The Newton step |p(z)| / (|dp(z)| |z|), p exact at the stored point, is at most what rounding leaves: the
    coordinates' rounding (relative eps/2 each, moving p by at most eps/2 |dp| |z|) and the evaluation of p that
    polishes the root (error about deg eps times the sum of the terms' moduli), so deg eps max(1, kappa) with
    kappa = sum |c_m z^e_m| / (|dp| |z|) (measured: at most a third of it)."""
    ps = X.sample(60, seed=12, threads=1)
    for z in ps.points:
        grad = np.linalg.norm(X.grad(z[None])[0]) * np.linalg.norm(z)
        kappa = X.term_sizes(z[None])[0] / grad
        assert abs(exact_p(X, z)) / grad <= X.degree * EPS * max(1.0, kappa), z


def test_the_weights_do_not_depend_on_the_chart():
    """|Omega|^2 / det g_FS is one function on X: formed in another admissible chart (the second largest
    coordinate scaled to 1, another coordinate eliminated) it is the same to rounding."""
    X = Hypersurface.dwork(3, 0.3 + 0.2j)
    ps = X.sample(2000, seed=4, threads=1)
    absz = np.abs(ps.points)
    scale = np.argsort(-absz, axis=1)[:, 1]
    grad = np.abs(X.grad(ps.points))
    rows = np.arange(len(ps))
    grad[rows, scale] = -1.0
    grad[rows, ps.chart[:, 1]] = -1.0  # (not the canonical eliminated index: another chart)
    elim = np.argmax(grad, axis=1)
    other = np.stack([scale, elim], axis=1)
    assert np.all(other != ps.chart)
    q = X.point_set(ps.points / ps.points[rows, scale][:, None], chart=other)
    np.testing.assert_allclose(q.weights, ps.weights, rtol=1e-12)


def test_a_fermat_sample_has_the_symmetry_of_x():
    """The Fermat quintic is symmetric under permuting and rotating (z_k -> e^{2 pi i/5} z_k) its coordinates,
    so an FS-distributed sample has E |z_k|^2 / |z|^2 = 1/5 and E z_k conj(z_l) / |z|^2 = 0 (k != l): within 5
    standard errors of the sample's means."""
    ps = Hypersurface.fermat(3).sample(20000, seed=8, threads=2)
    z = ps.points / np.linalg.norm(ps.points, axis=1, keepdims=True)
    a2 = np.abs(z) ** 2
    se = a2.std(axis=0) / np.sqrt(len(z))
    assert np.all(np.abs(a2.mean(axis=0) - 0.2) <= 5 * se), (a2.mean(axis=0), se)
    cross = z[:, 0] * np.conj(z[:, 1])
    assert abs(cross.mean()) <= 5 * np.abs(cross).std() / np.sqrt(len(z))


@pytest.mark.parametrize("seed", [0, 2**200, np.int64(7), np.uint64(2**63), 1.0])
def test_odd_seeds_reproduce_their_points_through_a_file(seed, tmp_path):
    X = Hypersurface.fermat(3)
    ps = X.sample(5, seed=seed, threads=1)
    assert type(ps.seed) is int and ps.seed == int(seed)
    ps.save(tmp_path / "s.h5")
    back = PointSet.load(tmp_path / "s.h5")
    assert back.seed == ps.seed
    again = X.sample(5, seed=back.seed, threads=2)
    np.testing.assert_array_equal(again.points, ps.points)
    np.testing.assert_array_equal(X.sample(1, seed=seed, threads=1).points, ps.points[:1])


def test_a_fresh_seed_is_recorded_and_reproduces():
    X = Hypersurface.fermat(3)
    ps = X.sample(3, threads=1)
    np.testing.assert_array_equal(X.sample(3, seed=ps.seed, threads=1).points, ps.points)


@pytest.mark.parametrize("seed", [np.random.default_rng(0), np.random.SeedSequence(1), np.random.PCG64(2),
                                  np.random.RandomState(3)], ids=lambda s: type(s).__name__)
def test_a_numpy_generator_as_seed_is_refused_saying_what_to_pass(seed):
    """It was refused as "seed=Generator(PCG64) at 0x7F... is invalid; pass an integer >= 0", which said neither why
    nor how to get an integer from the Generator."""
    with pytest.raises(ConfigError) as exc:
        Hypersurface.fermat(3).sample(5, seed=seed)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"seed={type(seed).__name__}(...) is invalid"), msg
    assert "int(rng.integers(2**63))" in msg and "@seed" in msg, msg


@pytest.mark.parametrize("n", [0, -1, 2.5])
def test_a_count_below_one_is_refused(n):
    with pytest.raises(ConfigError, match=rf"^n_points={n} is invalid; pass a whole number of points >= 1"):
        Hypersurface.fermat(3).sample(n, seed=0)


def test_the_mean_weight_of_the_fermat_cubic_is_its_omega_volume_over_its_fs_area():
    """Lines meet X in points distributed by its FS area (Crofton; Shiffman-Zelditch), so the mean of w = |Omega|^2
    / g_FS tends to int_X |Omega|^2 d^2x / Area_FS(X). For X = {x^3 + y^3 + z^3 = 0} in P^2 (dim 1), with g_FS
    = d dbar log|z|^2 (no 1/pi) and d^2x the Lebesgue measure of the local coordinate: Area_FS(X) = deg Area_FS(P^1)
    = 3 int_C d^2x / (1 + |x|^2)^2 = 3 pi; in the chart z = 1 with y eliminated, |Omega|^2 = 1 / |3 y^2|^2 on each
    of the 3 sheets y^3 = -(1 + x^3), so int_X |Omega|^2 d^2x = (3 / 9) int_C |1 + x^3|^(-4/3) d^2x (quadrature in
    polar coordinates: the singularities at x^3 = -1 are integrable, the tail is |x|^-4). Within 5 standard errors of
    the sample's mean (the quadrature's 1e-6 is far below them)."""
    from scipy import integrate

    def ring(r):  # int over a third of the circle of radius r (the integrand has period 2 pi / 3 in the angle)
        return integrate.quad(lambda t: abs(1 + (r * np.exp(1j * t)) ** 3) ** (-4 / 3) * r, 0, 2 * np.pi / 3,
                              points=[np.pi / 3], limit=200, epsabs=1e-10, epsrel=1e-8)[0]

    inside = integrate.quad(ring, 0, 1, points=[1], limit=200, epsrel=1e-6)[0]
    middle = integrate.quad(ring, 1, 2, limit=200, epsrel=1e-6)[0]
    tail = integrate.quad(lambda s: ring(1 / s) / s**2, 0, 0.5, limit=200, epsrel=1e-6)[0]  # r = 1 / s
    expected = (3 / 9) * 3 * (inside + middle + tail) / (3 * np.pi)
    ps = Hypersurface.fermat(1).sample(100000, seed=3, threads=2)
    se = ps.weights.std() / np.sqrt(len(ps))
    assert abs(ps.weights.mean() - expected) <= 5 * se, (ps.weights.mean(), expected, se)
