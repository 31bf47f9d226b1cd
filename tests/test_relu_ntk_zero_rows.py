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

from hpcflow.kernels import cosine_amplitude, cosine_ntk, relu_ntk
from hpcflow.kernels.relu_ntk import NORM_SAFE, relu_features
from roundoff import U, gamma, relu_ntk_deep_entry_error, relu_ntk_entry_error

W = 1.3
#: the smallest positive float64: an entry whose exact value underflows is off by at most a few of these
SUB = np.finfo(np.float64).smallest_subnormal


def feats(seed=0, n=5, d=10):
    return np.random.default_rng(seed).standard_normal((n, d))


def bound(f1, f2, depth, w=W):
    """Rounding bound of relu_ntk(f1, f2) entries for rows of ordinary scale (b = 0)."""
    h1, h2 = relu_features(f1, w, 0.0), relu_features(f2, w, 0.0)
    if depth == 1:
        return relu_ntk_entry_error(h1, h2, w)
    return relu_ntk_deep_entry_error(h1, h2, w, 0.0, depth)


def mp_relu_ntk(x1, x2, depth, w=W):
    """Theta(x1, x2) by the NTK recursion in mpmath (b = 0): x1, x2 1-D float arrays, exact as given."""
    mpmath.mp.dps = 40
    d = len(x1)
    x1, x2 = [mpmath.mpf(float(v)) for v in x1], [mpmath.mpf(float(v)) for v in x2]
    w2 = mpmath.mpf(w) ** 2
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


@pytest.mark.parametrize("depth", [1, 2, 3, 8])
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


@pytest.mark.parametrize("depth", [1, 2, 3, 8])
@pytest.mark.parametrize("scale", [2.0 ** -664, 2.0 ** -500, 2.0 ** -40, 2.0 ** 30, 2.0 ** 480])
def test_scaled_rows_follow_the_degree_one_homogeneity(depth, scale):
    """Theta(a x, x') = a Theta(x, x') (a a power of 2: the scaled features are exact; 2^-664 ~ 1e-200, where
    |a x|^2 underflows; 2^480 ~ 3e144, whose |a x| is above 1/NORM_SAFE), each side within the rounding bound of its
    entries (a times that of the unscaled row)."""
    f1, f2 = feats(1, 3), feats(2, 4)
    k = quiet(relu_ntk, f1, f2, w_std=W, b_std=0.0, depth=depth)
    ks = quiet(relu_ntk, scale * f1, f2, w_std=W, b_std=0.0, depth=depth)
    kt = quiet(relu_ntk, f2, scale * f1, w_std=W, b_std=0.0, depth=depth)
    tol = 2 * scale * bound(f1, f2, depth)
    assert np.all(np.isfinite(ks)) and np.all(np.abs(ks - scale * k) <= tol), np.abs(ks - scale * k).max()
    assert np.all(np.abs(kt - scale * k.T) <= tol.T)


@pytest.mark.parametrize("depth", [1, 2])
def test_tiny_rows_against_the_recursion_in_mpmath(depth):
    """Every row 1e-200 (|h|^2 underflows to 0): such rows gave NaN at depth 2. Theta of two such rows is ~1e-400,
    below float64's range (0 within a few subnormals); of one such row and an ordinary one ~1e-200, to the rounding
    bound."""
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


@pytest.mark.parametrize("depth", [1, 2, 3, 8])
@pytest.mark.parametrize("b_std", [0.0, 0.3])
def test_rows_of_extreme_scale_leave_the_other_entries_bit_for_bit(depth, b_std):
    """An entry depends on its two rows alone: rows of zero, tiny (1e-200) or huge (3e144) scale put among ordinary
    ones (arrays of the same shapes) change no bit of the entries of the ordinary rows, with f2 given or not; and
    those entries are the kernel within the rounding bound of the recursion in mpmath (b = 0)."""
    f1, f2 = feats(5, 6), feats(6, 5)
    odd1, odd2 = [1, 4], [2]
    g1, g2 = f1.copy(), f2.copy()
    g1[1], g1[4], g2[2] = 0.0, 2.0 ** -664 * f1[4], 2.0 ** 480 * f2[2]
    ord1, ord2 = [i for i in range(6) if i not in odd1], [j for j in range(5) if j not in odd2]
    for a, b, rows, cols in ((f1, f2, ord1, ord2), (f1, None, ord1, ord1)):
        want = quiet(relu_ntk, a, b, w_std=W, b_std=b_std, depth=depth)
        got = quiet(relu_ntk, g1, None if b is None else g2, w_std=W, b_std=b_std, depth=depth)
        sub = np.ix_(rows, cols)
        assert want[sub].tobytes() == got[sub].tobytes()
        assert np.all(np.isfinite(got))
    if b_std == 0.0:
        k = quiet(relu_ntk, f1, f2, w_std=W, b_std=0.0, depth=depth)
        exact = np.array([[float(mp_relu_ntk(x, y, depth)) for y in f2] for x in f1])
        assert np.all(np.abs(k - exact) <= bound(f1, f2, depth)), np.abs(k - exact).max()
        z = quiet(relu_ntk, g1, g2, w_std=W, b_std=0.0, depth=depth)
        assert np.all(z[1] == 0.0)  # the zero row's limit


def test_rows_that_leave_the_safe_range_in_a_deeper_layer():
    """Without bias each layer scales a row's norm |h| by W/sqrt(2): at W = 0.01 a row of |h| = 2e-140 is within
    [NORM_SAFE, 1/NORM_SAFE] at the input, but W^2 |h|^2 / 2 underflows to 0 after ten layers (0/0 in cos theta
    of the next). Its entries still follow Theta(a x, x') = a Theta(x, x') at depth 12, within the rounding bound."""
    w, depth = 0.01, 12
    f1, f2 = feats(7, 3), feats(8, 4)
    f1 *= np.sqrt(f1.shape[1]) / np.linalg.norm(f1, axis=1, keepdims=True)  # |h| = W
    scale = 2e-140 / w
    h = relu_features(scale * f1, w, 0.0)
    assert np.all(h[:, -1] > NORM_SAFE) and np.all(0.5 * w * w * (h[:, -1] * (w / np.sqrt(2)) ** 10) ** 2 == 0.0)
    k = quiet(relu_ntk, f1, f2, w_std=w, b_std=0.0, depth=depth)
    ks = quiet(relu_ntk, scale * f1, f2, w_std=w, b_std=0.0, depth=depth)
    tol = 2 * scale * bound(f1, f2, depth, w) + 2 * np.abs(k) * scale * 4 * U  # + scale * f1's own rounding
    assert np.all(k > 0) and np.all(np.abs(ks - scale * k) <= tol), np.abs(ks / scale - k).max()


def mp_cosine_expectation(delta_sq, sigma_w, d):
    """E over w ~ N(0, sigma_w^2/d I_d), b ~ U(-pi, pi) of 2 cos(w.x + b) cos(w.x' + b), |x - x'|^2 = delta_sq (an
    mpf), by quadrature in mpmath: the product is cos(w.(x - x')) + cos(w.(x + x') + 2b), whose second term has mean
    0 over b, and t = w.(x - x') ~ N(0, v), v = sigma_w^2 delta_sq / d, so the mean is int cos(t) N(t; 0, v) dt."""
    v = mpmath.mpf(sigma_w) ** 2 * delta_sq / d
    if v == 0:
        return mpmath.mpf(1)
    r = 40 * mpmath.sqrt(v)
    return mpmath.quad(lambda t: mpmath.cos(t) * mpmath.exp(-t * t / (2 * v)), [-r, 0, r]) / mpmath.sqrt(
        2 * mpmath.pi * v)


def test_cosine_ntk_has_no_such_case():
    """cosine_ntk's limit kernel (A^2/N sum_i cos(w_i.x + b_i) cos(w_i.x' + b_i) as N -> infinity, eq. 2.33) has no
    norm to divide by: a zero or tiny row is an ordinary input. Checked against the defining expectation, evaluated
    in mpmath (`mp_cosine_expectation`), times the kernel's A^2/2 (cosine_amplitude). Tolerance: the computed
    |f - f'|^2 = |f|^2 + |f'|^2 - 2 f.f' is off by at most 2 gamma_(d+2) (|f| + |f'|)^2 (sums of d products in any
    order), which moves exp(-sigma_w^2 |f - f'|^2 / (2d)) by that times sigma_w^2 / (2d) relative; 32 u more for
    A^2/2 and exp; the quadrature's own error (40 digits) is far below."""
    sigma_w = 2.0
    f = feats(4, 3)
    f[1] = 0.0
    d = f.shape[1]
    a2 = cosine_amplitude(sigma_w, d) ** 2
    mpmath.mp.dps = 40
    for rows in (f, f * 0 + 1e-200):
        k = quiet(cosine_ntk, rows, sigma_w=sigma_w)
        x = [[mpmath.mpf(float(v)) for v in r] for r in rows]
        exact = np.array([[float(a2 / 2 * mp_cosine_expectation(mpmath.fsum((p - q) ** 2 for p, q in zip(xi, xj)),
                                                                 sigma_w, d)) for xj in x] for xi in x])
        n = np.linalg.norm(rows, axis=1)
        tol = exact * (sigma_w ** 2 / (2 * d) * 2 * gamma(d + 2) * (n[:, None] + n[None, :]) ** 2 + 32 * U)
        assert np.all(np.abs(k - exact) <= tol), np.abs(k - exact).max()
