"""Restartable HDF5 checkpoints of the kernel flow (eq. 3.5): written atomically on rank 0, read at any rank count.

Schema of DIR/checkpoint.h5 (plain h5py reads it; `SCHEMA` below is the same list, written into the file):

    attrs   kind = "hpcflow.flow_checkpoint", schema_version, step (steps done), status, stopped, test_held,
            best, since_best, n_train, n_test, ranks (R of the last leg), config (JSON of the validated job),
            hpcflow_version, conventions, geometry_conventions (hpcflow.geometry.pointset.CONVENTIONS),
            legs (JSON list, one entry per run that wrote this checkpoint, first to last: from_step, to_step,
            ranks, wall_seconds up to its last write, hpcflow_version, threads (the leg's threads per rank,
            rank 0's $HPCFLOW_THREADS or usable CPUs: the kernel sums' worker threads), blas_kernel (rank 0's
            BLAS kernel, `hpcflow.provenance.blas_kernel`: OpenBLAS's core type, e.g. "SkylakeX"; null where no
            library reports one), backend (rank 0's array backend, "numpy" or "cupy",
            `hpcflow.provenance.array_backend`; a resume on another backend continues to rounding), git_commit
            (rank 0's commit of the hpcflow source tree, `hpcflow.provenance.git_commit`; null outside a git
            checkout; a resume by another commit or hpcflow_version than the last leg's says so in one line)
            (threads, blas_kernel, backend and git_commit absent from legs written before they were recorded);
            version 1 files have none: a resume of one records the steps before it as one leg whose
            ranks/wall_seconds/hpcflow_version are null),
            flow_arguments (JSON of `hpcflow.flow.flow_arguments`: kernel class and hyperparameters, dt, loss,
            weighted, max_halvings, clip, kappa_gradient; absent from files written before it was recorded),
            set_fingerprints (JSON {"train": hex, "test": hex or null} of `set_fingerprint`; only where the writer
            stores no point data of a set, as a CheckpointWriter without `static`),
            engine ("numba" or "numpy": the engine the flow's Gaussian kernel evaluates its tiles with, `engine` of
            the writer, as `hpcflow run` built it; a --resume of a job whose [kernel].engine is "auto" or unset
            builds its kernel with it, so that the steps it adds run on the engine of the steps before, whatever
            its larger [flow].steps would resolve "auto" to; absent for other kernels and from files written before
            it was recorded, which resume as "auto" resolves)
    history/sigma_train, history/sigma_test   (step+1,) sigma per step, step 0 = FS (eq. B.11)
    history/dt                                (step,)   accepted dt of each step
    history/rejections                        (k, 2)    (step, dt) of every rejected trial step
    history/step_seconds, kernel_seconds, comm_seconds, comm_bytes   (step, R)   per step and rank (column j =
                                              rank j); rows of steps run at another rank count than the last
                                              leg's R (a resume at another R) are NaN: `legs` says which
    train/g, test/g                           (N, m, m) complex metrics after `step` steps
    train/points, train/weights, train/omega2 (and test/)  the point data (static, from the writer's `static`)
    cluster/labels, cluster/owner             when clustered (static)

A checkpoint is replaced only by a complete newer one (`hpcflow.atomic.atomic_file`): a crash while writing leaves
the previous checkpoint readable. SIGTERM/SIGUSR1 (what Slurm sends before a time limit or preemption) and a first
Ctrl-C (SIGINT) make the next step boundary write a checkpoint and raise `Preempted` on every rank (exit status 4),
unless the flow ends at that step anyway (its last step, its early stop: `FlowView.ends`): the request has nothing left
to stop, and the run finishes as it would have (final checkpoint, status "finished", exit 0). One received before the
first step (during the flow's setup) is honoured before that step's kernel work, with the checkpoint of the state it
starts from (step 0: g_FS; `CheckpointWriter.before_steps`).
`load_resume` refuses (exit 2) a file that h5py cannot read (damaged bytes), lacks an entry, has a wrong shape or type
(a per-rank history not (step, ranks), a history that is not floating point, a history or metric of less precision
than float64 / complex128, rejections not (k, 2), a config that is not a JSON object, a scalar attribute not of its
type in `SCALAR_ATTRS` (a text, a complex number or an array for a count), a leg's value that is not a number, a
leg's text no run writes (`hpcflow.provenance.leg_fault`: a hpcflow_version that is not a string, a backend other
than "numpy" or "cupy", a git_commit that is not a commit hash), `legs` missing from a version 2 file: each refusal
names the attribute or dataset), a schema_version this hpcflow does not read or a status outside STATUSES,
holds NaN/inf where the writer stores only finite values or a value outside the range it stores (`RANGES`: a negative
step, count, sigma, weight or step size, an |Omega|^2 <= 0, a fraction of a count, a counter beyond what the steps
allow), legs that are not the runs up to `step` (`_check_leg_chain`), or a metric the flow never holds (not Hermitian
as `unpack` forms it, or not positive definite by the test of the flow's step decision).
`check_saved_job` refuses a config that lacks a key every job holds, `check_static_present` (before sampling, from
h5py's metadata: what `hpcflow run --resume --check` refuses too) a missing point dataset, cluster/owner or
cluster/labels, labels not one integer per train point, or one of them not of the shape and type the job writes,
`check_static` (once the job's points are
sampled again) point data that are not the rows the job samples (beyond rounding), `stored_labels` (the clusters a
--resume flows instead of clustering again) cluster labels that no clustering of the job gives. `kernel_flow` refuses
(ValueError naming resume) a FlowResume of other set sizes or flow_arguments, and `FlowResume.check_sets` one of other
rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import h5py
import numpy as np

from hpcflow import __version__
from hpcflow.arguments import api_integer, api_number, short_repr, short_text
from hpcflow.atomic import atomic_file
from hpcflow.errors import RESUME_HINT, ConfigError, InputFileError, Preempted, UserError
from hpcflow.flow import RESUME_FIX, FlowScalars, early_stop_said, stopped_early
from hpcflow.geometry.hermitian import det_hermitian, is_positive_definite, pack, unpack
from hpcflow.geometry.pointset import CONVENTIONS as GEOMETRY_CONVENTIONS
from hpcflow.h5read import in_use, locked, one_line, read_h5
from hpcflow.jobs.schema import without
from hpcflow.value_ranges import first_fault, shown
from hpcflow.jobs.toml_out import set_arg
from hpcflow.parallel.comm import arguments_together, raise_together, resolve, value_error_together
from hpcflow.parallel.partition import as_indices
from hpcflow.parallel.reduce import gather_row_blocks, sum_array
from hpcflow.provenance import LEG_TEXTS, check_root_version, leg_fault
from hpcflow.stop_signals import install

KIND = "hpcflow.flow_checkpoint"
#: 2: `legs` and `geometry_conventions` added (version 1 checkpoints still resume)
SCHEMA_VERSION = 2
#: schema versions this hpcflow reads (a later one is refused: its entries may mean other things)
READABLE_VERSIONS = (1, 2)
#: @status values: a periodic checkpoint, one written on a stop signal, and how the run ended (`_run`'s close)
STATUSES = ("running", "preempted", "finished", "stopped", "diverged")
#: per-step, per-rank figures kept in history/ (keys of FlowView.per_rank)
PER_RANK_KEYS = ("step_seconds", "kernel_seconds", "comm_seconds", "comm_bytes")
#: job sections/keys a resume may change: the step count, the sampler's cap on its batches (a sampling that ends gives
#: the same points whatever it is; the resume samples them again and compares them with the checkpoint's), the
#: checkpoint settings and the text of [job].description (which no step reads; the saved job.toml and summary.json
#: record the new one), as `hpcflow nn --resume` may
RESUMABLE_CHANGES = (("flow", "steps"), ("geometry", "max_batches"), ("checkpoint", None), ("job", "description"))
#: RESUMABLE_CHANGES in words (the refusal of any other change)
RESUMABLE_SAID = "[flow].steps, [geometry].max_batches, [checkpoint] and [job].description"
SCHEMA = __doc__.split("Schema of DIR/checkpoint.h5", 1)[1].split("\n\n", 2)[1]
#: global rows of a row dataset gathered to rank 0 and written at a time (19 MB of packed metrics)
BLOCK_ROWS = 2 ** 18
#: what to do with a checkpoint that cannot be resumed (a plain rerun of a directory with one is refused)
RESTART = "start the run again with --force (replaces it) or use a new --out"
#: RESTART in the words of the Python API (`load_resume`), which has no --force or --out
API_RESTART = "start the flow afresh (kernel_flow with resume=None) and write a new checkpoint"
#: a file of another kind than a flow checkpoint (a PointSet file, an nn.h5), as the refusal says it
FOREIGN = "not an hpcflow flow checkpoint (attribute kind)"
#: the Python API's fix of a FOREIGN file: another path, not a restart
API_FOREIGN = "pass the path of a flow run's checkpoint.h5 (which hpcflow run writes)"
#: the point data a checkpoint may hold of each set (the writer's `static`; `FlowResume.check_sets` compares them)
POINT_DATA = ("train/points", "train/weights", "train/omega2", "test/points", "test/weights", "test/omega2")
#: what to do where `load_resume` finds no checkpoint file, for a caller of the API and of the CLI alike
NO_CHECKPOINT = ("pass the path of a checkpoint a flow wrote (CheckpointWriter's path; DIR/checkpoint.h5 of hpcflow "
                 "run --out DIR), or start the flow afresh: kernel_flow with resume=None, or at the command line the "
                 "run without --resume, with --force (replaces it) or a new --out")


def _json(obj) -> str:
    from hpcflow.jobs.output import jsonable

    return json.dumps(jsonable(obj), sort_keys=True)


@dataclass
class FlowResume(FlowScalars):
    """The state of a flow read from a checkpoint: scalars on every rank, metric rows read on demand."""

    path: str
    status: str
    config: dict
    per_rank: dict = field(default_factory=dict)  # name -> (step, R_old) array
    legs: list | None = None  # the runs so far (attribute `legs`); None in a version 1 checkpoint
    arguments: dict | None = None  # the flow's `flow_arguments` (attribute flow_arguments); None: not recorded
    fingerprints: dict | None = None  # {"train"/"test": `set_fingerprint`} (attribute set_fingerprints) or None
    engine: str | None = None  # the Gaussian kernel's engine the checkpoint's steps ran (attribute engine) or None
    point_data: tuple = ()  # the POINT_DATA datasets the checkpoint holds
    #: the sets were compared already (`hpcflow run` compares its sampled rows with `check_static` before the flow):
    #: `check_sets` reads and compares nothing again. Alike on every rank.
    sets_checked: bool = False

    def check_sets(self, sets: dict, *, comm=None) -> None:
        """ValueError naming `resume` on every rank where the rows a flow resumes on are not those this checkpoint
        was written with: its metrics belong to those points. sets: {"train"/"test": (this rank's global indices,
        `hpcflow.flow.host_rows` of its rows or None)}, the counts already compared (`kernel_flow`); only the fields
        a comparison needs are read from the rows. A set is compared with the point data the checkpoint holds
        (points, weights, |Omega|^2, each rank its own rows, to STATIC_RTOL as `check_static`: a job that samples
        its points again on another node resumes), else with its fingerprint (`set_fingerprint`, bitwise: points,
        g_fs, |Omega|^2 and weights), else not at all (a checkpoint written before fingerprints were recorded).
        Nothing is compared where `sets_checked` (the state of `hpcflow run`, whose `check_static` compared them).
        Collective where a set is compared (one allgather at R > 1)."""
        if self.sets_checked:
            return
        c = resolve(comm)
        where = f"checkpoint {self.path}"
        for kind, (idx, rows) in sets.items():
            stored = [name for name in POINT_DATA if name.startswith(f"{kind}/") and name in self.point_data]
            if rows is None or f"{kind}/points" not in stored:
                known = (self.fingerprints or {}).get(kind)
                here = None if rows is None or known is None else set_fingerprint(idx, rows, comm=c)
                if here is not None and here != known:
                    raise_together(ValueError(
                        f"resume: the {kind} set's rows (points, g_fs, omega2, weights) are not those {where} was "
                        f"written with (fingerprint {here}, the checkpoint's {known}); {RESUME_FIX}"), comm=c)
                continue

            def other(name, what, kind=kind):
                return InputFileError(f"resume: the {kind} set is not the one {where} was written with: its {name} "
                                      f"{what}; {RESUME_FIX}")

            static = {name: (idx, rows[name.split("/", 1)[1]]) for name in stored}
            try:
                _check_static(self.path, static, dict.fromkeys(stored, int(getattr(self, f"n_{kind}"))),
                              other=other, ours="this flow's")
                said = None
            except InputFileError as exc:
                said = one_line(exc)
            value_error_together(said, comm=c)

    def rows(self, kind: str, global_idx) -> np.ndarray:
        """Packed metrics v (k, m*m) of the given global rows of "train" or "test", exactly as written.

        global_idx: a 1-D sequence or array of global row indices in 0..N-1 (N = n_train or n_test), taken as
        `kernel_flow` takes train_idx (`hpcflow.parallel.partition.as_indices`): integers, or floats of whole value
        (2.0 is 2). A negative index (no NumPy wrap-around), one >= N, a fraction, a boolean mask (pass
        np.flatnonzero(mask)) or another shape is a ValueError naming global_idx and the valid range; a kind other
        than "train" or "test" a ValueError naming kind; before the file is read."""
        idx = self._check_rows(kind, global_idx)
        with h5py.File(self.path, "r") as f:
            ds = f[f"{kind}/g"]
            if idx.size == 0:
                return np.zeros((0, ds.shape[1] ** 2))
            lo, hi = int(idx.min()), int(idx.max()) + 1
            return pack(ds[lo:hi][idx - lo])

    def _check_rows(self, kind, global_idx) -> np.ndarray:
        """`rows`' global_idx as int64 after its checks (its docstring); ValueError naming kind or global_idx."""
        if not isinstance(kind, str) or kind not in ("train", "test"):
            raise ValueError(f"kind={short_repr(kind)} is invalid; pass 'train' or 'test'")
        n = int(self.n_train if kind == "train" else self.n_test)
        idx, fault = as_indices(global_idx)
        if fault is None and idx.ndim != 1:
            fault = f"shape {idx.shape} is not 1-D; pass a 1-D array of global indices"
        rows = f"rows 0..{n - 1}" if n else "no rows"
        if fault is None and idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = int(idx.min()) if idx.min() < 0 else int(idx.max())
            wrap = " (no wrap-around from the end)" if bad < 0 else ""
            fault = f"index {bad} is outside range({n}){wrap}; pass global indices of its {rows}"
        elif fault is not None:
            fault += f" (the set has {rows})"
        if fault is not None:
            raise ValueError(f"global_idx={short_repr(global_idx)} of the {kind} set: {fault}")
        return idx


def _dataset(f, name: str):
    """Dataset (or group) `name` of file `f`; KeyError("dataset NAME") when it is missing, NAME its path in the file
    (h5py's own KeyError, for an object it cannot decode, is a damaged file: `read_h5`)."""
    if name not in f:
        raise KeyError(f"dataset {name}")
    try:
        return f[name]
    except KeyError as exc:
        raise OSError(one_line(exc)) from None


def _attr(f, name: str):
    """Root attribute `name` of file `f`; KeyError("attribute NAME") when it is missing."""
    if name not in f.attrs:
        raise KeyError(f"attribute {name}")
    try:
        return f.attrs[name]
    except KeyError as exc:  # present but not decodable: a damaged file (`read_h5`)
        raise OSError(one_line(exc)) from None


#: the type of each scalar attribute a resume reads as a number or a text, as its refusal says it (`_scalar_attr`):
#: the writer stores int64, float64 and str
SCALAR_ATTRS = {"step": "an integer", "test_held": "an integer", "since_best": "an integer", "n_train": "an integer",
                "n_test": "an integer", "ranks": "an integer", "best": "a real number", "stopped": "a string"}


def _said(value) -> str:
    """An attribute's value as a refusal shows it: one line, at most 60 characters (`short_repr`), a NumPy scalar as
    the Python value it holds."""
    return short_repr(value.item() if isinstance(value, np.generic) else value)


def _version(f) -> str:
    """The checkpoint's attribute hpcflow_version as a refusal names the hpcflow that wrote it: the text, else (a
    damaged attribute, which no resume reads) its value as `_said` shows it."""
    version = f.attrs.get("hpcflow_version")
    return version if isinstance(version, str) else _said(version)


def _scalar_attr(f, name: str, path):
    """Root attribute `name` of `f` (KeyError "attribute NAME" when missing) where it is a scalar of its
    SCALAR_ATTRS type: for a number an int or a float of any width (a float where the writer stores an integer must
    be whole, which `RANGES` checks), not a bool, a complex number, a text or an array; a str for a text. Else
    InputFileError naming the attribute and its value."""
    value, want = _attr(f, name), SCALAR_ATTRS[name]
    if want == "a string":
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not ok:
        raise InputFileError(f"{path}: attribute {name} = {_said(value)} is not {want}; the checkpoint is damaged, "
                             f"{RESTART}")
    return value


def _read_attr_json(f, name, path):
    try:
        return json.loads(f.attrs[name])
    except (KeyError, TypeError, ValueError):
        raise InputFileError(f"{path}: attribute {name!r} is missing or not JSON; the checkpoint is damaged, "
                             f"{RESTART}") from None


def _per_rank(f, name: str, path) -> np.ndarray:
    """Dataset history/NAME (a per-rank history, PER_RANK_KEYS) read whole; InputFileError where it is a group."""
    ds = _dataset(f, f"history/{name}")
    if not isinstance(ds, h5py.Dataset):
        raise InputFileError(f"{path}: history/{name} is a {type(ds).__name__}, not a dataset of (step, R) numbers; "
                             f"the checkpoint is damaged, {RESTART}")
    return np.asarray(ds[()])


def _check_per_rank(per_rank: dict, step: int, ranks, path) -> None:
    """Refuse a per-rank history (PER_RANK_KEYS) that is not (step, R) floating-point numbers (as written: float64,
    NaN where unknown), R the `ranks` attribute (the last
    leg's rank count; any R >= 1 where it is absent): a resume would append this run's rows to rows of another
    layout. Rows of another rank count are NaN, which the shape does not tell apart (`legs`)."""
    cols = None if ranks is None else int(ranks)
    for name, values in per_rank.items():
        if values.ndim != 2 or values.shape[0] != step or values.shape[1] < 1 or values.dtype.kind != "f" \
                or (cols is not None and values.shape[1] != cols):
            want = f"({step}, {'R' if cols is None else cols})"
            raise InputFileError(f"{path}: dataset history/{name} has shape {values.shape} and type {values.dtype}, "
                                 f"not {want} numbers of floating-point type (one row per step, one column per rank: "
                                 f"attribute step = {step}, ranks = {ranks}); the checkpoint is damaged, {RESTART}")
        _full_precision(f"history/{name}", values.dtype, path)


def _read_config(f, path) -> dict:
    """The `config` attribute: the JSON of the job's tables, {section: {key: value}}; InputFileError otherwise."""
    cfg = _read_attr_json(f, "config", path)
    if not isinstance(cfg, dict):
        raise InputFileError(f"{path}: attribute 'config' is {type(cfg).__name__} JSON, not the job's tables (a JSON "
                             f"object); the checkpoint is damaged, {RESTART}")
    return cfg


def _full_precision(name: str, dtype, path, what: str = "float64") -> None:
    """Refuse (InputFileError) a dataset of the right kind but fewer bytes than the writer stores (float32 where it
    writes float64, complex64 for complex128; either byte order is the same values): its values were rounded, and a
    resume from them would not continue the run bit for bit."""
    if dtype.itemsize != np.dtype(what).itemsize:
        raise InputFileError(f"{path}: dataset {name} has type {dtype}, not {what} as the flow writes it (its values "
                             f"are rounded: a resume would not continue the run bit for bit); the checkpoint is "
                             f"damaged, {RESTART}")


def _floats(f, name: str, path, want: str):
    """Dataset history/NAME read whole when it is float64 (as the writer stores every history); else InputFileError
    saying its type and what it should hold (`want`): bytes or integers read as numbers would pass every later check,
    and float32 values are rounded (`_full_precision`)."""
    ds = _dataset(f, f"history/{name}")
    dtype = getattr(ds, "dtype", None)
    if dtype is None or dtype.kind != "f":
        raise InputFileError(f"{path}: dataset history/{name} has type {dtype}, not floating point ({want}); the "
                             f"checkpoint is damaged, {RESTART}")
    _full_precision(f"history/{name}", dtype, path)
    return ds[()]


def _rejections(f, path) -> np.ndarray:
    """history/rejections: (k, 2) float64 rows (step, dt), as the writer stores it (k = 0 included); another shape
    (a 1-D dataset of 2k values, which a reshape would take for k rows) is a damaged checkpoint."""
    shape = getattr(_dataset(f, "history/rejections"), "shape", None)
    if shape is None or len(shape) != 2 or shape[1] != 2:
        raise InputFileError(f"{path}: dataset history/rejections has shape {shape}, not (k, 2) (one (step, dt) row "
                             f"per rejected trial step); the checkpoint is damaged, {RESTART}")
    return _floats(f, "rejections", path, "(step, dt) rows")


def _history(f, name: str, path) -> list:
    """history/NAME as a list, one value per step; a scalar, a 2-D or a non-floating dataset is a damaged checkpoint
    (InputFileError)."""
    shape = getattr(_dataset(f, f"history/{name}"), "shape", None)
    if shape is None or len(shape) != 1:
        raise InputFileError(f"{path}: dataset history/{name} has shape {shape}, not one value per step; the "
                             f"checkpoint is damaged, {RESTART}")
    return _floats(f, name, path, "one value per step").tolist()


def _check_version(f, path) -> None:
    """Refuse a schema_version outside READABLE_VERSIONS (a later hpcflow's file, or a damaged attribute)."""
    version = _attr(f, "schema_version")
    if not isinstance(version, (int, np.integer)) or int(version) not in READABLE_VERSIONS:
        said = version.item() if isinstance(version, np.generic) else version
        raise InputFileError(f"{path}: attribute schema_version = {said!r} is not one this hpcflow ({__version__}) "
                             f"reads (versions {', '.join(map(str, READABLE_VERSIONS))}); resume it with the hpcflow "
                             f"that wrote it (attribute hpcflow_version = {_said(f.attrs.get('hpcflow_version'))}), or "
                             f"{RESTART}")


def load_resume(path, *, comm=None) -> FlowResume:
    """Read a flow checkpoint (every rank reads the scalars; rows come later through `FlowResume.rows`). Collective:
    a rank that cannot read it, or finds it damaged in its share of the rows, makes every rank raise (one allgather
    at R > 1), so none goes on into the flow's collectives alone. A damaged or foreign file's InputFileError advises
    what a Python caller can do (API_RESTART), not the command line's --force or --out (`run_checkpoint`)."""
    try:
        return run_checkpoint(path, comm=comm)
    except InputFileError as exc:  # alike on every rank: no collective here
        said = str(exc)
        raise InputFileError(said.replace(RESTART, API_FOREIGN if FOREIGN in said else API_RESTART)) from None


def run_checkpoint(path, *, comm=None) -> FlowResume:
    """`load_resume` for `hpcflow run --resume` (and the commands that judge a run's checkpoint as it does): its
    refusals advise starting the run again with --force or in a new --out (RESTART)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path={path!r} is not a file path; pass the path of a flow checkpoint (a str or "
                        "os.PathLike, e.g. DIR/checkpoint.h5 of hpcflow run --out DIR)")
    return _together(lambda: _load_resume(os.fsdecode(path), comm), comm)


def _together(check, comm):
    """check() on every rank; an InputFileError on any rank is raised on every rank with the lowest such rank's line
    (one allgather at R > 1), as a refusal of the file, not of one rank's arguments: a rank that finds the checkpoint
    damaged in its share of the rows makes every rank refuse it, so none goes on alone into the flow's collectives."""
    c = resolve(comm)
    if c.Get_size() == 1:
        return check()
    try:
        value, mine = check(), None
    except InputFileError as exc:
        value, mine = None, one_line(exc)
    first = next((m for m in c.allgather(mine) if m is not None), None)
    if first is not None:
        raise_together(InputFileError(first), comm=c)
    return value


def _unreadable(path, exc) -> InputFileError:
    """The refusal of a checkpoint h5py cannot read (`read_h5`'s `refuse`): in use where another process holds its lock
    (`h5read.locked`: the file may be whole, and --force would destroy it), else damaged."""
    if locked(exc):
        return InputFileError(in_use(path, exc))
    return InputFileError(f"{path}: not a readable checkpoint ({one_line(exc)}); the file is damaged, {RESTART}")


def _load_resume(path: str, comm) -> FlowResume:
    """`load_resume` on this rank alone: InputFileError for a missing, foreign or damaged file; no collective."""
    if not os.path.isfile(path):
        what = "is not a file" if os.path.exists(path) else "does not exist"
        raise InputFileError(f"{path}: no checkpoint to resume from ({what}); {NO_CHECKPOINT}")
    with read_h5(path, partial(_unreadable, path)) as f:
        kind = f.attrs.get("kind")
        if not (isinstance(kind, str) and kind == KIND):  # (an array's == is no truth value)
            raise InputFileError(f"{path}: {FOREIGN}; {RESTART}")
        try:
            _check_version(f, path)
            check_root_version(f.attrs, path, RESTART)  # (hpcflow.provenance: a string, or refused as damaged)
            st, se, dt = (_history(f, k, path) for k in ("sigma_train", "sigma_test", "dt"))
            rej = _rejections(f, path)
            per_rank = {k: _per_rank(f, k, path) for k in PER_RANK_KEYS if f"history/{k}" in f}
            a = {k: _scalar_attr(f, k, path) for k in ("step", "test_held", "best", "since_best", "stopped", "n_train",
                                                       "n_test")}
            a["status"] = _attr(f, "status")  # (any value outside STATUSES is refused below, named)
            ranks = _scalar_attr(f, "ranks", path) if "ranks" in f.attrs else None
            _check_values(path, {f"attribute {k}": v for k, v in {**a, "ranks": ranks}.items()
                                 if f"attribute {k}" in RANGES and v is not None}, a)
            step = int(a["step"])
            if not isinstance(a["status"], str) or a["status"] not in STATUSES:
                raise InputFileError(f"{path}: attribute status = {_said(a['status'])} is not one of "
                                     f"{', '.join(STATUSES)}; the checkpoint is damaged, {RESTART}")
            _check_lengths({"sigma_train": st, "sigma_test": se, "dt": dt}, step, path)
            _check_per_rank(per_rank, step, ranks, path)  # after the sigma histories, whose lengths say the step
            _check_values(path, {"history/sigma_train[{}]": st, "history/sigma_test[{}]": se, "history/dt[{}]": dt,
                                 "history/rejections[{}, 0]": rej[:, 0], "history/rejections[{}, 1]": rej[:, 1],
                                 **{f"history/{k}[{{}}]": v for k, v in per_rank.items()}}, a)
            legs = _read_legs(f, path)
            _check_values(path, {f"attribute legs[{{}}].{k}": [g.get(k) for g in legs]
                                 for k in (*LEG_KEYS, *LEG_OPTIONAL) if f"attribute legs[{{}}].{k}" in RANGES}
                          if legs else {}, a)
            _check_leg_chain(legs, step, path)
            arguments, fingerprints = _read_arguments(f, path), _read_fingerprints(f, path)
            engine = _read_engine(f, path)
            res = FlowResume(step=step, sigma_train=st, sigma_test=se, dt=dt,
                             rejections=[(int(s), float(h)) for s, h in rej],
                             test_held=int(a["test_held"]), best=float(a["best"]), since_best=int(a["since_best"]),
                             stopped=str(a["stopped"]), n_train=int(a["n_train"]), n_test=int(a["n_test"]),
                             path=path, status=str(a["status"]), config=_read_config(f, path),
                             per_rank=per_rank, legs=legs, arguments=arguments, fingerprints=fingerprints,
                             engine=engine,
                             point_data=tuple(name for name in POINT_DATA if name in f))
            for kind, n in (("train", res.n_train), ("test", res.n_test)):
                _check_rows(f, f"{kind}/g", n, path)
            _check_row_values(f, path, comm)
        except UserError:  # its own refusal as said (a ConfigError is a ValueError too: not "the wrong type")
            raise
        except KeyError as exc:  # from `_dataset` / `_attr`: "dataset history/dt", "attribute best"
            raise InputFileError(f"{path}: {exc.args[0]} is missing; the checkpoint is incomplete, {RESTART}") from None
        except (ValueError, TypeError, AttributeError) as exc:  # (every read above names its entry: a last net)
            raise InputFileError(f"{path}: a dataset or attribute has the wrong type or shape ({exc}); the "
                                 f"checkpoint is damaged, {RESTART}") from None
    return res


def _check_lengths(histories: dict, step: int, path) -> None:
    """Refuse a sigma history that is not step + 1 values long, or a dt history that is not step values."""
    for name, values in histories.items():
        want = step if name == "dt" else step + 1
        if len(values) != want:
            per = "one per step and step 0" if want > step else "one per step"
            raise InputFileError(f"{path}: dataset history/{name} holds {len(values)} values, not {want} ({per}: "
                                 f"attribute step = {step}); the checkpoint is damaged, {RESTART}")


class Range(NamedTuple):
    """The values the writer stores in one entry of a checkpoint (`RANGES`): >= lo (> lo where `above`; lo None: no
    bound), whole numbers where `whole`, at most hi[1](attributes) where hi = (its name, that function) is given;
    NaN or inf nowhere but where `nan` says: "always" (a per-rank figure of a step run at another R), "without
    test points" (sigma_test of a run with @n_test = 0). `reads`: the attributes hi and nan read, the only ones
    `_check_values` gives them; each is an entry of `RANGES` above this one, so checked before it."""

    what: str
    lo: float | None = 0
    above: bool = False
    whole: bool = False
    hi: tuple | None = None
    nan: str = ""
    reads: tuple = ()


#: The natural range of every counter, scalar, history value and point datum a resume continues from or copies into
#: its outputs, as `CheckpointWriter.write` stores them (docs/outputs.md): the one table that `_check_values` (the
#: attributes and histories, on every rank) and `_check_row_values` (the rows, each rank its share) read. Keys:
#: the entry, "{}" where its index goes in a refusal; in the order they are checked in: the attributes that bounds
#: read first (`Range.reads`). sigma (eq. B.11) is a weighted mean of |1 - eta/kappa|.
RANGES = {
    "attribute step": Range("the number of steps done", whole=True),
    "attribute n_train": Range("the number of train points (a flow has >= 1)", lo=1, whole=True),
    "attribute n_test": Range("the number of test points", whole=True),
    "attribute ranks": Range("the rank count of the last leg", lo=1, whole=True),
    "attribute test_held": Range("test point-steps whose update was withheld (at most one per test point and step)",
                                 whole=True, hi=("n_test x step", lambda a: int(a["n_test"]) * int(a["step"])),
                                 reads=("n_test", "step")),
    "attribute since_best": Range("the steps since sigma first reached attribute best", whole=True,
                                  hi=("attribute step", lambda a: int(a["step"])), reads=("step",)),
    "attribute best": Range("the smallest sigma so far (sigma >= 0)"),
    "history/sigma_train[{}]": Range("sigma of the train points (>= 0)"),
    "history/sigma_test[{}]": Range("sigma of the test points (>= 0; NaN without test points)",
                                    nan="without test points", reads=("n_test",)),
    "history/dt[{}]": Range("the accepted step size of a step (> 0)", above=True),
    "history/rejections[{}, 0]": Range("the step of a rejected trial step, counted from 1", lo=1, whole=True,
                                       hi=("attribute step + 1", lambda a: int(a["step"]) + 1), reads=("step",)),
    "history/rejections[{}, 1]": Range("the dt of a rejected trial step (> 0)", above=True),
    **{f"history/{k}[{{}}]": Range(f"{what} (>= 0, or NaN)", whole=k == "comm_bytes", nan="always")
       for k, what in zip(PER_RANK_KEYS, ("a step's wall seconds on a rank", "a step's kernel seconds on a rank",
                                          "a step's communication seconds on a rank", "the bytes a rank received "
                                          "in a step, a count"))},
    "attribute legs[{}].from_step": Range("the steps done when a leg started", whole=True),
    "attribute legs[{}].to_step": Range("the steps done at a leg's last write", whole=True,
                                        hi=("attribute step", lambda a: int(a["step"])), reads=("step",)),
    "attribute legs[{}].ranks": Range("the rank count of a leg (>= 1; null: unknown)", lo=1, whole=True, nan="always"),
    "attribute legs[{}].wall_seconds": Range("a leg's wall seconds (>= 0; null: unknown)", nan="always"),
    "attribute legs[{}].threads": Range("a leg's threads per rank (>= 1; absent: unknown)", lo=1, whole=True,
                                        nan="always"),
    **{f"{kind}/weights[{{}}]": Range("Monte Carlo weights (>= 0)") for kind in ("train", "test")},
    **{f"{kind}/omega2[{{}}]": Range("|Omega|^2 of the points (> 0)", above=True) for kind in ("train", "test")},
}


def _check_values(path, values: dict, attrs: dict, *, first: int = 0, unit: str = "index") -> None:
    """Refuse (InputFileError naming the entry, its first bad value and where) values outside their `RANGES`: NaN
    or inf where the entry's `nan` does not allow it (`_refuse_non_finite`, its first entry `unit` `first`), then a
    value below or above its bounds or not whole. values: {RANGES key: a scalar or an array (one row per index)},
    checked in the order of `RANGES`, so that a bound reads (of `attrs`: its `Range.reads` only) attributes that
    have already passed, in this call or an earlier one (the attributes are checked before the histories and legs)."""
    order = {key: i for i, key in enumerate(RANGES)}
    for key in sorted(values, key=order.__getitem__):
        rng, v = RANGES[key], _numbers(path, key, values[key])
        read = {k: attrs[k] for k in rng.reads}
        if not (rng.nan == "always" or rng.nan == "without test points" and not int(read["n_test"])):
            _refuse_non_finite(path, key.split("[", 1)[0], v, first=first, unit=unit if v.ndim else None)
        fault = first_fault(v, lo=rng.lo, above=rng.above, whole=rng.whole,
                            hi=None if rng.hi is None else (rng.hi[0], rng.hi[1](read)))
        if fault is not None:  # (NaN where allowed fails no comparison)
            why, at = fault
            where = key.format(", ".join([str(first + at[0]), *map(str, at[1:])])) if v.ndim else key
            raise InputFileError(f"{path}: {where} = {shown(float(v[at]))} is {why}, where the flow writes "
                                 f"{rng.what}; the checkpoint is damaged, {RESTART}")


def _numbers(path, key: str, values) -> np.ndarray:
    """`values` of `RANGES` entry `key` as float64 (None: NaN, a leg's null); InputFileError naming the entry and the
    index of its first value that is not a number where `values` is a list (the legs' values, any JSON: a text, a
    bool, a list). The attributes, histories and rows come here of a numeric type already (`_scalar_attr`,
    `_floats`, `_check_per_rank`, `_check_row_values`)."""
    if isinstance(values, list):
        bad = next((i for i, x in enumerate(values)
                    if not (x is None or isinstance(x, (int, float)) and not isinstance(x, bool))), None)
        if bad is not None:
            raise InputFileError(f"{path}: {key.format(bad)} = {_said(values[bad])} is not a number, where the flow "
                                 f"writes {RANGES[key].what}; the checkpoint is damaged, {RESTART}")
    return np.asarray(values, dtype=np.float64)


LEG_KEYS = ("from_step", "to_step", "ranks", "wall_seconds", "hpcflow_version")
#: keys of a leg that legs written before they were recorded lack
LEG_OPTIONAL = ("threads", "blas_kernel", "backend", "git_commit")


def _read_legs(f, path) -> list | None:
    """The `legs` attribute (a list of LEG_KEYS dicts), None when the checkpoint predates it (version 1); missing
    from a later version, or a text entry no run writes (`leg_fault`), is a damaged checkpoint (InputFileError)."""
    if "legs" not in f.attrs:
        version = f.attrs.get("schema_version")
        if isinstance(version, (int, np.integer)) and int(version) == 1:
            return None
        raise InputFileError(f"{path}: attribute legs is missing, where a checkpoint of schema_version "
                             f"{_said(version)} holds one entry per run that wrote it (only version 1 lacks it); the "
                             f"checkpoint is incomplete, {RESTART}")
    legs = _read_attr_json(f, "legs", path)
    if not isinstance(legs, list) or not all(isinstance(g, dict) and set(LEG_KEYS) <= set(g) for g in legs):
        raise InputFileError(f"{path}: attribute 'legs' is not a list of {{{', '.join(LEG_KEYS)}}}; the checkpoint "
                             f"is damaged, {RESTART}")
    for i, g in enumerate(legs):
        fault = leg_fault(g)
        if fault is not None:
            bad, why = fault
            raise InputFileError(f"{path}: attribute legs[{i}].{bad} = {short_text(json.dumps(g[bad]))} is {why}, "
                                 f"where the flow writes {LEG_TEXTS[bad]}; the checkpoint is damaged, {RESTART}")
    return legs


def _read_arguments(f, path) -> dict | None:
    """The `flow_arguments` attribute (`hpcflow.flow.flow_arguments`: a JSON object), None where the checkpoint
    predates it."""
    if "flow_arguments" not in f.attrs:
        return None
    arguments = _read_attr_json(f, "flow_arguments", path)
    if not isinstance(arguments, dict) or not isinstance(arguments.get("kernel", {}), dict):
        raise InputFileError(f"{path}: attribute 'flow_arguments' is not a JSON object of the flow's arguments "
                             f"(kernel, dt, ...); the checkpoint is damaged, {RESTART}")
    return arguments


def _read_fingerprints(f, path) -> dict | None:
    """The `set_fingerprints` attribute ({"train"/"test": 16 hex digits or null}, `set_fingerprint`), None where the
    checkpoint holds none (its writer stored the point data, or predates them)."""
    if "set_fingerprints" not in f.attrs:
        return None
    said = _read_attr_json(f, "set_fingerprints", path)
    if not isinstance(said, dict) or not all(k in ("train", "test") and (v is None or _is_fingerprint(v))
                                             for k, v in said.items()):
        raise InputFileError(f"{path}: attribute 'set_fingerprints' is not {{\"train\": ..., \"test\": ...}} of 16 "
                             f"hex digits (or null) each; the checkpoint is damaged, {RESTART}")
    return said


#: the values of attribute engine: the engines a Gaussian kernel is built with (`GaussianKernel.engine`)
ENGINES = ("numba", "numpy")


def _read_engine(f, path) -> str | None:
    """The `engine` attribute ("numba" or "numpy"), None where the checkpoint holds none (another kernel, or written
    before it was recorded)."""
    if "engine" not in f.attrs:
        return None
    engine = f.attrs["engine"]
    if not isinstance(engine, str) or engine not in ENGINES:
        said = engine.item() if isinstance(engine, np.generic) else engine
        raise InputFileError(f"{path}: attribute engine = {said!r} is not one of {', '.join(ENGINES)}; the checkpoint "
                             f"is damaged, {RESTART}")
    return engine


def _is_fingerprint(value) -> bool:
    return isinstance(value, str) and len(value) == 16 and all(ch in "0123456789abcdef" for ch in value)


#: splitmix64's constants: the fingerprint's per-word mixing (`set_fingerprint`)
_GOLDEN, _M1, _M2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser of uint64 words (wrapping arithmetic): each input bit moves about half the output's."""
    h = (h ^ (h >> np.uint64(30))) * _M1
    h = (h ^ (h >> np.uint64(27))) * _M2
    return h ^ (h >> np.uint64(31))


def set_fingerprint(idx, rows: dict | None, *, comm=None) -> str | None:
    """A 64-bit fingerprint (16 hex digits) of a point set over the ranks, from this rank's rows: global indices
    `idx` and rows {field: array, one row per index} (`hpcflow.flow.host_rows`; None: no set, and None is returned,
    no collective). Each row's bits (fields in name order, as float64 / complex128) and global index are mixed
    into one word (splitmix64), and the words are summed modulo 2**64, over the ranks by one allgather at R > 1:
    the same for every rank count and split, and another for a set with any bit of any row other (or rows in
    another order). A check of a set against the one a checkpoint was written with, not a cryptographic hash."""
    if rows is None:
        return None
    c = resolve(comm)
    idx = np.asarray(idx, dtype=np.int64)
    mine = 0
    if idx.size:
        h = _mix(idx.view(np.uint64) + _GOLDEN)
        for name in sorted(rows):
            a = np.asarray(rows[name])
            a = np.ascontiguousarray(a, dtype=np.complex128 if a.dtype.kind == "c" else np.float64)
            for word in a.reshape(idx.size, -1).view(np.uint64).T:
                h = _mix(h ^ word)
        mine = int(h.sum(dtype=np.uint64))
    total = sum(c.allgather(mine)) if c.Get_size() > 1 else mine
    return f"{total % 2 ** 64:016x}"


def _check_leg_chain(legs: list | None, step: int, path) -> None:
    """Refuse `legs` (whole numbers already, `RANGES`) that are not the runs the writer records up to `step`: at
    least one, the first from step 0, each from the step the one before it reached, none ending before it began, the
    last at the checkpoint's `step` (its last write is this checkpoint). A resume appends its leg to them, and
    summary.json reports them: an empty list dropped the earlier runs, a last to_step short of `step` left a gap."""
    if legs is None:  # (version 1: `earlier_legs` makes its steps one leg)
        return
    if not legs:
        raise InputFileError(f"{path}: attribute legs is empty ([]), where the flow writes one entry per run up to "
                             f"attribute step = {step}; the checkpoint is damaged, {RESTART}")
    reached = 0
    for i, g in enumerate(legs):
        start, end = int(g["from_step"]), int(g["to_step"])
        if start != reached:
            before = "step 0, where the first run starts" if i == 0 else f"legs[{i - 1}].to_step = {reached}"
            raise InputFileError(f"{path}: attribute legs[{i}].from_step = {start} is not {before} (each run continues "
                                 f"where the one before it stopped); the checkpoint is damaged, {RESTART}")
        if end < start:
            raise InputFileError(f"{path}: attribute legs[{i}].to_step = {end} is below its from_step = {start}; the "
                                 f"checkpoint is damaged, {RESTART}")
        reached = end
    if reached != step:
        raise InputFileError(f"{path}: attribute legs[{len(legs) - 1}].to_step = {reached} is not attribute step = "
                             f"{step} (the last run's last write is this checkpoint); the checkpoint is damaged, "
                             f"{RESTART}")


def earlier_legs(resume: FlowResume | None) -> list:
    """The legs before a run that continues `resume` ([] for a new run); a version 1 checkpoint's steps become one
    leg whose ranks, wall_seconds and hpcflow_version are unknown (null)."""
    if resume is None:
        return []
    if resume.legs is not None:
        return [dict(g) for g in resume.legs]
    return [{"from_step": 0, "to_step": int(resume.step), "ranks": None, "wall_seconds": None,
             "hpcflow_version": None}]


#: `threads_note`'s default kernel: this process's (`hpcflow.provenance.blas_kernel`)
THIS_KERNEL = object()


def threads_note(legs: list, threads: int, prefix: str, *, ranks: int | None = None,
                 kernel: str | None | object = THIS_KERNEL, setting: str = "HPCFLOW_THREADS") -> str | None:
    """The line a resume says where it runs `threads` threads per rank or BLAS `kernel` (default: this process's)
    but the last of the checkpoint's earlier `legs` ran another (its `threads`, `blas_kernel`; one line where both
    differ; None where neither is recorded or both are the same): sums per worker thread (kernel tiles, torch, BLAS)
    round otherwise at another thread count, so the run equals the uninterrupted one to summation order only; another
    kernel (a node of another CPU type) rounds its products otherwise, ~1e-13 over a flow's steps. The fix (the leg's
    thread count given to `setting`, HPCFLOW_THREADS by default, as "SETTING=N"; or a node of its kernel) is named
    where one of the two differs, with the leg's rank count
    where it ran at other `ranks` than these (None: not compared), as another rank count may change the sums' order
    itself (an unclustered flow's, or a clustered flow's block cached at one rank count and streamed at another).
    The flow's and the network's resumes say it alike."""
    from hpcflow.provenance import blas_kernel

    last = legs[-1] if legs else {}
    before, was = last.get("threads"), last.get("blas_kernel")
    kernel = blas_kernel() if kernel is THIS_KERNEL else kernel
    other_threads = before is not None and before != threads
    other_kernel = isinstance(was, str) and isinstance(kernel, str) and was != kernel
    at = "" if ranks is None or last.get("ranks") in (None, ranks) else \
        f" on {_counted(last['ranks'], 'rank')}, as that leg ran,"
    if other_kernel and other_threads:
        return (f"{prefix} note: {_counted(threads, 'thread')} per rank and BLAS kernel {kernel}, where the "
                f"checkpoint's last leg ran {_counted(before, 'thread')} per rank and kernel {was}: the run continues "
                "equal to the uninterrupted one to rounding (another kernel's products and other threads' sums round "
                "otherwise), not bit for bit")
    if other_kernel:
        fix = f" (a node whose BLAS kernel is {was}{at} resumes it bit for bit)"
        return (f"{prefix} note: BLAS kernel {kernel}, where the checkpoint's last leg ran kernel {was} (another CPU "
                "type, or OPENBLAS_CORETYPE): the run continues equal to the uninterrupted one to rounding (the "
                f"kernel's products round otherwise, ~1e-13), not bit for bit{fix}")
    if not other_threads:
        return None
    fix = f" ({setting}={before}{at} resumes it bit for bit)"
    return (f"{prefix} note: {_counted(threads, 'thread')} per rank, where the checkpoint's last leg ran {before}: "
            "the run continues equal to the uninterrupted one to summation order (~1e-16 a step, which later steps "
            f"may amplify), not bit for bit{fix}")


def backend_note(legs: list, prefix: str, backend: str | None) -> str | None:
    """The line a resume says where it computes on array `backend` ("numpy" or "cupy", this run's
    `hpcflow.provenance.array_backend`) but the last of the checkpoint's earlier `legs` ran another (its `backend`;
    None where either is not recorded or both are the same): the GPU's sums and elementary functions round otherwise,
    so the run continues equal to the uninterrupted one to rounding, not bit for bit."""
    was = (legs[-1] if legs else {}).get("backend")
    if not isinstance(was, str) or not isinstance(backend, str) or was == backend:
        return None
    fix = "HPCFLOW_BACKEND=numpy" if was == "numpy" else "a node with a usable GPU and HPCFLOW_BACKEND=cupy"
    return (f"{prefix} note: array backend {backend}, where the checkpoint's last leg ran {was}: the run continues "
            f"equal to the uninterrupted one to rounding, not bit for bit ({fix} resumes it on {was}); summary.json's "
            "provenance.backend is this run's, legs[].backend each leg's")


def code_note(legs: list, prefix: str, commit: str | None, version: str = __version__, *,
              unit: str = "steps") -> str | None:
    """The line a resume says where it runs hpcflow `version` at git `commit` (this run's
    `hpcflow.provenance.git_commit`) but the last of the checkpoint's earlier `legs` ran another (its `git_commit`,
    `hpcflow_version`): the steps from the resumed one on come from other code than those before, whose numerics may
    differ. Commits are compared where both are known (a leg written outside a git checkout records null, one written
    before the record has none: nothing to compare), versions where both are; an unknown commit of a differing
    version is said as "unknown". None where nothing known differs. `unit` names what the legs' from_step and to_step
    count (a network's resume: "epochs"). The flow's and the network's resumes say it alike."""
    last = legs[-1] if legs else {}
    was, was_version = last.get("git_commit"), last.get("hpcflow_version")
    other_commit = isinstance(was, str) and isinstance(commit, str) and was != commit
    other_version = isinstance(was_version, str) and isinstance(version, str) and was_version != version
    if not (other_commit or other_version):
        return None

    def code(v, c):
        said = c.removesuffix("-dirty")[:12] + ("-dirty" if c.endswith("-dirty") else "") if isinstance(c, str) \
            else "unknown"
        return f"hpcflow {v} (commit {said})"

    return (f"{prefix} note: {code(version, commit)}, where the checkpoint's last leg ran "
            f"{code(was_version, was)}: the {unit} from {last.get('to_step')} on come from other code than those "
            "before, whose numerics may differ from the uninterrupted run's; summary.json's provenance.git_commit is "
            "this run's, legs[].git_commit each leg's")


def _counted(n, noun: str) -> str:
    """`n` `noun`s, singular for 1 ("1 rank", "2 ranks")."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def wall_seconds_total(legs) -> float:
    """Sum of the legs' wall_seconds (legs with null wall_seconds not counted)."""
    return float(sum(g["wall_seconds"] for g in legs if g.get("wall_seconds") is not None))


def run_total(legs, wall: float) -> float:
    """summary.json's wall_seconds_total of a run that took `wall` seconds and wrote the last of `legs`: the earlier
    legs' recorded seconds plus `wall` (its leg's own wall_seconds stop at its last checkpoint write)."""
    return wall_seconds_total(legs[:-1]) + wall


#: the @status values that record how the run ended (its last write, `CheckpointWriter.close`)
END_STATUSES = ("finished", "stopped", "diverged")


def end_without_steps(state: FlowResume, steps: int, early_stop: int | None) -> tuple[str, str] | None:
    """(status, stopped) of a flow resumed from checkpoint `state` that takes no step, as `kernel_flow` ends it: its
    early stop met (`hpcflow.flow.stopped_early`) or its `steps` all done. The checkpoint's own where it recorded how
    its run ended (END_STATUSES); else (a checkpoint written before its run's last write: "running", "preempted")
    "finished", with the early stop's line where it was met. None where the flow takes a step (a diverged run's
    failed step is tried again where steps are left)."""
    step = int(state.step)
    early = stopped_early(state, early_stop)
    if not early and step < int(steps):
        return None
    if state.status in END_STATUSES:
        return str(state.status), str(state.stopped)
    return "finished", (str(state.stopped) or early_stop_said(step, early_stop)) if early else ""


def record_end(path, status: str, stopped: str, *, comm=None) -> None:
    """Set @status and @stopped of checkpoint `path` (rank 0; a copy with them set replaces the file atomically),
    nothing else: no leg, no row, the same datasets. For a resume with no step to take (`end_without_steps`) of a
    checkpoint that its run wrote before its last write: the run's last write would have said that much. Returns on
    every rank once the file is in place (one Barrier at R > 1)."""
    c = resolve(comm)
    if c.Get_rank() == 0:
        with open(path, "rb") as src, atomic_file(path) as fh:
            while chunk := src.read(2 ** 24):
                fh.write(chunk)
            fh.flush()
            fh.seek(0)
            with h5py.File(fh, "r+") as f:
                f.attrs["status"] = status
                f.attrs["stopped"] = stopped
    if c.Get_size() > 1:
        c.Barrier()


def summary_of(state: FlowResume, cfg: dict, end: tuple[str, str]) -> dict:
    """summary.json's keys of flow job `cfg` (`hpcflow.experiments.flow_job`, docs/outputs.md) that checkpoint `state`
    holds to its end (`end`: its (status, stopped), `end_without_steps`), as the run that took its last step wrote
    them, for a --resume that has no step to take and finds no finished summary.json: but `per_rank` (that run's
    figures, which the checkpoint does not hold), `provenance` (the caller's), `wall_seconds` (the last leg's
    `wall_seconds`, up to its last checkpoint write) and `wall_seconds_total` (the legs' sum); `ranks` is the last
    leg's."""
    from hpcflow.experiments.flow_job import check_kernel, legs_summary, resumed_engine, sigma_figures
    from hpcflow.resources import kernel_entries

    kernel = check_kernel(dict(cfg["kernel"]), "job", kernel_entries(cfg, "flow"),
                          kept=resumed_engine(cfg["kernel"], state))
    with read_h5(state.path, partial(_unreadable, state.path)) as f:
        owner = f.get("cluster/owner")
        n_blocks = int(owner.shape[0]) if cfg["clustering"]["method"] is not None and owner is not None else None
    legs = earlier_legs(state)
    ranks = legs[-1].get("ranks")
    if ranks is None:  # (a version 1 checkpoint: its per-rank rows' width)
        ranks = next((int(v.shape[1]) for v in state.per_rank.values()), None)
    params = kernel.params()
    if "engine" in params and state.engine is not None:  # the one its steps ran (Numba's where Numba is missing here)
        params["engine"] = state.engine
    fl = cfg["flow"]
    status, stopped = end
    summary = sigma_figures(np.asarray(state.sigma_train, dtype=np.float64),
                            np.asarray(state.sigma_test, dtype=np.float64), int(state.n_test))
    summary.update(n_train=int(state.n_train), n_test=int(state.n_test), steps_taken=int(state.step),
                   rejected_steps=len(state.rejections), test_held=int(state.test_held), stopped=stopped,
                   kernel=cfg["kernel"]["name"], kernel_params=params, steps=fl["steps"], dt=fl["dt"],
                   loss=fl["loss"], kappa_gradient=fl["kappa_gradient"], chart=cfg["geometry"]["chart"],
                   n_blocks=n_blocks, ranks=ranks, resumed=len(legs) > 1, status=status,
                   checkpoint_step=int(state.step), config=cfg, **legs_summary(legs))
    summary["wall_seconds"] = legs[-1].get("wall_seconds")
    return summary


def _check_rows(f, name: str, n: int, path) -> None:
    """Refuse a metric dataset that is missing or is not (n, m, m) complex (resuming would fail mid-flow), or is
    complex of less than complex128's precision (`_full_precision`)."""
    ds = _dataset(f, name)
    if not isinstance(ds, h5py.Dataset) or ds.ndim != 3 or ds.shape[0] != n or ds.shape[1] != ds.shape[2] \
            or ds.dtype.kind != "c":
        shape = getattr(ds, "shape", None)
        raise InputFileError(f"{path}: {name} has shape {shape} and type {getattr(ds, 'dtype', None)}, not "
                             f"({n}, m, m) complex; the checkpoint is damaged, {RESTART}")
    _full_precision(name, ds.dtype, path, "complex128")


#: row datasets in which the writer stores only finite values (the metrics and the point data; present ones checked)
FINITE_ROWS = ("train/g", "test/g", "train/points", "train/weights", "train/omega2", "test/points", "test/weights",
               "test/omega2")


#: the metrics among them: Hermitian positive definite too (`_refuse_non_metrics`)
METRIC_ROWS = ("train/g", "test/g")


def _refuse_non_finite(path, name: str, values: np.ndarray, *, first: int = 0, unit: str | None = "index") -> None:
    """InputFileError naming `name` when `values` holds NaN or inf (its first entry is `unit` `first`; no unit: a
    scalar, no position said)."""
    bad = np.flatnonzero(~np.isfinite(values).all(axis=tuple(range(1, values.ndim))))
    if bad.size:
        at = f" at {unit} {first + int(bad[0])}" if unit else ""
        raise InputFileError(f"{path}: {name} holds a non-finite value (NaN or inf){at}, where the flow writes only "
                             f"finite ones; the checkpoint is damaged, {RESTART}")


def _refuse_non_metrics(path, name: str, block: np.ndarray, *, first: int) -> None:
    """InputFileError naming the first row of `block` ((k, m, m) complex, finite; its row 0 is row `first` of `name`)
    that is not a metric the flow holds: exactly Hermitian (each entry below the diagonal the conjugate of its
    mirror, a real diagonal: the writer stores `unpack` of the flow's packed components, and a resume reads them back
    through `pack`, which would drop the rest) and positive definite by `is_positive_definite`, the test the flow's
    step decision applies to every train metric and to each test metric it updates (g_FS, step 0, passes it too). A
    row the flow wrote is those very bits, so it is never refused here. O(k m^3), vectorised over the rows."""
    m = block.shape[-1]
    rows = block.reshape(len(block), m * m)
    a, b = np.triu_indices(m, 1)
    hermitian = (rows[:, a * m + b] == rows[:, b * m + a].conj()).all(axis=1) & (rows[:, ::m + 1].imag == 0).all(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):  # as in the flow's decision: an overflowing minor fails it
        ok = hermitian & is_positive_definite(block)
    if ok.all():
        return
    k = int(np.argmin(ok))
    if not hermitian[k]:
        why = "is not Hermitian (an entry below the diagonal is not the conjugate of its mirror, or a diagonal " \
              "entry is not real)"
    else:
        minors = ", ".join(f"{float(det_hermitian(block[k, :j, :j])):.3g}" for j in range(1, m + 1))
        why = f"is not positive definite (leading principal minors {minors})"
    raise InputFileError(f"{path}: {name} at row {first + k} {why}, where the flow writes only Hermitian positive "
                         f"definite metrics; the checkpoint is damaged, {RESTART}")


def _check_row_values(f, path, comm) -> None:
    """Refuse NaN/inf in the row datasets FINITE_ROWS (where the flow writes none: a resume would continue from it
    and rewrite a finished result as diverged), a row value outside its `RANGES` (a weight < 0, an |Omega|^2 <= 0),
    and a metric (train/g, test/g) the flow never holds (`_refuse_non_metrics`). Each rank reads its
    `decompose.share` of every row dataset, BLOCK_ROWS rows at a time: one read of each row over all ranks; a rank
    that finds one raises alone (`refuse_together` makes every rank refuse)."""
    from hpcflow.parallel.decompose import share

    c = resolve(comm)
    for name in FINITE_ROWS:
        ds = f.get(name)
        if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fc" or not ds.ndim:
            continue
        lo, hi = share(ds.shape[0], c.Get_size(), c.Get_rank())
        for start in range(lo, hi, BLOCK_ROWS):
            block = ds[start:min(hi, start + BLOCK_ROWS)]
            with np.errstate(over="ignore", invalid="ignore"):  # NaN and inf propagate: a finite sum means finite
                total = block.sum()  # values; an overflowing sum of finite ones is looked at value by value
            if not np.isfinite(total):
                _refuse_non_finite(path, name, block, first=start, unit="row")
            if f"{name}[{{}}]" in RANGES and ds.dtype.kind == "f":
                _check_values(path, {f"{name}[{{}}]": block}, {}, first=start, unit="row")
            if name in METRIC_ROWS:
                _refuse_non_metrics(path, name, block, first=start)


def check_resumable(saved: dict, cfg: dict, path, *, step: int | None = None) -> None:
    """Refuse (ConfigError) a resume whose job differs from the checkpoint's in anything but RESUMABLE_CHANGES,
    or whose [flow].steps is below the checkpoint's `step` (steps done): only a larger count extends a run. The
    configurations are compared first: a refusal for another job names every key that differs, before the steps."""

    kept, given = without(saved, RESUMABLE_CHANGES), without(cfg, RESUMABLE_CHANGES)
    diff = []
    for section in sorted(set(kept) | set(given)):
        a, b = kept.get(section, {}), given.get(section, {})
        if not isinstance(a, dict) or not isinstance(b, dict):
            if a != b:
                raise ConfigError(f"{path}: [{section}] differs from the checkpoint's job; resume with the same job "
                                  "or start a new --out")
            continue
        diff += [(section, key, a.get(key), b.get(key)) for key in sorted(set(a) | set(b))
                 if _json(a.get(key)) != _json(b.get(key))]
    if diff:
        from hpcflow.jobs.schema import shown

        def said(v):  # as a job file writes it; None: the key unset
            return "none (unset)" if v is None else shown(v)

        section, key, old, new = diff[0]
        more = f" (and {', '.join(f'[{s}].{k}' for s, k, _, _ in diff[1:])})" if len(diff) > 1 else ""
        raise ConfigError(f"{path}: [{section}].{key} = {said(new)} differs from the checkpoint's {said(old)}{more}; "
                          f"only {RESUMABLE_SAID} may change on --resume: resume with "
                          f"{' '.join(set_arg(s, k, v) for s, k, v, _ in diff)} (or start a new --out)")
    steps = cfg.get("flow", {}).get("steps")
    if step is not None and steps is not None and steps < step:
        raise ConfigError(f"{path}: [flow].steps = {steps} is below the {step} steps the checkpoint holds; resume "
                          f"with --set flow.steps=N, N >= {step}")


def check_saved_job(saved: dict, schema: dict, path) -> None:
    """Refuse (InputFileError) a checkpoint's job `saved` (its `config`: the validated job, every section a table)
    that has a section of the job `schema` that is not a table, or lacks a key the schema requires (a key with a
    default is filled in by `schema.with_defaults`, as for a checkpoint written before the key existed): its job is
    then unknown, and a comparison with the job given would ask to set that key to none."""
    for section, fields in schema.items():
        table = saved.get(section, {})
        if not isinstance(table, dict):
            raise InputFileError(f"{path}: attribute 'config' holds [{section}] as {type(table).__name__} JSON, not a "
                                 f"table; the checkpoint is damaged, {RESTART}")
        missing = [key for key, fld in fields.items() if fld.required and key not in table]
        if missing:
            what = f"[{section}]" if section not in saved else f"[{section}].{missing[0]}"
            raise InputFileError(f"{path}: attribute 'config' lacks {what}, which every job's configuration holds; "
                                 f"the checkpoint is damaged, {RESTART}")


#: static datasets compared by shape and type alone: the cluster each rank flows (depends on R) and the labels (a
#: resume flows the clusters of the checkpoint's labels, `stored_labels`, and writes them back as they were)
SHAPE_ONLY = ("cluster/owner", "cluster/labels")


def stored_labels(path, n_train: int, n_clusters: int, *, method: str, comm=None) -> np.ndarray:
    """The cluster of every train point that checkpoint `path` holds (cluster/labels, int64 (n_train,)), which a
    --resume flows instead of clustering the points again. Rank 0 reads and checks them and broadcasts them
    (collective); a missing dataset, or labels that no clustering of the job's [clustering] gives (not integers, not
    n_train of them, not 0..k-1 with every cluster non-empty, k <= n_clusters and, but for "birch", which may find
    fewer, k = n_clusters), is refused by every rank alike (InputFileError, marked collective: the CLI prints its one
    line from rank 0, and `abort_on_error` prints no line per rank)."""
    c = resolve(comm)
    labels, said = None, None
    if c.Get_rank() == 0:
        try:
            labels = _read_labels(os.fsdecode(path), int(n_train), int(n_clusters), method)
        except InputFileError as exc:
            said = one_line(exc)
    if c.Get_size() > 1:
        labels, said = c.bcast((labels, said), root=0)
    if said is not None:
        raise_together(InputFileError(said), comm=c)
    return labels


def _read_labels(path: str, n: int, k_max: int, method: str) -> np.ndarray:
    """`stored_labels` on this rank alone (no collective)."""
    name = "cluster/labels"
    with read_h5(path, partial(_unreadable, path)) as f:
        if name not in f:
            raise InputFileError(f"{path}: dataset {name} is missing; the checkpoint is incomplete, {RESTART}")
        ds = f[name]
        if not isinstance(ds, h5py.Dataset) or ds.shape != (n,) or ds.dtype.kind not in "iu":
            raise InputFileError(_labels_shape(path, name, ds, n))
        labels = np.asarray(ds[()]).astype(np.int64)
    lo, hi = int(labels.min()), int(labels.max())
    k = hi + 1
    if lo < 0 or k > k_max:
        raise InputFileError(f"{path}: dataset {name} holds the cluster {lo if lo < 0 else hi}, outside 0..{k_max - 1} "
                             f"([clustering].n_clusters = {k_max}); the checkpoint is damaged, {RESTART}")
    empty = np.flatnonzero(np.bincount(labels, minlength=k_max) == 0)
    if empty.size and (method != "birch" or empty[0] < k):
        raise InputFileError(f"{path}: dataset {name} gives cluster {int(empty[0])} no train point, where the "
                             f"clustering ([clustering].method = {method!r}, n_clusters = {k_max}) gives every one "
                             f"some; the checkpoint is damaged, {RESTART}")
    return labels
#: how far a stored point, weight or |Ω|² may lie from the one the job samples again, relative to the row's largest
#: entry: another machine's libm/SIMD kernels or BLAS change the last bits (~1e-15), another sampler or an edited
#: file the leading ones
STATIC_RTOL = 1e-9


def check_static(path, static: dict, n_rows: dict, *, comm=None) -> None:
    """Refuse (InputFileError on every rank) a checkpoint whose static datasets are not the rows this job samples and
    clusters again: a resume reads only the metrics from it and would continue them on other points (a sampler
    that changed between versions, an edited file), then overwrite the point data. static: {name: (global_idx,
    local_rows)} of this rank as `CheckpointWriter` takes it, n_rows: {name: global rows}. Each rank compares its own
    rows to STATIC_RTOL of each row's largest entry (the sampler forms a point's data inside its block, the same bits
    for every R and thread count on one machine, `hpcflow.geometry.sampling`; a requeued job may resume on another
    node), BLOCK_ROWS rows read at a time; SHAPE_ONLY datasets by their shape and type. A missing dataset is an
    incomplete checkpoint, but for one of 0 rows (test/ of a run without test points, written before those datasets
    existed). One allgather at R > 1 (`_together`)."""
    c = resolve(comm)
    _together(lambda: _check_static(str(path), static, n_rows), c)


def check_static_present(path, n_rows: dict, *, clustered: bool = False, layout: dict | None = None,
                         up_to: tuple = (), comm=None) -> None:
    """Refuse (InputFileError on every rank) a checkpoint that lacks a static dataset of n_rows ({name: global rows}:
    the point data and, for a clustered job, cluster/labels and cluster/owner) before the points are sampled, in the
    line `check_static` and `stored_labels` give after: from h5py's metadata alone, so that `--check` refuses what
    the run would. A missing dataset of 0 rows is none (`check_static`); for a clustered job,
    cluster/labels not (n_train,) integers too (`stored_labels`; its values are read by the run alone). layout:
    {name: (shape of a row, dtype)} of the rows the job writes: a dataset of other shape or dtype kind is refused as
    `check_static` refuses it; a name in `up_to` has at most n_rows[name] rows, at least 1 (birch's cluster/owner).
    Rank 0 looks, one allgather at R > 1 (`_together`)."""
    c = resolve(comm)
    _together(lambda: _check_present(os.fsdecode(path), n_rows, clustered, layout or {}, up_to)
              if c.Get_rank() == 0 else None, c)


def _check_present(path: str, n_rows: dict, clustered: bool, layout: dict, up_to: tuple) -> None:
    """`check_static_present` on this rank alone (no collective): cluster/labels first, as the run reads it first."""
    with read_h5(path, partial(_unreadable, path)) as f:
        names = sorted(n_rows, key=lambda name: name != "cluster/labels")
        for name in names:
            if name not in f:
                if int(n_rows[name]) != 0:
                    raise InputFileError(f"{path}: dataset {name} is missing; the checkpoint is incomplete, {RESTART}")
                continue
            ds, n = f[name], int(n_rows[name])
            if name == "cluster/labels" and clustered:
                if not isinstance(ds, h5py.Dataset) or ds.shape != (n,) or ds.dtype.kind not in "iu":
                    raise InputFileError(_labels_shape(path, name, ds, n))
            if name not in layout:
                continue
            tail, dtype = layout[name][0], np.dtype(layout[name][1])
            shape = getattr(ds, "shape", None)
            rows_ok = shape is not None and len(shape) and (0 < shape[0] <= n if name in up_to else shape[0] == n)
            if not (isinstance(ds, h5py.Dataset) and rows_ok and shape[1:] == tuple(tail)
                    and ds.dtype.kind == dtype.kind):
                want = f"(at most {n},)" if name in up_to else (n,) + tuple(tail)
                raise _job_other(f, path)(name, f"(shape {shape}, type {getattr(ds, 'dtype', None)}; the job's: "
                                                f"{want}, {dtype})")


def _labels_shape(path: str, name: str, ds, n: int) -> str:
    """The refusal of cluster/labels `ds` that are not (n,) integers."""
    return (f"{path}: dataset {name} has shape {getattr(ds, 'shape', None)} and type {getattr(ds, 'dtype', None)}, "
            f"not ({n},) integers (a cluster per train point); the checkpoint is damaged, {RESTART}")


def _check_static(path: str, static: dict, n_rows: dict, *, other=None, ours: str = "the job's") -> None:
    """`check_static` on this rank alone (no collective); other(name, what): the InputFileError of rows that differ
    (default: the job's, sampled by another hpcflow), `ours` how a shape refusal names the rows compared."""
    with read_h5(path, partial(_unreadable, path)) as f:
        other = _job_other(f, path) if other is None else other

        for name, (idx, local) in static.items():
            n, local = int(n_rows[name]), np.asarray(local)
            if name not in f:
                if n == 0:
                    continue
                raise InputFileError(f"{path}: dataset {name} is missing; the checkpoint is incomplete, {RESTART}")
            ds, want = f[name], (n,) + local.shape[1:]
            if not isinstance(ds, h5py.Dataset) or ds.shape != want or ds.dtype.kind != local.dtype.kind:
                raise other(name, f"(shape {getattr(ds, 'shape', None)}, type {getattr(ds, 'dtype', None)}; {ours}: "
                                  f"{want}, {local.dtype})")
            if name in SHAPE_ONLY:
                continue
            for pos, rows in _rows_at(ds, np.asarray(idx, dtype=np.int64)):
                want = local[pos].reshape(len(pos), -1)
                gap = np.abs(rows.reshape(len(pos), -1) - want).max(axis=1, initial=0.0)
                differ = ~(gap <= STATIC_RTOL * np.abs(want).max(axis=1, initial=0.0))  # (NaN differs too)
                if differ.any():
                    k = int(np.argmax(differ))
                    raise other(name, f"at row {int(idx[pos[k]])} (by {float(gap[k]):.3g}, beyond rounding)")


def _job_other(f, path: str):
    """other(name, what) of `_check_static` for the open checkpoint `f`: the InputFileError of rows that are not the
    job's (sampled by another hpcflow)."""
    def job_other(name, what):
        return InputFileError(f"{path}: {name} {what} does not match what this job samples and clusters (the "
                              f"checkpoint was written by hpcflow {_version(f)}, this is "
                              f"{__version__}): resume with the hpcflow that wrote it{_on_cupy(f, path)}, or "
                              f"{RESTART}")

    return job_other


def _on_cupy(f, path) -> str:
    """What a row-mismatch refusal adds for a checkpoint that an earlier hpcflow may have sampled on CuPy (backend
    auto on a GPU node sampled there, whose roundoff put ~1e-4 of the points in another chart; sampling under auto
    now runs on the host): resuming it with HPCFLOW_BACKEND=cupy on a GPU node, where its first leg (the one that
    sampled the points) records no backend (written before the record) or records cupy; "" where it records numpy,
    or this run samples on CuPy."""
    from hpcflow.arguments import env_backend

    try:
        legs = _read_legs(f, path) or []
        choice = env_backend()
    except (InputFileError, ConfigError):  # (a damaged legs attribute, a bad $HPCFLOW_BACKEND: refused elsewhere)
        return ""
    sampled = legs[0].get("backend") if legs and isinstance(legs[0], dict) else None
    if choice == "cupy" or sampled == "numpy":
        return ""
    return (", or, where an earlier hpcflow sampled it on a GPU under backend auto (which sampled on CuPy; its first "
            "leg records " + ("cupy" if sampled == "cupy" else "no backend") +
            "), with HPCFLOW_BACKEND=cupy on a GPU node")


def _rows_at(ds, idx: np.ndarray, block: int = BLOCK_ROWS):
    """(positions, rows) of dataset `ds` at the global rows `idx`, read in spans of at most `block` rows: rows[i] is
    row idx[positions[i]]; a contiguous idx is read once, a scattered one span by span."""
    pos = np.argsort(idx, kind="stable")
    rows = idx[pos]
    start = 0
    while start < rows.size:
        lo = int(rows[start])
        end = int(np.searchsorted(rows, lo + block, side="left"))
        span = ds[lo:int(rows[end - 1]) + 1]
        yield pos[start:end], span[rows[start:end] - lo]
        start = end


def _step_rows(table: np.ndarray, steps: int) -> np.ndarray:
    """The (steps, R) per-rank history of `steps` steps from `table` (row k - 1: step k, from step 1 on): its first
    `steps` rows, NaN rows added where it holds fewer. Rows never move: a row beyond `steps` is dropped from the end,
    so step 1 keeps row 0 whatever was recorded."""
    rows = table[:steps]
    if rows.shape[0] < steps:
        rows = np.concatenate([rows, np.full((steps - rows.shape[0], table.shape[1]), np.nan)])
    return rows


def _writer_settings(every, seconds, block_rows) -> dict:
    """`CheckpointWriter`'s every (None or steps >= 1), seconds (None or finite > 0, as [checkpoint]) and
    block_rows (>= 1), checked; no collective."""
    return {"every": None if every is None else api_integer("every", every, "None or a whole number of steps >= 1",
                                                            lo=1),
            "seconds": None if seconds is None else api_number("seconds", seconds, "None or a finite number of "
                                                               "seconds > 0", lo=0, lo_open=True),
            "block_rows": api_integer("block_rows", block_rows, "a whole number of rows >= 1", lo=1)}


def _engine(engine):
    """`CheckpointWriter`'s engine (None or one of ENGINES), checked; no collective."""
    if engine is not None and engine not in ENGINES:
        raise ValueError(f"engine={engine!r} is not one of {ENGINES}, or None (no engine recorded)")
    return engine


class CheckpointWriter:
    """`on_step` hook of `kernel_flow`: writes DIR/checkpoint.h5 every `every` steps and/or `seconds` seconds,
    on SIGTERM/SIGUSR1 (then raises Preempted on every rank; not at a step where the flow ends anyway, `FlowView.ends`,
    whose run finishes as it would have), and at `close()`. Collective: call on every rank.
    A bad every, seconds or block_rows on any rank, or one that differs between ranks (their writes would fall out
    of step), is refused by every rank at construction (one allgather at R > 1).

    static: {name: (global_idx, local_rows)} datasets that never change (points, weights, labels, ...); n_rows:
    {name: global row count} for them. Every row dataset (metrics and static) goes to rank 0 `block_rows` global
    rows at a time (`hpcflow.parallel.reduce.gather_row_blocks`) and is written block by block, so rank 0 holds
    one block beyond its own rows, never a whole dataset (the local rows are kept by reference, not copied).
    Its answer is False on every rank (or Preempted raised on every rank): `answers_alike`, so `kernel_flow` takes
    it without a collective.
    job_text: DIR/job.toml (the saved job), written atomically by rank 0 right after this run's first checkpoint, so
    a run killed without a signal (SIGKILL, node failure) still says which job and --set values its checkpoint
    continues; before that, the directory holds nothing of this run (a new run's is empty, a resumed run's job.toml
    and checkpoint are the earlier run's).
    signalled: the Event of the requests recorded before the writer took the signals (`stop_signals.requests`
    around the flow's setup), which its handler sets too: one recorded by the time the flow's first step would
    start stops the flow before it (`before_steps`: the checkpoint of step 0, or of the resumed step).
    threads: this run's threads per rank, recorded in its leg (`legs[].threads`) when given; its BLAS kernel
    (`hpcflow.provenance.blas_kernel`, `legs[].blas_kernel`), array backend (`hpcflow.provenance.array_backend`,
    `legs[].backend`) and the commit of its hpcflow (`hpcflow.provenance.git_commit`, `legs[].git_commit`; null
    where git cannot name it) are recorded always.
    engine: the engine of the flow's Gaussian kernel ("numba" or "numpy", `GaussianKernel.engine`), written as
    attribute engine (None: none written, as for other kernels); a resume's writer is given the engine it keeps.
    """

    answers_alike = True

    def __init__(self, path, config: dict, *, every: int | None = None, seconds: float | None = None,
                 static: dict | None = None, n_rows: dict | None = None, resume: FlowResume | None = None,
                 comm=None, clock=time.monotonic, block_rows: int = BLOCK_ROWS, started: float | None = None,
                 job_text: str | None = None, signalled: threading.Event | None = None, threads: int | None = None,
                 engine: str | None = None):
        self.path, self.config, self.job_text, self.clock = str(path), config, job_text, clock
        self.comm = resolve(comm)
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        got = {}  # every, seconds and block_rows pace the collective writes: checked and equal on every rank
        arguments_together(lambda: got.update(_writer_settings(every, seconds, block_rows), engine=_engine(engine)),
                           comm=self.comm, same=lambda: {k: v for k, v in got.items() if k != "engine"})
        self.engine = got["engine"]  # (rank 0's is written: ranks where Numba does not import run NumPy's passes)
        self.every, self.seconds, self.block_rows = got["every"], got["seconds"], got["block_rows"]
        self.static = {name: (np.asarray(idx, dtype=np.int64), rows, int((n_rows or {})[name]))
                       for name, (idx, rows) in (static or {}).items()}
        self.per_rank = {k: [] for k in PER_RANK_KEYS}  # this rank's figures per step (steps after a resume)
        self.old_per_rank = {} if resume is None else dict(resume.per_rank)
        self.last_written = -1 if resume is None else resume.step
        self.last_time = clock()
        # this run's leg (its wall time counted from `started`, a time.perf_counter() value, default now)
        self.started = time.perf_counter() if started is None else started
        self.first_step = 0 if resume is None else int(resume.step)
        self.threads = threads  # this leg's threads per rank (None: not recorded)
        from hpcflow.provenance import array_backend, blas_kernel, git_commit

        self.blas_kernel = blas_kernel()  # this leg's BLAS kernel (rank 0's is written)
        self.backend = array_backend()  # this leg's array backend, numpy or cupy (rank 0's is written)
        self.git_commit = git_commit() if self.rank == 0 else None  # this leg's hpcflow's commit (rank 0's written)
        self.legs = earlier_legs(resume)  # after each write: the earlier legs and this one as written
        self._earlier = len(self.legs)
        self.last_view = None
        self.fingerprints = None  # {"train"/"test": `set_fingerprint`} of the sets whose points `static` lacks
        self.signalled = threading.Event() if signalled is None else signalled  # a request before it: honoured too
        self._old_handlers = install(self._on_signal)  # hpcflow.stop_signals.SIGNALS

    def _on_signal(self, signum, frame):  # noqa: ARG002 - signal handler signature
        self.signalled.set()

    def __call__(self, view) -> bool:
        """Record the step's figures; write when due; on a signal write and raise Preempted (every rank). A view at
        the step this writer started from (0, or the resumed step: `kernel_flow`'s final call where its run took no
        step) is no step of its run: it records no per-rank row (history/ row k - 1 is step k's, whatever the steps
        run) and writes nothing, the state being that of the file or of step 0; `close` writes it."""
        repeat = self.last_view is not None and self.last_view.step == view.step  # a final call at the same step
        self.last_view = view
        if int(view.step) == self.first_step:
            return False
        for k in PER_RANK_KEYS:
            value = float(view.per_rank.get(k, np.nan)) if view.per_rank else np.nan
            if repeat and self.per_rank[k]:
                self.per_rank[k][-1] = value
            else:
                self.per_rank[k].append(value)
        if repeat:
            return False
        due_steps = self.every is not None and view.step % self.every == 0
        due_time = self.rank == 0 and self.seconds is not None and self.clock() - self.last_time >= self.seconds
        # both flags of any rank in one collective (sums of 0/1: exact)
        preempt, due_time = sum_array([float(self.signalled.is_set()), float(due_time)], comm=self.comm) > 0
        # the flow ends here anyway (a view without `ends` is not known to): nothing is left to stop, `close` writes
        preempt = preempt and not getattr(view, "ends", False)
        if due_steps or due_time or preempt:
            self.write(view, status="preempted" if preempt else "running")
        if preempt:
            self._stopped_at(view)
        return False

    def _stopped_at(self, view):
        """A stop request honoured with the checkpoint of `view` written: the handlers back (a repeat of the request
        ignored), Preempted raised."""
        self.restore_signals(stopping=True)
        raise Preempted(f"signal received: checkpoint of step {view.step} written to {self.path}; {RESUME_HINT}")

    def before_steps(self, view) -> None:
        """`kernel_flow`'s call before its first step (the state it starts from, step 0 or the resumed step, and no
        kernel work done yet), on every rank: a stop request recorded by then (during the setup: the points' sampling
        and clustering, `signalled`) on any rank (one collective) writes the checkpoint of that state (status
        "preempted"; step 0: g_FS and the history's step 0) and raises Preempted on every rank, as at a step boundary,
        so that it is honoured without waiting for the first step's kernel sums (an unclustered flow of millions of
        points takes far longer over them than a batch system's grace time). No request: nothing is written."""
        if not sum_array([float(self.signalled.is_set())], comm=self.comm)[0] > 0:
            return
        self.last_view = view
        self.write(view, status="preempted")
        self._stopped_at(view)

    def close(self, status: str):
        """Write the final state and restore signals. Returns on every rank only once rank 0 has put the file in
        place (one Barrier at R > 1: the writes' collectives all come before rank 0's rename), so any rank may read
        the checkpoint right after close."""
        self.restore_signals(stopping=self.signalled.is_set())  # one at the last step: a repeat is ignored
        if self.last_view is not None:
            self.write(self.last_view, status=status)
            if self.size > 1:
                self.comm.Barrier()
        return self.last_written

    def restore_signals(self, *, stopping: bool = False):
        """Put the handlers back; `stopping` (a signal was honoured): a repeat of it is ignored, not fatal."""
        from hpcflow.stop_signals import restore

        restore(self._old_handlers, stopping=stopping)
        self._old_handlers = {}

    def _per_rank_table(self, steps_now: int):
        """(step, R) arrays: earlier runs' rows (resume) then this run's rows, gathered from every rank."""
        mine = np.array([self.per_rank[k] for k in PER_RANK_KEYS], dtype=np.float64).T  # (steps here, keys)
        every = self.comm.allgather(mine) if self.size > 1 else [mine]
        out = {}
        for j, k in enumerate(PER_RANK_KEYS):
            new = np.stack([e[:, j] for e in every], axis=1) if every[0].size else np.zeros((0, self.size))
            old = self.old_per_rank.get(k)
            if old is not None and old.shape[0] and old.shape[1] != self.size:
                old = np.full((old.shape[0], self.size), np.nan)  # resumed at another R: per-rank rows unknown
            table = new if old is None or not old.shape[0] else np.concatenate([old, new])
            out[k] = _step_rows(table, steps_now)
        return out

    def write(self, view, *, status: str) -> None:
        """Write the checkpoint atomically on rank 0, row datasets gathered block by block (collective)."""
        tr_idx, tr_v = view.train_rows()
        te_idx, te_v = view.test_rows()
        m = int(round(np.shape(tr_v)[1] ** 0.5))
        per_rank = self._per_rank_table(int(view.step))
        rows = {"train/g": (tr_idx, tr_v, int(view.n_train)), "test/g": (te_idx, te_v, int(view.n_test)),
                **self.static}
        root = self.rank == 0
        legs = self._legs_at(int(view.step))
        if self.fingerprints is None:  # (once: the sets do not change; collective, alike on every rank)
            point_rows = getattr(view, "point_rows", None)
            self.fingerprints = {kind: set_fingerprint(*point_rows(kind), comm=self.comm) for kind in ("train", "test")
                                 if f"{kind}/points" not in self.static} if callable(point_rows) else {}
        with atomic_file(self.path) if root else contextlib.nullcontext() as fh, \
                h5py.File(fh, "w") if root else contextlib.nullcontext() as f:
            if root:
                data = {"history/sigma_train": np.asarray(view.sigma_train, dtype=np.float64),
                        "history/sigma_test": np.asarray(view.sigma_test, dtype=np.float64),
                        "history/dt": np.asarray(view.dt, dtype=np.float64),
                        "history/rejections": np.asarray(view.rejections, dtype=np.float64).reshape(-1, 2)}
                data.update({f"history/{k}": v for k, v in per_rank.items()})
                for name, arr in data.items():
                    f.create_dataset(name, data=arr)
                attrs = {"kind": KIND, "schema_version": SCHEMA_VERSION, "schema": SCHEMA, "step": int(view.step),
                         "status": status, "stopped": view.stopped, "test_held": int(view.test_held),
                         "best": float(view.best), "since_best": int(view.since_best),
                         "n_train": int(view.n_train), "n_test": int(view.n_test), "ranks": self.size,
                         "config": _json(self.config), "hpcflow_version": __version__,
                         "conventions": "step 0 = g_FS; g: metrics after `step` steps (N, m, m); sigma per eq. B.11",
                         "geometry_conventions": GEOMETRY_CONVENTIONS, "legs": _json(legs)}
                if getattr(view, "arguments", None):
                    attrs["flow_arguments"] = _json(view.arguments)
                if self.fingerprints:
                    attrs["set_fingerprints"] = _json(self.fingerprints)
                if self.engine is not None:
                    attrs["engine"] = self.engine
                for k, v in attrs.items():
                    f.attrs[k] = v
            for name, (idx, local, n) in rows.items():
                ds = None
                for lo, hi, block in gather_row_blocks(idx, local, n, block=self.block_rows, comm=self.comm):
                    if not root:
                        continue
                    if name.endswith("/g"):
                        block = unpack(block, m=m)
                    if ds is None:
                        ds = f.create_dataset(name, shape=(n,) + block.shape[1:], dtype=block.dtype)
                    ds[lo:hi] = block
        if self.job_text is not None:  # this run's first checkpoint is in place: the job it continues beside it
            from hpcflow.jobs.output import write_text

            write_text(os.path.join(os.path.dirname(self.path), "job.toml"), self.job_text, comm=self.comm)
            self.job_text = None
        self.last_written = int(view.step)
        self.last_time = self.clock()
        self.legs = legs

    def _legs_at(self, step: int) -> list:
        """The earlier legs and this run's, from the step it started at to `step`, timed up to now."""
        mine = {"from_step": self.first_step, "to_step": int(step), "ranks": self.size,
                "wall_seconds": time.perf_counter() - self.started, "hpcflow_version": __version__}
        if self.threads is not None:
            mine["threads"] = int(self.threads)
        mine["blas_kernel"] = self.blas_kernel
        mine["backend"] = self.backend
        mine["git_commit"] = self.git_commit
        return self.legs[:self._earlier] + [mine]
