"""kernel_flow's point sets and layout, decided by every rank together before any work (one allgather at R > 1).

Refused (ValueError, one line, raised alike on every rank): fields a set's sums cannot use, checked per row in
O(N) (`_rows_fault`: shapes one row each, finite points, g_fs Hermitian positive definite as
`hermitian.check_metrics` takes metrics, omega2 > 0 and weights >= 0 as `geometry.measures` takes them) and weights
that sum to 0 over the ranks (kappa and sigma are weighted means), naming the set, the field and its first bad row;
train and test points of different shapes or manifolds (a Hypersurface compares by its polynomial); `test` or
`blocks` given on some ranks only (the ranks' collectives would go out of step); no train point on any rank; and,
for a kernel that does not mix components (Theta_IJ = delta_IJ K, the paper's four), points of more than one chart
(`PointSet.chart`) in train and test together over the ranks: the metric components are one chart's local
coordinates and the kernel sums them across points. A component-mixing kernel (a network's NTK, Theta of each
point's own chart) takes points of any charts. Sets without `manifold` or `chart` (bare arrays of points, g_fs,
omega2, weights) are not checked for them.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

import numpy as np

from hpcflow.backend import array_module, to_host
from hpcflow.geometry.hermitian import check_metrics
from hpcflow.geometry.measures import FIXES
from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.partition import given_on_some, rank_list

#: charts named in a message before "and k more"
_SHOWN = 4


class _Mine(NamedTuple):
    """What one rank tells the others about its arguments (a few hundred bytes)."""

    fault: tuple | None  # (set, complaint) decided from this rank's arguments alone
    test: bool  # test given (not None)
    blocks: bool  # blocks given (not None)
    rows: int  # train rows
    mixes: bool  # the kernel mixes components
    manifolds: tuple  # per set (train, test): (name, digest) or None
    charts: tuple  # per set: ((chart, rows), ...) or None
    weighted: tuple  # per set: whether a weight is > 0 (None: no rows here)


def _manifold(ps):
    """(printable name, digest of the polynomial) of a set's manifold, or None when it has none to compare: equal
    digests exactly when the Hypersurfaces are (`Hypersurface.polynomial_key`, whatever their names)."""
    m = getattr(ps, "manifold", None)
    if ps is None or not callable(getattr(m, "polynomial_key", None)):
        return None
    params = ", ".join(f"{k}={v}" for k, v in getattr(m, "params", ()))
    name = f"{getattr(m, 'name', type(m).__name__)}({params})"
    return name, hashlib.blake2b(repr(m.polynomial_key()).encode(), digest_size=16).hexdigest()


def _charts(ps):
    """((chart (I, J), rows), ...) of a set's points, or None when it holds no charts."""
    chart = None if ps is None else getattr(ps, "chart", None)
    if chart is None:
        return None
    if not len(ps):
        return ()
    c = np.asarray(to_host(chart)).reshape(len(ps), -1)
    if bool(np.all(c == c[0])):  # the usual case, one chart: no sort
        return ((tuple(int(v) for v in c[0]), len(c)),)
    if c.shape[1] == 2 and c.min() >= 0:  # (I, J) as one integer: a 1-D count, 100x faster than unique rows
        base = int(c.max()) + 1
        found, rows = np.unique(c[:, 0].astype(np.int64) * base + c[:, 1], return_counts=True)
        return tuple(((int(f) // base, int(f) % base), int(n)) for f, n in zip(found, rows))
    found, rows = np.unique(c, axis=0, return_counts=True)
    return tuple((tuple(int(v) for v in ch), int(n)) for ch, n in zip(found, rows))


def _first_bad(field, a, ok, want, fix) -> str | None:
    """'field[k] = value is not `want`; pass `fix`' for the first row k where `ok` is false or a is not finite."""
    xp = array_module(a)
    bad = ~(ok & xp.isfinite(a))
    if not bool(xp.any(bad)):
        return None
    k = int(np.argmax(to_host(bad)))
    return f"{field}[{k}] = {float(a[k])} is not {want}; pass {fix}"


def _rows_fault(ps) -> str | None:
    """What is wrong with a set's rows for the flow's sums, first field first (None: nothing): one row of points,
    g_fs (m x m), omega2 and weights per point, real where eta and the weighted means need it; finite points; g_fs
    Hermitian positive definite (`hermitian.check_metrics`, O(N m^3)); omega2 > 0 (eta = det g / omega2); weights
    >= 0 (`geometry.measures`: with a negative weight kappa and sigma are no means)."""
    a = {f: _field(ps, f) for f in ("points", "g_fs", "omega2", "weights")}
    points = a["points"]
    if points.ndim != 2:
        return f"points has shape {points.shape}; pass one row of coordinates per point, shape (N, k)"
    n, m = len(points), (a["g_fs"].shape[-1] if a["g_fs"].ndim else 0)
    for f, shape in (("g_fs", (n, m, m)), ("omega2", (n,)), ("weights", (n,))):
        if a[f].shape != shape:
            return (f"{f} has shape {a[f].shape} next to {n} points; pass one row per point (g_fs (N, m, m), omega2 "
                    "and weights (N,)), as a PointSet and its rows ps[rows] hold them")
    for f, kinds in (("points", "iufc"), ("omega2", "iuf"), ("weights", "iuf")):
        if a[f].dtype.kind not in kinds:
            return f"{f} has dtype {a[f].dtype}; pass {'' if 'c' in kinds else 'real '}numbers"
    xp = array_module(points)
    finite = xp.all(xp.isfinite(points), axis=1)
    if not bool(xp.all(finite)):
        return f"points[{int(np.argmin(to_host(finite)))}] holds values that are not finite; pass points on X"
    try:
        check_metrics(a["g_fs"], "g_fs")
    except (TypeError, ValueError) as exc:
        return str(exc)
    return (_first_bad("omega2", a["omega2"], a["omega2"] > 0, "a finite number > 0",
                       "|Omega|^2 of the points (PointSet.omega2)")
            or _first_bad("weights", a["weights"], a["weights"] >= 0, "a finite number >= 0", FIXES["weights"]))


def _field(ps, f):
    """Field f of a set as an array of its own module (NumPy for lists)."""
    v = getattr(ps, f)
    return array_module(v).asarray(v)


def _weighted(ps):
    """Whether a set holds a weight > 0 (None: no set, or no rows here)."""
    if ps is None or not len(ps):
        return None
    w = _field(ps, "weights")
    return bool(array_module(w).any(w > 0))


def _mine(kernel, train, test, blocks) -> _Mine:
    fault = next(((name, f) for name, ps in (("train", train), ("test", test)) if ps is not None
                  for f in [_rows_fault(ps)] if f), None)
    if fault is None and test is not None and np.shape(test.points)[1:] != np.shape(train.points)[1:]:
        fault = ("test", f"points of shape {np.shape(test.points)} next to train points of shape "
                 f"{np.shape(train.points)}; pass train and test points of the same manifold")
    if fault is None and test is not None and np.shape(test.g_fs)[1:] != np.shape(train.g_fs)[1:]:
        fault = ("test", f"g_fs of shape {np.shape(test.g_fs)} next to train g_fs of shape {np.shape(train.g_fs)}; "
                 "pass train and test points of the same manifold")
    weighted = (None, None) if fault else (_weighted(train), _weighted(test))
    return _Mine(fault, test is not None, blocks is not None, len(train),
                 bool(getattr(kernel, "mixes_components", False)), (_manifold(train), _manifold(test)),
                 (_charts(train), _charts(test)), weighted)


def _where(name, r, size):
    return name if size == 1 else f"{name} on rank {r}"


def _manifold_fault(every) -> str | None:
    seen = [(_where(name, r, len(every)), m.manifolds[k]) for k, name in enumerate(("train", "test"))
            for r, m in enumerate(every) if m.manifolds[k] is not None]
    if not seen:
        return None
    ref_where, ref = seen[0]
    for where, key in seen:
        if key[1] != ref[1]:
            return (f"{where}: points on {key[0]}, {ref_where}: points on {ref[0]}; pass train and test points of "
                    "one manifold (Hypersurfaces compare by their polynomials)")
    return None


def _shown(charts) -> str:
    more = f" and {len(charts) - _SHOWN} more" if len(charts) > _SHOWN else ""
    return ", ".join(str(ch) for ch in charts[:_SHOWN]) + more


def _by_rank(every, k) -> str:
    """Which ranks hold which charts of set k, for a message at R > 1 ('' at R = 1)."""
    if len(every) == 1:
        return ""
    groups = {}
    for r, m in enumerate(every):
        if m.charts[k]:
            groups.setdefault(tuple(ch for ch, _ in m.charts[k]), []).append(r)
    parts = [f"rank(s) {rank_list(rs)}: {_shown(chs)}" for chs, rs in list(groups.items())[:3]]
    return f" ({'; '.join(parts)}{'; ...' if len(groups) > 3 else ''})"


def _chart_fault(every) -> str | None:
    if all(m.mixes for m in every):
        return None
    rows = [{}, {}]  # per set: chart -> rows over the ranks
    for m in every:
        for k in (0, 1):
            for ch, n in m.charts[k] or ():
                rows[k][ch] = rows[k].get(ch, 0) + n
    train, test = sorted(rows[0]), sorted(rows[1])
    if len(set(train) | set(test)) < 2:
        return None
    if len(train) > 1 or len(test) > 1:
        k = 0 if len(train) > 1 else 1
        what = f"{('train', 'test')[k]}: points in {len((train, test)[k])} charts {_shown((train, test)[k])}"
        what += _by_rank(every, k)
    else:
        what = f"test: points in chart {test[0]}{_by_rank(every, 1)}, train points in chart {train[0]}"
    total = {ch: rows[0].get(ch, 0) + rows[1].get(ch, 0) for ch in set(train) | set(test)}
    best = min(total, key=lambda ch: (-total[ch], ch))
    return (f"{what}; kernel_flow needs every train and test point in one chart (the metric components are its "
            "local coordinates, and this kernel, Theta = delta_IJ K, adds them across points): sample with "
            f"chart={best}, or keep one chart: ps[(ps.chart == {best}).all(axis=1)]")


def _local_fault(every) -> str | None:
    """The lowest rank's complaint about its own sets, naming its rank where the ranks' complaints differ."""
    failed = [r for r, m in enumerate(every) if m.fault]
    if not failed:
        return None
    name, what = every[failed[0]].fault
    alike = all(m.fault == every[failed[0]].fault for m in every)
    return f"{name if alike else _where(name, failed[0], len(every))}: {what}"


def _weights_fault(every) -> str | None:
    """Weights that are 0 on every point of a set over the ranks: kappa and sigma would be 0/0."""
    for k, name in enumerate(("train", "test")):
        have = [m.weighted[k] for m in every if m.weighted[k] is not None]
        if have and not any(have):
            return (f"{name}: every weight is 0; sigma and kappa are weighted means: pass at least one weight > 0 "
                    f"({FIXES['weights']})")
    return None


def _fault(every) -> str | None:
    """The first complaint about the ranks' arguments together (the same on every rank), or None."""
    return (_local_fault(every)
            or given_on_some("test", [m.test for m in every], "pass a test set on every rank (an empty one, e.g. "
                             "test[:0], where a rank has no test rows) or test=None on every rank")
            or given_on_some("blocks", [m.blocks for m in every], "pass blocks on every rank (an empty list where a "
                             "rank owns no block) or on none")
            or (None if sum(m.rows for m in every) else "train: the train set has no points (on any rank); pass a "
                "PointSet of >= 1 point")
            or _weights_fault(every)
            or _manifold_fault(every)
            or _chart_fault(every))


def check_sets(kernel, train, test, blocks, *, comm=None) -> None:
    """Refuse (see module docstring) on every rank alike: one allgather of each rank's `_Mine` at R > 1, on one
    rank the local check alone."""
    c = pcomm.resolve(comm)
    mine = _mine(kernel, train, test, blocks)
    every = c.allgather(mine) if c.Get_size() > 1 else [mine]
    fault = _fault(every)
    if fault:
        pcomm.refuse_alike(fault, comm=c)
