"""Rules of PointSet files, shared by `PointSet.load` (a file's attributes and datasets) and `PointSet.save` (what it
is about to write), so that save never writes a file that load refuses.

Attributes: kind, a manifold definition, JSON seed, n_dropped a count. Layout: kinds and shapes of the five
datasets for N points on P^n. Values: finite; weights and |Omega|^2 > 0; charts (I, J) that exist;
chart-normalised points on X (ON_X_TOL, and within roundoff: `admissible`) in charts that cover them; Hermitian
g_FS. Agreement: g_FS, |Omega|^2 and the weights are those that the points and charts give (`charts.point_data`),
within a bound on the float64 roundoff of computing them that carries the conditioning of dp/dz and of det g
(`agreement_tolerances`). Float datasets are float64 / complex128, as the geometry is held: a dataset of any other
float or complex dtype is refused, naming its dtype and the conversion: lower precision (float16, float32, complex64)
holds rounded values (complex64 points also cannot lie on X within ON_X_TOL), higher (longdouble, clongdouble) would
be rounded to float64 unsaid; the chart, exact, may be of any integer dtype.
"""

from __future__ import annotations

import json

import numpy as np

from hpcflow.arguments import short_repr
from hpcflow.errors import UserError
from hpcflow.geometry.admissible import UnfitPoint
from hpcflow.geometry.charts import local_indices

KIND = "hpcflow.PointSet"
FIELDS = ("points", "weights", "omega2", "g_fs", "chart")
#: a stored point counts as on X when |p(z)| / |z|^deg is below this (the sampler polishes to ~1e-12)
ON_X_TOL = 1e-8
#: |p(z)|/|z|^deg above which a point whose stored data disagree with it is named as moved off X: the sampler's
#: polished roots lie within float64 roundoff (~1e-17 to 1e-16 on the quintic), a point moved by 1e-9 of its norm
#: 1e-13 to 1e-10 (the direction decides; ON_X_TOL and the roundoff test `admissible` let the smaller through)
OFF_X_RESIDUAL = 1e-14
REWRITE = "rewrite the file with 'hpcflow sample'"
RECOMPUTE = "recompute the data from the points (Hypersurface.point_set(points, chart=chart)) or resample them"
#: rows checked at once against their recomputed data (~2 kB of temporaries a quintic row; 2^14 rows ran faster
#: than 2^16 or all 10^6 rows at once)
CHUNK = 1 << 14
EPS = float(np.finfo(np.float64).eps)
_KINDS = {"points": "c", "weights": "f", "omega2": "f", "g_fs": "c", "chart": "iu"}
_KIND_NAMES = {"c": "complex", "f": "float", "iu": "integer"}
_DTYPES = {"points": np.complex128, "weights": np.float64, "omega2": np.float64, "g_fs": np.complex128,
           "chart": np.int64}


class Problem(Exception):
    """A rule that one attribute or dataset breaks: `where` ("dataset 'g_fs'"), `what` is wrong and the `fix`."""

    def __init__(self, where: str, what: str, fix: str = REWRITE):
        super().__init__(f"{where} {what}; {fix}")
        self.where, self.what, self.fix = where, what, fix


def _ds(name: str) -> str:
    return f"dataset '{name}'"


# ---- attributes ---------------------------------------------------------------------------------------------
def attribute_text(attrs, name: str):
    """Attribute `name` of a mapping (h5py attrs or a dict) as str or a Python number (None if undecodable)."""
    value = attrs.get(name)
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, np.generic):
        value = value.item()
    return value


def json_attribute(attrs, name: str, default: str):
    """Attribute `name` read as JSON (numbers stored natively are accepted as they are)."""
    value = attribute_text(attrs, name) if name in attrs else default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise Problem(f"attribute {name!r}", "is not text")
    try:
        return json.loads(value)
    except ValueError:
        raise Problem(f"attribute {name!r}", "is not valid JSON") from None


def check_attributes(attrs) -> tuple:
    """(manifold, seed, n_dropped) of a PointSet file's attributes, or the Problem of the first bad one."""
    from hpcflow.geometry.hypersurface import Hypersurface

    if attribute_text(attrs, "kind") != KIND:
        raise Problem("attribute 'kind'", f"is not {KIND!r}", "pass a file written by 'hpcflow sample'")
    d = json_attribute(attrs, "manifold", "null")
    try:
        if not isinstance(d, dict):
            raise TypeError
        manifold = Hypersurface.from_definition(d)
    except (KeyError, TypeError, ValueError, OverflowError, UserError) as exc:
        why = f" ({exc})" if isinstance(exc, UserError) else ""
        raise Problem("attribute 'manifold'", f"is not a hypersurface definition{why}") from None
    seed = json_attribute(attrs, "seed", "null")
    if isinstance(seed, (bool, int, float)) and not (type(seed) is int and seed >= 0):  # the sampler's: int >= 0
        raise Problem("attribute 'seed'", f"= {json.dumps(seed)[:40]} is not a seed: a number there is the sampling "
                      "seed, an integer >= 0 (other JSON, a string or null, is kept as given)")
    n_dropped = attribute_text(attrs, "n_dropped") if "n_dropped" in attrs else 0
    if isinstance(n_dropped, str):  # an int64 (docs/outputs.md); JSON text of one as files of older builds held
        try:
            n_dropped = json.loads(n_dropped)
        except ValueError:
            pass
    if not isinstance(n_dropped, int) or isinstance(n_dropped, bool) or n_dropped < 0:
        raise Problem("attribute 'n_dropped'", f"= {short_repr(n_dropped)} must be an integer >= 0 (int64: the count "
                      "of sampled points left out)")
    return manifold, seed, n_dropped


#: longest JSON text of @drawn_rows: an HDF5 attribute in the compact storage h5py gives it holds at most 64 KiB
DRAWN_ROWS_CHARS = 60000


def drawn_rows_text(rows) -> str:
    """The rows of a draw a subset kept, as JSON runs [[start, stop], ...] (stop exclusive, in the subset's order),
    or 'null' where that text would exceed DRAWN_ROWS_CHARS (a selection too scattered to list)."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size == 0:
        return "[]"
    cut = np.flatnonzero(np.diff(rows) != 1) + 1
    starts, ends = rows[np.r_[0, cut]], rows[np.r_[cut - 1, rows.size - 1]] + 1
    if starts.size * 4 > DRAWN_ROWS_CHARS:
        return "null"
    text = json.dumps([[int(a), int(b)] for a, b in zip(starts, ends)], separators=(",", ":"))
    return text if len(text) <= DRAWN_ROWS_CHARS else "null"


def check_drawn(attrs, n: int) -> tuple:
    """(drawn_n, rows) of a subset's file (@drawn_n: the points of the draw its @seed gave; @drawn_rows: JSON runs
    of the rows it kept, or null when not listed; rows an int64 array or None), (None, None) for a whole draw (no
    @drawn_n: every file written before subsets were marked), or the Problem of the first bad one."""
    if "drawn_n" not in attrs:
        if "drawn_rows" in attrs:
            raise Problem("attribute 'drawn_rows'", "is given without attribute 'drawn_n'")
        return None, None
    drawn = json_attribute(attrs, "drawn_n", "null")
    if not isinstance(drawn, int) or isinstance(drawn, bool) or drawn < 0:
        raise Problem("attribute 'drawn_n'", f"= {json.dumps(drawn)[:40]} is not a count >= 0 (the points of the "
                      "draw the file's rows were taken from)")
    runs = json_attribute(attrs, "drawn_rows", "null")
    if runs is None:
        return drawn, None
    ok = isinstance(runs, list) and all(isinstance(r, list) and len(r) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in r) and 0 <= r[0] < r[1] <= drawn for r in runs)
    rows = np.concatenate([np.arange(a, b, dtype=np.int64) for a, b in runs] or [np.zeros(0, np.int64)]) if ok \
        else None
    if rows is None or rows.size != n:
        raise Problem("attribute 'drawn_rows'", f"is not a list of {n} rows of the {drawn}-point draw as runs "
                      "[[start, stop], ...] with 0 <= start < stop <= drawn_n")
    return drawn, rows


# ---- layout -------------------------------------------------------------------------------------------------
def check_layout(manifold, fields) -> None:
    """The five fields' kinds, precisions and shapes for N = len(points) points on P^n; `fields` maps each name to
    anything with .dtype and .shape (h5py datasets, arrays). Floats other than float64 / complex128 (of either byte
    order) are refused here: see the module docstring."""
    n1, m = manifold.n + 1, manifold.dim
    tails = {"points": (n1,), "weights": (), "omega2": (), "g_fs": (m, m), "chart": (2,)}
    shape = tuple(fields["points"].shape)
    if len(shape) != 2:
        raise Problem(_ds("points"), f"has shape {shape}{' (a scalar)' if not shape else ''}, expected a 2-D dataset "
                      f"(N, {n1}): the {n1} homogeneous coordinates of each of N points on P^{n1 - 1}")
    n = shape[0]
    for name in FIELDS:
        dtype, shape = fields[name].dtype, tuple(fields[name].shape)
        if dtype.kind not in _KINDS[name]:
            raise Problem(_ds(name), f"has dtype {dtype}, expected {_KIND_NAMES[_KINDS[name]]}")
        want = np.dtype(_DTYPES[name])
        if dtype.kind in "fc" and dtype.itemsize != want.itemsize:
            fix = f"store it as {want.name} ('hpcflow sample' does; h5py: f['{name}'][...].astype('{want.str[1:]}'))"
            lower = np.finfo(dtype).eps > EPS
            if name == "points" and lower:
                raise Problem(_ds(name), f"is {dtype}: its precision ({np.finfo(dtype).eps:.1e}) cannot hold points "
                              f"on X to |p(z)|/|z|^deg < {ON_X_TOL:g}", fix)
            raise Problem(_ds(name), f"is {dtype}, of {'lower' if lower else 'higher'} precision than the {want.name} "
                          f"the geometry is held in (eps {np.finfo(dtype).eps:.1e}): its values "
                          f"{'are' if lower else 'would be'} rounded", fix)
        if shape != (n, *tails[name]):
            raise Problem(_ds(name), f"has shape {shape}, expected {(n, *tails[name])} for {n} points on "
                          f"P^{manifold.n}")


def as_float64(data: dict) -> dict:
    """The fields (layout checked: float64 / complex128 already, of either byte order) as complex128 / float64 /
    int64 in this machine's byte order."""
    return {k: np.asarray(v, dtype=_DTYPES[k]) for k, v in data.items()}


# ---- values and agreement -----------------------------------------------------------------------------------
def check_rows(manifold, data: dict, *, keep: bool = False, formed: bool = False):
    """The Problem of the first rule the rows of `data` (float64 fields, checked layout) break: values, then, CHUNK
    rows at a time, chart normalisation, distance to X, Hermiticity and agreement with the data the points give.
    keep=True: returns those, `manifold.point_set(points, chart=chart)` (the same bits as one call on all rows:
    every operation is per row); else None.

    formed=True (the sampler's rows, unchanged: `PointSet.mark_sampled`): values and chart normalisation only. The
    sampler kept points with |p(z)|/|z|^deg < RESIDUAL_TOL (1e-12, under ON_X_TOL) and formed their data with
    `charts.point_data` in these charts: bitwise the data the check would form again, Hermitian as it forms them."""
    for name in ("points", "weights", "omega2", "g_fs"):
        if not np.all(np.isfinite(data[name])):
            raise Problem(_ds(name), "holds non-finite values (NaN or inf)", "resample the points")
    for name in ("weights", "omega2"):
        if np.any(data[name] <= 0):
            raise Problem(_ds(name), "holds values <= 0", "resample the points")
    chart, n = data["chart"], manifold.n
    if len(chart) and (chart.min() < 0 or chart.max() > n or np.any(chart[:, 0] == chart[:, 1])):
        raise Problem(_ds("chart"), f"holds a chart that does not exist on P^{n} (need 0 <= I != J <= {n})")
    if formed:
        _check_normalised(data["points"], chart)
        return None

    parts = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # g_FS underflows: refused in the check
        for lo in range(0, len(chart), CHUNK):
            part = {k: v[lo:lo + CHUNK] for k, v in data.items()}
            try:
                re, unfit = manifold.point_set(part["points"], chart=part["chart"], jacobian=keep, _warn=False), None
            except UnfitPoint as exc:  # reported after the checks of the stored values
                re, unfit = None, exc
            _check_chunk(manifold, part, re, unfit, lo)
            parts += [re] if keep else []
    if not keep:
        return None
    return type(parts[0]).concatenate(parts) if parts else manifold.point_set(data["points"], chart=chart,
                                                                              _warn=False)


def _check_chunk(manifold, d: dict, re, unfit, lo: int) -> None:
    z, chart = d["points"], d["chart"]
    at = np.arange(len(z))
    _check_normalised(z, chart)
    if np.max(manifold.residual(z)) > ON_X_TOL:
        raise Problem(_ds("points"), f"holds points off the hypersurface (|p(z)|/|z|^deg > {ON_X_TOL:g})",
                      "pass points sampled on this manifold")
    g = d["g_fs"]
    ia, ib = np.triu_indices(g.shape[-1])  # entries (a, b) and (b, a) of a Hermitian pair, once each
    _first_excess("g_fs", np.abs(g[:, ia, ib] - np.conj(g[:, ib, ia])),
                  _hermitian_bound(z, g, ia, ib), lo + at, "is not Hermitian", "|g - g^H|")
    if unfit is not None and unfit.field == "chart":
        raise Problem(_ds("chart"), f"gives row {lo + unfit.row} the chart {unfit.pair}, which does not cover the "
                      f"point ({unfit.why})", "pass the charts the points were sampled in")
    if unfit is not None:
        raise Problem(_ds("points"), f"row {lo + unfit.row} {unfit.why}", "pass points sampled on this manifold")
    # rows equal to their recomputed data bitwise (a file of this build's sampler: all) need no bound
    differ = np.flatnonzero((g != re.g_fs).any(axis=(1, 2)) | (d["omega2"] != re.omega2) | (d["weights"] != re.weights))
    if differ.size == 0:
        return
    # with their Jacobians (the bound's dz/dx); the other fields are the same bits
    re = re._take(differ) if re.jacobian is not None else manifold.point_set(z[differ], chart=chart[differ],
                                                                              check=False)
    tol = agreement_tolerances(manifold, z[differ], chart[differ], re)
    diffs = {name: np.abs(d[name][differ] - getattr(re, name)) for name in ("g_fs", "omega2", "weights")}
    over = np.zeros(differ.size, dtype=bool)
    for name, diff in diffs.items():
        over |= (diff > tol[name]).reshape(differ.size, -1).any(axis=1)
    if over.any():  # a point moved off X (within ON_X_TOL) after its data were formed: the points named first
        moved = over & (manifold.residual(z[differ]) > OFF_X_RESIDUAL)
        if moved.any():
            k = int(np.argmax(moved))
            raise Problem(_ds("points"), f"holds row {lo + int(differ[k])} off the hypersurface: |p(z)|/|z|^deg is "
                          f"{float(manifold.residual(z[differ[k:k + 1]])[0]):.3g}, above the {OFF_X_RESIDUAL:g} "
                          "of roundoff that sampled points keep, and its g_fs, omega2 or weights are those of another "
                          "point (it was moved after they were formed)", "pass the points as sampled, or " + RECOMPUTE)
    for name, diff in diffs.items():
        _first_excess(name, diff, tol[name], lo + differ,
                      "does not agree with its points", "the difference from the data its point and chart give")


def _check_normalised(z, chart) -> None:
    """z_I = 1 within 1e-12 for each row's chart (I, J) (the values are finite: checked before)."""
    if len(z) and not np.max(np.abs(np.take_along_axis(z, chart[:, :1], axis=1) - 1.0)) <= 1e-12:
        raise Problem(_ds("points"), "is not chart-normalised (z_I = 1 for each point's chart (I, J))")


def _first_excess(name, diff, tol, rows, what, measure) -> None:
    """Problem naming the first of `rows` where diff exceeds tol (any entry), and by how much."""
    over = diff > tol
    if over.ndim > 1:
        over = over.reshape(len(over), -1).any(axis=1)
    if over.any():
        k = int(np.argmax(over))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.nanmax(np.where(diff[k] > tol[k], diff[k] / tol[k], 0.0))
        raise Problem(_ds(name), f"{what}: at row {int(rows[k])} {measure} is {np.max(diff[k]):.3g}, {ratio:.3g} "
                      "times the bound that float64 roundoff of its computation allows", RECOMPUTE)


def hermitian_tolerance(z, g):
    """Bound (N, m, m) on |g - g^H| of g_FS computed (`charts.point_data`) at chart-normalised points z (N, n+1).

    Entry (a, b) and (b, a) are formed from the same c, w and |z|^2, so only their final operations differ: at
    most 6 roundings each of the terms T_ab = (|c_a c_b| + |w_a w_b|/|z|^2 + delta_ab)/|z|^2, and T_ab <=
    2 |z|^2 sqrt(g_aa g_bb) (the tangent vectors have no z_I component, so |w_a|^2 <= (1 + |c_a|^2)(|z|^2 - 1))."""
    m = g.shape[-1]
    a, b = np.divmod(np.arange(m * m), m)
    return _hermitian_bound(z, g, a, b).reshape(len(g), m, m)


def _hermitian_bound(z, g, a, b):
    """`hermitian_tolerance` at the entries (a[k], b[k]) only, shape (N, len(a))."""
    nz2 = np.sum(z.real**2 + z.imag**2, axis=1)[:, None]
    d = np.abs(np.diagonal(g, axis1=1, axis2=2).real)
    return 24 * EPS * nz2 * np.sqrt(d[:, a] * d[:, b])


def agreement_tolerances(manifold, z, chart, re) -> dict:
    """Largest differences {g_fs (N, m, m), omega2 (N,), weights (N,)} between stored data and `re`, the data the
    points z and charts give, that float64 roundoff explains: four times one evaluation's first-order bound (two
    evaluations, a factor 2 for the terms neglected); the stored values are float64 / complex128 (`check_layout`).

    dp/dz_k (`Hypersurface.grad`) errs by at most gamma A_k, A = `grad_majorant`, gamma = (2 deg + M + 4) eps; so
    c_a = -dp_a/dp_J by (gamma A_a + |c_a| gamma A_J)/|dp_J| + 2 eps |c_a| (A/|dp| is the condition number of
    the gradient). g_FS = (c c^H - w w^H/|z|^2 + 1)/|z|^2 with w = zbar_loc + c zbar_J (`charts.point_data`) carries
    these errors and (2n + 10) eps of its own terms T; |Omega|^2 = 1/|dp_J|^2 errs by 2 gamma A_J/|dp_J| + 4 eps;
    the weights |Omega|^2/det g by that plus tr(|g^-1| |dg|) (first order in dg, with 4 m eps |g| for the
    determinant's own rounding). `re` may lack the Jacobian (jacobian=False): c is then formed from the points."""
    n, m = manifold.n, manifold.dim
    at = np.arange(len(z))[:, None]
    j = chart[:, 1]
    loc = local_indices(n, chart[:, 0], j)
    if re.jacobian is not None:
        c = re.jacobian[at, np.arange(m)[None, :], j[:, None]]
    else:  # (a set formed without Jacobians: c as `charts.point_data` forms it)
        dp = manifold.grad(z)
        c = -dp[at, loc] / dp[at[:, 0], j][:, None]
    ac = np.abs(c)
    adp = 1.0 / np.sqrt(re.omega2)  # |dp/dz_J|
    A = manifold.grad_majorant(z)
    gamma = (2 * manifold.degree + len(manifold.coefficients) + 4) * EPS
    rel_j = gamma * A[at[:, 0], j] / adp
    dc = gamma * A[at, loc] / adp[:, None] + ac * (rel_j[:, None] + 2 * EPS)
    zj = np.abs(z[at[:, 0], j])[:, None]
    w = np.conj(z[at, loc]) + c * np.conj(z[at[:, 0], j])[:, None]
    aw = np.abs(w)
    dw = dc * zj + 3 * EPS * (np.abs(z[at, loc]) + ac * zj)
    nz2 = np.sum(z.real**2 + z.imag**2, axis=1)[:, None, None]

    def outer(a, b):
        return a[:, :, None] * b[:, None, :]

    T = (outer(ac, ac) + outer(aw, aw) / nz2 + np.eye(m)) / nz2
    P = (outer(dc, ac) + outer(ac, dc) + (outer(dw, aw) + outer(aw, dw)) / nz2) / nz2
    tol_g = 4 * (P + (2 * n + 10) * EPS * T)
    tol_o = 4 * re.omega2 * (2 * rel_j + 4 * EPS)
    g_inv = np.abs(np.swapaxes(np.linalg.inv(re.g_fs), -1, -2))
    rel_det = np.sum(g_inv * (tol_g + 4 * m * EPS * np.abs(re.g_fs)), axis=(1, 2))
    tol_w = re.weights * (tol_o / re.omega2 + rel_det + 4 * EPS)
    return {"g_fs": tol_g, "omega2": tol_o, "weights": tol_w}


#: the first-order bound on the relative roundoff of a weight (`weight_error_bounds`) above which `Hypersurface.
#: point_set` warns of the charts it was given: sqrt(eps), fewer than half of float64's digits left. Canonical charts
#: stay far below (at most ~2e3 eps: Fermat dim 1, 3, 6 and Dwork(3) at psi 0.5 and 100, 3000 points each)
CHART_WARN_RTOL = float(np.sqrt(EPS))


def weight_error_bounds(manifold, z, chart, re) -> np.ndarray:
    """(N,) first-order bounds on |computed / exact - 1| of the weights (and so of eta = 1/weight) that the
    chart-normalised points z in the charts give (`re`, their PointSet): one evaluation's part of
    `agreement_tolerances` (a quarter of its weight tolerance), which carries the conditioning of dp/dz_J, of c and
    of det g; CHUNK rows at a time. Measured 3 to 16 times above the actual error (mpmath and canonical-chart
    references). inf where the data are not finite or g is singular in float64 (no bound)."""
    out = np.full(len(z), np.inf)
    ok = np.flatnonzero(np.isfinite(re.weights) & (re.weights > 0) & np.isfinite(re.g_fs).all(axis=(1, 2)))
    for lo in range(0, ok.size, CHUNK):
        rows = ok[lo:lo + CHUNK]
        out[rows] = _weight_bounds(manifold, z[rows], chart[rows], re._take(rows))
    out[np.isnan(out)] = np.inf
    return out


def _weight_bounds(manifold, z, chart, re) -> np.ndarray:
    """`weight_error_bounds` of rows with finite data; row by row where some g is singular in float64 (inf there)."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        try:
            return agreement_tolerances(manifold, z, chart, re)["weights"] / (4 * re.weights)
        except np.linalg.LinAlgError:
            if len(z) == 1:
                return np.full(1, np.inf)
    return np.concatenate([_weight_bounds(manifold, z[k:k + 1], chart[k:k + 1], re._take(np.array([k])))
                           for k in range(len(z))])
