"""PointSet: points on X with their charts, g_FS, |Omega|^2 and Monte Carlo weights; HDF5 save/load."""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field

import h5py
import numpy as np

from hpcflow import __version__
from hpcflow.arguments import api_bool, short_repr
from hpcflow.atomic import atomic_file
from hpcflow.errors import InputFileError, OutputPathError, UserError, WriteFailed
from hpcflow.geometry.hermitian import check_metrics, det_hermitian
from hpcflow.geometry.measures import sigma_measure
from hpcflow.geometry.pointcheck import (FIELDS, KIND, Problem, as_float64, attribute_text, check_attributes,
                                         check_drawn, check_layout, check_rows, drawn_rows_text)
from hpcflow.parallel.comm import arguments_together, is_root, raise_together, resolve, size
from hpcflow.parallel.replicated import gather_to_root, identical_on_all

#: conventions written into every PointSet file (see hpcflow.geometry docstring)
CONVENTIONS = (
    "points: homogeneous coords scaled so z_i = 1 for the chart's scale index i; "
    "g_fs[a,b] = d_a dbar_b log|z|^2 pulled back to the chart's local coords (no 1/pi); "
    "omega2 = |Omega|^2 = 1/|dp/dz_j|^2; weights = omega2/det(g_fs) (unnormalised); "
    "eta = det(g)/omega2; kappa = sum(w eta)/sum(w); sigma = sum(w |1-eta/kappa|)/sum(w) (eq. B.11)"
)

#: the root attributes `PointSet.save` writes itself (docs/outputs.md), which attrs= and PointSet.attrs may not name
RESERVED = ("kind", "manifold", "seed", "n_dropped", "conventions", "hpcflow_version", "drawn_n", "drawn_rows",
            "sampled_chart", "intersections", "other_charts")

#: what PointSet indexing and `subset` take
INDEX_WANT = "an int, a slice, a 1-D integer index array or a 1-D boolean mask of length N"


def row_index(idx, n: int, what: str = "PointSet index"):
    """`idx` as a slice or a 1-D integer array of rows of a set of n points: an int (negative counts from the end)
    or a 0-d integer array (argmax's result) gives that one row; TypeError for bools, None, Ellipsis, tuples and
    non-integer arrays, IndexError for out-of-range rows, masks of another length and arrays of ndim > 1."""
    def refuse(why, exc=TypeError):
        return exc(f"{what} {short_repr(idx)} is invalid: {why}; pass {INDEX_WANT.replace('N', str(n))}")

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
    #: where the rows come from when they are a subset of a draw (`ps[...]`, `subset`): (points of the draw that
    #: `seed` gave, the int64 rows of it kept, in order; None where not known); None for a whole draw. A rank's share
    #: of a draw (layout "share" or "root" at R > 1) is its rows of the draw
    drawn: tuple | None = field(default=None, compare=False)
    #: the chart (I, J) the draw was restricted to (`hpcflow sample --chart I J`), which with `seed` reproduces its
    #: points; None for a draw of every chart (or where not known). Saved as @sampled_chart; every row must lie in it
    sampled_chart: tuple | None = field(default=None, compare=False)
    #: the sampler's `_digest` of the rows it formed (`mark_sampled`); None for any other set
    _sampled: tuple | None = field(default=None, init=False, repr=False, compare=False)
    #: the sampler's count of the points where the lines of its draw's batches (those up to the last whose points it
    #: keeps) meet X, among which n_dropped were left out: a count of the whole draw, so set on a whole draw only (the
    #: sampler's set, and on rank 0 of layout "root"). A subset (`ps[...]`, `subset`, `concatenate`; a share of
    #: layout "share"), which cannot know how many intersection points its own rows were sampled among, has None,
    #: but for one that is the whole draw in order (`ps[:]`); so has a set not from the sampler. Saved as
    #: @intersections; `load` reads it back, None from a file without it (written before it existed, or of a subset)
    intersections: int | None = field(default=None, init=False, repr=False, compare=False)
    #: with `sampled_chart`: how many of the `intersections` lie in other charts (neither kept nor dropped); None
    #: where `intersections` is, and for a draw of every chart. Saved as @other_charts and read back as it is
    other_charts: int | None = field(default=None, init=False, repr=False, compare=False)
    #: (intersections, other_charts) of the whole draw these rows are of, kept where the public counts are None (a
    #: rank's share, its subsets): `save` writes them where the rows saved, all ranks' together, are that whole draw
    #: in order (a gathered save of a draw's shares), as the single-process file of the draw records them
    _draw_counts: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return self.points.shape[0]

    def __repr__(self) -> str:
        """One line: the manifold, N, the fields' shapes, the seed and chart that reproduce it (the dataclass's repr
        printed every array in full, ~20 lines a point)."""
        fields = ("points", "weights", "omega2", "g_fs", "chart", "jacobian")
        shapes = ", ".join(f"{k}{tuple(getattr(self, k).shape)}" for k in fields if getattr(self, k) is not None)
        m = self.manifold
        name = (f"{m.name}({', '.join(f'{k}={v!r}' for k, v in m.params)})"
                if isinstance(getattr(m, "name", None), str) and isinstance(getattr(m, "params", None), tuple)
                else repr(m))
        return (f"PointSet({name}, N={len(self)}, {shapes}, n_dropped={self.n_dropped}, seed={self.seed!r}, "
                f"sampled_chart={self.sampled_chart!r})")

    def _take(self, idx) -> "PointSet":
        jac = None if self.jacobian is None else self.jacobian[idx]
        n, rows = _drawn(self)
        drawn = subset_or_none(n, None if rows is None else rows[idx])
        out = PointSet(self.manifold, self.points[idx], self.weights[idx], self.omega2[idx], self.g_fs[idx],
                       self.chart[idx], jac, self.n_dropped, self.seed, dict(self.attrs), drawn, self.sampled_chart)
        if drawn is None:  # the whole draw in order (ps[:]): its counts hold; a subset's are not known (None)
            out.intersections, out.other_charts = self.intersections, self.other_charts
        out._draw_counts = self._draw_counts  # (written only where rows saved together are the whole draw)
        return out

    def subset(self, idx) -> "PointSet":
        """The points selected by a boolean mask or index array (anything `ps[idx]` takes, with the same result)."""
        return self._take(row_index(idx, len(self), "PointSet.subset index"))

    def __getitem__(self, idx) -> "PointSet":
        """The points selected by a slice, mask or index array; an integer gives a PointSet of that one point. An
        integer or a slice gives views of this set's arrays (shared memory, as NumPy's basic slicing); a mask or
        an index array gives copies."""
        return self._take(row_index(idx, len(self)))

    @staticmethod
    def concatenate(parts) -> "PointSet":
        """One PointSet of the rows of `parts` (an iterable of PointSets of one X), in order; anything else in
        parts is one TypeError naming it (a bare array of points has no data: X.point_set(points) forms them).
        Parts of one draw (one seed, draw size and sampled chart) give its seed and their rows of it (`drawn`); parts
        of different draws give seed None and drawn None: no seed reproduces their rows (`combined_origin`).
        `intersections` and `other_charts` are those of a part that holds its whole draw, in order, beside parts
        without rows; else None (parts of subsets do not know theirs)."""
        try:
            parts = None if isinstance(parts, (str, bytes)) else list(parts)
        except TypeError:
            parts = None
        if parts is None:
            raise TypeError("PointSet.concatenate: parts is not a list of PointSets; pass a list such as [a, b]")
        for k, p in enumerate(parts):
            if not isinstance(p, PointSet):
                raise TypeError(f"PointSet.concatenate: parts[{k}] is of type {type(p).__name__}, not a PointSet; pass "
                                "PointSets (X.point_set(points) makes one of points on X)")
        if not parts:
            raise ValueError("PointSet.concatenate: parts is empty; pass at least one PointSet")
        first = parts[0]
        # Hypersurface compares by its polynomial (`Hypersurface.polynomial_key`)
        if any(p.manifold is not first.manifold and p.manifold != first.manifold for p in parts):
            raise ValueError("PointSet.concatenate: the parts lie on different manifolds; concatenate sets of one X")
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        jac = None if any(p.jacobian is None for p in parts) else cat("jacobian")
        # rows of one draw keep its seed and name its rows; rows of several draws (or of none) reproduce no draw
        one, drawn, chart = combined_origin([_origin(p) for p in parts])
        out = PointSet(first.manifold, cat("points"), cat("weights"), cat("omega2"), cat("g_fs"), cat("chart"),
                       jac, sum(p.n_dropped for p in parts), None if one is None else parts[one].seed,
                       dict(first.attrs), drawn, chart)
        if one is not None and drawn is None:  # (one whole draw, in order: [ps], or ps with empty parts)
            out.intersections, out.other_charts = parts[one].intersections, parts[one].other_charts
        wholes = {p._draw_counts for p in parts if len(p)}
        if one is not None and len(wholes) == 1:  # rows of one draw: its counts, for a save of the whole draw
            out._draw_counts = wholes.pop()
        return out

    def mark_sampled(self) -> None:
        """Record that these rows are the sampler's (points on X, data formed by `charts.point_data` from them), so
        that `save` need not form the data again while the rows stay unchanged."""
        self._sampled = self._digest()

    def _digest(self) -> tuple | None:
        """The manifold's definition and, per saved field, dtype, shape and CRC-32 of the bytes (None if a field is
        not one C-contiguous array): a changed row, field or manifold gives another digest."""
        out = [self.manifold.definition_json()]
        for name in FIELDS:
            a = getattr(self, name)
            if type(a) is not np.ndarray or not a.flags.c_contiguous:
                return None
            out.append((a.dtype.str, a.shape, zlib.crc32(a)))
        return tuple(out)

    # ---- measures -----------------------------------------------------------------------------------
    @property
    def det_g_fs(self) -> np.ndarray:
        return det_hermitian(self.g_fs)

    def eta(self, g=None) -> np.ndarray:
        """eta = det g / |Omega|^2 for metrics g (N, m, m), default g_FS: the paper's eta of eq. B.11 times kappa
        (B.11 divides by kappa, `measures.kappa`; `sigma` does); a g that is not one Hermitian
        positive definite matrix per point is refused (`hermitian.check_metrics`: ValueError naming the point)."""
        if g is None:
            return det_hermitian(self.g_fs) / self.omega2
        if np.shape(g) != self.g_fs.shape:
            raise ValueError(f"g has shape {np.shape(g)}; pass one metric per point, shape {self.g_fs.shape}")
        return det_hermitian(check_metrics(g)) / self.omega2

    def sigma(self, g=None) -> float:
        """sigma measure of metrics g (default g_FS) on these points (eq. B.11)."""
        return float(sigma_measure(self.eta(g), self.weights))

    # ---- I/O ----------------------------------------------------------------------------------------
    def save(self, path, *, force: bool = False, attrs: dict | None = None, comm=None) -> None:
        """Write to HDF5 atomically (temp file + rename); refuses to overwrite unless force=True, also a file that
        another process creates at `path` while this one writes (OutputPathError, that file kept). `force` is True or
        False (a NumPy bool too; anything else a TypeError naming it: force="no" is no False); the refusals of `path`
        name that argument (`check_path_type`, `hpcflow.jobs.output.check_output_file` with arg="path").

        Under MPI call it on every rank of `comm`; rank 0 writes, and every rank returns once the file is in place
        (a load may follow on any rank) or raises rank 0's error (one bcast at R > 1). Ranks that hold the same set
        (layout "all") write it once; ranks that hold different rows (shares, layout "share") write all of them, in
        rank order
        (`hpcflow.parallel.replicated`: one allgather of a digest, then one Gatherv of the rows to rank 0), with the
        @seed, @drawn_n, @drawn_rows and @sampled_chart of all those rows (one gather): the rows of one draw they
        are (a share knows its rows of the draw), or no seed and no drawn rows where the ranks' are of different draws.
        Rows or attributes that `load` would refuse (`hpcflow.geometry.pointcheck`, the same rules) and a RESERVED
        name in attrs= or PointSet.attrs are refused first, by every rank together: one ValueError, nothing written; so
        is a path one rank cannot write (OutputPathError), and a path or force that differs between ranks (one
        allgather at R > 1).
        """
        c = resolve(comm)
        got = {}

        def check():
            from hpcflow.jobs.output import check_output_file

            check_attrs(self.attrs, "PointSet.attrs")
            check_attrs(attrs, "attrs")
            check_path_type(path)
            got["force"] = api_bool("force", force)  # ("no" would overwrite: truthiness)
            got["path"] = check_output_file(path, force=got["force"], arg="path", force_flag="force=True")
            seed = _json_or_none(self.seed)
            got["attributes"] = {"kind": KIND, "manifold": self.manifold.definition_json(), "seed": seed,
                                 "n_dropped": self.n_dropped, "conventions": CONVENTIONS,
                                 "hpcflow_version": __version__, **self.attrs, **(attrs or {}),
                                 **origin_attributes(self.drawn, self.sampled_chart), **count_attributes(self)}
            whose = f", rows of rank {c.Get_rank()}" if c.Get_size() > 1 else ""
            refusal = self._save_refusal(f"{got['path']}{whose}", got["attributes"], seed is not None)
            if refusal is not None:
                raise ValueError(refusal)

        from hpcflow.jobs.output import probed_directory, probes_shared

        # the write probe of the path's directory made by rank 0 alone, its verdict given to every rank
        with probes_shared([probed_directory(path, file=True)], c):
            arguments_together(check, comm=c,
                               same=lambda: {"path": os.path.abspath(got["path"]), "force": got["force"]})
        path, force, attributes = got["path"], got["force"], got["attributes"]
        data = [getattr(self, name) for name in FIELDS]
        # (collectives at R > 1: every rank has checked the path and its rows before rank 0 creates the file)
        if not identical_on_all(data, comm=c):
            data = gather_to_root(data, comm=c)  # the shares of every rank, in rank order
            # the file's @seed, @drawn_n, @drawn_rows and @sampled_chart are those of all the ranks' rows together:
            # one draw's rows where every rank's are of that draw, else none (each rank's are valid, so are these)
            gathered = c.gather((_origin(self), count_attributes(self), self._draw_counts), root=0)
            if is_root(c):
                origins = [o for o, _, _ in gathered]
                one, drawn, chart = combined_origin(origins)
                attributes = {k: v for k, v in attributes.items() if k not in ORIGIN[1:] + COUNTS}  # in check's order
                attributes["seed"] = origins[one][0] if one is not None else json.dumps(None)
                attributes.update(origin_attributes(drawn, chart))
                # the counts of one whole draw, held by the one rank with rows (layout "root"); shares have none
                held = [counts for (o, counts, _) in gathered if o[4] > 0]
                # else those every rank's share keeps of its draw, where together they are that whole draw in order
                shared = {whole for (o, _, whole) in gathered if o[4] > 0}
                if one is not None and drawn is None and len(held) == 1:
                    attributes.update(held[0])
                elif one is not None and drawn is None and len(shared) == 1 and None not in shared:
                    attributes.update(count_attributes(_Counts(*shared.pop())))
        failed = None
        if is_root(c):
            try:
                _write(path, data, attributes, force)
            except Exception as exc:  # every rank returns or raises together, once the file is in place or not
                failed = exc
        if size(c) > 1:
            said = c.bcast(None if failed is None else _as_sent(failed), root=0)
            if said is not None:
                raise_together(failed if failed is not None else _as_received(said), comm=c)
        if failed is not None:
            raise failed

    def _save_refusal(self, where: str, attributes: dict, seed_is_json: bool) -> str | None:
        """Why `load` would refuse the file `save` is about to write from these rows and attributes (the same rules,
        `hpcflow.geometry.pointcheck`), or None."""
        try:
            if not seed_is_json:
                raise Problem("attribute 'seed'", f"= {short_repr(self.seed)} is not JSON-serialisable")
            manifold = check_attributes(attributes)[0]
            fields = {name: np.asarray(getattr(self, name)) for name in FIELDS}
            check_layout(manifold, fields)
            check_drawn(attributes, len(fields["points"]))
            chart = check_sampled_chart(attributes, manifold, fields["chart"])
            check_counts(attributes, len(fields["points"]), chart)
            # the sampler's data hold on the set's own manifold only: the file's must be that one
            sampled = self._sampled is not None and self._digest() == self._sampled and manifold == self.manifold
            check_rows(manifold, as_float64(fields), formed=sampled)
        except Problem as p:
            fix = SAVE_FIXES["attribute" if p.where.startswith("attribute") else "dataset"]
            return f"PointSet.save({where}): {p.where} {p.what}, which PointSet.load refuses; nothing written: {fix}"
        return None

    @classmethod
    def load(cls, path) -> "PointSet":
        """Read a PointSet file; recomputes the Jacobians, g_FS, |Omega|^2 and weights from the points and charts
        and keeps the stored ones where they agree (`hpcflow.geometry.pointcheck`: attributes, dataset kinds and
        shapes, values, Hermitian g_FS, agreement within roundoff). The float datasets are float64 (weights, omega2) /
        complex128 (points, g_fs), as save writes them: any other float or complex dtype (float16, float32,
        complex64: rounded values; longdouble: rounded on reading) is refused, naming the dataset, its dtype and the
        conversion; chart may be of any integer dtype (read as int64). Otherwise
        InputFileError naming the file, the attribute or dataset and the fix; a path that is not a file name is
        refused as `save` refuses it (TypeError for None or a number, InputFileError for an empty name).
        """
        path = check_load_path(path)
        if os.path.isdir(path):
            raise InputFileError(f"{path} is a directory, not a PointSet file; pass the file that 'hpcflow sample "
                                 "--out FILE' wrote")
        if not os.path.isfile(path):
            raise InputFileError(f"{path} does not exist; create it with 'hpcflow sample --out {path}'")
        try:
            f = h5py.File(path, "r")
        except OSError:
            if _has_hdf5_signature(path):
                raise InputFileError(f"{path} is an HDF5 file that is truncated or damaged (HDF5 cannot open it); "
                                     "write it again with 'hpcflow sample' or PointSet.save") from None
            raise InputFileError(f"{path} is not an HDF5 file; pass a file written by 'hpcflow sample'") from None
        try:
            with f:
                _check_kind(f, path)
                manifold, seed, n_dropped = check_attributes(f.attrs)
                data = _read_fields(f, path, manifold)
                drawn, rows = check_drawn(f.attrs, len(data["points"]))
                sampled_chart = check_sampled_chart(f.attrs, manifold, data["chart"])
                counts = check_counts(f.attrs, len(data["points"]), sampled_chart)
            ps = check_rows(manifold, data, keep=True)  # the Jacobians, g_FS, |Omega|^2 the points give
        except Problem as p:
            raise InputFileError(f"{path}: {p}") from None
        ps.weights, ps.omega2, ps.g_fs = data["weights"], data["omega2"], data["g_fs"]
        ps.n_dropped, ps.seed = n_dropped, seed
        ps.drawn = None if drawn is None else (drawn, rows)
        ps.sampled_chart = sampled_chart
        ps.intersections, ps.other_charts = counts
        ps._draw_counts = None if counts[0] is None else tuple(counts)
        return ps


def check_path_type(path) -> None:
    """TypeError naming `path` unless it is a file name, a str or an os.PathLike giving one (an int was the OS's
    "expected str, bytes or os.PathLike object")."""
    if not isinstance(path, (str, os.PathLike)) or not isinstance(os.fspath(path), str):
        raise TypeError(f"path={short_repr(path)} is invalid; pass a file name (a str or pathlib.Path), e.g. "
                        "'points.h5'")


def check_load_path(path) -> str:
    """`PointSet.load`'s path as a str: `check_path_type`'s TypeError, InputFileError naming `path` for an empty or
    blank name or one with a NUL byte (no file has such a name)."""
    check_path_type(path)
    path = os.fspath(path)
    if not path.strip():
        raise InputFileError(f"path={path!r} is {'blank' if path else 'empty'}; pass the name of a PointSet file, "
                             "e.g. 'points.h5'")
    if "\0" in path:
        raise InputFileError(f"path={path!r} contains a NUL byte, which no file name holds; pass the name of a "
                             "PointSet file")
    return path


def check_sampled_chart(attrs, manifold, rows) -> tuple | None:
    """@sampled_chart of a PointSet file's attributes: the chart (I, J) its draw was restricted to, or None where it is
    absent (files of every chart, and every file written before it existed), null or []; the Problem of one that is
    no chart of the manifold, or that a row of dataset 'chart' (`rows`, (N, 2)) contradicts."""
    from hpcflow.geometry.pointcheck import json_attribute

    if "sampled_chart" not in attrs:
        return None
    value = json_attribute(attrs, "sampled_chart", "null")
    if value is None or value == []:
        return None
    pair = tuple(value) if isinstance(value, list) and len(value) == 2 and all(
        type(i) is int for i in value) else None
    if pair is None or pair not in manifold.charts:
        raise Problem("attribute 'sampled_chart'", f"= {short_repr(value)} is not a chart of the manifold ([I, J], "
                      "scale index I, eliminated index J, of its charts; absent for a draw of every chart)")
    rows = np.asarray(rows)
    off = np.flatnonzero(np.any(rows.reshape(-1, 2) != pair, axis=1)) if rows.size else np.zeros(0, dtype=np.int64)
    if off.size:
        i = int(off[0])
        raise Problem("dataset 'chart'", f"has row {i} in chart {tuple(int(c) for c in rows[i])}, while attribute "
                      f"'sampled_chart' says every point of the draw lies in {list(pair)}")
    return pair


#: the root attributes of the sampler's counts of a whole draw (`count_attributes`)
COUNTS = ("intersections", "other_charts")


@dataclass
class _Counts:
    """A whole draw's counts as `count_attributes` reads them (PointSet._draw_counts)."""
    intersections: int | None
    other_charts: int | None


def count_attributes(ps) -> dict:
    """@intersections and @other_charts (int64) of `ps`, those of its counts that are not None (a whole draw's)."""
    return {k: np.int64(getattr(ps, k)) for k in COUNTS if getattr(ps, k) is not None}


def check_counts(attrs, rows: int, sampled_chart) -> tuple:
    """(intersections, other_charts) of a PointSet file's attributes (`rows` points, @n_dropped, @drawn_n and
    `sampled_chart` read from them), None where absent (every file of a subset, and every file written before they
    existed; @other_charts also where @intersections or @sampled_chart is); the Problem of one that is no integer
    >= 0, of counts in a subset's file (@drawn_n: a subset has none), and of counts the rows contradict (the
    intersection points sampled hold the dropped ones, those of other charts and at least the rows)."""
    got = {}
    for name in COUNTS:
        value = attribute_text(attrs, name) if name in attrs else None
        if name in attrs and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise Problem(f"attribute {name!r}", f"= {short_repr(value)} must be an integer >= 0 (int64: "
                          + ("the intersection points the draw's lines gave)" if name == "intersections" else
                             "of those intersection points in other charts than @sampled_chart)"))
        got[name] = value
    hits, other = got["intersections"], got["other_charts"]
    if sampled_chart is None:  # (@sampled_chart removed, null or []: the draw is read as one of every chart)
        other = None
    if hits is None:
        return None, None
    if "drawn_n" in attrs:
        raise Problem("attribute 'intersections'", "is given in a file of a subset of a draw (@drawn_n): a subset "
                      "cannot know how many intersection points its rows were sampled among; leave it out")
    dropped = attribute_text(attrs, "n_dropped") if "n_dropped" in attrs else 0
    dropped = dropped if isinstance(dropped, int) else 0  # (@n_dropped itself is checked by check_attributes)
    if hits < dropped + (other or 0) + rows:
        raise Problem("attribute 'intersections'", f"= {hits} is fewer than the {rows} points kept, the {dropped} "
                      f"dropped" + (f" and the {other} in other charts" if other else "") + " that it counts")
    return hits, other


#: the root attributes that say which draw a file's rows come from (`origin_attributes`)
ORIGIN = ("seed", "drawn_n", "drawn_rows", "sampled_chart")


def origin_attributes(drawn, sampled_chart) -> dict:
    """@drawn_n and @drawn_rows of PointSet.drawn `drawn` (a subset of a draw: which rows of how many, docs/outputs.md)
    and @sampled_chart (a draw kept to one chart: @seed reproduces it with that chart); none for a whole draw of every
    chart."""
    out = {}
    if drawn is not None:
        out.update(drawn_n=int(drawn[0]), drawn_rows="null" if drawn[1] is None else drawn_rows_text(drawn[1]))
    if sampled_chart is not None:
        out["sampled_chart"] = json.dumps([int(i) for i in sampled_chart])
    return out


def _origin(ps) -> tuple:
    """Where the rows of `ps` come from, as plain values (sent between ranks by `save`): (@seed's JSON text or None,
    sampled chart, points of the draw, its rows that `ps` holds or None, rows of `ps`)."""
    n, rows = _drawn(ps)
    return (_json_or_none(ps.seed), ps.sampled_chart, int(n), rows, len(ps))


def combined_origin(origins) -> tuple:
    """(index of a part whose seed the rows keep or None, PointSet.drawn, sampled_chart) of the rows of parts with
    `_origin`s `origins` put together in order. Parts with rows that share one seed (not null), one draw size and one
    sampled chart are rows of that draw: its seed and their rows (None where a part's are not known). Parts of
    several draws, or of no seed, reproduce no draw: no seed, no drawn. Parts without rows are left out (all of them
    where every part has none); the sampled chart is kept where every part has the same."""
    used = [k for k, o in enumerate(origins) if o[4] > 0] or list(range(len(origins)))
    charts = {origins[k][1] for k in used}
    chart = charts.pop() if len(charts) == 1 else None
    seed, _, n, _, _ = origins[used[0]]
    if seed in (None, "null") or any(origins[k][0] != seed or origins[k][1:3] != origins[used[0]][1:3]
                                     for k in used):
        return None, None, chart
    rows = [origins[k][3] for k in used]
    return used[0], subset_or_none(n, None if any(r is None for r in rows) else np.concatenate(rows)), chart


def _drawn(ps) -> tuple:
    """(points of the draw, its rows that `ps` holds in order or None where not known): a whole draw's are all."""
    return ps.drawn if ps.drawn is not None else (len(ps), np.arange(len(ps), dtype=np.int64))


def subset_or_none(n: int, rows) -> tuple | None:
    """PointSet.drawn of the rows `rows` of an n-point draw: None where they are the whole draw in order."""
    if rows is not None and rows.size == n and np.array_equal(rows, np.arange(n)):
        return None
    return (int(n), rows)


def check_attrs(attrs, name: str) -> None:
    """TypeError naming the first entry of `attrs` (a dict or None) that an HDF5 attribute cannot hold: names are
    str, values str, bytes, a number or a list / array of numbers (NumPy kinds b, i, u, f, c); ValueError for a
    RESERVED name (it would replace what save writes: another manifold, seed or count than the set's)."""
    if attrs is None:
        return
    if not isinstance(attrs, dict):
        raise TypeError(f"PointSet.save: {name} is a {type(attrs).__name__}; pass a dict {{name: value}} or None")
    for key, value in attrs.items():
        if not isinstance(key, str):
            raise TypeError(f"PointSet.save: {name} has the name {short_repr(key)} ({type(key).__name__}); HDF5 "
                            "attribute names are str; nothing written")
        if key in RESERVED:
            raise ValueError(f"PointSet.save: {name} has the name {key!r}, which save writes from the set itself "
                             f"({', '.join(RESERVED)}); leave it out of {name} (set PointSet.seed or n_dropped to "
                             "change those); nothing written")
        if isinstance(value, (str, bytes)):
            continue
        try:
            kind = np.asarray(value).dtype.kind
        except (TypeError, ValueError):  # a ragged list
            kind = "O"
        if kind not in "biufc":
            raise TypeError(f"PointSet.save: {name}[{key!r}] = {short_repr(value)} ({type(value).__name__}) cannot be "
                            "an HDF5 attribute; pass a str, a number or a list / array of numbers (json.dumps(value) "
                            "for other data); nothing written")


#: the 8 bytes that open an HDF5 file's superblock, at byte 0 or after a user block of 512, 1024, 2048, ... bytes
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _has_hdf5_signature(path: str) -> bool:
    """Whether the file holds the HDF5 signature where the format puts it (a file HDF5 then cannot open is damaged,
    e.g. cut short, not of another format)."""
    try:
        with open(path, "rb") as fh:
            size, at = os.fstat(fh.fileno()).st_size, 0
            while at + len(HDF5_SIGNATURE) <= size:
                fh.seek(at)
                if fh.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE:
                    return True
                at = 512 if at == 0 else 2 * at
    except OSError:
        return False
    return False


def _check_kind(f, path: str) -> None:
    """InputFileError unless the open file says it is a PointSet (attribute kind) and has a manifold attribute and the
    five datasets: a file of another kind is named as such, not as one that misses parts."""
    written = "pass a file written by 'hpcflow sample'"
    if "kind" not in f.attrs:
        raise InputFileError(f"{path} is not an hpcflow PointSet (it has no attribute 'kind'); {written}")
    kind = attribute_text(f.attrs, "kind")
    if kind != KIND:
        raise InputFileError(f"{path}: attribute 'kind' is {short_repr(kind)}, expected {KIND!r}: not a PointSet "
                             f"file; {written}")
    missing = [f"dataset {k!r}" for k in FIELDS if k not in f] + ["attribute 'manifold'"] * ("manifold" not in f.attrs)
    if missing:
        raise InputFileError(f"{path}: a PointSet without {', '.join(missing)}; {written}")


#: what to do when `save` refuses a set whose file `load` would refuse
SAVE_FIXES = {"dataset": f"form point data with Hypersurface.sample or Hypersurface.point_set and select rows with "
                         f"ps[...] ({INDEX_WANT})",
              "attribute": "keep PointSet.seed JSON (an int >= 0, a string or None), n_dropped a count >= 0 and "
                           "PointSet.drawn as ps[...] sets it (the draw's size, its rows or None)"}


def _json_or_none(value):
    """value as JSON text with sorted keys, as every JSON root attribute (docs/outputs.md; keys made text first, so
    int and str keys sort together); NumPy numbers as the Python numbers they hold; None if it has no JSON form."""
    try:
        text = json.dumps(value.item() if isinstance(value, np.generic) else value)
        return json.dumps(json.loads(text), sort_keys=True)
    except (TypeError, ValueError):
        return None


def _read_fields(f, path: str, manifold) -> dict:
    """The five datasets (layout checked, sizes within memory) as float64 / complex128 / int64
    (`pointcheck.as_float64`)."""
    from hpcflow.resources import fmt_bytes, memory_limit

    for name in FIELDS:
        if not isinstance(f[name], h5py.Dataset):
            raise Problem(f"'{name}'", "is not a dataset")
    check_layout(manifold, {name: f[name] for name in FIELDS})
    total = sum(f[name].size * f[name].dtype.itemsize for name in FIELDS)
    limit, where = memory_limit()
    if 3 * total > limit:
        raise InputFileError(f"{path}: its datasets need {fmt_bytes(3 * total)} to load, more than the "
                             f"{fmt_bytes(limit)} this process may use ({where})")
    return as_float64({name: f[name][()] for name in FIELDS})


def _write(path, data, attributes: dict, force: bool) -> None:
    """Rank 0's part of `PointSet.save`: the file, atomically; without force placed only if no file took the name
    meanwhile (a concurrent save or sample); with force a symbolic link at `path` is written through, to its
    target (the file the user named), and stays a link. The debris of earlier writes of that file killed before their
    rename is removed first, never a live writer's temporary (`hpcflow.geometry.temporaries`)."""
    from hpcflow.atomic import link_target
    from hpcflow.geometry.temporaries import writing

    try:
        with writing(link_target(path) if force else path), atomic_file(path, replace=force, follow=True) as fh, \
                h5py.File(fh, "w") as f:
            for name, values in zip(FIELDS, data):
                f.create_dataset(name, data=values)
            for k, v in attributes.items():
                f.attrs[k] = v
    except FileExistsError:
        raise OutputPathError(f"{path} was created by another process while this set was being written; it is "
                              "left as it is and this set is not written: choose another path, or pass "
                              "force=True to overwrite it") from None


def _as_sent(exc: Exception) -> tuple:
    """Rank 0's failed write as plain values for the other ranks: its kind, message and OSError fields."""
    if isinstance(exc, (UserError, OSError)):
        return (type(exc).__name__, str(exc), getattr(exc, "errno", None), getattr(exc, "strerror", None),
                getattr(exc, "filename", None), getattr(exc, "advice", ""))
    return ("RuntimeError", f"rank 0 could not write the PointSet file: {type(exc).__name__}: {exc}", None, None,
            None, "")


def _as_received(said: tuple) -> Exception:
    """The exception a rank other than 0 raises for rank 0's failed write (`_as_sent`)."""
    kind, message, errno, strerror, filename, advice = said
    if kind == "WriteFailed":
        exc = WriteFailed(errno, strerror, filename)
        exc.advice = advice
        return exc
    if kind == "OutputPathError":
        return OutputPathError(message)
    if errno is not None:
        return OSError(errno, strerror, filename)
    return RuntimeError(message)
