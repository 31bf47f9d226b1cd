"""Kernels against independent formulas: FS-distance Gaussian, brute-force nearest neighbours, the empirical NTK
of wide finite NumPy networks, and the tiled evaluator against dense products."""

import importlib
import inspect
import re
import tracemalloc
import warnings

import mpmath
import numpy as np
import pytest

from hpcflow.geometry import Hypersurface, fs_distance
from hpcflow.kernels import (KERNELS, CosineNTKKernel, DeltaKernel, GaussianKernel, Kernel, ReluNTKKernel,
                             cosine_amplitude, cosine_ntk, cosine_ntk_empirical, delta, gaussian, make_kernel,
                             real_features, relu_ntk)
from hpcflow.kernels.gaussian import POLY_RTOL, fit_polynomial, horner
from roundoff import U, assert_product_close, fs_distance_error, gamma, gaussian_entry_error, relu_ntk_entry_error


@pytest.fixture(scope="module")
def points():
    x = Hypersurface.fermat(3).sample(700, seed=11).points
    rng = np.random.default_rng(0)
    # near duplicates (d ~ 1e-9 .. 1e-4) and an exact duplicate exercise the stable near-pair path
    near = x[:40] * (1.0 + 10.0 ** rng.uniform(-9, -4, size=(40, 1)) * rng.normal(size=(40, 5)))
    return np.concatenate([x, near, x[:1]])


def grads(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 9))


# ---- Gaussian ---------------------------------------------------------------------------------------------

def test_gaussian_reference_on_known_distances():
    """Eq. 3.6 on pairs at a known FS distance t: (1, 0, 0, 0, 0) and (cos t, e^{i phi} sin t u) in P^4, with u a
    unit vector orthogonal to e_0 (the distance is t by construction, not by the code's distance formula)."""
    rng = np.random.default_rng(7)
    t = np.concatenate([[0.0, 1e-6, 1e-3], rng.uniform(0, np.pi / 2, 40), [np.pi / 2]])
    u = rng.normal(size=(len(t), 4)) + 1j * rng.normal(size=(len(t), 4))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    z1 = np.array([[1.0, 0, 0, 0, 0]], dtype=complex)
    z2 = np.concatenate([np.cos(t)[:, None], np.exp(0.4j) * np.sin(t)[:, None] * u], axis=1)
    for width, form, k in ((0.7, "exp", np.exp(-t / 1.4)), (0.7, "gauss", np.exp(-t ** 2 / 0.98)),
                           (1 / 30, "exp", np.exp(-15.0 * t))):
        got = gaussian(z1, z2, width=width, form=form)[0]
        # the distance's rounding (and that of storing cos t, sin t) carried through dK/dd
        err = gaussian_entry_error(t, width, form) + k * 8 * U * t / width ** (2 if form == "gauss" else 1)
        assert np.all(np.abs(got - k) <= err + 8 * U * k)


@pytest.mark.parametrize("width,form", [(30.0, "exp"), (1.0, "exp"), (0.1, "exp"), (1 / 30, "exp"),
                                        (3.0, "gauss"), (1.0, "gauss")])
@pytest.mark.parametrize("method,engine", [("auto", "auto"), ("auto", "numpy"), ("direct", "auto")])
def test_gaussian_block_matches_distance_formula(points, width, form, method, engine):
    kern = GaussianKernel(width, form=form, method=method, engine=engine)
    x1, x2 = points[600:], points
    ref = gaussian(x1, x2, width=width, form=form)
    got = kern.block(x1, x2)
    # both paths round the distance (conditioning 1/sin d of arccos, 1/cos d of sqrt cos^2 d) and the fit adds
    # at most POLY_RTOL: the worst case over any BLAS is ~1e-12 relative typically, up to ~6e-11 at 1/30
    err = gaussian_entry_error(fs_distance(x1, x2), width, form, POLY_RTOL if kern.method == "poly" else 0.0)
    assert np.all(np.abs(got - ref) <= 2 * err)
    assert np.median(2 * err / ref) < 2e-12  # and that bound is a sharp test for most entries
    if method == "auto" and width >= 0.1:
        assert kern.method == "poly"  # the fast path is actually exercised
    if kern.method == "poly" and engine == "auto":
        assert kern.engine == "numba"  # numba is a dependency of the set-up: its loop is what runs


def test_gaussian_numba_loop_agrees_with_numpy_passes_and_ignores_tile_shape(points):
    """The compiled loop rounds like the NumPy passes up to fused multiply-adds in Horner's rule (a few ulps of K
    times the squarings' doubling), and an entry's value does not depend on where it sits in a tile (vector lane
    or scalar remainder), so tiles of any shape give the same K bit for bit."""
    from hpcflow.kernels import jit

    for width, form in ((1 / 30, "exp"), (0.5, "exp"), (1.0, "gauss")):
        fast = GaussianKernel(width, form=form, engine="numba")
        slow = GaussianKernel(width, form=form, engine="numpy")
        f = fast.features(points)
        whole = fast.tile_block(f[:333], f).copy()
        ref = slow.tile_block(f[:333], f)
        # Horner on q <= tan(pi/8) with |coef| ratios ~1: each FMA step changes rounding by <= 2 ulp of p;
        # deg steps, then 2^k from the squarings
        bound = 4 * (len(fast.coef) + 2) * 2 ** fast.squarings * U
        assert np.max(np.abs(whole / ref - 1.0)) <= bound
        c = f[:333] @ f.T  # the same cos^2 d for every sub-tile (BLAS may sum a thin product in another order)
        for r0, r1, c0, c1 in ((0, 1, 0, 7), (5, 38, 3, 700), (100, 333, 1, 741), (17, 18, 600, 741)):
            sub = jit.gaussian_poly(c[r0:r1, c0:c1].copy(), fast._padded, fast.squarings)
            assert np.array_equal(sub, jit.gaussian_poly(c.copy(), fast._padded, fast.squarings)[r0:r1, c0:c1])


def test_gaussian_engine_choice(monkeypatch):
    from hpcflow.kernels import jit

    assert GaussianKernel(0.5, dtype="float32").engine == "numpy"  # float32 tiles keep their NumPy arithmetic
    assert GaussianKernel(0.5, method="direct").engine == "numpy"
    assert GaussianKernel(0.5).params()["engine"] == GaussianKernel(0.5).engine
    monkeypatch.setattr(jit, "numba_version", lambda: None)
    assert GaussianKernel(0.5).engine == "numpy"  # without numba, auto falls back
    with pytest.raises(ValueError, match="pip install numba"):
        GaussianKernel(0.5, engine="numba")
    with pytest.raises(ValueError, match="engine"):
        GaussianKernel(0.5, engine="fortran")


@pytest.mark.parametrize("width,form", [(30.0, "exp"), (0.5, "exp"), (0.1, "exp"), (1 / 30, "exp"), (0.01, "exp"),
                                        (2.0, "gauss"), (0.3, "gauss")])
def test_polynomial_fit_relative_error_on_random_distances(width, form):
    coef, k = fit_polynomial(width, form)
    d = np.concatenate([np.random.default_rng(1).uniform(0, np.pi / 2, 200_000), [0.0, np.pi / 2]])
    approx = horner(np.tan(d / 4), coef)
    for _ in range(k):
        approx *= approx
    exact = np.exp(-d / (2 * width)) if form == "exp" else np.exp(-d ** 2 / (2 * width ** 2))
    assert np.max(np.abs(approx / exact - 1.0)) < 1e-12


@pytest.mark.parametrize("tile", [1000, 97, 13])
@pytest.mark.parametrize("threads", [1, 2])
def test_gaussian_apply_matches_dense_product(points, tile, threads):
    kern = GaussianKernel(0.5)
    g = grads(len(points))
    k = gaussian(points[:300], points, width=0.5)
    got = kern.operator(points[:300], points, tile=tile, threads=threads)(g)
    assert_product_close(got, k, g, a_err=gaussian_entry_error(fs_distance(points[:300], points), 0.5,
                                                               poly_rtol=POLY_RTOL))
    # symmetric train-on-train path (each off-diagonal tile evaluated once, used twice)
    op = kern.operator(points, points, tile=tile, threads=threads)
    assert op.symmetric
    k = gaussian(points, width=0.5)
    assert_product_close(op(g), k, g, a_err=gaussian_entry_error(fs_distance(points), 0.5, poly_rtol=POLY_RTOL))


def test_gaussian_row_normalisation(points):
    kern = GaussianKernel(0.2, normalize="row")
    g = grads(len(points), seed=2)
    for x in (points[:100], points):  # the second: symmetric train-on-train path
        k = gaussian(x, points, width=0.2)
        err = gaussian_entry_error(fs_distance(x, points), 0.2, poly_rtol=POLY_RTOL)
        got = kern.apply(x, points, g, tile=64)
        # got * s - K g: the product's bound plus |got| times the row sums' relative error (both sides)
        s = k.sum(axis=1, keepdims=True)
        ds = 2 * (gamma(len(points)) * s + err.sum(axis=1, keepdims=True)) + 2 * U * s
        assert_product_close(got * s, k, g, a_err=err, extra=np.abs(got) * ds)


def test_gaussian_narrow_kernel_is_local(points):
    # width -> 0: the update becomes pointwise (eqs. 2.29-2.31)
    kern = GaussianKernel(1e-4)
    x = points[:500]
    g = grads(500, seed=3)
    np.testing.assert_allclose(kern.apply(x, x, g), g, rtol=1e-12, atol=1e-300)


# ---- Gaussian row normalisation: exp(-(D - m)/s) / sum, m = min_j D (log-sum-exp shift) ------------------------

def cp4_points(n, seed):
    """n points of CP^4 drawn with the Fubini-Study measure (complex Gaussian homogeneous coordinates)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 5)) + 1j * rng.normal(size=(n, 5))


def mp_fs_distance(z1, z2, dps=40):
    """FS distances (N1, N2) at `dps` digits from the float coordinates: arccos |<u, v>| / (|u| |v|)."""
    with mpmath.workdps(dps):
        rows = [[mpmath.mpc(complex(c)) for c in r] for r in z1]
        cols = [[mpmath.mpc(complex(c)) for c in r] for r in z2]
        nr = [mpmath.sqrt(mpmath.fsum(abs(c) ** 2 for c in r)) for r in rows]
        nc = [mpmath.sqrt(mpmath.fsum(abs(c) ** 2 for c in r)) for r in cols]
        return [[mpmath.acos(min(mpmath.mpf(1), abs(mpmath.fsum(mpmath.conj(a) * b for a, b in zip(r, c))) / (n1 * n2)))
                 for c, n2 in zip(cols, nc)] for r, n1 in zip(rows, nr)]


def mp_row_weights(dist, width, form, dps=40):
    """K(x, x') / sum_x'' K(x, x'') at `dps` digits (shifted by the row minimum, which the ratio does not see)."""
    with mpmath.workdps(dps):
        w = mpmath.mpf(width)
        s = 2 * w if form == "exp" else 2 * w * w
        out = []
        for row in dist:
            big_d = [d if form == "exp" else d * d for d in row]
            m = min(big_d)
            k = [mpmath.exp(-(v - m) / s) for v in big_d]
            total = mpmath.fsum(k)
            out.append([float(v / total) for v in k])
    return np.array(out)


def row_weight_bound(d, width, form, *, n_tiles=1, poly_rtol=0.0):
    """|W_computed - W| bound, entrywise, for the row weights W = exp(-(D - m)/s) / sum (D = d or d^2) at exact FS
    distances d. In exp(-(D_ij - m_i)/s) the distance error dD_ij moves the exponent by dD_ij/s; the error of the
    shift m_i is common to the row and cancels in the ratio; D - m, the division by s (s itself rounded) and exp
    round by <= u each, relative to the exponent e_ij = (D_ij - m_i)/s or the result: 4u e + 2u; each rescale of
    a tiled partial sum by exp(-(m_old - m_new)/s) adds 2u (m_old - m_new)/s + 2u, the rescales of an entry
    telescoping to <= 2u e + 2u n_tiles. The ratio then moves by its own entry's relative error, the
    weighted mean of the row's, and the sum's gamma_(n+2); doubled for the first-order terms. The row sum is >= 1
    (the nearest weighs 1), so an exp result in the subnormal range (absolute error <= 2^-1074) adds 2^-1072."""
    dd = fs_distance_error(d)
    if form == "exp":
        big_d, err_d, s = d, dd, 2 * width
    else:
        big_d, err_d, s = d * d, (2 * d + dd) * dd + U * d * d, 2 * width * width
    e = (big_d - big_d.min(axis=1, keepdims=True)) / s
    eps = err_d / s + 8 * U * e + 2 * U * (n_tiles + 2) + poly_rtol
    w = np.exp(-e)
    w /= w.sum(axis=1, keepdims=True)
    rel = eps + (w * eps).sum(axis=1, keepdims=True) + gamma(d.shape[1] + 2)
    return 2 * rel * w + 2.0 ** -1072


@pytest.fixture(scope="module")
def cp4_sets():
    """Targets, sources and their 40-digit FS distances (floats and mpf)."""
    x1, x2 = cp4_points(25, 2), cp4_points(40, 4)
    dist = mp_fs_distance(x1, x2)
    return x1, x2, dist, np.array([[float(v) for v in r] for r in dist])


@pytest.mark.parametrize("width,form", [(1.0, "gauss"), (0.2, "gauss"), (0.03, "gauss"), (0.01, "gauss"),
                                        (1 / 30, "exp"), (1e-3, "exp"), (3e-4, "exp")])
@pytest.mark.parametrize("method", ["auto", "direct"])
def test_row_normalised_gaussian_matches_high_precision_weights(cp4_sets, width, form, method):
    """block, the tiled apply (online rescaling over 6 source tiles, 2 threads) and the cached operator against
    40-digit weights. At 0.03 and 0.01 (gauss), 1e-3 and 3e-4 (exp) some row sums underflowed: NaN rows, or rows
    whose subnormal sums put them 1e10 times outside the bound; the wider ones pin the shifted evaluation to
    the unshifted values at roundoff."""
    x1, x2, dist, d = cp4_sets
    kern = GaussianKernel(width, form=form, normalize="row", method=method)
    ref = mp_row_weights(dist, width, form)
    poly_rtol = POLY_RTOL if kern.method == "poly" else 0.0
    bound = row_weight_bound(d, width, form, n_tiles=6, poly_rtol=poly_rtol)
    eye = np.eye(len(x2))
    with np.errstate(divide="raise", over="raise", invalid="raise"):
        for got in (kern.block(x1, x2), kern.apply(x1, x2, eye, tile=7),
                    kern.operator(x1, x2, tile=7, threads=2)(eye),
                    kern.operator(x1, x2, tile=7, cache_bytes=10 ** 8)(eye)):
            assert np.all(np.abs(got - ref) <= bound)


def every_path(kern, x1, src):
    """The matrix of a kernel from block, the tiled apply (7-row tiles), the 2-thread operator and the cached one,
    each computed with every floating-point exception raised."""
    eye = np.eye(len(src))
    with np.errstate(divide="raise", over="raise", invalid="raise"):
        return (kern.block(x1, src), kern.apply(x1, src, eye, tile=7),
                kern.operator(x1, src, tile=7, threads=2)(eye),
                kern.operator(x1, src, tile=7, cache_bytes=10 ** 8)(eye))


@pytest.mark.parametrize("width,form", [(1e-3, "gauss"), (1e-6, "gauss"), (1e-200, "gauss"), (1e-9, "exp")])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_narrow_row_normalised_gaussian_is_the_nearest_neighbour_kernel(cp4_sets, width, form, dtype):
    """Where every K of a row underflows (old: 0/0, all-NaN rows), the row is the nearest source's indicator,
    exactly, with equal shares for a tie (two copies of a point near target 0, whose stable near-pair distances
    are the same bits); on every path. Train on train (x_src is x) stays the identity (the copies share)."""
    x1, x2, dist, d = cp4_sets
    twin = x1[:1] * (1.0 + 1e-5 * np.array([[1, -2, 0.5, 1j, -1j]]))
    src = np.concatenate([x2[:20], twin, x2[20:], twin])  # copies at columns 20 and 41
    d = np.concatenate([d[:, :20], fs_distance(x1, twin), d[:, 20:], fs_distance(x1, twin)], axis=1)
    big_d = d if form == "exp" else d * d
    s = 2 * width if form == "exp" else 2 * width * width
    nearest = big_d == big_d.min(axis=1, keepdims=True)
    second = np.where(nearest, np.inf, big_d).min(axis=1)
    assert np.all(second - big_d.min(axis=1) > 800 * s + 1e-6)  # every other source's exp(-(D - m)/s) is 0
    assert nearest[0, 20] and nearest[0, 41] and nearest.sum() == len(x1) + 1
    want = nearest / nearest.sum(axis=1, keepdims=True)  # 1, or 1/2 for the tie
    kern = GaussianKernel(width, form=form, normalize="row", dtype=dtype)
    for got in every_path(kern, x1, src):
        assert np.array_equal(got, want)
    with np.errstate(divide="raise", over="raise", invalid="raise"):
        same = kern.block(src, src)
    own = np.eye(len(src))
    own[20, 41] = own[41, 20] = 1.0
    assert np.array_equal(same, own / own.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("width,form,dtype", [(1e-160, "gauss", "float64"), (1e-200, "gauss", "float64"),
                                              (1e-320, "exp", "float64"), (1e-25, "gauss", "float32")])
def test_unnormalised_kernel_where_its_scale_underflows_is_the_indicator_of_coincidence(cp4_sets, width, form, dtype):
    """Where 2 w^2 (or 2 w) is below the dtype's smallest normal number, exp(-D/s) at d = 0 was exp(-0/0): NaN on the
    diagonal. The limit w -> 0 of K is the indicator of d == 0: 1 for a point with itself (and its exact copy), 0
    for every other pair (all at d > 1e-6 here), on every path and without a floating-point exception."""
    x1, x2, _, d = cp4_sets
    assert d.min() > 1e-6
    src = np.concatenate([x2, x1[:3]])  # targets 0..2 also sources 40..42
    want = np.zeros((len(x1), len(src)))
    want[[0, 1, 2], [40, 41, 42]] = 1.0
    for got in every_path(GaussianKernel(width, form=form, dtype=dtype), x1, src):
        assert np.array_equal(got, want)


def test_row_normalised_float32_polynomial_is_kept_above_the_normal_range():
    """float32 tiles underflow below 1e-38: a row-normalised kernel whose K reaches that on [0, pi/2] takes the
    shifted direct path (the polynomial's row sums could vanish); asking for the polynomial is refused."""
    # K(pi/2) = exp(-(pi/2)^2 / 0.02) = 4e-54: a normal float64, below float32's 1e-38
    assert GaussianKernel(0.1, form="gauss", dtype="float32", normalize="row").method == "direct"
    assert GaussianKernel(0.1, form="gauss", dtype="float32").method == "poly"  # unnormalised: unchanged
    assert GaussianKernel(0.1, form="gauss", normalize="row").method == "poly"  # float64: K >= 1e-250
    with pytest.raises(ValueError, match="normalize='row' with dtype='float32'.*method='direct'"):
        GaussianKernel(0.1, form="gauss", dtype="float32", normalize="row", method="poly")


# ---- arguments shared by every kernel ---------------------------------------------------------------------------

KERNEL_ARGS = [("gaussian", dict(width=0.5)), ("gaussian", dict(width=0.5, normalize="row")), ("delta", {}),
               ("relu_ntk", dict(w_std=1.0, b_std=0.1)), ("cosine_ntk", dict(sigma_w=1.0))]


@pytest.mark.parametrize("name,kw", KERNEL_ARGS)
def test_kernels_refuse_points_they_cannot_pair_before_any_work(points, monkeypatch, name, kw):
    delta_module = importlib.import_module("hpcflow.kernels.delta")  # the package exports the function `delta`
    kern = make_kernel(name, **kw)

    def no_work(*a, **k):
        raise AssertionError("the kernel started work on points it should have refused")

    monkeypatch.setattr(kern, "features", no_work)
    monkeypatch.setattr(delta_module, "nearest_index", no_work)
    z1, z2, g = points[:6], points[6:13], np.ones((7, 9))
    cases = [(lambda: kern.block(z1[0], z2), r"x1 has shape \(5,\); pass points as a 2-D array .*x1\[None\]"),
             (lambda: kern.block(z1, z2[:, :4]), r"x2 has shape \(7, 4\) but x1 has shape \(6, 5\); pass both with "
                                                 r"the same number of homogeneous coordinates"),
             (lambda: kern.apply(z1, z2[:, :4], g), r"x_src has shape \(7, 4\) but x has shape \(6, 5\)"),
             (lambda: kern.operator(z1[0], z2), r"x has shape \(5,\)"),
             (lambda: kern.apply(z1, z2[0], g[:1]), r"x_src has shape \(5,\)")]
    for call, match in cases:
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize("name,kw", KERNEL_ARGS)
def test_kernels_refuse_points_that_are_not_finite_before_any_work(points, monkeypatch, name, kw):
    """A nan or inf coordinate (real or imaginary part) in either set is one ValueError naming the set and the row,
    from block, operator and apply: relu_ntk and cosine_ntk returned NaN rows without a word, the others failed in
    SciPy's KD-tree ("data must be finite"), which names neither set."""
    kern = make_kernel(name, **kw)

    def no_work(*a, **k):
        raise AssertionError("the kernel started work on points it should have refused")

    monkeypatch.setattr(kern, "features", no_work)
    monkeypatch.setattr(importlib.import_module("hpcflow.kernels.delta"), "nearest_index", no_work)
    g = grads(7)
    for bad in (np.nan, np.inf, -np.inf, complex(0, np.nan)):
        for which, (r0, r1) in (("x", (0, 6)), ("x_src", (6, 13))):
            z = points[:13].copy()
            z[r0 + 2, 3] = bad
            z[r0 + 4, 0] = bad
            x, xs = z[:6], z[6:13]
            for call, name_ in ((lambda: kern.apply(x, xs, g), which), (lambda: kern.operator(x, xs), which),
                                (lambda: kern.block(x, xs), {"x": "x1", "x_src": "x2"}[which])):
                with pytest.raises(ValueError, match=rf"^{name_} has 2 point\(s\) with a nan or inf coordinate "
                                                     r"\(row 2 first\); pass finite homogeneous coordinates$"):
                    call()
        z = points[:6].copy()
        z[1, 1] = bad
        with pytest.raises(ValueError, match=r"^x has 1 point\(s\) .*row 1 first"):  # x is x_src: named once
            kern.operator(z, z)
    with pytest.raises(TypeError, match="x_src has dtype object; pass points as numbers"):
        kern.operator(points[:6], points[6:13].astype(object))


@pytest.mark.parametrize("name,kw", KERNEL_ARGS)
def test_kernels_refuse_gradients_that_are_not_real_numbers(points, monkeypatch, name, kw):
    """A complex, boolean or non-numeric grad_src is one TypeError naming it, from apply before any work and from
    the operator's call, where a cast used to drop the imaginary part (ComplexWarning) or keep it (delta)."""
    kern = make_kernel(name, **kw)
    z1, z2, g = points[:6], points[6:13], grads(7)
    op = kern.operator(z1, z2)
    def no_work(*a, **k):
        raise AssertionError("apply started work on a gradient it should have refused")

    monkeypatch.setattr(kern, "features", no_work)
    monkeypatch.setattr(importlib.import_module("hpcflow.kernels.delta"), "nearest_index", no_work)
    complex_advice = r"grad_src has dtype complex128; pass real numbers .*grad_src\.real and grad_src\.imag"
    for bad, match in [(g + 1j * g, complex_advice), (g > 0, "grad_src has dtype bool; pass real numbers"),
                       (g.astype(object), "grad_src has dtype object; pass real numbers"),
                       (g.astype(str), "grad_src has dtype <U.*; pass real numbers")]:
        for call in (lambda: kern.apply(z1, z2, bad), lambda: op(bad)):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # refused, not cast with a ComplexWarning
                with pytest.raises(TypeError, match=match):
                    call()


@pytest.mark.parametrize("name,kw", KERNEL_ARGS)
def test_operator_call_refuses_a_gradient_per_other_rows(points, name, kw):
    """The operator's call checks its argument as apply does: one ValueError naming grad_src and the shape to pass
    (the delta kernel's gather failed with an IndexError, the others inside matmul)."""
    op = make_kernel(name, **kw).operator(points[:6], points[6:13])
    for bad in (grads(4), grads(30), np.ones(7), np.ones((7, 9, 1))):
        with pytest.raises(ValueError, match=rf"grad_src has shape \({', '.join(map(str, bad.shape))},?\); pass one "
                                             r"gradient row per source point, shape \(7, P\)"):
            op(bad)


@pytest.mark.parametrize("name,kw", KERNEL_ARGS)
def test_integer_and_float32_gradients_give_the_float64_result(points, name, kw):
    """The result is float64 whatever real dtype grad_src has (no kernel here has a float32 option on): the delta
    kernel returned float32 or int64 rows. Against brute-force nearest sources for delta; for the others, the
    same values given as float64."""
    kern = make_kernel(name, **kw)
    x, xs = points[:50], points[100:400]
    g = np.random.default_rng(5).integers(-1000, 1000, size=(300, 9))
    for given in (g, g.astype(np.int32), g.astype(np.float32)):  # every value exact in each dtype
        got = kern.apply(x, xs, given)
        assert got.dtype == np.float64, (given.dtype, got.dtype)
        assert np.array_equal(got, kern.apply(x, xs, g.astype(np.float64)))
        if name == "delta":
            assert np.array_equal(got, g[np.argmin(fs_distance(x, xs), axis=1)])


def test_a_complex_gradient_is_applied_by_its_real_and_imaginary_parts(points):
    """The refusal's advice gives K @ G for complex G: against the FS-distance Gaussian and brute-force nearest
    sources, apply(Re G) + i apply(Im G) is the reference K @ G."""
    x, xs = points[:40], points[100:400]
    g = grads(300, seed=1) + 1j * grads(300, seed=2)
    gauss = GaussianKernel(0.5)
    got = gauss.apply(x, xs, g.real) + 1j * gauss.apply(x, xs, g.imag)
    d = fs_distance(x, xs)
    err = gaussian_entry_error(d, 0.5, poly_rtol=POLY_RTOL)
    for part in (np.real, np.imag):
        assert_product_close(part(got), gaussian(x, xs, width=0.5), part(g), a_err=err)
    nearest = np.argmin(d, axis=1)
    dk = DeltaKernel()
    np.testing.assert_array_equal(dk.apply(x, xs, g.real) + 1j * dk.apply(x, xs, g.imag), g[nearest])


@pytest.mark.parametrize("name,kw", KERNEL_ARGS)
def test_empty_source_set(points, name, kw):
    """No source points: refused where the kernel is undefined (the delta kernel's nearest source, the row
    average), the empty sum 0 where the kernel is a sum over sources."""
    kern = make_kernel(name, **kw)
    z, none = points[:6], points[:0]
    if name == "delta" or kw.get("normalize") == "row":
        for call in (lambda: kern.apply(z, none, np.ones((0, 9))), lambda: kern.block(z, none),
                     lambda: kern.operator(z, none)):
            with pytest.raises(ValueError, match=r"x(_src|2) has shape \(0, 5\), no source points, but .*; pass at "
                                                 r"least one source point"):
                call()
    else:
        assert np.array_equal(kern.apply(z, none, np.ones((0, 9))), np.zeros((6, 9)))
        assert kern.block(z, none).shape == (6, 0)


def test_invalid_gaussian_parameters():
    with pytest.raises(ValueError):
        GaussianKernel(0.0)
    with pytest.raises(ValueError):
        GaussianKernel(1.0, form="cauchy")
    with pytest.raises(ValueError):
        make_kernel("laplace")


# ---- tiled evaluator --------------------------------------------------------------------------------------

def test_apply_memory_is_bounded_by_tile():
    x = Hypersurface.fermat(3).sample(4000, seed=5).points
    g = grads(4000)
    kern = GaussianKernel(1.0)
    op = kern.operator(x, x, tile=256, threads=1)
    tracemalloc.start()
    op(g)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8e6 < 4000 * 4000 * 8 / 10  # dense kernel would be 128 MB


class ScalarAsMixing(Kernel):
    """A full-mixing kernel (N1, P, N2, P) equal to delta_IJ K: must reproduce the scalar kernel."""

    mixes_components = True

    def __init__(self, base, p=9):
        self.base, self.p = base, p

    def features(self, x):
        return self.base.features(x)

    def tile_block(self, f1, f2):
        k = np.array(self.base.tile_block(f1, f2))
        return k[:, None, :, None] * np.eye(self.p)[None, :, None, :]


def test_mixing_kernel_equal_to_delta_k_reproduces_scalar_apply(points):
    base = ReluNTKKernel(1.5, 0.3)
    mix = ScalarAsMixing(base)
    g = grads(len(points), seed=4)
    k = relu_ntk(real_features(points[:50]), real_features(points), w_std=1.5, b_std=0.3)
    # near-duplicate pairs sit at the arccos branch point: bound each entry's rounding by its conditioning
    err = relu_ntk_entry_error(base.features(points[:50]), base.features(points), 1.5)
    assert_product_close(mix.apply(points[:50], points, g, tile=100), k, g, a_err=err)
    cached = mix.operator(points[:50], points, tile=100, cache_bytes=10 ** 9)
    for _ in range(2):  # first call forms the dense block, second reuses it
        assert_product_close(cached(g), k, g, a_err=err)
    assert cached.dense is not None
    assert mix.block(points[:3], points[:4]).shape == (3, 9, 4, 9)


# ---- delta ------------------------------------------------------------------------------------------------

def test_delta_kernel_takes_nearest_train_update(points):
    train, test = points[:500], points[500:740]
    g = grads(500, seed=6)
    nn = np.argmin(fs_distance(test, train), axis=1)
    np.testing.assert_array_equal(DeltaKernel().apply(test, train, g), g[nn])
    np.testing.assert_array_equal(DeltaKernel().apply(train, train, g), g)  # train points: pointwise
    k = delta(test, train)
    assert np.all(k.sum(axis=1) == 1) and np.all(k[np.arange(len(test)), nn] == 1)


def test_delta_and_nearest_source_refuse_points_as_the_kernel_block_does(points, monkeypatch):
    """delta(z1, z2) and nearest_source(x, x_src) skipped the kernel's checks: a (3, 4) second set failed in SciPy
    ("x must consist of vectors of length 16 but has shape (50, 25)"), no source points was an IndexError (delta) or
    an index -1 for every point (nearest_source), and one point named "z". Each is now the block's error, naming the
    function's own arguments, before any work; PointSets and lists are taken as the block takes them."""
    delta_module = importlib.import_module("hpcflow.kernels.delta")
    z = points[:50]
    block = DeltaKernel().block
    rows = np.arange(50)[:, None]
    bad_pairs = [(z, np.ones((3, 4))), (z, z[:0]), (z[0], z), (z, z[0]), (z, z[:, :4]), (z, z.astype(object)),
                 (np.where(rows == 7, np.nan, z), z), (z, np.where(rows == 3, 0, z))]

    def no_work(*a, **k):
        raise AssertionError("started work on points it should have refused")

    monkeypatch.setattr(delta_module, "nearest_index", no_work)
    for a, b in bad_pairs:
        with pytest.raises((ValueError, TypeError)) as ref:
            block(a, b)
        expected = str(ref.value)
        assert "x1" in expected or "x2" in expected
        for call, names in ((delta, ("z1", "z2")), (delta_module.nearest_source, ("x", "x_src"))):
            with pytest.raises(ref.type) as got:
                call(a, b)
            assert str(got.value) == expected.replace("x1", names[0]).replace("x2", names[1])
    monkeypatch.undo()
    ps = Hypersurface.fermat(3).sample(40, seed=8)
    train, test = ps.points[:25], ps.points[25:]
    nn = np.argmin(fs_distance(test, train), axis=1)
    np.testing.assert_array_equal(delta_module.nearest_source(test, train), nn)
    np.testing.assert_array_equal(delta_module.nearest_source(test.tolist(), train.tolist()), nn)
    np.testing.assert_array_equal(delta_module.nearest_source(ps, ps), np.arange(40))
    np.testing.assert_array_equal(delta(ps, ps), np.eye(40))
    np.testing.assert_array_equal(delta(test, train), block(test, train))
    assert delta(test, train)[np.arange(15), nn].sum() == 15


# ---- ReLU NTK ---------------------------------------------------------------------------------------------

def empirical_relu_ntk(f1, f2, width, w_std, b_std, seed):
    """NTK sum_params df(x)/dp df(x')/dp of f = W/sqrt(n) W2 relu(W/sqrt(d) W1 x + b b1) + b b2."""
    rng = np.random.default_rng(seed)
    d = f1.shape[1]
    w1, b1, w2 = rng.normal(size=(d, width)), rng.normal(size=width), rng.normal(size=width)

    def hidden(f):
        pre = w_std / np.sqrt(d) * f @ w1 + b_std * b1
        return np.maximum(pre, 0.0), (pre > 0) * w2

    h1, a1 = hidden(f1)
    h2, a2 = hidden(f2)
    inner = w_std ** 2 * f1 @ f2.T / d + b_std ** 2  # d pre / d (W1, b1) inner product
    return (b_std ** 2 + w_std ** 2 / width * h1 @ h2.T + w_std ** 2 / width * (a1 @ a2.T) * inner)


def test_relu_ntk_diagonal_against_wide_networks(points):
    """The diagonal Theta(x, x) (set in closed form) against a Monte Carlo estimate from random finite networks
    (mean over seeds within its standard error: mean squared z-score ~ 1) and against the limit x' -> x of the
    off-diagonal formula; the symmetric tiled operator with that diagonal reproduces the dense product."""
    x = points[:20]
    f = real_features(x)
    w, b = 5.716, 80.52
    diag = np.diag(relu_ntk(f, f, w_std=w, b_std=b))
    samples = np.array([np.diag(empirical_relu_ntk(f, f, 20000, w, b, s)) for s in range(16)])
    z = (samples.mean(axis=0) - diag) / (samples.std(axis=0, ddof=1) / np.sqrt(len(samples)))
    assert np.mean(z ** 2) < 3.0, z
    # finer (MC resolves ~0.4 %): the general arccos formula at x' -> x (a copy: no diagonal special case)
    # tends to the closed form, within that entry's rounding bound at the arccos branch point
    kern = ReluNTKKernel(w, b)
    h = kern.features(x)
    limit = np.diag(relu_ntk(f, f.copy(), w_std=w, b_std=b))
    assert np.all(np.abs(limit - diag) <= np.diag(relu_ntk_entry_error(h, h, w)))
    assert np.diag(relu_ntk_entry_error(h, h, w)).max() < 1e-6 * diag.min()
    np.testing.assert_array_equal(np.diag(kern.block(x, x)), diag)
    x = points[:100]
    f = real_features(x)
    g = grads(100)
    op = kern.operator(x, x, tile=16, threads=2)
    dense = relu_ntk(f, f, w_std=w, b_std=b)
    h = kern.features(x)
    assert_product_close(op(g), dense, g, a_err=relu_ntk_entry_error(h, h, w))


def test_relu_ntk_matches_wide_network_with_inverse_sqrt_width_error(points):
    f = real_features(points[:12])
    w, b = 1.3, 0.4
    exact = relu_ntk(f, f, w_std=w, b_std=b)
    widths = [500, 5000, 50000]
    errs = [np.mean([np.abs(empirical_relu_ntk(f, f, n, w, b, s) - exact).mean() for s in range(6)])
            for n in widths]
    slope = np.polyfit(np.log(widths), np.log(errs), 1)[0]
    assert -0.65 < slope < -0.35, (errs, slope)
    assert errs[-1] < 0.02 * np.abs(exact).mean()


# ---- cosine NTK -------------------------------------------------------------------------------------------

def _integral_over_rd(kernel, d, sigma, rng):
    """(integral over R^d of kernel(x, 0), standard error): quadrature for d <= 2, else importance sampling
    from N(0, (1.3 sigma)^2 I)."""
    from scipy import integrate

    zero = np.zeros((1, d))
    if d == 1:
        return integrate.quad(lambda t: kernel(np.array([[t]]), zero)[0, 0], -np.inf, np.inf,
                              epsabs=0, epsrel=1e-11)[0], 0.0
    if d == 2:
        return integrate.dblquad(lambda s, t: kernel(np.array([[s, t]]), zero)[0, 0], -np.inf, np.inf,
                                 -np.inf, np.inf, epsabs=0, epsrel=1e-10)[0], 0.0
    s = 1.3 * sigma
    x = rng.normal(0.0, s, size=(200_000, d))
    logp = -0.5 * np.sum(x * x, axis=1) / s ** 2 - 0.5 * d * np.log(2 * np.pi * s * s)
    ratio = kernel(x, zero)[:, 0] * np.exp(-logp)
    return ratio.mean(), ratio.std() / np.sqrt(len(ratio))


@pytest.mark.parametrize("sigma_w,d", [(0.5, 1), (2.0, 1), (3.0, 2), (2.0, 10), (3.0, 10)])
def test_cosine_ntk_is_normalised(sigma_w, d):
    """Default normalisation: the kernel integrates to 1 over R^d; eq. 2.36 as printed integrates to
    1/A_printed^2 instead (0.79 at sigma_w = 2, d = 1; 91 at sigma_w = 3, d = 10)."""
    rng = np.random.default_rng(d)
    sigma = np.sqrt(d) / sigma_w  # eq. 2.37
    for norm, expect in (("delta", 1.0), ("printed", cosine_amplitude(sigma_w, d, "printed") ** -2)):
        total, se = _integral_over_rd(lambda a, c: cosine_ntk(a, c, sigma_w=sigma_w, normalization=norm), d,
                                      sigma, rng)
        assert abs(total - expect) <= 5 * se + 1e-8 * expect, (norm, total, expect, se)


def test_unknown_cosine_normalization_is_rejected():
    with pytest.raises(ValueError, match="normalization"):
        CosineNTKKernel(1.0, normalization="unit")


def test_cosine_ntk_is_a_delta_sequence():
    """int Theta(x, y) phi(y) dy -> phi(x) as sigma_w -> infinity; for phi(y) = exp(-y^2/2) in d = 1 the
    convolution with a normalised Gaussian of variance s^2 = 1/sigma_w^2 is exp(-x^2/(2(1+s^2)))/sqrt(1+s^2)."""
    from scipy import integrate

    for sigma_w in (1.0, 10.0, 100.0):
        s2 = 1.0 / sigma_w ** 2
        for x in (0.0, 0.7, 2.0):
            k = CosineNTKKernel(sigma_w)
            s = np.sqrt(s2)  # beyond 30 s from x the kernel is below exp(-450) of its peak
            got = integrate.quad(lambda y: k.tile_block(np.array([[x]]), np.array([[y]]))[0, 0] * np.exp(-y * y / 2),
                                 x - 30 * s, x + 30 * s, points=[x], epsabs=0, epsrel=1e-11, limit=200)[0]
            exact = np.exp(-x * x / (2 * (1 + s2))) / np.sqrt(1 + s2)
            assert abs(got - exact) < 1e-9
            assert abs(exact - np.exp(-x * x / 2)) < s2  # and the limit is phi(x)


def test_cosine_ntk_is_the_infinite_width_limit_of_random_networks(points):
    """Monte Carlo: Theta_N(x, x') = sum_k dphi/da_k(x) dphi/da_k(x') of random finite cosine networks (eq. 2.32,
    phi = A/sqrt(N) sum_k a_k cos(w_k . x + b_k), w ~ N(0, s_w^2/d), b ~ U(-pi, pi)) -> the kernel, error ~ N^-1/2."""
    f = real_features(points[:15])
    d, s_w = f.shape[1], 1.7
    kern = CosineNTKKernel(s_w)
    exact = kern.block(points[:15], points[:15])
    a2 = 2.0 * exact[0, 0]  # A^2: Theta(x, x) = A^2 E[cos^2] = A^2 / 2 for uniform b

    def network_ntk(n, seed):
        rng = np.random.default_rng(seed)
        w = rng.normal(0.0, s_w / np.sqrt(d), size=(d, n))
        b = rng.uniform(-np.pi, np.pi, size=n)
        jac = np.sqrt(a2 / n) * np.cos(f @ w + b)  # dphi/da_k: phi is linear in a
        return jac @ jac.T

    widths = [1000, 10000, 100000]
    errs = [np.mean([np.abs(network_ntk(n, s) - exact).mean() for s in range(5)]) for n in widths]
    slope = np.polyfit(np.log(widths), np.log(errs), 1)[0]
    assert -0.65 < slope < -0.35, (errs, slope)
    assert errs[-1] < a2 / np.sqrt(widths[-1])  # E|mean of N terms of sd <= A^2/sqrt(2)| <= A^2/sqrt(2N)
    np.testing.assert_allclose(exact, cosine_ntk_empirical(f, f, width=10 ** 6, sigma_w=s_w), rtol=0,
                               atol=3 * a2 / np.sqrt(10 ** 6))


def test_gaussian_float32_option(points):
    kern = GaussianKernel(0.5, dtype="float32")
    ref = gaussian(points[:200], points, width=0.5)
    assert kern.params()["dtype"] == "float32"
    assert np.max(np.abs(kern.block(points[:200], points) / ref - 1.0)) < 1e-5
    g = grads(len(points), seed=9)
    for x in (points[:200], points):
        exact = gaussian(x, points, width=0.5) @ g
        got = kern.operator(x, points, tile=128, threads=2)(g)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, exact, rtol=0, atol=1e-5 * np.abs(exact).max())


@pytest.mark.parametrize("name,kw", KERNEL_ARGS)
def test_kernels_take_a_point_set_or_a_list_as_its_points(points, name, kw):
    """A PointSet is taken by its chart-normalised .points, as fs_distance and hpcflow.cluster take it, and a list of
    rows as its array: block and apply gave NumPy's "maximum number of dimension" error or an AttributeError. One
    set given twice (ps and ps.points too) stays one set: relu_ntk's exact diagonal, bitwise the array call. The
    array calls against the FS-distance Gaussian and brute-force nearest sources."""
    ps = Hypersurface.fermat(3).sample(60, seed=4, chart=(0, 1))
    z, g = ps.points, grads(60, seed=3)
    kern = make_kernel(name, **kw)
    rows = z.tolist()
    for a, b, same in ((ps, ps, True), (rows, rows, True), (ps, z, True), (rows, ps, False), (ps, z.copy(), False)):
        ref = (z, z) if same else (z, z.copy())
        np.testing.assert_array_equal(kern.block(a, b), kern.block(*ref))
        np.testing.assert_array_equal(kern.apply(a, b, g), kern.apply(*ref, g))
        np.testing.assert_array_equal(kern.operator(a, b)(g), kern.apply(*ref, g))
    ref_block = kern.block(z, z)
    d = fs_distance(z)
    if name == "delta":
        np.testing.assert_array_equal(ref_block, np.eye(60))
    elif name == "gaussian" and not kw.get("normalize"):
        ref = gaussian(z, z, width=kw["width"])
        assert np.all(np.abs(ref_block - ref) <= gaussian_entry_error(d, kw["width"], poly_rtol=POLY_RTOL))
    with pytest.raises(ValueError, match=r"^x1 is not an array of points; pass a 2-D array \(N, n\+1\)"):
        kern.block([[1, 2], [3]], z)


@pytest.mark.parametrize("name,kw", KERNEL_ARGS)
def test_kernels_refuse_gradients_that_are_not_finite(points, monkeypatch, name, kw):
    """A nan or inf gradient entry is one ValueError naming grad_src and its first row, from apply before any work
    and from the operator's call: it made every row it reaches nan without a word (gaussian: all of them)."""
    kern = make_kernel(name, **kw)
    z1, z2 = points[:6], points[6:13]
    op = kern.operator(z1, z2)

    def no_work(*a, **k):
        raise AssertionError("apply started work on a gradient it should have refused")

    monkeypatch.setattr(kern, "features", no_work)
    monkeypatch.setattr(importlib.import_module("hpcflow.kernels.delta"), "nearest_index", no_work)
    for bad in (np.nan, np.inf, -np.inf):
        g = grads(7)
        g[4, 8], g[6, 0] = bad, bad
        for call in (lambda: kern.apply(z1, z2, g), lambda: op(g), lambda: op(g.astype(np.float32))):
            with pytest.raises(ValueError, match=r"^grad_src has 2 row\(s\) with a nan or inf entry \(row 4 first\); "
                                                 r"pass finite gradients"):
                call()


# ---- the kernel functions' arguments, and the NTKs on P^n ------------------------------------------------------

def test_kernel_functions_refuse_bad_parameters_as_the_kernel_objects_do(points):
    """gaussian(width=-1) was a delta kernel and width=nan all NaN, relu_ntk and cosine_ntk took negative standard
    deviations, cosine_amplitude(-1, 10) was negative and (1, 0) a division by zero, depth=2.5 Python's range() error:
    each is now the one-line error the kernel object gives for the same value, before any work."""
    from hpcflow.kernels.gaussian import kernel_of_distance

    z = points[:20]
    f = real_features(z)
    cases = [(lambda: gaussian(z, z, width=-1.0), lambda: make_kernel("gaussian", width=-1.0)),
             (lambda: gaussian(z, width=np.nan), lambda: GaussianKernel(np.nan)),
             (lambda: gaussian(z, width="1"), lambda: GaussianKernel("1")),
             (lambda: kernel_of_distance(np.zeros(3), -1.0), lambda: GaussianKernel(-1.0)),
             (lambda: kernel_of_distance(np.zeros(3), 1.0, form="cauchy"), lambda: GaussianKernel(1.0, form="cauchy")),
             (lambda: relu_ntk(f, f, w_std=-1.0, b_std=0.1), lambda: ReluNTKKernel(-1.0, 0.1)),
             (lambda: relu_ntk(f, f, w_std=1.0, b_std=-0.1), lambda: make_kernel("relu_ntk", w_std=1.0, b_std=-0.1)),
             (lambda: relu_ntk(f, f, w_std=1.0, b_std=0.1, depth=2.5), lambda: ReluNTKKernel(1.0, 0.1, depth=2.5)),
             (lambda: cosine_ntk(f, f, sigma_w=-1.0), lambda: CosineNTKKernel(-1.0)),
             (lambda: cosine_ntk(f, f, sigma_w=1.0, amplitude=-2.0), lambda: CosineNTKKernel(1.0, amplitude=-2.0)),
             (lambda: cosine_amplitude(-1.0, 10), lambda: CosineNTKKernel(-1.0)),
             (lambda: cosine_ntk_empirical(f, f, width=10, sigma_w=np.inf), lambda: CosineNTKKernel(np.inf))]
    for call, same in cases:
        with pytest.raises((TypeError, ValueError)) as want:
            same()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(type(want.value)) as got:
                call()
        assert str(got.value) == str(want.value) and "\n" not in str(got.value)
    for d in (0, -3, 2.5):
        with pytest.raises(ValueError, match=rf"^d={d} is invalid; pass an integer >= 1 \(real features per point"):
            cosine_amplitude(1.0, d)


def test_relu_and_cosine_functions_refuse_points_and_arrays_that_are_not_features(points):
    """relu_ntk and cosine_ntk take real features (N, d): complex points gave complex values, wrong by 24% and 700x,
    without a word. Refused naming the argument and the fix, which gives the kernel object's block bitwise."""
    z1, z2 = points[:30], points[30:70]
    f1, f2 = real_features(z1), real_features(z2)
    for name, call, kw in (("relu_ntk", relu_ntk, dict(w_std=1.4, b_std=0.3)), ("cosine_ntk", cosine_ntk,
                                                                                 dict(sigma_w=2.0))):
        for a, b, which in ((z1, z2, "f1"), (f1, z2, "f2"), (z1, None, "f1")):
            if b is None and name == "cosine_ntk":
                continue
            with pytest.raises(TypeError, match=rf"^{which} has dtype complex128; {name}\(\) takes real features "
                                                r"\(N, d\): pass real_features\(z\) for points z, or use the kernel "
                                                rf"object make_kernel\('{name}', \.\.\.\)"):
                call(a, b, **kw)
        np.testing.assert_array_equal(call(f1, f2, **kw), make_kernel(name, **kw).block(z1, z2))
        bad = f2.copy()
        bad[3, 1] = np.nan
        for a, b, match in ((f1[0], f2, r"^f1 has shape \(10,\); pass real features as a 2-D array \(N, d\)"),
                            (f1, f2[:, :6], r"^f2 has shape \(40, 6\) but f1 has shape \(30, 10\); pass both with "
                                            r"the same number of features d"),
                            (f1, bad, r"^f2 has 1 row\(s\) with a nan or inf entry \(row 3 first\)")):
            with pytest.raises(ValueError, match=match):
                call(a, b, **kw)
        with pytest.raises(TypeError, match=r"^f1 has dtype <U3; pass real features as numbers"):
            call(np.array([["abc"] * 10]), f2, **kw)


def test_real_features_refuse_what_is_no_array_of_points(points):
    """real_features(z[0]) raised NumPy's AxisError, and a row of zeros gave features of no point of P^n."""
    with pytest.raises(ValueError, match=r"^z has shape \(5,\); pass points as a 2-D array \(N, n\+1\).*z\[None\]\)$"):
        real_features(points[0])
    z = points[:6].copy()
    z[2] = 0.0
    with pytest.raises(ValueError, match=r"^z row 2 has all coordinates 0 \(no point of P\^n\)"):
        real_features(z)
    with pytest.raises(TypeError, match=r"^z has dtype object; pass points as numbers"):
        real_features(points[:6].astype(object))


def _chart_normalised_by_hand(z):
    """Each row divided by its coordinate of largest modulus (the paper's patch, sec. 3.1)."""
    return z / z[np.arange(len(z)), np.argmax(np.abs(z), axis=1)][:, None]


def _ntk_by_formula(name, kw, z1, z2):
    """The NTK of the module docstrings, entry by entry from the layer maps, on (Re z, Im z) of points z already
    chart-normalised: ReLU, Sigma0 = W^2 x.x'/d + b^2 and per layer Sigma' = W^2 sqrt(Sigma Sigma') (sin t + (pi - t)
    cos t) / (2 pi) + b^2, Theta' = Sigma' + W^2 (pi - t) / (2 pi) Theta; cosine, A^2/2 exp(-s_w^2 |x - x'|^2/(2d))
    with A^2 = 2 (s_w / sqrt(2 pi d))^d."""
    x1 = np.concatenate([z1.real, z1.imag], axis=1)
    x2 = np.concatenate([z2.real, z2.imag], axis=1)
    d = x1.shape[1]
    if name == "cosine_ntk":
        s = kw["sigma_w"]
        a2 = 2.0 * (s / np.sqrt(2.0 * np.pi * d)) ** d
        sq = np.array([[np.sum((p - q) ** 2) for q in x2] for p in x1])
        return 0.5 * a2 * np.exp(-s * s * sq / (2.0 * d))
    w2, b2 = kw["w_std"] ** 2, kw["b_std"] ** 2
    out = np.empty((len(x1), len(x2)))
    for r, p in enumerate(x1):
        for c, q in enumerate(x2):
            sxx, syy, sxy = w2 * p @ p / d + b2, w2 * q @ q / d + b2, w2 * p @ q / d + b2
            theta = sxy
            for _ in range(kw.get("depth", 1)):
                t = np.arccos(np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0))
                sxy = w2 * np.sqrt(sxx * syy) * (np.sin(t) + (np.pi - t) * np.cos(t)) / (2.0 * np.pi) + b2
                theta = sxy + w2 * (np.pi - t) / (2.0 * np.pi) * theta
                sxx, syy = w2 * sxx / 2.0 + b2, w2 * syy / 2.0 + b2
            out[r, c] = theta
    return out


@pytest.mark.parametrize("name,kw", [("relu_ntk", dict(w_std=1.4, b_std=0.3)),
                                     ("relu_ntk", dict(w_std=1.4, b_std=0.3, depth=3)),
                                     ("cosine_ntk", dict(sigma_w=3.0))])
def test_ntk_kernels_are_functions_on_projective_space(name, kw):
    """The ReLU and cosine NTKs take (Re z, Im z) of chart-normalised points (the coordinate of largest modulus 1):
    the same points given as unit vectors, each row times its own complex factor, or in charts whose scale
    coordinate is not the largest (X.point_set(chart=)) changed block and apply by up to 78%. Each is now the NTK of
    the formulas on the points chart-normalised by hand; the sampler's points keep their bits."""
    X = Hypersurface.fermat(3)
    ps = X.sample(70, seed=21)
    z = ps.points
    rng = np.random.default_rng(2)
    lam = 10.0 ** rng.uniform(-3, 3, size=(70, 1)) * np.exp(2j * np.pi * rng.uniform(size=(70, 1)))
    az = np.abs(z)
    second = np.argsort(-az, axis=1)[:, 1]  # another admissible scale coordinate (nonzero on these points)
    other = X.point_set(z, chart=np.stack([second, np.where(ps.chart[:, 1] == second, ps.chart[:, 0],
                                                             ps.chart[:, 1])], axis=1)).points
    assert np.all(np.abs(other).max(axis=1) > 1.0)  # not the paper's patch: a coordinate above 1
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    want = _ntk_by_formula(name, kw, _chart_normalised_by_hand(z * lam)[:25], _chart_normalised_by_hand(z * lam)[25:])
    g = grads(45, seed=4)
    kern = make_kernel(name, **kw)
    for given in (unit, z * lam, other, z):
        np.testing.assert_allclose(kern.block(given[:25], given[25:]), want, rtol=1e-11, atol=0)
        np.testing.assert_allclose(kern.apply(given[:25], given[25:], g), want @ g, rtol=0,
                                   atol=1e-11 * (np.abs(want) @ np.abs(g)).max())
    # the sampler's points are taken as they are: features (Re z, Im z) bitwise, and the same block as before
    assert np.array_equal(real_features(z), np.concatenate([z.real, z.imag], axis=1))
    raw1, raw2 = (np.concatenate([p.real, p.imag], axis=1) for p in (z[:25], z[25:]))
    call = relu_ntk if name == "relu_ntk" else cosine_ntk
    assert np.array_equal(kern.block(z[:25], z[25:]), call(raw1, raw2, **kw))


@pytest.mark.parametrize("name,kw", KERNEL_ARGS)
def test_kernels_refuse_a_row_of_zeros_before_any_work(points, monkeypatch, name, kw):
    """All coordinates 0 is no point of P^n: relu_ntk and cosine_ntk gave it a kernel value, the others refused it
    from projector_features naming "z", not the argument. One ValueError naming the set and its first such row."""
    kern = make_kernel(name, **kw)

    def no_work(*a, **k):
        raise AssertionError("the kernel started work on points it should have refused")

    monkeypatch.setattr(kern, "features", no_work)
    monkeypatch.setattr(importlib.import_module("hpcflow.kernels.delta"), "nearest_index", no_work)
    z = points[:13].copy()
    z[[2, 4]] = 0.0
    z[[8, 11]] = 0.0
    x, xs, g = z[:6], z[6:13], grads(7)
    for call, which in ((lambda: kern.block(x, points[:7]), "x1"), (lambda: kern.block(points[:6], xs), "x2"),
                        (lambda: kern.apply(x, points[:7], g), "x"), (lambda: kern.apply(points[:6], xs, g), "x_src"),
                        (lambda: kern.operator(points[:6], xs), "x_src"), (lambda: kern.operator(x, x), "x")):
        with pytest.raises(ValueError, match=rf"^{which} has 2 point\(s\) with all coordinates 0 \(row 2 first\), no "
                                             r"point of P\^n; pass homogeneous coordinates, not all 0$"):
            call()


def test_cosine_ntk_empirical_takes_its_seed_as_every_api_seed(points):
    """seed=2.0 was NumPy's TypeError from SeedSequence, seed=-1 a NumPy ValueError naming no argument, seed=True the
    draw of seed 1: a whole number >= 0 in any form is that int's draw, a fraction, bool, string or negative number
    one error naming seed, as `sample`'s."""
    f = real_features(points[:6])
    kw = dict(width=50, sigma_w=2.0)
    two = cosine_ntk_empirical(f, f, seed=2, **kw)
    for same in (2.0, np.int64(2), np.float64(2.0)):
        assert np.array_equal(cosine_ntk_empirical(f, f, seed=same, **kw), two)
    assert not np.array_equal(cosine_ntk_empirical(f, f, seed=1, **kw), two)
    big = cosine_ntk_empirical(f, f, seed=2 ** 70, **kw)  # any size, as sample's
    assert big.shape == (6, 6) and np.all(np.isfinite(big))
    assert cosine_ntk_empirical(f, f, seed=None, **kw).shape == (6, 6)  # a fresh draw
    for bad, exc in ((True, TypeError), (np.bool_(False), TypeError), ("2", TypeError), (-1, ValueError),
                     (2.5, ValueError), (float("nan"), ValueError), (-2 ** 70, ValueError)):
        with pytest.raises(exc, match=r"^seed=.* is invalid; pass an integer >= 0 \(of any size\), or None for a "
                                      r"fresh draw$"):
            cosine_ntk_empirical(f, f, seed=bad, **kw)


def test_make_kernel_names_itself_the_kernel_and_the_key_of_a_missing_or_unknown_parameter():
    """make_kernel('gaussian') was Python's "GaussianKernel.__init__() missing 1 required positional argument" and
    make_kernel('delta', width=1) "DeltaKernel() takes no arguments": one TypeError naming make_kernel, the kernel, the
    key and what the kernel takes. Every key of the docstring's is one the kernel's class takes."""
    for kw, match in [
            ({}, r"^make_kernel\('gaussian'\): width is required for the gaussian kernel, which takes width "
                 r"\(required\), form, normalize, method, dtype, engine; add width=\.\.\.$"),
            (dict(width=0.5, sigma=1.0), r"^make_kernel\('gaussian'\): sigma is not a parameter of the gaussian "
                                         r"kernel, which takes width \(required\), form, .*; remove it$"),
            (dict(form="exp", widht=0.5, normalise="row"), r"^make_kernel\('gaussian'\): widht, normalise are not "
                                                           r"parameters of the gaussian kernel.*; remove them$")]:
        with pytest.raises(TypeError, match=match):
            make_kernel("gaussian", **kw)
    with pytest.raises(TypeError, match=r"^make_kernel\('delta'\): width is not a parameter of the delta kernel, "
                                        r"which takes no parameters; remove it$"):
        make_kernel("delta", width=1)
    with pytest.raises(TypeError, match=r"^make_kernel\('relu_ntk'\): w_std, b_std are required for the relu_ntk "
                                        r"kernel, which takes w_std \(required\), b_std \(required\), depth; add "
                                        r"w_std=\.\.\., b_std=\.\.\.$"):
        make_kernel("relu_ntk")
    with pytest.raises(TypeError, match=r"^make_kernel\('cosine_ntk'\): b_std is not a parameter of the cosine_ntk"):
        make_kernel("cosine_ntk", sigma_w=1.0, b_std=0.1)
    with pytest.raises(ValueError, match=r"^kernel 'gauss' is not one of \['cosine_ntk', 'delta', 'gaussian'"):
        make_kernel("gauss", width=1.0)
    # the job file's normalize = "none" is None in the API: the string is refused naming None
    with pytest.raises(ValueError, match=r"normalize='none' is not one of \(None, 'row'\) \(a job file's normalize "
                                         r"= \"none\" is normalize=None here\)"):
        make_kernel("gaussian", width=0.5, normalize="none")
    assert make_kernel("gaussian", width=0.5, normalize=None).normalize is None
    # the docstring lists every kernel with every parameter its class takes
    doc = make_kernel.__doc__
    for name, cls in KERNELS.items():
        params = inspect.signature(cls).parameters
        line = next(line for line in doc.splitlines() if line.strip().startswith(f"- {name}("))
        listed = re.findall(r"(\w+)(?:=[^,)]*)?[,)]", line.split("(", 1)[1].split(")", 1)[0] + ")")
        assert listed == list(params), (name, listed)
    built = make_kernel("gaussian", width=0.5, form="gauss", normalize="row", method="direct", dtype="float32",
                        engine="numpy").params()
    assert (built["form"], built["normalize"], built["method"], built["dtype"], built["engine"]) == \
        ("gauss", "row", "direct", "float32", "numpy")


# ---- z2 / x2 None: a set with itself, for every kernel ------------------------------------------------------------
SELF_KERNELS = [DeltaKernel(), GaussianKernel(0.4), GaussianKernel(0.4, normalize="row"),
                ReluNTKKernel(w_std=1.0, b_std=0.5), CosineNTKKernel(sigma_w=1.0)]


@pytest.mark.parametrize("kern", SELF_KERNELS, ids=lambda k: f"{k.name}-{getattr(k, 'normalize', None)}")
def test_x2_none_is_x1_with_itself_for_every_kernel(kern):
    """block(z, None), block(z), apply(z, None, g) and operator(z, None) are the set with itself, as the functions
    gaussian(z, None), relu_ntk(f, None), cosine_ntk(f, None) take it (DeltaKernel's and GaussianKernel's block
    raised "z2 has dtype object")."""
    z = Hypersurface.fermat(3).sample(30, seed=3).points
    g = grads(30)
    ref = kern.block(z, z)
    np.testing.assert_array_equal(kern.block(z, None), ref)
    np.testing.assert_array_equal(kern.block(z), ref)
    np.testing.assert_array_equal(kern.apply(z, None, g), kern.apply(z, z, g))
    np.testing.assert_array_equal(kern.operator(z, None)(g), kern.operator(z, z)(g))


def test_z2_none_is_z1_with_itself_for_every_kernel_function():
    """delta(z, None) is the identity of distinct points (each its own nearest), as gaussian(z, None) is K(z, z)
    (delta raised "z2 has dtype object; pass points as numbers")."""
    z = Hypersurface.fermat(3).sample(30, seed=3).points
    f = real_features(z)
    np.testing.assert_array_equal(delta(z, None), np.eye(30))
    np.testing.assert_array_equal(delta(z), np.eye(30))
    np.testing.assert_array_equal(gaussian(z, None, width=0.4), gaussian(z, z, width=0.4))
    np.testing.assert_array_equal(relu_ntk(f, None, w_std=1.0, b_std=0.5), relu_ntk(f, f, w_std=1.0, b_std=0.5))
    np.testing.assert_array_equal(relu_ntk(f, w_std=1.0, b_std=0.5), relu_ntk(f, f, w_std=1.0, b_std=0.5))
    np.testing.assert_array_equal(cosine_ntk(f, sigma_w=1.0), cosine_ntk(f, f, sigma_w=1.0))
