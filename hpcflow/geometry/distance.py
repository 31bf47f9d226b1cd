"""Fubini-Study geodesic distance on P^n (eq. 3.2) and the projector embedding.

d(z, z') = arccos(|<z, z'>| / (|z| |z'|)) in [0, pi/2]. Near d = 0 the arccos form loses half the digits
(eq. 3.4: arccos(1 - eps) ~ sqrt(2 eps)), so pairs with d < STABLE_BELOW are recomputed with the stable form
d = atan2(|u ^ v|, |<u, v>|) (u, v unit vectors, |u ^ v|^2 = sum_{k<l} |u_k v_l - u_l v_k|^2), and distances
below the noise floor NOISE_FLOOR are set to exactly 0 (the paper's threshold, eq. 3.4).
"""

from __future__ import annotations

import time

import numpy as np

from hpcflow.backend import array_module
from hpcflow.arguments import api_integer, api_number

#: distances below this are set to 0 (eq. 3.4); float64 round-off on d is ~1e-8 with the arccos form,
#: ~1e-16 with the stable form, so 1e-12 only removes genuine round-off of numerically identical points.
NOISE_FLOOR = 1e-12
#: pairs closer than this are recomputed with the stable wedge formula.
STABLE_BELOW = 1e-3
#: default number of rows per tile for pairwise distances.
DEFAULT_TILE = 2048


def normalize(z, xp=None, name=None):
    """Unit representatives u = z/|z| (rows), at any scale of the homogeneous coordinates (d(z, lambda z) = 0).

    Rows whose |z| lies outside `safe_norms` (|z|^2 overflows, or underflows into subnormals and loses digits, so
    z/|z| would be 0, NaN or inexact) are first multiplied by the power of two that brings their largest component
    into [1/2, 1); other rows are divided as they are: their bits do not change, at the cost of one pass over |z|.
    With `name`, a row of zeros (no point of P^n) or with a nan/inf coordinate (NaN distances without a word) is
    refused naming it; such rows are among the rescaled ones, so ordinary inputs pay nothing for the check.
    """
    xp = xp or array_module(z)
    z = xp.asarray(z)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # such rows are the ones rescaled
        norm = xp.linalg.norm(z, axis=-1, keepdims=True)
    lo, hi = safe_norms(norm.dtype)
    odd = ~((norm >= lo) & (norm <= hi))[..., 0]
    if not bool(xp.any(odd)):
        return z / norm
    with np.errstate(invalid="ignore"):  # rows with an inf: NaN, refused with `name`
        scaled = rescale(z[odd], xp)
        odd_norm = xp.linalg.norm(scaled, axis=-1, keepdims=True)
    if name is not None:
        check_rows(name, z, odd, odd_norm[..., 0], xp)
    u = z / xp.where(odd[..., None], 1.0, norm)
    u[odd] = scaled / odd_norm
    return u


def check_rows(name, z, odd, norm, xp) -> None:
    """ValueError naming `name` and its first row of zeros or with a nan/inf coordinate, if any, from the
    norms of the rescaled rows `odd` (0: zeros, nan/inf: non-finite)."""
    bad = ~(xp.isfinite(norm) & (norm > 0))
    if bool(xp.any(bad)):
        where = np.unravel_index(int(xp.flatnonzero(odd)[int(xp.argmax(bad))]), odd.shape)
        row = int(where[0]) if len(where) == 1 else tuple(int(i) for i in where)
        what = "has all coordinates 0 (no point of P^n)" if bool(xp.all(z[row] == 0)) else "has a nan or inf coordinate"
        raise ValueError(f"{name} row {row} {what}; pass finite homogeneous coordinates, not all 0")


def safe_norms(dtype) -> tuple[float, float]:
    """(lo, hi) for `normalize`: for lo <= |z| <= hi the sum |z|^2 does not overflow and its subnormal terms are
    below eps^2 of it (2^-485 and 2^511 in float64)."""
    f = np.finfo(dtype)
    return float(np.sqrt(f.tiny / f.eps)), float(2.0 ** (f.maxexp // 2 - 1))


def rescale(z, xp):
    """Rows of z times the power of two 2^-e that brings their largest |Re|, |Im| into [1/2, 1) (exact; in two
    factors, as 2^-e alone overflows for subnormal rows). Rows of zeros or non-finite values are left as they are."""
    big = xp.abs(z.real)
    if xp.iscomplexobj(z):
        big = xp.maximum(big, xp.abs(z.imag))
    e = xp.frexp(xp.max(big, axis=-1, keepdims=True))[1]
    half = e // 2
    one = xp.ones((), dtype=big.dtype if big.dtype.kind == "f" else np.float64)
    return z * xp.ldexp(one, -half) * xp.ldexp(one, half - e)


def as_coordinates(z):
    """The homogeneous coordinates (N, n+1) of a PointSet (its .points, as the clustering functions take it), or z."""
    from hpcflow.geometry.pointset import PointSet

    return z.points if isinstance(z, PointSet) else z


def point_array(name: str, z):
    """`z` as an array of points: a PointSet gives its .points, a list or other array-like its NumPy array, a NumPy or
    CuPy array itself; a ragged list is one ValueError naming `name`."""
    z = as_coordinates(z)
    if array_module(z) is not np:
        return z
    try:
        return np.asarray(z)
    except (TypeError, ValueError):  # a ragged list
        raise ValueError(f"{name} is not an array of points; pass a 2-D array (N, n+1), one row of homogeneous "
                         f"coordinates per point, or a PointSet") from None


def check_point_array(name: str, z, *, two_d: bool = True):
    """`point_array(name, z)` after refusing, in O(1), coordinates that are not numbers (strings, objects, booleans:
    TypeError) and, with `two_d`, an array that is not 2-D (ValueError): one line naming `name` and the fix, where
    NumPy's own message ("could not convert string to float", an IndexError of a single point) named neither."""
    z = point_array(name, z)
    if z.dtype.kind not in "iufc":
        raise TypeError(f"{name} has dtype {z.dtype}; pass points as numbers, one row of homogeneous coordinates per "
                        f"point")
    if two_d and z.ndim != 2:
        raise ValueError(f"{name} has shape {z.shape}; pass points as a 2-D array (N, n+1), one row of homogeneous "
                         f"coordinates per point (one point: {name}[None])")
    if two_d and z.shape[1] == 0:
        no_coordinates(name, z.shape)
    return z


def no_coordinates(name: str, shape) -> None:
    """ValueError naming `name`, of points with `shape` (..., 0): no homogeneous coordinates, so no point of any P^n
    (P^n has n+1 >= 1; P^0, one coordinate, is a single point, where every distance is 0)."""
    raise ValueError(f"{name} has shape {tuple(shape)}, no homogeneous coordinates; pass points as a 2-D array "
                     "(N, n+1), one row of homogeneous coordinates per point, n+1 >= 1")


def upcast(z):
    """z in float64 / complex128 (integers, float16 / float32 and complex64 converted, as `charts` does; float64 and
    complex128 as they are): distances and features are float64 whatever the input's precision."""
    return z.astype(np.result_type(z.dtype, np.float64), copy=False)


def check_noise_floor(noise_floor) -> float:
    """The noise floor (eq. 3.4) as a float in [0, pi/2] (0: none); a ValueError/TypeError naming it otherwise
    (nan would silently switch the floor off, inf or more than pi/2 would set every distance to 0)."""
    return api_number("noise_floor", noise_floor, "a number in [0, pi/2] (distances below it are set to 0)",
                      lo=0.0, hi=np.pi / 2)


def fs_distance_paired(z1, z2, *, noise_floor: float = NOISE_FLOOR):
    """Row-wise FS distance d(z1[k], z2[k]), stable for all separations (atan2 of wedge and inner product); arrays
    of points (N, n+1) or PointSets."""
    z1, z2 = check_point_array("z1", z1, two_d=False), check_point_array("z2", z2, two_d=False)
    z1, z2 = upcast(z1), upcast(z2)  # float64 distances (as fs_distance's) from complex64 / float32 points too
    if np.shape(z1) != np.shape(z2):
        raise ValueError(f"z1 {np.shape(z1)} and z2 {np.shape(z2)}: pass two arrays of points of the same shape "
                         "(N, n+1)")
    for name, z in (("z1", z1), ("z2", z2)):
        if z.ndim == 0:
            raise ValueError(f"{name} has shape (), a number, not a point; pass arrays of points (N, n+1), one row of "
                             "homogeneous coordinates per point")
        if z.shape[-1] == 0:
            no_coordinates(name, z.shape)
    noise_floor = check_noise_floor(noise_floor)
    xp = array_module(z1)
    u, v = normalize(z1, xp, "z1"), normalize(z2, xp, "z2")
    inner = xp.abs(xp.sum(xp.conj(u) * v, axis=-1))
    n = u.shape[-1]
    wedge2 = xp.zeros(inner.shape, dtype=inner.dtype)
    for k in range(n):
        for l in range(k + 1, n):
            wedge2 = wedge2 + xp.abs(u[..., k] * v[..., l] - u[..., l] * v[..., k]) ** 2
    d = xp.arctan2(xp.sqrt(wedge2), inner)
    return xp.where(d < noise_floor, 0.0, d)


def fs_distance(z1, z2=None, *, noise_floor: float = NOISE_FLOOR, tile: int = DEFAULT_TILE):
    """Pairwise FS distance matrix (N1, N2) (eq. 3.2), tiled over rows of z1; z2=None means z1 with itself.

    Holds one (tile, N2) block of temporaries at a time; nearly equal pairs are recomputed stably and the
    noise floor (eq. 3.4) is applied, so the diagonal of d(z, z) is exactly 0. z1, z2: arrays (N, n+1) or PointSets;
    float64 (complex64 and float32 points are computed with in complex128 / float64, as every function here).
    """
    z1 = upcast(check_point_array("z1", z1))  # computed in float64 whatever the points' precision
    z2 = None if z2 is None else upcast(check_point_array("z2", z2))
    if z2 is not None and z2.shape[1] != z1.shape[1]:
        raise ValueError(f"z2 has shape {z2.shape} but z1 has shape {z1.shape}; pass both with the same n+1 "
                         "homogeneous coordinates per point (points of one P^n)")
    tile = api_integer("tile", tile, "an integer >= 1 (rows of z1 per block)", lo=1)
    noise_floor = check_noise_floor(noise_floor)
    xp = array_module(z1)
    u = normalize(z1, xp, "z1")
    v = u if z2 is None else normalize(z2, xp, "z2")
    out = xp.empty((u.shape[0], v.shape[0]), dtype=np.float64)
    for s in range(0, u.shape[0], tile):
        out[s : s + tile] = _distance_block(u[s : s + tile], v, xp, noise_floor)
    return out


def _distance_block(u, v, xp, noise_floor):
    c = xp.abs(u.conj() @ v.T)
    d = xp.arccos(xp.minimum(c, 1.0))
    rows, cols = xp.nonzero(d < STABLE_BELOW)
    if rows.size:
        d[rows, cols] = fs_distance_paired(u[rows], v[cols], noise_floor=0.0)
    d[d < noise_floor] = 0.0
    return d


def projector_features(z):
    """Real features of the projector P = u u^dagger with |P(z) - P(z')|_F = sqrt(2) sin d(z, z').

    Euclidean distance of these features is monotone in the FS distance on [0, pi/2], so KD-/ball-trees
    answer FS nearest-neighbour queries. Shape (N, (n+1)^2) for z of shape (N, n+1) (or a PointSet).
    """
    z = upcast(check_point_array("z", z))
    xp = array_module(z)
    u = normalize(z, xp, "z")
    n1 = u.shape[-1]
    p = u[:, :, None] * u.conj()[:, None, :]
    iu = np.triu_indices(n1, 1)
    diag = p[:, np.arange(n1), np.arange(n1)].real
    off = p[:, iu[0], iu[1]] * np.sqrt(2.0)
    return xp.concatenate([diag, off.real, off.imag], axis=1)


def chordal_to_fs(dist):
    """Invert |P - P'|_F = sqrt(2) sin d: FS distance from projector-feature Euclidean distance."""
    xp = array_module(dist)
    return xp.arcsin(xp.clip(dist / np.sqrt(2.0), 0.0, 1.0))


#: seconds one piece of `query_in_pieces` aims at: a KD-tree query runs in C, where no stop request (SIGTERM,
#: SIGUSR1, Ctrl-C) is honoured, so a long one is cut into pieces of rows and a request is honoured between them
QUERY_SECONDS = 0.2
#: rows of its first piece (later pieces: as many rows as the rows so far took QUERY_SECONDS for, at least these); a
#: row of a 10^6-point tree in the 25 features of P^4 takes milliseconds, a query call's own cost ~0.1 ms (measured:
#: 3000 one-row calls 1.06 s, one call of the 3000 rows 0.75 s, on a 10^5-point tree)
QUERY_FIRST_ROWS = 32


def query_in_pieces(tree, f, k=1, *, workers: int = 1):
    """tree.query(f, k, workers=workers) (a SciPy cKDTree, the rows f (M, m)), in pieces of rows that take about
    QUERY_SECONDS each: a query's rows are independent, so the result is bitwise that of one query."""
    f = np.asarray(f)
    if f.ndim != 2 or f.shape[0] <= QUERY_FIRST_ROWS:
        return tree.query(f, k=k, workers=workers)
    shape = (f.shape[0],) if np.ndim(k) == 0 and k == 1 else (f.shape[0], np.size(k) if np.ndim(k) else k)
    d, i = np.empty(shape), np.empty(shape, dtype=np.intp)
    lo, rows, t0 = 0, QUERY_FIRST_ROWS, time.perf_counter()
    while lo < f.shape[0]:
        d[lo:lo + rows], i[lo:lo + rows] = tree.query(f[lo:lo + rows], k=k, workers=workers)
        lo += rows
        rate = lo / max(time.perf_counter() - t0, 1e-9)  # rows per second so far
        rows = max(QUERY_FIRST_ROWS, int(rate * QUERY_SECONDS))
    return d, i
