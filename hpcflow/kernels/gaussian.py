"""Gaussian kernel in the Fubini-Study geodesic distance (eq. 3.6), Theta_IJ(x, x') = delta_IJ K(x, x').

Forms (d = FS distance in [0, pi/2], eq. 3.2, with the noise floor of eq. 3.4; w = `width`):
  form="exp"   K = exp(-d / (2 w))          -- eq. 3.6 as printed (sigma = w)
  form="gauss" K = exp(-d^2 / (2 w^2))      -- the usual Gaussian of width w

Table 1 lists sigma = 30. Read literally in eq. 3.6 (form="exp", width=30) the kernel varies only between
1 and exp(-pi/120) = 0.974 over all of X (d <= pi/2): it is nearly constant, every point gets almost the same
update, and it can give neither the train gains ~10^6 of Fig. 3, nor the "narrow Gaussians" the text says the
optimiser preferred, nor a reason for the noise-floor remark of eq. 3.4 (a distance of 3e-4 must matter). A
reading consistent with the text is sigma = 30 as an inverse width, K = exp(-30 d / 2), i.e. form="exp",
width=1/30 (K = 0.02 at d = 0.25, a typical nearest-neighbour distance at 2500 points). Both are available;
the job file states which one it uses.

dtype="float32" is an explicit speed option (tile arithmetic and the product in float32, sums over tiles in
float64; pairs closer than 0.03 exact); the default and everything else is float64. The relative error of K is
that of d times d/(2w) ("exp") or d^2/w^2 ("gauss"). Float32 rounding of c = cos^2 d (~1e-7) moves d by <= 6e-7
for d < 1.4 but by up to ~7e-8/cos d towards pi/2 (at most ~sqrt(1e-7) = 3e-4 where cos d -> 0), so the error is
largest for the farthest pairs and grows with how near pi/2 a sample reaches. Measured against exp(-d/2w) of
fs_distance on three samples of 1500 quintic points (largest relative error, at d ~ pi/2): 0.75-1.4e-5 at w = 1,
2-4.7e-7 at w = 30, 2.3-4.2e-4 at w = 1/30 (entries > 1e-30), 2.6-5.0e-4 for "gauss" at w = 0.3 (there K ~ 1e-6).
Entries below float32's normal range (1.2e-38) lose digits, and those below ~7e-46 are 0.

The kernel is symmetric, but in FS distance it is not positive semidefinite at wide widths: measured smallest /
largest eigenvalue of K on 1000 quintic points -0.073 / 981 ("exp", w = 30), -0.63 / 569 (w = 1), -2.8 / 525
("gauss", w = 1), -0.013 / 106 ("gauss", w = 0.5); positive definite at w <= 0.3 for both forms (two samples).

normalize="row" divides each row by its sum, K(x, x') / sum_x' K(x, x'), so the update at x is a K-weighted
average of the source gradients: "normalising the updates such that they are sizable" (sec. 3.2) for any width.
`apply`, `operator` and `block` all give the normalised kernel (block(x1, x2) @ grad == apply(x1, x2, grad));
only the raw tiles (`tile_block`, `GaussianOperator.tile_rows`) are unnormalised, their sums divided afterwards.
With K = exp(-D/s) (D = d, s = 2w for "exp"; D = d^2, s = 2w^2 for "gauss") the row is evaluated as
exp(-(D - m)/s) / sum exp(-(D - m)/s), m = min over the row's sources of D (the log-sum-exp shift): the same
ratio, but the nearest source weighs exactly 1, so no row sum underflows to 0 (0/0) however narrow the kernel,
and as w -> 0 the row tends to the nearest-neighbour kernel (ties: equal shares). The shift is applied on the
direct path (method="direct", and every width whose K falls below 1e-250 on [0, pi/2]); the polynomial and its
compiled loop run only where every K is >= 1e-250 (float32: >= NORMAL_FLOOR), so their row sums cannot
underflow and are divided unshifted. Tiled sums keep a running minimum of D per row and rescale the partial sums
when it drops (streaming softmax, one pass); when x_src is x each row's minimum is its own point's D = 0 (exact
near pair), so the train-on-train tiles, tile pairs included, need no shift.

Fast evaluation: c = cos^2 d = <P, P'> is one real matmul of projector features (25 columns for P^4); then
K = F(q) with q = tan(d/4) = sqrt(1 - t) / (sqrt 2 + sqrt(1 + t)), t = sqrt c = cos d, q in [0, tan(pi/8)],
where F(q) = f(4 atan q) is analytic in an ellipse around the short interval (singularities at q = +-i only; a
polynomial in c or sqrt c would have to follow the sqrt-type singularities at d = 0 or d = pi/2; sin(d/2) or
tan(d/2) need ~19 instead of ~11 terms), so a Chebyshev-fitted polynomial P with K = P^(2^k) (degree and k
chosen at construction, max relative error <= POLY_RTOL checked on a dense grid; else exact arccos + exp)
replaces arccos and exp: 3 sqrt, 1 division and ~2 deg cheap in-place passes per entry (engine="numba", the
default where Numba is installed: one compiled loop over the tile instead, `hpcflow.kernels.jit`; a job's run of
fewer kernel entries than `jit.AUTO_NUMBA_ENTRIES` keeps the passes, which end before Numba has started).
Pairs closer than `near_distance` (>= STABLE_BELOW; where c = 1 - O(d^2) loses digits) are found once per
operator with a KD-tree and overwritten with the stable distance of `fs_distance_paired`.
Accuracy (float64, vs exp(-d/2w) of `fs_distance`): max relative error measured 1.0e-13 (w = 30), 1.1e-13
(w = 1), 2.5e-13 (w = 0.1), 6.5e-13 (w = 1/30) on 300 x 2000 quintic pairs. Rounding of c makes
cos d uncertain by ~1e-16/cos d near d = pi/2, so for very narrow kernels the relative error grows where K is
negligible anyway (w = 0.01: 2.5e-12 relative on entries ~1e-34).
"""

from __future__ import annotations

import functools
import threading

import numpy as np
from numpy.polynomial import chebyshev as cheb

from hpcflow.backend import array_module, to_host
from hpcflow.geometry.distance import NOISE_FLOOR, STABLE_BELOW, fs_distance, fs_distance_paired, projector_features
from hpcflow.arguments import api_number
from hpcflow.kernels import jit
from hpcflow.kernels.base import DEFAULT_TILE, Kernel, TiledOperator, check_point_sets

FORMS = ("exp", "gauss")
NORMALIZE = (None, "row")
METHODS = ("auto", "poly", "direct")
#: who evaluates the polynomial's element-wise passes on the host: "numba" one compiled loop (`jit`), "numpy"
#: ~35 array passes; "auto" = numba when it is installed (float64; float32 tiles and device arrays use NumPy). A
#: job builds its kernel with "numpy" for "auto" where its run's kernel entries would not repay Numba's start in a
#: fresh process (`jit.engine_for`, `jit.AUTO_NUMBA_ENTRIES`)
ENGINES = ("auto", "numba", "numpy")
#: polynomial accepted when its max relative error on [0, pi/2] is below this
POLY_RTOL = 5e-13
#: the same for dtype="float32" (an explicit speed option): the polynomial's own error, well below that of float32
#: d near pi/2, which sets K's relative error (module docstring: up to ~1.4e-5 at w = 1, ~4e-4 at w = 1/30, ~5e-4
#: for "gauss" at w = 0.3)
POLY_RTOL_FLOAT32 = 1e-7
DTYPES = {"float64": np.float64, "float32": np.float32}
#: float32 cos^2 d carries ~6e-8 absolute error, i.e. ~3e-8/d in d: pairs below this use the stable distance
STABLE_BELOW_FLOAT32 = 3e-2
#: largest near-pair radius used for narrow exp-form kernels (see `near_distance`)
NARROW_CAP = 5e-2
POLY_MAX_DEGREE = 24
#: rows of one KD-tree ball query of `GaussianOperator._near_pairs`: its Python lists of hits (~40 bytes a hit,
#: ~60 a row) exist for these rows only, and the stable distances' temporaries for their pairs only
NEAR_QUERY_ROWS = 1024
#: a row-normalised polynomial kernel needs every K above this (its dtype's smallest normal over eps): the
#: row sums then stay normal and subnormal rounding is below eps of them; below it the shifted direct path runs
NORMAL_FLOOR = {np.float64: np.finfo(np.float64).tiny / np.finfo(np.float64).eps,
                np.float32: float(np.finfo(np.float32).tiny / np.finfo(np.float32).eps)}
V_MAX = np.tan(np.pi / 8)  # q = tan(d/4) for d in [0, pi/2]


def distance_of(q):
    """FS distance d = 4 atan(q) from the polynomial variable q = tan(d/4)."""
    return 4.0 * np.arctan(q)


def check_width(width) -> float:
    """The kernel width w as a finite float > 0, or one TypeError/ValueError naming it (a negative width made the
    kernel a delta, nan made it NaN, without a word)."""
    return api_number("width", width, "a finite number > 0 (the kernel width w)", lo=0.0, lo_open=True)


def check_form(form) -> str:
    """`form`, one of FORMS, or one ValueError naming it."""
    if form not in FORMS:
        raise ValueError(f"form={form!r} is not one of {FORMS}")
    return form


def kernel_of_distance(d, width: float, form: str = "exp"):
    """K as a function of the FS distance d (see module docstring). The scale s of exp(-D/s) is kept at least the
    smallest normal number of d's dtype, so K(0) = 1 where 2 w^2 underflows (the limit w -> 0 is d == 0's indicator).
    A width or form that is not one is refused (`check_width`, `check_form`)."""
    return _of_distance(d, check_width(width), check_form(form))


def _of_distance(d, width: float, form: str):
    """`kernel_of_distance` for a checked width and form (the tiles' and the polynomial fit's, whose widths 2^k w
    may exceed the float range: K = 1 there)."""
    xp = array_module(d)
    scale = 2.0 * width if form == "exp" else 2.0 * width * width
    scale = max(scale, float(np.finfo(np.result_type(getattr(d, "dtype", np.float64), np.float32)).tiny))
    if form == "exp":
        return xp.exp(-d / scale)
    return xp.exp(-(d * d) / scale)


def gaussian(z1, z2=None, *, width: float, form: str = "exp"):
    """Gaussian kernel block K(z1, z2) (N1, N2) from the FS distance (eq. 3.6), reference implementation (z2 None:
    z1 with itself)."""
    width, form = check_width(width), check_form(form)  # before the distances are formed
    return _of_distance(fs_distance(z1, z2), width, form)


@functools.lru_cache(maxsize=64)
def fit_polynomial(width: float, form: str, *, rtol: float = POLY_RTOL, max_degree: int = POLY_MAX_DEGREE):
    """(coef, k): K(4 atan q) = P(q)^(2^k) on [0, tan(pi/8)] with max relative error < rtol, or None.

    P (power-series coefficients, low to high) is the Chebyshev interpolant of K^(1/2^k), the same kernel
    with its exponent divided by 2^k, which is smooth enough for a low degree; k squarings restore K and
    multiply the relative error by ~2^k, which the dense-grid check includes. The cheapest (2 deg + k
    passes) accepted pair is returned.
    """
    grid = np.linspace(0.0, V_MAX, 2001)
    with np.errstate(divide="ignore", invalid="ignore"):  # 2 w^2 = 0 (w < 1e-154): 0/0 at d = 0, no fit
        exact = _of_distance(distance_of(grid), width, form)
    if not exact.min() >= 1e-250:
        return None
    best = None
    for k in range(0, 16):
        if best is not None and k >= best[2]:
            break
        scaled = width * 2.0 ** (k / 2.0) if form == "gauss" else width * 2.0 ** k

        def f(y, scaled=scaled):  # K^(1/2^k) at q = (y + 1) V_MAX / 2, y in [-1, 1]
            return _of_distance(distance_of(0.5 * V_MAX * (y + 1.0)), scaled, form)

        tail = np.abs(cheb.chebinterpolate(f, 40))
        p_min = exact.min() ** (1.0 / 2 ** k)
        for deg in range(2, max_degree + 1):
            if best is not None and 2 * deg + k >= best[2]:
                break
            if (tail[deg + 1] + tail[deg + 2]) * 2.0 ** k > rtol * p_min:
                continue
            series = cheb.Chebyshev(cheb.chebinterpolate(f, deg), domain=[0.0, V_MAX])
            coef = series.convert(kind=np.polynomial.Polynomial, domain=[-1, 1], window=[-1, 1]).coef
            approx = horner(grid, coef)
            for _ in range(k):
                approx *= approx
            if np.max(np.abs(approx / exact - 1.0)) < rtol:
                best = (coef, k, 2 * deg + k)
                break
    return None if best is None else best[:2]


def fused_poly_source(coef, squarings: int) -> str:
    """CUDA C body of `fused_poly` (c -> out): the polynomial path's operations in the array passes' order, each
    rounded once (__dmul_rn / __dadd_rn: no fused multiply-add)."""
    k = [f"double k = __dmul_rn(q, {float(coef[-1])!r});", f"k = __dadd_rn(k, {float(coef[-2])!r});"]
    k += [f"k = __dadd_rn(__dmul_rn(k, q), {float(a)!r});" for a in coef[-3::-1]]
    return "\n".join(["double t = sqrt(fmin(fmax(c, 0.0), 1.0));",  # t = cos d
                      f"double q = sqrt(1.0 - t) / (sqrt(1.0 + t) + {float(np.sqrt(2.0))!r});",  # tan(d/4)
                      *k, *["k = __dmul_rn(k, k);"] * squarings, "out = k;"])


@functools.lru_cache(maxsize=8)
def fused_poly(coef: tuple, squarings: int):
    """The polynomial path of `GaussianKernel.tile_block` on a GPU as one CuPy element-wise kernel: one pass over
    the tile instead of ~2 deg + 12 (each a kernel launch and a round trip through memory)."""
    import cupy

    return cupy.ElementwiseKernel("float64 c", "float64 out", fused_poly_source(coef, squarings),
                                  f"hpcflow_gaussian_poly_{len(coef)}_{squarings}")


def horner(v, coef, out=None):
    """sum_k coef[k] v^k, in place in `out` (same shape as v)."""
    out = array_module(v).multiply(v, coef[-1], out=out)
    out += coef[-2]
    for a in coef[-3::-1]:
        out *= v
        out += a
    return out


class GaussianKernel(Kernel):
    """Gaussian kernel of the FS distance (eq. 3.6); see module docstring for `form` and `normalize`."""

    name = "gaussian"
    symmetric = True
    #: the tile buffers of each thread (`_buffers`): a pickled or copied kernel starts with none
    _caches = {"_local": threading.local}

    def __init__(self, width: float, *, form: str = "exp", normalize: str | None = None, method: str = "auto",
                 dtype: str = "float64", engine: str = "auto"):
        width, form = check_width(width), check_form(form)
        if normalize not in NORMALIZE:
            none = " (a job file's normalize = \"none\" is normalize=None here)" if normalize == "none" else ""
            raise ValueError(f"normalize={normalize!r} is not one of {NORMALIZE}{none}")
        if method not in METHODS:
            raise ValueError(f"method={method!r} is not one of {METHODS}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype={dtype!r} is not one of {tuple(DTYPES)}")
        if engine not in ENGINES:
            raise ValueError(f"engine={engine!r} is not one of {ENGINES}")
        if engine == "numba" and jit.numba_version() is None:
            raise ValueError(f"engine='numba' {jit.numba_unusable()}, or use engine='numpy'")
        self.width, self.form, self.normalize = width, form, normalize
        self.needs_sources = "normalize='row' averages over the source points" if normalize == "row" else None
        self.dtype = DTYPES[dtype]
        rtol = POLY_RTOL if dtype == "float64" else POLY_RTOL_FLOAT32
        fit = None if method == "direct" else fit_polynomial(self.width, form, rtol=rtol)
        if fit is not None and normalize == "row" and \
                _of_distance(np.pi / 2, self.width, form) < NORMAL_FLOOR[self.dtype]:
            if method == "poly":
                raise ValueError(f"normalize='row' with dtype={dtype!r}: K of width={width}, form={form!r} falls "
                                 "below the dtype's normal range, where the polynomial's row sums can vanish; "
                                 "use method='direct' (row-shifted exp) or dtype='float64'")
            fit = None
        self.coef, self.squarings = (None, 0) if fit is None else fit
        if method == "poly" and self.coef is None:
            raise ValueError(f"no polynomial of degree <= {POLY_MAX_DEGREE} reaches rtol {rtol} for "
                             f"width={width}, form={form!r}; use method='direct'")
        self.method = "poly" if self.coef is not None else "direct"
        #: rows normalised through exp(-(D - m)/s) (module docstring); the polynomial's K cannot underflow
        self.shift_rows = normalize == "row" and self.method == "direct"
        # s of K = exp(-D/s), kept normal in the tile dtype so that D - m = 0 gives exactly 1 at any width
        scale = 2.0 * width if form == "exp" else 2.0 * width * width
        self.scale = max(scale, float(np.finfo(self.dtype).tiny))
        compiled = engine != "numpy" and self.method == "poly" and self.dtype == np.float64 \
            and jit.numba_version() is not None
        self.engine = "numba" if compiled else "numpy"
        self._padded = jit.padded(self.coef) if compiled else None
        self._local = threading.local()

    def params(self) -> dict:
        return {"width": self.width, "form": self.form, "normalize": self.normalize, "method": self.method,
                "poly_degree": None if self.coef is None else len(self.coef) - 1, "squarings": self.squarings,
                "dtype": np.dtype(self.dtype).name, "engine": self.engine}

    def features(self, x):
        return array_module(x).ascontiguousarray(projector_features(x), dtype=self.dtype)

    def _buffers(self, shape, xp):
        loc = self._local
        if getattr(loc, "shape", None) != shape or getattr(loc, "xp", None) is not xp:
            loc.shape, loc.xp = shape, xp
            loc.a, loc.b = xp.empty(shape, dtype=self.dtype), xp.empty(shape, dtype=self.dtype)
        return loc.a, loc.b

    def tile_block(self, f1, f2):
        """K from projector features (without the near-pair correction; see GaussianOperator)."""
        xp = array_module(f1)
        a, b = self._buffers((f1.shape[0], f2.shape[0]), xp)
        xp.matmul(f1, f2.T, out=a)  # c = cos^2 d
        if self.engine == "numba" and xp is np:
            return jit.gaussian_poly(a, self._padded, self.squarings)
        if self.method == "direct":
            return self.of_distance(self._arccos(a, xp))
        if xp is not np and self.dtype == np.float64:
            return fused_poly(tuple(self.coef), self.squarings)(a, a)
        xp.clip(a, 0.0, 1.0, out=a)
        xp.sqrt(a, out=a)  # t = cos d
        xp.subtract(1.0, a, out=b)  # 1 - t = 2 sin^2(d/2)
        a += 1.0  # 1 + t = 2 cos^2(d/2)
        xp.sqrt(a, out=a)
        a += np.sqrt(2.0)
        xp.sqrt(b, out=b)
        b /= a  # q = tan(d/4) = sin(d/2) / (1 + cos(d/2))
        horner(b, self.coef, out=a)
        for _ in range(self.squarings):
            a *= a
        return a

    @staticmethod
    def _arccos(a, xp):
        """In place: c = cos^2 d -> d (the direct path's distance, noise floor applied)."""
        xp.clip(a, 0.0, 1.0, out=a)
        xp.sqrt(a, out=a)  # t = cos d
        xp.arccos(a, out=a)
        a[a < NOISE_FLOOR] = 0.0
        return a

    def tile_distance(self, f1, f2):
        """FS distance d of the direct path for feature rows f1, f2 (without the near-pair correction)."""
        xp = array_module(f1)
        a, _ = self._buffers((f1.shape[0], f2.shape[0]), xp)
        xp.matmul(f1, f2.T, out=a)  # c = cos^2 d
        return self._arccos(a, xp)

    def of_distance(self, d):
        """K of the direct path from FS distances d, in place: kernel_of_distance's, and with normalize="row"
        exp(-D/s) (the same bits wherever 2 w^2 is a normal number, and 1 at d = 0 for any width)."""
        if not self.shift_rows:
            return _of_distance(d, self.width, self.form)
        if self.form == "gauss":
            d *= d
        return self.shifted(d)

    def shifted(self, e, low=None):
        """In place: D -> exp(-(D - low)/s) for a tile D, `low` (one per row) the shift m, e.g. each row's minimum
        of D (None: 0)."""
        xp = array_module(e)
        if low is not None:
            e -= low[:, None]
        e /= -self.scale
        return xp.exp(e, out=e)

    def _operator(self, x, x_src, *, tile: int, threads: int | None, cache_bytes: int):
        return GaussianOperator(self, x, x_src, tile=tile, threads=threads, cache_bytes=cache_bytes)

    def block(self, x1, x2=None):
        """The matrix the flow applies, (N1, N2): K(x1, x2) (x2 None: x1 with itself) with exact near pairs, and
        with normalize="row" each row divided by its sum, K(x, x') / sum_x'' K(x, x''), so block(x1, x2) @ grad ==
        apply(x1, x2, grad) to rounding for either setting. (The tiles of `operator` stay unnormalised: its sums
        are divided there.)"""
        x1, x2 = check_point_sets(self, ("x1", "x2"), x1, x2)
        op = GaussianOperator(self, x1, x2, tile=max(1, x2.shape[0]), threads=1)
        if op.shift:
            e = op.distance_rows(0, x1.shape[0], 0, x2.shape[0]).copy()
            k = self.shifted(e, e.min(axis=1))
        else:
            k = op.tile_rows(0, x1.shape[0], 0, x2.shape[0]).copy()
        if self.normalize == "row":
            k /= k.sum(axis=1, keepdims=True)
        return k


def near_distance(kernel) -> float:
    """Below this FS distance K is set from the stable distance instead of c = cos^2 d.

    Rounding of c (~1e-16) moves d by ~1e-16/(2d); for form="exp" that is a relative error ~1e-16/(4 d w) of
    K, kept below ~2.5e-13 by d >= 1e-4/w (capped at NARROW_CAP); never below STABLE_BELOW (as fs_distance).
    """
    if kernel.dtype != np.float64:
        return STABLE_BELOW_FLOAT32
    if kernel.form == "exp":
        return min(max(STABLE_BELOW, 1e-4 / kernel.width), NARROW_CAP)
    return STABLE_BELOW


class GaussianOperator(TiledOperator):
    """Tiled K @ grad for the Gaussian kernel with exact near pairs and optional row normalisation."""

    def __init__(self, kernel: GaussianKernel, x, x_src, *, tile: int = DEFAULT_TILE, threads: int | None = None,
                 cache_bytes: int = 0):
        super().__init__(kernel, x, x_src, tile=tile, threads=threads, cache_bytes=cache_bytes)
        self.pair_rows, self.pair_cols, self.pair_dist = self._near_pairs(x, x_src)
        #: rows summed as exp(-(D - m)/s) (module docstring); x_src is x: m = 0, the plain tiles are the same
        self.shift = kernel.shift_rows and not self.same

    @functools.cached_property
    def pair_vals(self):
        """Unshifted K of the near pairs (for `tile_rows`; a shifted operator never needs them)."""
        return self.kernel.of_distance(self.pair_dist.copy())

    def _near_pairs(self, x, x_src):
        """Pairs closer than `near_distance` (KD-tree on projector features, on the host), sorted by row, their
        stable FS distance. The rows are queried NEAR_QUERY_ROWS at a time: a ball query returns a Python list of
        hits per row, ~40 bytes a hit and ~60 a row, so one query of every row held all of them at once."""
        from scipy.spatial import cKDTree  # here, not at import: ~0.2 s of every command's start-up

        below = near_distance(self.kernel)
        radius = np.sqrt(2.0) * np.sin(below)
        tree = cKDTree(to_host(self.f_src))
        f, x, x_src = to_host(self.f), to_host(x), to_host(x_src)
        rows, cols, dist = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
        for r0 in range(0, f.shape[0], NEAR_QUERY_ROWS):
            hits = tree.query_ball_point(f[r0:r0 + NEAR_QUERY_ROWS], r=radius)
            r = np.repeat(np.arange(r0, r0 + len(hits), dtype=np.int64), [len(h) for h in hits])
            c = np.fromiter((j for h in hits for j in h), dtype=np.int64, count=r.size)
            del hits
            if r.size:
                rows.append(r)
                cols.append(c)
                dist.append(fs_distance_paired(x[r], x_src[c]))
        return np.concatenate(rows), np.concatenate(cols), np.concatenate(dist)

    def _put_pairs(self, k, vals, r0, r1, c0, c1):
        """In place: the near pairs' entries of the tile k (rows r0:r1, columns c0:c1) set from vals."""
        lo, hi = np.searchsorted(self.pair_rows, [r0, r1])
        if hi > lo:
            rr, cc = self.pair_rows[lo:hi], self.pair_cols[lo:hi]
            m = (cc >= c0) & (cc < c1)
            if m.any():
                xp = array_module(k)
                k[xp.asarray(rr[m] - r0), xp.asarray(cc[m] - c0)] = xp.asarray(vals[lo:hi][m])
        return k

    def tile_rows(self, r0, r1, c0, c1):
        """Unnormalised K tile (exact near pairs) whatever `normalize`: __call__ and the flow's tile-pair sums
        divide by the row sums after summing tiles."""
        return self._put_pairs(self.kernel.tile_block(self.f[r0:r1], self.f_src[c0:c1]), self.pair_vals,
                               r0, r1, c0, c1)

    def distance_rows(self, r0, r1, c0, c1):
        """D of K = exp(-D/s) for rows r0:r1, columns c0:c1: d (form "exp") or d^2 ("gauss"), exact near pairs."""
        d = self._put_pairs(self.kernel.tile_distance(self.f[r0:r1], self.f_src[c0:c1]), self.pair_dist,
                            r0, r1, c0, c1)
        if self.kernel.form == "gauss":
            d *= d
        return d

    def _rows(self, r0, r1, grad, out):
        """out[r0:r1] = sum over column tiles of exp(-(D - m)/s) @ grad, m the running row minimum of D: the
        sums so far are rescaled by exp(-(m_old - m)/s) when a tile brings a nearer source (one pass)."""
        if not self.shift:
            return super()._rows(r0, r1, grad, out)
        xp = array_module(grad)
        acc = out[r0:r1]
        acc[...] = 0.0
        low = None
        for c0 in range(0, self.n_src, self.tile):
            c1 = min(c0 + self.tile, self.n_src)
            e = self.distance_rows(r0, r1, c0, c1)
            m = e.min(axis=1) if low is None else xp.minimum(low, e.min(axis=1))
            if low is not None:
                acc *= xp.exp((m - low) / self.kernel.scale)[:, None]
            low = m
            acc += self.kernel.shifted(e, low) @ grad[c0:c1]

    def _fill_dense(self, r0, r1):
        """The cached rows r0:r1: exp(-(D - m)/s) with m their minimum over all columns (plain tiles unshifted)."""
        if not self.shift:
            return super()._fill_dense(r0, r1)
        rows = self.dense[r0:r1]
        for c0 in range(0, self.n_src, self.tile):
            c1 = min(c0 + self.tile, self.n_src)
            rows[:, c0:c1] = self.distance_rows(r0, r1, c0, c1)
        self.kernel.shifted(rows, rows.min(axis=1))

    def _product(self, grad):
        if self.kernel.normalize != "row":
            return super()._product(grad)
        xp = array_module(grad)
        ext = xp.concatenate([grad, xp.ones((grad.shape[0], 1))], axis=1)
        out = super()._product(ext)
        return out[:, :-1] / out[:, -1:]
