"""Discrete kernel metric flow (eq. 3.5) on train and test points, with positivity safeguards, on R ranks.

    v^(t+1)(x) = v^(t)(x) - dt sum_{x' in B} Theta(x, x') dL/dv(x')                 (eq. 3.5)

v = the m^2 packed real components of g (`hpcflow.metric`), B = the train points (or, with `blocks`, the
sources of the point's block). Train and test metrics start at g_FS and move with the same kernel sums over
train-point gradients. dL/dv is the gradient of the total loss (eq. B.11 or B.14) with kappa(g) differentiated
(`kappa_gradient="exact"`) or held within the step ("fixed"). sigma_train / sigma_test (eq. B.11, each set with
its own kappa) are recorded per step, step 0 = FS.

Distribution (one code for every rank count R; R = 1 is the single process): `train` and `test` are THIS rank's
rows, `train_idx` / `test_idx` their global indices (sorted; default: ranks hold consecutive runs in rank order, so
at R = 1 the whole set); given ones must be, over the ranks, each of 0..N-1 once (N = the ranks' rows together; at
R = 1 arange(N)), or every rank refuses them (`hpcflow.parallel.partition`). A set that every rank passes whole
(bitwise the same rows on every rank, e.g. `Hypersurface.sample`'s default layout "all") without indices is one
set, not R copies: each rank keeps its `decompose.share` rows of it (as `hpcflow.nn.train.train` does), so the flow
equals the single-process run; the check is one allgather of (rows, digest) per set
(`hpcflow.parallel.replicated`), and FlowResult.train_idx / test_idx say which rows a rank kept. Every global sum
(kappa and its weight sums, the loss's sums, sigma_train, sigma_test, held test points) is
`hpcflow.parallel.reduce.exact_sum`, correctly rounded, so every decision and every history value is the same on
all ranks and does not depend on R or on the split; "some train metric lost positivity, halve dt" is one collective
decision (`reduce.any_true`). A step's collectives besides the kernel sums' (at R > 1): the sum of the loss
gradient's kappa term ("exact"), one allgather per trial dt deciding it together with the kappa sums of the new
metrics, one for sigma_train, sigma_test and test_held (the next step's kappa is the accepted one's), and the
callback's and on_step's decisions.
- Clustered (`blocks` given): the FlowBlocks (global indices) this rank owns; their train and test rows must
  be this rank's rows, each in exactly one of its blocks (so every row flows by one block over the ranks); a
  block's train rows flow with its source_idx, its test rows with its test_source_idx (source_idx when None); the
  source rows held by other ranks (the halo) arrive through one
  `hpcflow.parallel.exchange.ExchangePlan` (points once, gradients every step; `hpcflow.flow_step.Clustered`).
- Exact (`blocks=None`): each rank holds a contiguous run of train and test rows; train points are gathered
  once, gradients every step (Allgatherv: 72 bytes per train point and step, small next to the N^2 kernel
  work); a symmetric kernel's train x train tiles are dealt over the ranks once each (`flow_step.Exact`).
  Memory per rank: own rows, the tiles, and N x (9 gradient + point/feature) values. A nearest-train-point
  kernel (Delta, `kernel.nearest`) needs none of that (`flow_step.Nearest`): own rows, the test points, and
  the gradients of the test rows' nearest train points held by other ranks.
On a GPU each rank uses device node_rank % device_count and stages buffers through the host.

Safeguard: if the step leaves any train metric non-finite or not positive definite, it is rejected and
retried with dt/2, at most `max_halvings` times (each rejection is counted and logged); if even that fails,
the flow stops (`stop_kind` "no_positive_step"; "kernel_not_finite" where the kernel's sums of the step hold a
NaN or inf, which no dt mends). dt returns to its set value at the next step. Test points are
predictions, not part of the descent: a test point whose update would leave its metric non-finite or not
positive definite keeps its metric for that step (counted in `test_held`). A step after which sigma is not
finite is not taken: the flow stops with the last finite state (`stop_kind` "diverged"). A numerical stop is
logged once, by rank 0, as a warning "flow stopped: ..." (at INFO within `stops_said_by_caller`).

State hooks: after every accepted step and once at the end every rank calls `on_step(FlowView)` (returning
True on any rank stops the flow, `stop_kind` "stopped"; an on_step whose attribute `answers_alike` is true returns
the same on every rank, so its answer needs no collective; FlowView.ends: the flow ends at that step anyway, its
last step, early stop or callback stop). An on_step with a method `before_steps(view)` has it called too, once, on
every rank, with the state the first step starts from (step 0: g_FS, or `resume.step`; `final` and `ends` False) as
soon as that state is known, before the step sums are set up and before any kernel work (not where no step is left to
run); it is not a step, and its answer is not read (a CheckpointWriter there honours a stop request received during the
setup: it writes that state and raises Preempted on every rank). Both hooks must be alike on every rank (a
`before_steps` present, `answers_alike`): ranks whose on_step differ there are refused together, ValueError.
`resume` (a FlowResume: the FlowView scalars and `rows(kind, global_idx)`) continues a flow after `resume.step`
bitwise as if never interrupted.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import time
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from hpcflow.arguments import api_bool, api_hook, api_integer, short_repr
from hpcflow.backend import array_module, device_of, get_xp, to_host
from hpcflow.cluster.blocks import FlowBlock
from hpcflow.flow_inputs import check_sets
from hpcflow.flow_step import Clustered, Exact, Nearest
from hpcflow.geometry.hermitian import det_hermitian, pack, unpack
from hpcflow.kernels.base import DEFAULT_TILE
from hpcflow.metric import KAPPA_GRADIENTS, LOSSES, is_positive_definite, loss_and_grad
from hpcflow.parallel import comm as pcomm
from hpcflow.parallel.decompose import displs, share
from hpcflow.parallel.partition import as_indices, check_indices
from hpcflow.parallel.replicated import identical_on_all
from hpcflow.parallel.reduce import any_true, exact_sum, expansion

__all__ = ["DEFAULT_CACHE_BYTES", "NUMERICAL_STOPS", "FlowBlock", "FlowResult", "FlowScalars", "FlowView",
           "flow_arguments", "kernel_flow", "stops_said_by_caller"]

log = logging.getLogger(__name__)

#: default memory budget for kernel blocks kept across steps (see `kernel_flow`)
DEFAULT_CACHE_BYTES = 256 * 2 ** 20
#: FlowResult.stop_kind values that mean a numerical stop (exit status 3 for a job)
NUMERICAL_STOPS = ("diverged", "no_positive_step", "kernel_not_finite")
#: what a "kernel_not_finite" stop says (its checkpoint's `stopped` holds it: a resume tells it from a dt too large)
KERNEL_NOT_FINITE = "the kernel's sums over the train gradients are not finite"
#: whether the caller says a numerical stop itself (`stops_said_by_caller`)
_STOP_SAID = contextvars.ContextVar("hpcflow_flow_stop_said", default=False)


@contextlib.contextmanager
def stops_said_by_caller():
    """Within the block, a flow's numerical stop ("flow stopped: ...") is logged at INFO, not WARNING: for a caller
    that says it itself (`hpcflow run`'s "stopped:" line), so that a user reads it once."""
    token = _STOP_SAID.set(True)
    try:
        yield
    finally:
        _STOP_SAID.reset(token)


@dataclass
class FlowResult:
    """History (global, steps_taken + 1 entries) and final metrics of this rank's rows (`train_idx`, `test_idx`)."""

    sigma_train: np.ndarray
    sigma_test: np.ndarray
    g_train: np.ndarray
    g_test: np.ndarray | None
    rejected_steps: int
    steps_taken: int
    dt_history: np.ndarray
    stopped: str = ""
    rejections: list = field(default_factory=list)
    test_held: int = 0  # test point-steps whose update was withheld to keep the metric positive definite
    stop_kind: str = ""  # "", "early_stop", "callback", "stopped", "diverged", "no_positive_step", "kernel_not_finite"
    train_idx: np.ndarray | None = None
    test_idx: np.ndarray | None = None
    per_rank: dict = field(default_factory=dict)  # this rank's totals (points, halo rows, kernel entries, ...)
    history: dict = field(default_factory=dict)  # this rank's per-step figures (steps run in this call)


@dataclass
class FlowScalars:
    """The state of a flow that every rank holds alike after `step` steps (histories, dt and early-stop state)."""

    step: int
    sigma_train: list
    sigma_test: list
    dt: list
    rejections: list
    test_held: int
    best: float
    since_best: int
    stopped: str
    n_train: int
    n_test: int


@dataclass
class FlowView(FlowScalars):
    """The flow's state after `step` steps, as every rank sees it (passed to `on_step`). `ends`: the flow ends at this
    step whatever on_step answers (its last step, its early stop, the callback's stop; True in the final call), so a
    stop request honoured here has nothing left to stop."""

    per_rank: dict
    final: bool
    _train: tuple
    _test: tuple
    ends: bool = False
    arguments: dict = field(default_factory=dict)  # `flow_arguments` of the flow (what a checkpoint records)
    _sets: tuple = (None, None)  # this rank's train and test rows (points, g_fs, omega2, weights; test None: none)

    def train_rows(self):
        """(global indices int64, packed metrics (k, m*m) float64) of this rank's train rows."""
        return self._train[0], to_host(self._train[1])

    def test_rows(self):
        return self._test[0], to_host(self._test[1])

    def point_rows(self, kind: str):
        """(global indices, `host_rows` of the set) of this rank's rows of "train" or "test"."""
        return (self._train[0], host_rows(self._sets[0])) if kind == "train" else (self._test[0],
                                                                                   host_rows(self._sets[1]))


class _Points(NamedTuple):
    """The arrays of a PointSet the flow needs, on the array module of the run."""

    points: object
    g_fs: object
    omega2: object
    weights: object

    def __len__(self):
        return self.points.shape[0]


class _HostRows(Mapping):
    """{field: NumPy array} of points, g_fs, omega2 and weights of a set's rows, each field copied to the host when
    it is first read (once): a comparison that reads some fields, or none, copies only those (on the GPU, g_fs is
    the largest)."""

    def __init__(self, ps):
        self._ps, self._copied = ps, {}

    def __getitem__(self, name):
        if name not in _POINT_FIELDS:
            raise KeyError(name)
        if name not in self._copied:
            self._copied[name] = to_host(getattr(self._ps, name))
        return self._copied[name]

    def __iter__(self):
        return iter(_POINT_FIELDS)

    def __len__(self):
        return len(_POINT_FIELDS)


def host_rows(ps) -> Mapping | None:
    """{field: NumPy array} of points, g_fs, omega2 and weights of a set's rows (`_Points`, a PointSet), each field
    copied to the host only once it is read (`_HostRows`); None for no set."""
    return None if ps is None else _HostRows(ps)


def _on(ps, xp):
    if ps is None:
        return None
    return _Points(*(xp.asarray(getattr(ps, f)) for f in _Points._fields))


def _clip(update, clip):
    """Scale rows of `update` (the velocity, before the factor dt) so that no row's Euclidean norm exceeds `clip`."""
    xp = array_module(update)
    norm = xp.linalg.norm(update, axis=1)
    scale = xp.minimum(1.0, clip / xp.maximum(norm, 1e-300))
    return update * scale[:, None]


@dataclass(frozen=True)
class _Fields:
    """A set given as an object with the fields points, g_fs, omega2 and weights (and perhaps chart and manifold) but
    without len() or row selection of its own: one row per row of `points`, selected field by field."""

    points: object
    g_fs: object
    omega2: object
    weights: object
    chart: object = None
    manifold: object = None

    def __len__(self):
        return int(np.shape(self.points)[0]) if np.ndim(self.points) else 0  # (a 0-d points: refused by `check_sets`)

    def __getitem__(self, rows):
        return _Fields(*(getattr(self, f)[rows] for f in _POINT_FIELDS),
                       None if self.chart is None else self.chart[rows], self.manifold)


def _row_set(ps):
    """`ps` (checked by `_check_args`: None or an object with the four fields) where it has len() and row selection
    (a PointSet), else its fields as a `_Fields`, whose rows are its points' rows."""
    if ps is None or all(callable(getattr(type(ps), f, None)) for f in ("__len__", "__getitem__")):
        return ps
    return _Fields(*(getattr(ps, f) for f in _POINT_FIELDS), getattr(ps, "chart", None), getattr(ps, "manifold", None))


def _rows_index(idx, n_local, comm):
    """Global indices of this rank's rows: given (`partition.check_indices`), or consecutive runs in rank order."""
    if idx is not None:
        return idx
    counts = np.array(comm.allgather(int(n_local)), dtype=np.int64)
    lo = int(displs(counts)[comm.Get_rank()])
    return np.arange(lo, lo + n_local, dtype=np.int64)


_POINT_FIELDS = ("points", "g_fs", "omega2", "weights")


#: what each hook of `kernel_flow` is called with, said where a hook that is not callable is refused
_HOOKS = (("callback", "a function callback(info: dict) -> bool"), ("on_step", "a function on_step(view) -> bool"))
#: what a `resume` must hold: FlowResume's scalars that the flow reads, and its `rows(kind, global_idx)`
_RESUME_NEEDS = ("step", "sigma_train", "sigma_test", "dt", "rejections", "test_held", "stopped")


def _plain(value):
    """`value` as a JSON value for `flow_arguments`: NumPy scalars as Python's (6 and 6.0 compare equal, as one
    dt), bools, numbers, strings and None as they are, sequences and mappings element by element, anything else by
    its repr."""
    if value is None or isinstance(value, (bool, np.bool_, str)):
        return bool(value) if isinstance(value, np.bool_) else value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)


def flow_arguments(kernel, *, dt, loss, weighted, max_halvings, clip, kappa_gradient) -> dict:
    """The arguments of `kernel_flow` that decide the numbers of its steps, as JSON values (`_plain`): the kernel (its
    class and hyperparameters, `Kernel.params`, but for the engine, as the ranks compare them), dt, loss, weighted,
    max_halvings, clip and kappa_gradient. A checkpoint records them (`hpcflow.checkpoint`, attribute
    flow_arguments), and a resume with others is refused: it would not continue that flow. (steps and early_stop say
    where the flow ends, which a resume may change.)"""
    params = {k: v for k, v in _kernel_params(kernel).items() if k != "engine"}
    return _plain({"kernel": {"class": type(kernel).__name__, "params": params}, "dt": dt, "loss": loss,
                   "weighted": weighted, "max_halvings": max_halvings, "clip": clip, "kappa_gradient": kappa_gradient})


def _said_argument(key: str, value, other) -> str:
    """One argument of `flow_arguments` as a call writes it, e.g. dt=0.001; a kernel with the hyperparameters in
    which it differs from `other` (all of them where its class differs): kernel=GaussianKernel(width=0.2)."""
    if key == "kernel" and isinstance(value, dict):
        params = value.get("params") or {}
        if isinstance(other, dict) and other.get("class") == value.get("class"):
            theirs = other.get("params") or {}
            params = {k: v for k, v in params.items() if k in theirs and theirs[k] != v}  # (as `_differs`)
        return f"kernel={value.get('class')}({', '.join(f'{k}={v!r}' for k, v in params.items())})"
    return f"{key}={value!r}"


def _resume_source(resume) -> str:
    """How a refusal names the checkpoint of `resume`: its path where it has one."""
    path = getattr(resume, "path", None)
    return f"checkpoint {path}" if path is not None else "the resume state"


#: what a refusal of a resume that does not fit the flow advises (here and in `hpcflow.checkpoint.FlowResume`)
RESUME_FIX = ("pass the sets and arguments it was written with (a resume continues that very flow), or resume=None "
              "to start from g_FS")


def _differs(key: str, recorded, current) -> bool:
    """Whether argument `key` of `flow_arguments` as a checkpoint records it (JSON) differs from the flow's. A kernel
    of the same class differs only in a hyperparameter present in both: one recorded or current on one side only is
    skipped, not compared (a hyperparameter added to a kernel in a later version, which the checkpoints written
    before it lack, keeps the earlier behaviour at its default; its default is not known to `params`, which need
    not name the constructor's arguments, so a non-default value of it is not caught either)."""
    if key == "kernel" and isinstance(recorded, dict) and isinstance(current, dict):
        theirs, mine = recorded.get("params"), current.get("params")
        if isinstance(theirs, dict) and isinstance(mine, dict):
            rest = [k for k in recorded.keys() | current.keys() if k != "params"]
            return (any(_plain(recorded.get(k)) != current.get(k) for k in rest)
                    or any(_plain(theirs[k]) != mine[k] for k in theirs.keys() & mine.keys()))
    return _plain(recorded) != current


def _check_resume_fits(resume, n: dict, arguments: dict, steps: int, comm) -> None:
    """ValueError naming `resume` on every rank (the values compared are alike on all: no collective) where the
    state is past `steps` (the flow would return its longer history as if it ended at `steps`), where the
    flow's sets hold other counts of points than the state's (n_train, n_test; `FlowScalars`) or its
    `flow_arguments` differ from those the checkpoint records (its `arguments`, where it has them; an argument it
    lacks, or a kernel hyperparameter on one side only, is skipped: `_differs`): its rows would be read for other
    points (an IndexError past its rows) or continued with another kernel or dt, σ jumping at the resumed step.
    The rows themselves are compared by the state's `check_sets` (`hpcflow.checkpoint.FlowResume`)."""
    where = _resume_source(resume)
    if int(resume.step) > steps:
        pcomm.raise_together(ValueError(
            f"resume: {where} is at step {int(resume.step)}, past steps={steps}; pass steps >= {int(resume.step)} "
            "(steps counts from step 0, as the flow that wrote it)"), comm=comm)
    said = []
    for kind in ("train", "test"):
        held = getattr(resume, f"n_{kind}", None)
        if held is None or int(held) == n[kind]:
            continue
        if kind == "test" and not n[kind]:
            said.append(f"test=None (no test points), where {where} holds {int(held)} test points")
        elif kind == "test" and not int(held):
            said.append(f"the test set has {n[kind]} points, where {where} was written without test points "
                        "(test=None)")
        else:
            said.append(f"the {kind} set has {n[kind]} points, where {where} holds {int(held)}")
    if said:
        pcomm.raise_together(ValueError(f"resume: {'; '.join(said)}; {RESUME_FIX}"), comm=comm)
    recorded = getattr(resume, "arguments", None)
    if not isinstance(recorded, dict):  # (a checkpoint written before they were recorded)
        return
    differ = [k for k in arguments if k in recorded and _differs(k, recorded[k], arguments[k])]
    if differ:
        pcomm.raise_together(ValueError(
            f"resume: {', '.join(_said_argument(k, arguments[k], recorded[k]) for k in differ)} where {where} was "
            f"written with {', '.join(_said_argument(k, recorded[k], arguments[k]) for k in differ)}; {RESUME_FIX}"),
            comm=comm)


def _check_resume(resume) -> None:
    """TypeError naming `resume` unless it is None or a FlowResume-like object (the scalars `_RESUME_NEEDS` and a
    callable `rows`), before any work (it failed at the first `resume.rows`)."""
    if resume is None or (callable(getattr(resume, "rows", None)) and all(hasattr(resume, f) for f in _RESUME_NEEDS)):
        return
    raise TypeError(f"resume={short_repr(resume)} is not a flow state to resume; pass a FlowResume "
                    "(hpcflow.checkpoint.load_resume(path)), or None to start from g_FS")


def _check_args(kernel, train, test, xp, blocks, hooks, resume=None, **num):
    """TypeError / ValueError naming the first bad argument of `kernel_flow`, before any work or collective (run on
    every rank through `comm.arguments_together`, so a bad argument on some ranks is refused by all); returns
    `blocks` as a list of FlowBlocks of int64 arrays (`_listed_blocks`) and {name: int} of the whole-number
    arguments, taken as `arguments.api_integer` takes counts (an integral float such as 50.0 is 50). hooks:
    {"callback": ..., "on_step": ...}, each None or callable; resume: None or a FlowResume (`_check_resume`)."""
    if isinstance(kernel, str) or not any(callable(getattr(kernel, f, None)) for f in ("operator", "apply")):
        raise TypeError(f"kernel={kernel!r} is not a kernel; pass a Kernel object, e.g. "
                        "hpcflow.kernels.make_kernel('gaussian', width=0.03)")
    for name, ps in (("train", train), ("test", test)):  # (test may be None: no test set; train may not)
        if (ps is None and name == "train") or (ps is not None and not all(hasattr(ps, f) for f in _POINT_FIELDS)):
            raise TypeError(f"{name} is a {type(ps).__name__}, not a point set; pass a PointSet (e.g. "
                            "Hypersurface.sample(...)), which holds points, g_fs, omega2 and weights")
    for name, want in _HOOKS:
        api_hook(name, hooks[name], want)
    _check_resume(resume)
    if xp is not None and xp is not np and not (isinstance(xp, types.ModuleType) and xp.__name__ == "cupy"):
        shown = f"<module {xp.__name__!r}>" if isinstance(xp, types.ModuleType) else short_repr(xp)
        raise TypeError(f"xp={shown} is not numpy or cupy; pass numpy or cupy itself (or None for the default, "
                        "hpcflow.backend.get_xp())")
    api_bool("weighted", num["weighted"])
    whole = {}

    def integer(name, lo, bounded=False):  # (None where not a whole number >= lo (of any size unless `bounded`):
        with contextlib.suppress(TypeError, ValueError):  # refused below, naming it)
            whole[name] = api_integer(name, num[name], "", lo=lo, bounded=bounded)
        return name in whole

    finite = lambda v: (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)  # noqa: E731
                        and bool(np.isfinite(v)))
    checks = (("dt", finite(num["dt"]) and num["dt"] > 0, "a finite number > 0"),
              ("steps", integer("steps", 0), "an integer >= 0"),
              ("max_halvings", integer("max_halvings", 0), "an integer >= 0"),
              ("clip", num["clip"] is None or (finite(num["clip"]) and num["clip"] > 0),
               "None (no clipping) or a finite number > 0"),
              ("early_stop", num["early_stop"] is None or integer("early_stop", 1), "None or an integer >= 1"),
              ("loss", num["loss"] in LOSSES, f"one of {LOSSES}"),
              ("kappa_gradient", num["kappa_gradient"] in KAPPA_GRADIENTS, f"one of {KAPPA_GRADIENTS}"),
              ("cache_bytes", integer("cache_bytes", 0), "an integer >= 0 (0: no cached kernel blocks)"),
              ("tile", integer("tile", 1, bounded=True), "an integer in [1, 2**62] (rows of a kernel tile)"))
    for name, ok, want in checks:
        if not ok:
            raise ValueError(f"{name}={num[name]!r} is invalid; pass {want}")
    return _listed_blocks(blocks), {"early_stop": None, **whole}


#: what a FlowBlock holds, said where one is refused
_BLOCK_WANT = ("FlowBlock(train_idx, test_idx, source_idx[, test_source_idx]) of global indices, each a sorted 1-D "
               "integer array of distinct indices (hpcflow.cluster.flow_blocks builds them)")
#: the FlowBlock fields a block must have; test_source_idx may be missing or None (the test rows use source_idx)
_BLOCK_NEEDS = FlowBlock._fields[:3]


def _listed_blocks(blocks) -> list | None:
    """blocks as a list of FlowBlocks whose fields are 1-D int64 arrays, strictly increasing (FlowBlock's contract: a
    source given twice would count twice in the kernel sum); else TypeError / ValueError naming blocks[i].field. No
    collective: ranges, rows and coverage are checked with the rows (`_blocks_fault`)."""
    if blocks is None:
        return None
    if isinstance(blocks, (str, bytes, dict)) or not isinstance(blocks, Iterable):
        raise TypeError(f"blocks={short_repr(blocks)} is not a list of FlowBlocks; pass a list of {_BLOCK_WANT}, "
                        "or None")
    out = list(blocks)
    for i, b in enumerate(out):
        if not all(hasattr(b, f) for f in _BLOCK_NEEDS):
            raise TypeError(f"blocks[{i}] is of type {type(b).__name__}, not a FlowBlock; pass {_BLOCK_WANT}")
        out[i] = FlowBlock(*(None if f not in _BLOCK_NEEDS and getattr(b, f, None) is None else
                             _block_indices(f"blocks[{i}].{f}", getattr(b, f)) for f in FlowBlock._fields))
    return out


def _block_indices(name: str, idx) -> np.ndarray:
    """One FlowBlock field as int64: a 1-D array of integers (any kind when empty), strictly increasing."""
    a = to_host(idx)
    if a.ndim != 1:
        raise ValueError(f"{name} has shape {a.shape}; pass a 1-D array of global indices")
    if a.size and a.dtype.kind not in "iu":
        why = "is a boolean mask, not indices; pass np.flatnonzero(mask)" if a.dtype.kind == "b" else (
            f"has dtype {a.dtype}, not an integer one; pass integer global indices (e.g. idx.astype(np.int64))")
        raise TypeError(f"{name} {why}")
    a, fault = as_indices(a if a.size else np.zeros(0, dtype=np.int64))
    if fault:
        raise ValueError(f"{name}: {fault}")
    step = np.diff(a)
    if np.any(step <= 0):
        k = int(np.argmax(step <= 0))
        why = f"holds index {a[k]} twice" if step[k] == 0 else f"is not sorted ({a[k]} before {a[k + 1]})"
        raise ValueError(f"{name} {why}; pass each index once, sorted ascending (np.unique(idx))")
    return a


def _shares_of_whole_sets(train, test, train_idx, test_idx, comm):
    """At R > 1, a set that every rank holds whole (bitwise the same rows, `replicated.identical_on_all`) and
    passes without global indices is cut to this rank's `decompose.share` rows; other sets are this rank's rows."""
    if comm.Get_size() == 1:
        return train, test
    out = []
    for ps, idx in ((train, train_idx), (test, test_idx)):
        # (rows with global indices are this rank's: `check_indices` saw them partition the set)
        whole = ps is not None and idx is None and identical_on_all([to_host(getattr(ps, f)) for f in _POINT_FIELDS],
                                                                    comm=comm)
        if whole:
            ps = ps[slice(*share(len(ps), comm.Get_size(), comm.Get_rank()))]
        out.append(ps)
    return tuple(out)


def _blocks_fault(blocks, rows: dict, n: dict, where: str) -> str | None:
    """What is wrong with this rank's FlowBlocks (`_listed_blocks`) next to its rows (None: nothing): an index outside
    its set, a train or test point that is not this rank's row, in two of its blocks, or a row of this rank in none.
    rows / n: {"train", "test"} -> this rank's global indices / the set's points over the ranks; where: "" or
    " on rank r". With the ranks' rows a partition (`check_indices`), each rank's blocks covering its own rows once
    is every row flowed by exactly one block over the ranks."""
    for i, b in enumerate(blocks):
        for key, name in (("train_idx", "train"), ("test_idx", "test"), ("source_idx", "train"),
                          ("test_source_idx", "train")):
            idx = getattr(b, key)
            if idx is not None and idx.size and (idx[0] < 0 or idx[-1] >= n[name]):
                return (f"blocks[{i}]{where}.{key}: index {idx[0] if idx[0] < 0 else idx[-1]} is outside "
                        f"range({n[name]}) (the {name} points over the ranks); pass global {name} indices in "
                        f"0..{n[name] - 1}" if n[name] else f"blocks[{i}]{where}.{key}: there are no {name} "
                        "points; pass an empty array")
    for name in ("train", "test"):
        parts = [getattr(b, f"{name}_idx") for b in blocks]
        cat = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        owner = np.repeat(np.arange(len(parts)), [p.size for p in parts])
        stray = ~np.isin(cat, rows[name])
        if stray.any():
            k = int(np.argmax(stray))
            return (f"blocks: a block's {name} point is not among this rank's {name} rows (blocks[{owner[k]}]{where} "
                    f"holds {name} point {cat[k]}); pass each rank the blocks of its own rows")
        order = np.argsort(cat, kind="stable")
        twice = np.flatnonzero(cat[order][1:] == cat[order][:-1])
        if twice.size:
            j, k = order[twice[0]], order[twice[0] + 1]
            return (f"blocks: {name} point {cat[j]} belongs to more than one FlowBlock (blocks[{owner[j]}] and "
                    f"blocks[{owner[k]}]{where}); pass blocks that hold each train and test point once")
        missed = np.setdiff1d(rows[name], cat, assume_unique=True)
        if missed.size:
            return (f"blocks: {name} points{where} in no block ({missed.size} of {len(rows[name])}, the first "
                    f"{missed[0]}) would not flow; pass blocks that hold every train and test point once, on the rank "
                    "holding its row (hpcflow.cluster.flow_blocks, distributed_blocks)")
    return None


def _select_device(xp, comm):
    """On a GPU: this rank's device, node_rank % device_count (never the global rank)."""
    if xp is np or comm.Get_size() == 1:
        return
    node_rank, _ = pcomm.node_layout(comm)
    xp.cuda.Device(device_of(xp, node_rank)).use()


class _Sums:
    """Global, correctly rounded sums over all ranks' rows (hpcflow.parallel.reduce.exact_sum), several at a time."""

    def __init__(self, comm):
        self.comm = comm
        self.seconds = 0.0

    def __call__(self, x) -> float:
        t0 = time.perf_counter()
        s = exact_sum(to_host(x), comm=self.comm)
        self.seconds += time.perf_counter() - t0
        return s

    def together(self, parts, *, stop: bool = False):
        """(any rank's `stop`, [global sum of each array of parts()]) in one allgather at R > 1 (parts() is not
        called where `stop` is set; no sums when any rank's is). Each sum is `exact_sum`'s: the same expansion
        terms summed in rank order, so bitwise its value."""
        t0 = time.perf_counter()
        mine = (bool(stop), None if stop else [expansion(to_host(x)) for x in parts()])
        every = [mine] if self.comm.Get_size() == 1 else self.comm.allgather(mine)
        stopped = any(s for s, _ in every)
        sums = None if stopped else [math.fsum(t for _, terms in every for t in terms[i]) for i in range(len(mine[1]))]
        self.seconds += time.perf_counter() - t0
        return stopped, sums

    def eta(self, v, ps):
        return det_hermitian(unpack(v)) / ps.omega2

    def kappas(self, etas, sets, *, stop: bool = False):
        """(any rank's `stop`, [kappa = sum w eta / W of each (ps, W) of `sets`]) in one collective."""
        stopped, s = self.together(lambda: [ps.weights * eta for eta, (ps, _) in zip(etas, sets)], stop=stop)
        return stopped, None if stopped else [t / w for t, (_, w) in zip(s, sets)]

    def sigmas(self, etas, sets, kappas, extra=()):
        """[sigma = sum w |1 - eta/kappa| / W of each set (eq. B.11)] + [global sum of each array of `extra`], in
        one collective."""
        _, s = self.together(lambda: [ps.weights * abs(1.0 - eta / k) for eta, (ps, _), k in zip(etas, sets, kappas)]
                             + list(extra))
        return [t / w for t, (_, w) in zip(s, sets)] + s[len(sets):]


def _kernel_params(kernel) -> dict:
    """The kernel's hyperparameters (`Kernel.params`; {} for a kernel object without them), which every rank of a
    flow must share."""
    params = getattr(kernel, "params", None)
    return dict(params()) if callable(params) else {}


def _asked(on_step, view, comm) -> bool:
    """on_step(view) on every rank: True when any rank's answer is; an on_step whose `answers_alike` is true answers
    the same on every rank (CheckpointWriter), and its answer is taken without a collective."""
    answer = bool(on_step(view))
    return answer if getattr(on_step, "answers_alike", False) else any_true(answer, comm=comm)


def _best_so_far(sigmas: list) -> tuple:
    """(smallest sigma of a history, steps since its first step): the early-stop state after that history."""
    best = min(sigmas)
    return best, len(sigmas) - 1 - sigmas.index(best)


def early_stop_said(step: int, early_stop: int) -> str:
    """FlowResult.stopped of a flow that met its early stop at `step`."""
    return f"step {step}: no improvement for {early_stop} step{'s' * (early_stop != 1)} (early stop)"


def stopped_early(state: FlowScalars, early_stop: int | None) -> bool:
    """Whether a flow state had met its early stop: its monitored sigma (test with test points, else train) has not
    gone below its best for `early_stop` steps (None: no early stop)."""
    if early_stop is None:
        return False
    return _best_so_far(state.sigma_test if state.n_test else state.sigma_train)[1] >= early_stop


def kernel_flow(kernel, train, test=None, *, dt: float, steps: int = 50, loss: str = "sigma",
                weighted: bool = True, tile: int = DEFAULT_TILE, blocks=None, max_halvings: int = 10,
                clip: float | None = None, early_stop: int | None = None, kappa_gradient: str = "exact",
                callback: Callable | None = None, xp=None, cache_bytes: int = DEFAULT_CACHE_BYTES,
                train_idx=None, test_idx=None, comm=None, resume=None, on_step: Callable | None = None
                ) -> FlowResult:
    """Iterate eq. 3.5 up to step `steps` from g_FS (or from `resume`) on this rank's rows; see module docstring.

    kernel: a Kernel (`hpcflow.kernels.make_kernel`). train, test: PointSets (or objects with points, g_fs,
    omega2, weights, one row per row of points) of this rank's rows, or the whole sets on every rank (each rank
    then keeps its share); test=None or a test set without points: no test history (sigma_test NaN). An empty
    train set or none, a kernel given by name, an xp other than numpy or cupy, a weighted that is not a bool, a
    callback or on_step that is not callable, or a bad number is refused (TypeError / ValueError naming the
    argument) before any work, by every rank together when it is bad on some ranks only; so is a set with a bad
    row (naming the set, field and first row: fields of another length, points not finite, g_fs not Hermitian
    positive definite, omega2 not > 0, weights not >= 0 or all 0), a FlowBlock field that is not a sorted 1-D
    integer array of distinct indices in range, and blocks that leave a train or test row of a rank out or hold it
    twice; and so is a dt, steps, loss, weighted, max_halvings, clip, early_stop,
    kappa_gradient or kernel hyperparameter (`Kernel.params`) that differs between ranks.
    Train and test lie on one manifold and, unless the kernel mixes components, in one chart (ps.chart) over all
    ranks, or every rank refuses them (`hpcflow.flow_inputs`). train_idx / test_idx: integers (floats of integral
    value taken as such, as `arguments.api_integer` takes counts; fractions and masks refused), and so are steps,
    max_halvings, early_stop, tile and cache_bytes (steps=50.0 is 50); `test` and `blocks` are given on every rank
    or on none.
    clip: max Euclidean norm of any point's update before the factor dt (u = sum_x' Theta dL/dv of eq. 3.5), so a
    step changes a point's packed metric v by at most dt * clip (h * clip at a halved h); a larger u is scaled to
    norm clip, a smaller one is kept (None = no clipping). early_stop: stop when the monitored
    sigma (test if given, else train) has not gone below its best value (step 0 included) for this many
    steps. callback(info: dict) is called after every step with step, sigma_train, sigma_test, dt, rejected,
    sigma_train_initial, sigma_test_initial (step 0) and ends (the flow ends at this step anyway: its last step or
    its early stop); returning True (on any rank) stops the flow, but at its early stop's step, where the flow ends
    as early-stopped (finished). xp: numpy or cupy (default `hpcflow.backend.get_xp()`); results are
    NumPy.
    cache_bytes: kernel blocks that fit in this budget are formed once and reused every step; larger ones are
    re-evaluated tile by tile each step. kappa_gradient: "exact" | "fixed" (`hpcflow.metric.loss_and_grad`).
    resume: None (start from g_FS) or the FlowResume of an earlier flow of the same sets and arguments
    (`hpcflow.checkpoint.load_resume(path)`, or an object with its scalars step, sigma_train, sigma_test, dt,
    rejections, test_held, stopped and `rows(kind, global_idx)`): the flow goes on after `resume.step`, bitwise as
    if never interrupted (`steps` counts from step 0, so it runs steps - resume.step more); anything else is refused
    (TypeError naming resume) before any work, and so is (ValueError naming resume and what differs) a state past
    `steps`, or of other sets (another number of train or test points, test points where it had none or the
    reverse; other rows, compared by the state's `check_sets` with the point data or fingerprints its checkpoint
    holds) or of other `flow_arguments` (kernel, dt, loss, weighted, max_halvings, clip, kappa_gradient) where it
    records them (a kernel hyperparameter recorded or current on one side only is not compared: `_differs`). A
    checkpoint of a `CheckpointWriter` without `static` holds a fingerprint of each set, compared bit for bit: sets
    sampled again on another CPU type (a job requeued onto another node, whose libm and SIMD kernels may change the
    last bits of points, g_fs, omega2 or weights) are refused as other rows. To resume sets that may be sampled
    again elsewhere, give the writer their point data (`static` and `n_rows`, as `hpcflow run` does): the rows are
    then compared with them to `hpcflow.checkpoint.STATIC_RTOL` (1e-9 of each row's largest entry) instead.
    """
    c = pcomm.resolve(comm)
    blocks, whole = pcomm.arguments_together(lambda: _check_args(
        kernel, train, test, xp, blocks, {"callback": callback, "on_step": on_step}, resume, dt=dt, steps=steps,
        weighted=weighted, max_halvings=max_halvings, clip=clip, early_stop=early_stop, loss=loss,
        kappa_gradient=kappa_gradient, cache_bytes=cache_bytes, tile=tile),
        comm=c, same=lambda: {
        "kernel": (type(kernel).__name__, {k: v for k, v in _kernel_params(kernel).items() if k != "engine"}), "dt": dt,
        "steps": int(steps), "loss": loss, "weighted": bool(weighted), "max_halvings": int(max_halvings), "clip": clip,
        "early_stop": None if early_stop is None else int(early_stop), "kappa_gradient": kappa_gradient,
        # (a `before_steps` runs only where on_step has one, and only an on_step without `answers_alike` makes the
        # collective of `_on_step_answer`: ranks that differ here would wait in different collectives)
        "callable(on_step.before_steps)": callable(getattr(on_step, "before_steps", None)),
        "on_step.answers_alike": bool(getattr(on_step, "answers_alike", False))})
    steps, max_halvings, early_stop, cache_bytes, tile = (
        whole[k] for k in ("steps", "max_halvings", "early_stop", "cache_bytes", "tile"))
    xp = get_xp() if xp is None else xp
    _select_device(xp, c)
    train, test = _row_set(train), _row_set(test)
    check_sets(kernel, train, test, blocks, comm=c)
    train_idx, test_idx = check_indices((("train_idx", train_idx, len(train)),
                                         ("test_idx", test_idx, 0 if test is None else len(test))), comm=c)
    train, test = _shares_of_whole_sets(train, test, train_idx, test_idx, c)
    n_train = int(exact_sum(np.array([float(len(train))]), comm=c))  # (>= 1: `check_sets`)
    n_test = int(exact_sum(np.array([float(len(test))]), comm=c)) if test is not None else 0
    if n_test == 0:
        test = None  # no test points on any rank: as test=None (a flow job's n_test = 0)
    has_test = test is not None
    train_idx = _rows_index(train_idx, len(train), c)
    test_idx = _rows_index(test_idx, len(test) if has_test else 0, c)
    tr, te = _on(train, xp), _on(test, xp)
    arguments = flow_arguments(kernel, dt=dt, loss=loss, weighted=weighted, max_halvings=max_halvings, clip=clip,
                               kappa_gradient=kappa_gradient)
    if resume is not None:  # before any work: a resume of other sets or arguments is refused
        _check_resume_fits(resume, {"train": n_train, "test": n_test}, arguments, steps, c)
        if callable(getattr(resume, "check_sets", None)):
            resume.check_sets({"train": (train_idx, host_rows(tr)), "test": (test_idx, host_rows(te))}, comm=c)
    counts = None
    if blocks is not None:
        where = f" on rank {c.Get_rank()}" if c.Get_size() > 1 else ""
        pcomm.value_error_together(_blocks_fault(blocks, {"train": train_idx, "test": test_idx},
                                                 {"train": n_train, "test": n_test}, where), comm=c)
    else:
        counts = np.array(c.allgather(int(len(train))), dtype=np.int64)
        lo = int(displs(counts)[c.Get_rank()])
        run = np.array_equal(train_idx, np.arange(lo, lo + len(train)))
        pcomm.value_error_together(None if run else "exact mode (blocks=None): each rank's train rows must be its "
                                   "consecutive run in rank order (decompose.share); pass blocks for any other split",
                                   comm=c)
    sums = _Sums(c)
    w_train = sums(tr.weights)
    w_test = sums(te.weights) if has_test else float("nan")
    m = int(tr.g_fs.shape[-1])
    p = m * m

    sets = [(tr, w_train), (te, w_test)][:1 + has_test]  # the sets whose kappa and sigma are summed
    k_train = None  # kappa of v_train, once summed (a step's sigma sums it for the next step)
    if resume is None:
        v_train = pack(tr.g_fs) if len(tr) else xp.zeros((0, p))
        v_test = pack(te.g_fs) if has_test and len(te) else xp.zeros((0, p))
        etas = [sums.eta(v, ps) for v, (ps, _) in zip((v_train, v_test), sets)]
        kappas = sums.kappas(etas, sets)[1]
        hist_train, hist_test = (sums.sigmas(etas, sets, kappas) + [float("nan")])[:2]
        hist_train, hist_test, k_train = [hist_train], [hist_test], kappas[0]
        dts, rejections, test_held, start = [], [], 0, 0
    else:
        v_train = xp.asarray(resume.rows("train", train_idx)).reshape(-1, p)
        v_test = xp.asarray(resume.rows("test", test_idx)).reshape(-1, p) if has_test else xp.zeros((0, p))
        hist_train, hist_test = [float(s) for s in resume.sigma_train], [float(s) for s in resume.sigma_test]
        test_held, start = int(resume.test_held), int(resume.step)
        # (a numerical stop's checkpoint holds the rejected trials of the step it could not take: a retry records them)
        dts, rejections = [float(h) for h in resume.dt], [(int(s), float(h)) for s, h in resume.rejections
                                                           if int(s) <= start]
    best, since_best = _best_so_far(hist_test if has_test else hist_train)  # (a resume's from its history)
    stopped, stop_kind = "", ""
    if resume is not None and early_stop is not None and since_best >= early_stop:  # it had stopped early: done
        stopped = str(resume.stopped) or early_stop_said(start, early_stop)
        stop_kind, start = "early_stop", steps
    history = {"step_seconds": [], "kernel_seconds": [], "comm_seconds": [], "comm_bytes": []}

    def view(step, final, ends=True):
        last = {k: (v[-1] if v else 0.0) for k, v in history.items()}
        return FlowView(step=step, sigma_train=list(hist_train), sigma_test=list(hist_test), dt=list(dts),
                        rejections=list(rejections), test_held=test_held, best=best, since_best=since_best,
                        stopped=stopped, n_train=n_train, n_test=n_test, per_rank=last, final=final,
                        _train=(train_idx, v_train), _test=(test_idx, v_test), ends=ends, arguments=arguments,
                        _sets=(tr, te))

    def allsum(x):
        return sums(x)

    at_start = getattr(on_step, "before_steps", None)
    if callable(at_start) and start < steps and not stop_kind:  # the state at `start` is known: no kernel work yet
        at_start(view(start, False, False))
    if blocks is not None:
        step_sums = Clustered(kernel, tr, te, train_idx, test_idx, blocks, tile=tile, cache_bytes=cache_bytes,
                              comm=c)
    elif getattr(kernel, "nearest", False):  # Delta: a gather from the nearest train point, no N x N work
        step_sums = Nearest(kernel, tr, te, train_idx, comm=c)
    else:
        step_sums = Exact(kernel, tr, te, counts, tile=tile, cache_bytes=cache_bytes, comm=c)
    cnt = step_sums.counters

    for step in range(start + 1, steps + 1):
        t_step = time.perf_counter()
        before = (cnt.kernel_seconds, cnt.comm_seconds + sums.seconds, cnt.comm_bytes)
        if k_train is None:
            k_train = sums(tr.weights * sums.eta(v_train, tr)) / w_train
        k = k_train
        _, grad = loss_and_grad(v_train, tr.omega2, tr.weights, k, loss=loss, weighted=weighted,
                                kappa_gradient=kappa_gradient, weight_sum=w_train, allsum=allsum)
        u_train, u_test = step_sums(grad)
        if clip is not None:
            u_train, u_test = _clip(u_train, clip), _clip(u_test, clip)
        h = dt
        for _ in range(max_halvings + 1):  # (overflow in a trial step's minors means "not finite": rejected)
            new_train = v_train - h * u_train
            with np.errstate(over="ignore", invalid="ignore"):
                bad = not bool(xp.all(is_positive_definite(unpack(new_train, m=m))))
            etas = None
            if not bad:  # this rank's side of the step and its kappa sums, in the collective that decides it
                with np.errstate(over="ignore", invalid="ignore"):  # (another rank may still reject this dt)
                    new_test = v_test - h * u_test
                    ok_test = is_positive_definite(unpack(new_test, m=m)) if len(v_test) else xp.ones(0, dtype=bool)
                    new_test = xp.where(ok_test[:, None], new_test, v_test)
                    etas = [sums.eta(v, ps) for v, (ps, _) in zip((new_train, new_test), sets)]
            with np.errstate(over="ignore", invalid="ignore"):
                rejected, kappas = sums.kappas(etas, sets, stop=bad)
            if not rejected:
                break
            rejections.append((step, h))
            if c.Get_rank() == 0:  # a collective decision: said once
                log.info("flow step %d: dt=%g gives a non-positive-definite or non-finite metric; retry dt/2", step, h)
            h *= 0.5
        else:  # (no dt helps where the kernel's sums are not finite: said as such, one collective at the stop)
            if any_true(not (bool(xp.isfinite(u_train).all()) and bool(xp.isfinite(u_test).all())), comm=c):
                stopped = (f"step {step}: {KERNEL_NOT_FINITE} (the kernel "
                           f"{getattr(kernel, 'name', 'kernel')} overflows at its parameters); the flow keeps step "
                           f"{step - 1}")
                stop_kind = "kernel_not_finite"
            else:
                stopped = f"step {step}: no dt >= {dt / 2 ** max_halvings:g} keeps all metrics positive definite"
                stop_kind = "no_positive_step"
            break
        held = np.array([float(len(v_test) - int(ok_test.sum()))])
        with np.errstate(over="ignore", invalid="ignore"):  # a non-finite sigma is handled just below
            *sigma, held = sums.sigmas(etas, sets, kappas, extra=[held])
        s_train, s_test = (sigma + [float("nan")])[:2]
        if not math.isfinite(s_train) or (has_test and not math.isfinite(s_test)):
            stopped = f"step {step}: sigma is not finite (diverged); the flow keeps step {step - 1}"
            stop_kind = "diverged"
            break
        test_held += int(held)
        v_train, v_test, k_train = new_train, new_test, kappas[0]
        dts.append(h)
        hist_train.append(s_train)
        hist_test.append(s_test)
        history["step_seconds"].append(time.perf_counter() - t_step)
        history["kernel_seconds"].append(cnt.kernel_seconds - before[0])
        history["comm_seconds"].append(cnt.comm_seconds + sums.seconds - before[1])
        history["comm_bytes"].append(cnt.comm_bytes - before[2])
        monitored = hist_test[-1] if has_test else hist_train[-1]
        best, since_best = (monitored, 0) if monitored < best else (best, since_best + 1)
        early = early_stop is not None and since_best >= early_stop
        # a callback's stop at the step the early stop ends the flow at stops nothing: the flow is finished
        if callback is not None and any_true(bool(callback({"step": step, "sigma_train": hist_train[-1],
                                                            "sigma_test": hist_test[-1], "dt": h,
                                                            "rejected": len(rejections),
                                                            "sigma_train_initial": hist_train[0],
                                                            "sigma_test_initial": hist_test[0],
                                                            "ends": early or step == steps})), comm=c) \
                and not early:
            stopped, stop_kind = f"step {step}: callback asked to stop", "callback"
        if on_step is not None and _asked(on_step, view(step, False, bool(stop_kind) or early or step == steps), c) \
                and not stop_kind:
            stopped, stop_kind = f"step {step}: stopped on request", "stopped"
        if not stop_kind and early:
            stopped, stop_kind = early_stop_said(step, early_stop), "early_stop"
        if stop_kind:
            break
    if stop_kind in NUMERICAL_STOPS and c.Get_rank() == 0:  # a collective decision: said once
        log.log(logging.INFO if _STOP_SAID.get() else logging.WARNING, "flow stopped: %s", stopped)
    if on_step is not None:
        on_step(view(len(dts), True))
    per_rank = {"points": int(len(tr)), "test_points": int(len(v_test)), "halo_rows": int(step_sums.halo_rows),
                "clusters": 0 if blocks is None else len(blocks), **cnt.as_dict()}
    per_rank["comm_seconds"] += sums.seconds
    return FlowResult(sigma_train=np.array(hist_train), sigma_test=np.array(hist_test),
                      g_train=to_host(unpack(v_train, m=m)),
                      g_test=to_host(unpack(v_test, m=m)) if has_test else None,
                      rejected_steps=len(rejections), steps_taken=len(dts), dt_history=np.array(dts),
                      stopped=stopped, rejections=rejections, test_held=test_held, stop_kind=stop_kind,
                      train_idx=train_idx, test_idx=test_idx if has_test else None, per_rank=per_rank,
                      history=history)
