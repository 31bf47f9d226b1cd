"""Hypersurfaces that are not smooth Calabi-Yau manifolds are refused: a monomial listed twice and a coordinate
dividing p at construction (exact), a p whose gradient vanishes on a part of X (a repeated factor) after the first
wave of sampling. Smooth ones, high-dimensional or close to singular, sample as before."""

import itertools
from collections import Counter
from math import factorial

import numpy as np
import pytest

from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface
from hpcflow.geometry.sampling import LINES_PER_BATCH

FERMAT = (5 * np.eye(5, dtype=int)).tolist()


def _power(lin, k):
    """Monomials and coefficients of (sum_i lin_i z_i)^k (multinomial theorem)."""
    terms = Counter()
    for combo in itertools.combinations_with_replacement(range(len(lin)), k):
        e = np.bincount(combo, minlength=len(lin))
        terms[tuple(e)] += factorial(k) / np.prod([factorial(x) for x in e]) * np.prod(np.power(lin, e))
    return [list(e) for e in terms], list(terms.values())


def _times(m1, c1, m2, c2):
    """The product of two polynomials given by monomials and coefficients."""
    terms = Counter()
    for (a, ca), (b, cb) in itertools.product(zip(m1, c1), zip(m2, c2)):
        terms[tuple(np.add(a, b))] += ca * cb
    return [list(e) for e in terms], list(terms.values())


def test_a_monomial_listed_twice_is_refused():
    """Fermat plus z0^5 again with coefficient -1 is p = z1^5 + ... + z4^5 (the z0^5 terms cancel): refused, where the
    definition used to be taken (and p silently differed from each listed term)."""
    with pytest.raises(ConfigError, match=r"monomial \(5, 0, 0, 0, 0\) is listed 2 times \(rows \[0, 5\]\)"):
        Hypersurface.from_monomials(FERMAT + [[5, 0, 0, 0, 0]], [1, 1, 1, 1, 1, -1])
    with pytest.raises(ConfigError, match=r"monomial \(1, 1, 1, 1, 1\) is listed 3 times \(rows \[5, 6, 7\]\)"):
        Hypersurface.from_monomials(FERMAT + [[1, 1, 1, 1, 1]] * 3, [1] * 5 + [0.1, 0.2, -0.3])


def test_a_coordinate_dividing_p_is_refused():
    """p = z0^5: X = {z0 = 0} five times, dp = 5 z0^4 dz0 vanishes on all of it. p = z0 (z0^4 + ... + z4^4): X is
    {z0 = 0} and a quartic, singular where they meet, e.g. at (0, 1, e^{i pi/4}, 0, 0) (checked by hand below)."""
    z = np.array([0, 1, np.exp(1j * np.pi / 4), 0, 0])
    q = np.sum(z ** 4)
    grad = np.concatenate([[q + z[0] * 4 * z[0] ** 3], z[0] * 4 * z[1:] ** 3])  # d(z0 q)/dz
    assert abs(q) < 1e-15 and np.all(np.abs(grad) < 1e-15)
    with pytest.raises(ConfigError, match=r"factor z_0\^5 .*multiplicity 5, on which dp vanishes"):
        Hypersurface.from_monomials([[5, 0, 0, 0, 0]], [1])
    with pytest.raises(ConfigError, match=r"factor z_0 \(p = z_0 q\).*singular where it meets q = 0"):
        Hypersurface.from_monomials([[5, 0, 0, 0, 0]] + [[1] + list(4 * e) for e in np.eye(4, dtype=int)], [1] * 5)
    with pytest.raises(ConfigError, match=r"factor z_2\^2"):  # zero coefficients are no terms of p
        Hypersurface.from_monomials([[0, 0, 5, 0, 0], [0, 5, 0, 0, 0], [1, 1, 2, 1, 0]], [1, 0, 2])


@pytest.mark.parametrize("lin, k, share", [
    ([1, 0.3, -2, 0.5j, 1], 5, 1.0),  # L^5: X is the hyperplane L = 0 five times
    ([1, 1, 0, 0, 0], 2, 0.4),  # (z0 + z1)^2 (z0^3 + ... + z4^3): the plane twice, 2 of each line's 5 roots
])
def test_a_gradient_vanishing_on_part_of_X_is_refused_after_the_first_wave(lin, k, share):
    mon, coef = _power(lin, k)
    if k < 5:
        mon, coef = _times(mon, coef, (3 * np.eye(5, dtype=int)).tolist(), [1.0] * 5)
    X = Hypersurface.from_monomials(mon, coef)
    z = np.random.default_rng(0).normal(size=(20, 5)) + 1j * np.random.default_rng(1).normal(size=(20, 5))
    expect = np.dot(z, lin) ** k * (np.sum(z ** 3, axis=1) if k < 5 else 1)
    np.testing.assert_allclose(X.p(z), expect, rtol=1e-12)  # the polynomial meant
    with pytest.raises(ConfigError) as exc:
        X.sample(100, seed=0, threads=1)
    msg = str(exc.value)
    total = LINES_PER_BATCH * 5
    assert msg.startswith(f"custom(): {share:.0%} of the {total} points where the random lines of the first 1 batch "
                          "meet X lie where dp vanishes")
    assert "\n" not in msg and "repeated factor" in msg


@pytest.mark.parametrize("X", [Hypersurface.dwork(3, 1.0), Hypersurface.fermat(16), Hypersurface.dwork(6, 100.0)],
                         ids=["conifold", "fermat16", "dwork6-large-psi"])
def test_smooth_or_isolated_singular_X_still_samples(X):
    """Dwork at psi = 1 is singular at isolated points only, met by almost no line; in dimension 16 |dp| |z| is mostly
    below 1e-6 sum |c_m| |z|^18 (every term of p is small where no coordinate dominates), yet the points are placed to
    full precision: none is refused."""
    ps = X.sample(200, seed=1, threads=1)
    assert len(ps) == 200 and np.all(np.isfinite(ps.weights))
