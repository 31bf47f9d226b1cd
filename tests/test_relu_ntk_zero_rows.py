"""The bias-free ReLU NTK (b_std = 0) at a feature row of 0 or of a tiny scale. With b = 0 every pre-activation of
x = 0 is 0, so Theta(0, x') = 0 (the limit, not 0/0). The kernel is positively homogeneous of degree 1 in each
argument: Sigma0(x, x') = W^2 x.x'/d is, the ReLU layer maps Sigma to sqrt(Sigma(x, x) Sigma(x', x')) J(theta)
(the angle theta does not change with the scales) and Sigmadot depends on theta alone, so by induction over the
layers Theta(a x, x') = a Theta(x, x') for a > 0. Rows of 1e-200, whose |x|^2 underflows, must follow that
identity, not give NaN; checked against the recursion in mpmath (any exponent range) and the identity, within
rounding bounds of float64 (tests/roundoff.py)."""

import warnings

import mpmath
import numpy as np
import pytest

from hpcflow.kernels import cosine_ntk, relu_ntk
from hpcflow.kernels.relu_ntk import relu_features
from roundoff import relu_ntk_deep_entry_error, relu_ntk_entry_error

W = 1.3
#: the smallest positive float64: an entry whose exact value underflows is off by at most a few of these
SUB = np.finfo(np.float64).smallest_subnormal


def feats(seed=0, n=5, d=10):
    return np.random.default_rng(seed).standard_normal((n, d))


def bound(f1, f2, depth):
    """Rounding bound of relu_ntk(f1, f2) entries for rows of ordinary scale (b = 0)."""
    h1, h2 = relu_features(f1, W, 0.0), relu_features(f2, W, 0.0)
    if depth == 1:
        return relu_ntk_entry_error(h1, h2, W)
    return relu_ntk_deep_entry_error(h1, h2, W, 0.0, depth)


def mp_relu_ntk(x1, x2, depth):
    """Theta(x1, x2) by the NTK recursion in mpmath (b = 0): x1, x2 1-D float arrays, exact as given."""
    mpmath.mp.dps = 40
    d = len(x1)
    x1, x2 = [mpmath.mpf(float(v)) for v in x1], [mpmath.mpf(float(v)) for v in x2]
    w2 = mpmath.mpf(W) ** 2
    s12 = w2 * mpmath.fsum(a * b for a, b in zip(x1, x2)) / d
    s11, s22 = w2 * mpmath.fsum(a * a for a in x1) / d, w2 * mpmath.fsum(b * b for b in x2) / d
    if s11 == 0 or s22 == 0:
        return mpmath.mpf(0)
    theta = s12
    for _ in range(depth):
        c = s12 / mpmath.sqrt(s11 * s22)
        t = mpmath.acos(max(min(c, 1), -1))
        relu = mpmath.sqrt(s11 * s22) * (mpmath.sin(t) + (mpmath.pi - t) * mpmath.cos(t)) / (2 * mpmath.pi)
        theta = w2 * relu + w2 * (mpmath.pi - t) / (2 * mpmath.pi) * theta
        s12, s11, s22 = w2 * relu, w2 * s11 / 2, w2 * s22 / 2
    return theta


def quiet(fn, *a, **kw):
    """fn(*a, **kw) with every warning an error (NumPy's 'invalid value' RuntimeWarning came with the NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise", under="ignore"):
            return fn(*a, **kw)


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_a_zero_row_has_a_zero_kernel_without_bias(depth):
    f = feats()
    f[1] = 0.0
    k = quiet(relu_ntk, f, w_std=W, b_std=0.0, depth=depth)
    assert np.all(k[1] == 0.0) and np.all(k[:, 1] == 0.0)
    others = [0, 2, 3, 4]
    g = f[others]
    want = quiet(relu_ntk, g, g, w_std=W, b_std=0.0, depth=depth)
    # each side within its rounding bound of the exact kernel (the diagonals: the same closed form of the same rows)
    assert np.all(np.abs(k[np.ix_(others, others)] - want) <= 2 * bound(g, g, depth))
    cross = quiet(relu_ntk, f[:2], f[2:], w_std=W, b_std=0.0, depth=depth)
    assert np.all(cross[1] == 0.0) and np.all(np.isfinite(cross))


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("scale", [2.0 ** -664, 2.0 ** -500, 2.0 ** -40, 2.0 ** 30])
def test_scaled_rows_follow_the_degree_one_homogeneity(depth, scale):
    """Theta(a x, x') = a Theta(x, x') (a a power of 2: the scaled features are exact; 2^-664 ~ 1e-200, where
    |a x|^2 underflows), each side within the rounding bound of its entries (a times that of the unscaled row)."""
    f1, f2 = feats(1, 3), feats(2, 4)
    k = quiet(relu_ntk, f1, f2, w_std=W, b_std=0.0, depth=depth)
    ks = quiet(relu_ntk, scale * f1, f2, w_std=W, b_std=0.0, depth=depth)
    kt = quiet(relu_ntk, f2, scale * f1, w_std=W, b_std=0.0, depth=depth)
    tol = 2 * scale * bound(f1, f2, depth)
    assert np.all(np.isfinite(ks)) and np.all(np.abs(ks - scale * k) <= tol), np.abs(ks - scale * k).max()
    assert np.all(np.abs(kt - scale * k.T) <= tol.T)


@pytest.mark.parametrize("depth", [1, 2])
def test_tiny_rows_against_the_recursion_in_mpmath(depth):
    """The report's case: every row 1e-200 gave NaN at depth 2. Theta of two such rows is ~1e-400, below float64's
    range (0 within a few subnormals); of one such row and an ordinary one ~1e-200, to the rounding bound."""
    f = feats(3, 4)
    tiny = f * 0 + 1e-200
    k = quiet(relu_ntk, tiny, w_std=W, b_std=0.0, depth=depth)
    assert np.all(np.abs(k) <= 8 * SUB)
    assert float(mp_relu_ntk(tiny[0], tiny[1], depth)) == 0.0
    mixed = quiet(relu_ntk, tiny[:2], f, w_std=W, b_std=0.0, depth=depth)
    exact = np.array([[float(mp_relu_ntk(a, b, depth)) for b in f] for a in tiny[:2]])
    ones = np.ones_like(tiny[:2])
    # the unscaled rows' bound times 1e-200, widened by 1e-200's own rounding (a relative 2^-53 in each feature)
    tol = 1e-200 * bound(ones, f, depth) * 2 + np.abs(exact) * 8 * np.finfo(float).eps
    assert np.all(np.abs(mixed - exact) <= tol), np.abs(mixed - exact).max()


def test_cosine_ntk_has_no_such_case():
    """cosine_ntk is a Gaussian of |f - f'|: a zero or tiny row is an ordinary input (no division by a norm)."""
    f = feats(4, 3)
    f[1] = 0.0
    k = quiet(cosine_ntk, f, sigma_w=2.0)
    d = f.shape[1]
    sq = ((f[:, None, :] - f[None, :, :]) ** 2).sum(-1)
    a2 = 2.0 * (2.0 / np.sqrt(2 * np.pi * d)) ** d
    np.testing.assert_allclose(k, a2 / 2 * np.exp(-4.0 * sq / (2 * d)), rtol=1e-13, atol=0)
    tiny = quiet(cosine_ntk, f * 0 + 1e-200, sigma_w=2.0)
    np.testing.assert_allclose(tiny, a2 / 2, rtol=1e-15, atol=0)
