"""PointSet: points on X with their charts, g_FS, |Omega|^2 and Monte Carlo weights; HDF5 save/load."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import h5py
import numpy as np

from hpcflow import __version__
from hpcflow.atomic import atomic_file
from hpcflow.errors import InputFileError, OutputPathError, UserError
from hpcflow.geometry.hermitian import det_hermitian
from hpcflow.geometry.measures import sigma_measure
from hpcflow.parallel.comm import is_root, resolve
from hpcflow.parallel.replicated import gather_to_root, identical_on_all

#: conventions written into every PointSet file (see hpcflow.geometry docstring)
CONVENTIONS = (
    "points: homogeneous coords scaled so z_i = 1 for the chart's scale index i; "
    "g_fs[a,b] = d_a dbar_b log|z|^2 pulled back to the chart's local coords (no 1/pi); "
    "omega2 = |Omega|^2 = 1/|dp/dz_j|^2; weights = omega2/det(g_fs) (unnormalised); "
    "eta = det(g)/omega2; kappa = sum(w eta)/sum(w); sigma = sum(w |1-eta/kappa|)/sum(w) (eq. B.11)"
)

FIELDS = ("points", "weights", "omega2", "g_fs", "chart")
#: a stored point counts as on X when |p(z)| / |z|^deg is below this (the sampler polishes to ~1e-12)
ON_X_TOL = 1e-8

#: what PointSet indexing and `subset` take
INDEX_WANT = "an int, a slice, a 1-D integer index array or a 1-D boolean mask of length N"


def one_line_repr(value) -> str:
    """repr of a value on one line (an array's rows joined), cut to 60 characters (`arguments.short_repr` keeps
    an array's line breaks)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def row_index(idx, n: int, what: str = "PointSet index"):
    """`idx` as a slice or a 1-D integer array of rows of a set of n points: an int (negative counts from the end)
    or a 0-d integer array (argmax's result) gives that one row; TypeError for bools, None, Ellipsis, tuples and
    non-integer arrays, IndexError for out-of-range rows, masks of another length and arrays of ndim > 1."""
    def refuse(why, exc=TypeError):
        return exc(f"{what} {one_line_repr(idx)} is invalid: {why}; pass {INDEX_WANT.replace('N', str(n))}")

    if isinstance(idx, slice):
        return idx
    if isinstance(idx, (int, np.integer)) and not isinstance(idx, (bool, np.bool_)):
        if not -n <= idx < n:
            raise refuse(f"row {idx} is out of range for {n} points", IndexError)
        return slice(int(idx) % n, int(idx) % n + 1)
    if isinstance(idx, tuple):
        raise refuse("a tuple indexes several axes and a PointSet has one (a list or array of rows selects them)")
    if isinstance(idx, list) and not idx:
        return np.zeros(0, dtype=np.int64)
    try:
        arr = None if isinstance(idx, (str, bytes)) or idx is None or idx is Ellipsis else np.asarray(idx)
    except (TypeError, ValueError):  # a ragged list
        arr = None
    if arr is None or arr.dtype.kind not in "biu":
        raise refuse("not an int, slice or integer / boolean array")
    if arr.dtype.kind == "b":
        if arr.ndim != 1:
            raise refuse("a boolean scalar selects no row" if arr.ndim == 0 else f"a mask of shape {arr.shape}",
                         TypeError if arr.ndim == 0 else IndexError)
        if arr.size != n:
            raise refuse(f"a mask of length {arr.size}", IndexError)
        return arr
    if arr.ndim > 1:
        raise refuse(f"an index array of shape {arr.shape}", IndexError)
    bad = (arr < -n) | (arr >= n)
    if bad.any():
        raise refuse(f"row {int(arr.reshape(-1)[np.argmax(bad.reshape(-1))])} is out of range for {n} points",
                     IndexError)
    if arr.ndim == 0:
        return row_index(int(arr), n, what)
    return arr.astype(np.int64, copy=False)


@dataclass
class PointSet:
    """Points on a hypersurface with their geometric data (all float64/complex128)."""

    manifold: object
    points: np.ndarray  # (N, n+1) complex128, chart-normalised
    weights: np.ndarray  # (N,)
    omega2: np.ndarray  # (N,)
    g_fs: np.ndarray  # (N, n-1, n-1) complex128
    chart: np.ndarray  # (N, 2) int (scale index i, eliminated index j)
    jacobian: np.ndarray | None = None  # (N, n-1, n+1) dz_k/dx_a
    n_dropped: int = 0
    seed: object = None
    attrs: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.points.shape[0]

    def _take(self, idx) -> "PointSet":
        jac = None if self.jacobian is None else self.jacobian[idx]
        return PointSet(self.manifold, self.points[idx], self.weights[idx], self.omega2[idx], self.g_fs[idx],
                        self.chart[idx], jac, self.n_dropped, self.seed, dict(self.attrs))

    def subset(self, idx) -> "PointSet":
        """The points selected by a boolean mask or index array (anything `ps[idx]` takes, with the same result)."""
        return self._take(row_index(idx, len(self), "PointSet.subset index"))

    def __getitem__(self, idx) -> "PointSet":
        """The points selected by a slice, mask or index array; an integer gives a PointSet of that one point."""
        return self._take(row_index(idx, len(self)))


    @staticmethod
    def concatenate(parts) -> "PointSet":
        parts = list(parts)
        if not parts:
            raise ValueError("PointSet.concatenate: parts is empty; pass at least one PointSet")
        first = parts[0]
        # Hypersurface compares by its definition
        if any(p.manifold is not first.manifold and p.manifold != first.manifold for p in parts):
            raise ValueError("PointSet.concatenate: the parts lie on different manifolds; concatenate sets of one X")
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        jac = None if any(p.jacobian is None for p in parts) else cat("jacobian")
        return PointSet(first.manifold, cat("points"), cat("weights"), cat("omega2"), cat("g_fs"), cat("chart"),
                        jac, sum(p.n_dropped for p in parts), first.seed, dict(first.attrs))

    # ---- measures -----------------------------------------------------------------------------------
    @property
    def det_g_fs(self) -> np.ndarray:
        return det_hermitian(self.g_fs)

    def eta(self, g=None) -> np.ndarray:
        """eta = det g / |Omega|^2 (eq. B.11) for metrics g (N, m, m), default g_FS."""
        if g is not None and np.shape(g) != self.g_fs.shape:
            raise ValueError(f"g has shape {np.shape(g)}; pass one metric per point, shape {self.g_fs.shape}")
        return det_hermitian(self.g_fs if g is None else g) / self.omega2

    def sigma(self, g=None) -> float:
        """sigma measure of metrics g (default g_FS) on these points (eq. B.11)."""
        return float(sigma_measure(self.eta(g), self.weights))

    # ---- I/O ----------------------------------------------------------------------------------------
    def save(self, path, *, force: bool = False, attrs: dict | None = None, comm=None) -> None:
        """Write to HDF5 atomically (temp file + rename); refuses to overwrite unless force=True.

        Under MPI call it on every rank of `comm`; rank 0 writes. Ranks that hold the same set (layout "all") write
        it once; ranks that hold different rows (shares, layout "share") write all of them, in rank order
        (`hpcflow.parallel.replicated`: one allgather of a digest, then one Gatherv of the rows to rank 0).
        """
        from hpcflow.jobs.output import check_path

        path = check_path(path)
        if os.path.isdir(path):
            raise OutputPathError(f"{path} is a directory; pass the name of the HDF5 file to write")
        if os.path.lexists(path) and not force:
            raise OutputPathError(f"{path} exists; choose another path or pass force=True to overwrite it")
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
            raise OutputPathError(f"cannot write {path}: directory {parent} is missing or not writable")
        c = resolve(comm)
        data = [getattr(self, name) for name in FIELDS]
        # (a collective at R > 1: every rank has checked the path before rank 0 creates the file)
        if not identical_on_all(data, comm=c):
            data = gather_to_root(data, comm=c)  # the shares of every rank, in rank order
        if not is_root(c):
            return
        with atomic_file(path) as fh, h5py.File(fh, "w") as f:
            for name, values in zip(FIELDS, data):
                f.create_dataset(name, data=values)
            f.attrs["kind"] = "hpcflow.PointSet"
            f.attrs["manifold"] = self.manifold.definition_json()
            f.attrs["seed"] = json.dumps(self.seed)
            f.attrs["n_dropped"] = self.n_dropped
            f.attrs["conventions"] = CONVENTIONS
            f.attrs["hpcflow_version"] = __version__
            for k, v in {**self.attrs, **(attrs or {})}.items():
                f.attrs[k] = v

    @classmethod
    def load(cls, path) -> "PointSet":
        """Read a PointSet file; recomputes the Jacobians from the points and charts.

        Attributes (JSON), dataset kinds, dtypes, shapes and values (finite; positive weights and |Omega|^2;
        charts that exist) are validated first: InputFileError naming the file and the attribute or dataset.
        """
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise InputFileError(f"{path} does not exist; create it with 'hpcflow sample --out {path}'")
        try:
            f = h5py.File(path, "r")
        except OSError:
            raise InputFileError(f"{path} is not an HDF5 file; pass a file written by 'hpcflow sample'") from None
        with f:
            missing = [k for k in FIELDS if k not in f]
            if _attr_text(f, "kind") != "hpcflow.PointSet" or missing or "manifold" not in f.attrs:
                raise InputFileError(
                    f"{path} is not an hpcflow PointSet (missing {missing or 'kind/manifold attributes'}); "
                    "pass a file written by 'hpcflow sample'"
                )
            manifold = _manifold_attr(f, path)
            data = _read_fields(f, path, manifold)
            seed = _json_attr(f, path, "seed", "null")
            n_dropped = _json_attr(f, path, "n_dropped", "0")
            if not isinstance(n_dropped, int) or isinstance(n_dropped, bool) or n_dropped < 0:
                raise InputFileError(f"{path}: attribute 'n_dropped' = {n_dropped!r} is not a count >= 0; "
                                     "rewrite the file with 'hpcflow sample'")
        ps = manifold.point_set(data["points"], chart=data["chart"])
        ps.weights, ps.omega2, ps.g_fs = data["weights"], data["omega2"], data["g_fs"]
        ps.n_dropped, ps.seed = n_dropped, seed
        return ps


# ---- validation of PointSet files ---------------------------------------------------------------------------
def _attr_text(f, name: str):
    value = f.attrs.get(name)
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _json_attr(f, path: str, name: str, default: str):
    """Attribute `name` read as JSON (numbers stored natively are accepted as they are)."""
    value = _attr_text(f, name) if name in f.attrs else default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        raise InputFileError(f"{path}: attribute {name!r} is not text; rewrite the file with 'hpcflow sample'")
    try:
        return json.loads(value)
    except ValueError:
        raise InputFileError(f"{path}: attribute {name!r} is not valid JSON; rewrite the file with "
                             "'hpcflow sample'") from None


def _manifold_attr(f, path: str):
    from hpcflow.geometry.hypersurface import Hypersurface

    d = _json_attr(f, path, "manifold", "null")
    try:
        if not isinstance(d, dict):
            raise TypeError
        return Hypersurface.from_definition(d)
    except (KeyError, TypeError, ValueError, OverflowError, UserError) as exc:
        why = f" ({exc})" if isinstance(exc, UserError) else ""
        raise InputFileError(f"{path}: attribute 'manifold' is not a hypersurface definition{why}; rewrite the "
                             "file with 'hpcflow sample'") from None


def _read_fields(f, path: str, manifold) -> dict:
    """The five datasets, checked for kind, dtype, shape and values against each other and the manifold."""
    from hpcflow.resources import fmt_bytes, memory_limit

    n1, m = manifold.n + 1, manifold.dim
    kinds = {"points": "c", "weights": "f", "omega2": "f", "g_fs": "c", "chart": "iu"}
    tails = {"points": (n1,), "weights": (), "omega2": (), "g_fs": (m, m), "chart": (2,)}
    total = 0
    for name in FIELDS:
        ds = f[name]
        if not isinstance(ds, h5py.Dataset):
            raise InputFileError(f"{path}: '{name}' is not a dataset; rewrite the file with 'hpcflow sample'")
        if ds.dtype.kind not in kinds[name]:
            raise InputFileError(f"{path}: dataset '{name}' has dtype {ds.dtype}, expected "
                                 f"{'complex' if kinds[name] == 'c' else 'float' if kinds[name] == 'f' else 'integer'}")
        n = f["points"].shape[0] if f["points"].ndim else -1
        if ds.shape != (n, *tails[name]):
            raise InputFileError(f"{path}: dataset '{name}' has shape {ds.shape}, expected {(n, *tails[name])} for "
                                 f"{n} points on P^{manifold.n}")
        total += ds.size * ds.dtype.itemsize
    limit, where = memory_limit()
    if 3 * total > limit:
        raise InputFileError(f"{path}: its datasets need {fmt_bytes(3 * total)} to load, more than the "
                             f"{fmt_bytes(limit)} this process may use ({where})")
    data = {k: f[k][()] for k in FIELDS}
    for name in ("points", "weights", "omega2", "g_fs"):
        if not np.all(np.isfinite(data[name])):
            raise InputFileError(f"{path}: dataset '{name}' holds non-finite values (NaN or inf); resample the points")
    for name in ("weights", "omega2"):
        if np.any(data[name] <= 0):
            raise InputFileError(f"{path}: dataset '{name}' holds values <= 0; resample the points")
    chart = data["chart"]
    if len(chart) and (chart.min() < 0 or chart.max() > manifold.n or np.any(chart[:, 0] == chart[:, 1])):
        raise InputFileError(f"{path}: dataset 'chart' holds a chart that does not exist on P^{manifold.n} "
                             f"(need 0 <= I != J <= {manifold.n})")
    data["chart"] = chart = chart.astype(np.int64)
    z = data["points"]
    if len(z) and not np.allclose(z[np.arange(len(z)), chart[:, 0]], 1.0, rtol=0, atol=1e-12):
        raise InputFileError(f"{path}: dataset 'points' is not chart-normalised (z_I = 1 for each point's chart "
                             "(I, J)); rewrite the file with 'hpcflow sample'")
    if len(z) and np.max(manifold.residual(z)) > ON_X_TOL:
        raise InputFileError(f"{path}: dataset 'points' holds points off the hypersurface (|p(z)|/|z|^deg > "
                             f"{ON_X_TOL:g}); pass points sampled on this manifold")
    return data
