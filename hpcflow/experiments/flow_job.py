"""Job kind "flow": the kernel metric flow of eq. 3.5 on train/test points of one chart (Table 1 jobs), on R ranks.

Each rank samples its share of the point sets and keeps it (exact mode), or (with [clustering]) the blocks
are built in parallel and each rank fetches the rows of the clusters it owns (`distribute`). DIR/checkpoint.h5 is written by `CheckpointWriter`
(`hpcflow.checkpoint`, schema there) every [checkpoint].every steps / .seconds seconds and at the end; `run`
returns the summary (sigma initial/final, gains = sigma_FS / sigma_final, status, checkpoint_step, ranks,
provenance, per_rank figures), or raises NumericalStop carrying it when the flow diverged.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import NamedTuple

import numpy as np

from hpcflow.errors import ConfigError
from hpcflow.experiments.common import GEOMETRY_SECTION, check_geometry, gain
from hpcflow.jobs.schema import JOB_SECTION, MAX_STEPS, SEED_MAX, Field, named_keys
from hpcflow.jobs.schema import with_defaults as schema_defaults

#: kernel name -> (required params, optional params) of `hpcflow.kernels.make_kernel`
KERNEL_PARAMS = {
    "gaussian": (("width",), ("form", "normalize", "method", "engine")),
    "delta": ((), ()),
    "relu_ntk": (("w_std", "b_std"), ("depth",)),
    "cosine_ntk": (("sigma_w",), ("amplitude",)),
}

KERNEL_SECTION = {
    "name": Field(str, choices=tuple(KERNEL_PARAMS), help="kernel of the flow (sec. 3.2)"),
    "width": Field(float, None, lo=1e-12, hi=1e12, help="gaussian: width w (see hpcflow.kernels.gaussian)"),
    "form": Field(str, None, choices=("exp", "gauss"), help="gaussian: exp(-d/2w) (eq. 3.6) or exp(-d^2/2w^2)"),
    "normalize": Field(str, None, choices=("none", "row"), help="gaussian: 'row' divides rows by their sum"),
    "method": Field(str, None, choices=("auto", "poly", "direct")),
    "engine": Field(str, None, choices=("auto", "numba", "numpy"),
                    help="gaussian: tile passes in one compiled Numba loop or as NumPy passes (auto: numba if "
                         "installed and the run's kernel entries repay its start, else numpy)"),
    "w_std": Field(float, None, lo=0, lo_open=True, hi=1e6, help="relu_ntk: weight std sigma_w (Table 1: 5.716)"),
    "b_std": Field(float, None, lo=0, hi=1e6, help="relu_ntk: bias std sigma_b, 0 = no bias (Table 1: 80.52)"),
    "depth": Field(int, None, lo=1, hi=1000, help="relu_ntk: hidden ReLU layers (the paper's network: 1)"),
    "sigma_w": Field(float, None, lo=0, lo_open=True, hi=1e6, help="cosine_ntk: frequency std (eq. 2.32)"),
    "amplitude": Field(float, None, lo=0, lo_open=True, hi=1e12, help="cosine_ntk: normalisation A (eq. 2.36)"),
}

FLOW_SECTION = {
    "dt": Field(float, lo=0, lo_open=True, hi=1e12, help="step size Delta t of eq. 3.5"),
    "steps": Field(int, 50, lo=0, hi=MAX_STEPS, help="number of flow steps (paper: 50)"),
    "loss": Field(str, "sigma", choices=("sigma", "ultralocal"), help="eq. B.11 or eq. B.14"),
    "weighted": Field(bool, True, help="multiply the pointwise loss by w/sum(w)"),
    "tile": Field(int, 2048, lo=1, hi=2**20, help="rows per kernel tile (memory bound)"),
    "max_halvings": Field(int, 10, lo=0, hi=60, help="dt halvings of a rejected (non-PD) step (2^-60 ~ 1e-18)"),
    "clip": Field(float, None, lo=0, lo_open=True, hi=1e12,
                  help="max norm of a point's update before the factor dt, so a step moves its metric by <= dt*clip "
                       "(unset = no clipping)"),
    "early_stop": Field(int, None, lo=1, hi=MAX_STEPS, help="stop after this many steps without improvement"),
    "kappa_gradient": Field(str, "exact", choices=("exact", "fixed"),
                            help="dL/dg with kappa(g) differentiated (exact) or held within a step (fixed)"),
}

CLUSTERING_SECTION = {
    "method": Field(str, None, choices=("batched", "full", "birch"), help="unset = no clustering"),
    "n_clusters": Field(int, 10, lo=1),
    "batch_size": Field(int, 1000, lo=2),
    "seed": Field(int, 0, lo=0, hi=SEED_MAX),
    "merge": Field(str, "nearest", choices=("nearest", "paper"), help="eq. 3.3 rule (hpcflow.cluster.batched)"),
    "halo_cutoff": Field(float, None, lo=0, hi=4.0,
                         help="FS distance of halo sources (unset = none, pi/2 = all train points)"),
}

CHECKPOINT_SECTION = {
    "every": Field(int, 10, lo=1, hi=MAX_STEPS, help="write DIR/checkpoint.h5 every this many steps"),
    "seconds": Field(float, 600.0, lo=0, lo_open=True, hi=1e9,
                     help="write DIR/checkpoint.h5 also when this many seconds passed since the last one"),
}

#: a flow's test points may have their own seed (a tune trial's spawned one, to rerun the trial with hpcflow run)
GEOMETRY_FLOW = {**GEOMETRY_SECTION, "test_seed": Field(int, None, lo=0, hi=SEED_MAX,
                                                        help="seed of the test points; unset = seed + 1")}

SCHEMA = {"job": JOB_SECTION, "geometry": GEOMETRY_FLOW, "kernel": KERNEL_SECTION, "flow": FLOW_SECTION,
          "clustering": CLUSTERING_SECTION, "checkpoint": CHECKPOINT_SECTION}


def kernel_params(kcfg: dict) -> dict:
    """The make_kernel keyword arguments of a validated [kernel] section (unset keys left out)."""
    params = {k: v for k, v in kcfg.items() if k != "name" and v is not None}
    if params.get("normalize") == "none":
        params["normalize"] = None
    return params


def check_kernel(kcfg: dict, source: str, entries: float | None = None, *, kept: str | None = None):
    """Cross-field checks of [kernel]: required/foreign parameters; returns the kernel object. A key whose own value
    "none" (normalize) is given where it does not apply to `name` is unset in kcfg, as if absent: where it applies,
    "none" is its value, so `--set KEY=none` could not unset it otherwise (`schema.validate`). `entries`: the kernel
    entries of the job's run (`hpcflow.resources.kernel_entries`), with which a Gaussian kernel's engine "auto" (or
    unset) is NumPy's where Numba's start would not repay itself (`hpcflow.kernels.jit.engine_for`). `kept`: the
    engine a resumed run keeps (`resumed_engine`), which takes the place of "auto" (or unset) instead."""
    from hpcflow.kernels import make_kernel
    from hpcflow.kernels.jit import engine_for

    name = kcfg["name"]
    required, optional = KERNEL_PARAMS[name]
    for key in set(kcfg) - {"name", *required, *optional}:
        if kcfg[key] == "none" and "none" in (KERNEL_SECTION[key].choices or ()):
            kcfg[key] = None  # a key's own "none" where it does not apply unsets it (`--set kernel.normalize=none`)
    given = {k for k, v in kcfg.items() if k != "name" and v is not None}
    for key in required:
        if key not in given:
            raise ConfigError(f"{source}: [kernel].{key} is required for [kernel].name = {name!r}; add it")
    foreign = sorted(given - set(required) - set(optional))
    if foreign:  # every one in one line: a job switched to another kernel (--set kernel.name) has several
        keys = ", ".join(f"[kernel].{key}" for key in foreign)
        takes = ", ".join([*(f"{key} (required)" for key in required), *optional]) or "no keys"
        unset = " ".join(f"--set kernel.{key}=none" for key in foreign)
        raise ConfigError(f"{source}: {keys} {'does' if len(foreign) == 1 else 'do'} not apply to [kernel].name = "
                          f"{name!r}, which takes {takes}; remove {'it' if len(foreign) == 1 else 'them'} (or "
                          f"{unset})")
    params = kernel_params(kcfg)
    if name == "gaussian":
        given = params.get("engine")
        params["engine"] = kept if kept is not None and given in (None, "auto") else engine_for(entries, given)
    try:
        return make_kernel(name, **params)
    except ValueError as exc:
        raise ConfigError(f"{source}: [kernel]: {exc}; change the kernel parameters") from None


def check_kernel_range(kernel, geometry: dict, source: str):
    """Refuse (ConfigError, before any work) a kernel of `check_kernel` whose values leave float64's range on the
    points of the job's [geometry] (dim + 2 homogeneous coordinates: 2 (dim + 2) real features;
    `Kernel.check_features_dim`); returns the kernel."""
    check = getattr(kernel, "check_features_dim", None)
    try:
        if check is not None:
            check(2 * (geometry["dim"] + 2))
    except ValueError as exc:
        raise ConfigError(f"{source}: [kernel]: {exc}; change the kernel parameters") from None
    return kernel


def check_test_seed(geo: dict, source: str, test_seed: int | None = None) -> None:
    """Refuse (ConfigError) a test seed (`test_seed`, default [geometry].test_seed) equal to [geometry].seed where the
    job has test points: they would be the train points themselves (gain_test = gain_train), not held-out ones."""
    test_seed = geo.get("test_seed") if test_seed is None else test_seed
    if geo["n_test"] and test_seed is not None and test_seed == geo["seed"]:
        raise ConfigError(f"{source}: [geometry].test_seed = {test_seed} equals [geometry].seed, which would make the "
                          "test points the train points; unset test_seed (seed + 1) or set it to another seed (a run "
                          "made so cannot be resumed: start it afresh in a new --out)")


def check(cfg: dict, source: str) -> None:
    from hpcflow.resources import kernel_entries

    check_geometry(cfg["geometry"], source)
    check_test_seed(cfg["geometry"], source)
    check_kernel_range(check_kernel(cfg["kernel"], source, kernel_entries(cfg, "flow")), cfg["geometry"], source)
    cl, n = cfg["clustering"], cfg["geometry"]["n_train"]
    if cl["method"] is None:  # clustering switched off: its keys are not cross-checked (`--set clustering.method=none`)
        return
    # batch_size, merge and seed belong to method "batched" and are ignored by "full" and "birch" (deterministic, all
    # points at once), not refused: a study may search the method beside them, and checkpoints and DIR/job.toml keep them
    if cl["n_clusters"] > n:
        raise ConfigError(f"{source}: [clustering].n_clusters = {cl['n_clusters']} exceeds [geometry].n_train = {n}; "
                          "lower n_clusters or raise n_train")
    from hpcflow.cluster import check_settings

    try:
        check_settings(n, method=cl["method"], n_clusters=cl["n_clusters"], batch_size=cl["batch_size"])
    except ConfigError as exc:
        said = named_keys(str(exc), "clustering", ("n_clusters", "batch_size", "method"))
        raise ConfigError(f"{source}: clustering the [geometry].n_train = {n} train points: {said}") from None


def flow_blocks(cfg: dict, train, test):
    """FlowBlocks from the optional [clustering] table (None = one block), via hpcflow.cluster."""
    cl = cfg["clustering"]
    if cl["method"] is None:
        return None
    from hpcflow.cluster import flow_blocks as _flow_blocks  # imported only when asked for

    return _flow_blocks(train.points, None if test is None else test.points, method=cl["method"],
                        n_clusters=cl["n_clusters"], batch_size=cl["batch_size"], seed=cl["seed"],
                        merge=cl["merge"], halo_cutoff=cl["halo_cutoff"])


class Layout(NamedTuple):
    """This rank's part of a flow: its global train/test rows and blocks; the cluster map when clustered."""

    train_idx: np.ndarray
    test_idx: np.ndarray
    blocks: list | None
    labels: np.ndarray | None  # cluster of each of this rank's train rows
    owner: np.ndarray | None  # rank of every cluster (-1: empty cluster)


def _rows_of(fetch, ps, rows, comm):
    """The PointSet of global rows `rows`, fetched from the ranks holding them (bitwise copies)."""
    from hpcflow.geometry.pointset import PointSet

    arrays = [fetch(getattr(ps, f), rows, comm=comm) for f in ("points", "weights", "omega2", "g_fs", "chart")]
    return PointSet(ps.manifold, *arrays, None, ps.n_dropped, ps.seed, dict(ps.attrs))


def distribute(cfg: dict, *, comm=None, test_seed: int | None = None, labels: np.ndarray | None = None):
    """(train, test, Layout, counters): this rank's rows of the job's point sets (collective).

    Points are sampled in contiguous shares (`sample_train_test_shares`, the same global set for every R). Exact
    mode keeps the shares. Clustered: `hpcflow.cluster.distributed.distributed_blocks` (labels, halos and
    cost-balanced owners identical for every R), or with `labels` (the cluster of every train point, as a resume
    reads them from its checkpoint: `hpcflow.checkpoint.stored_labels`) `blocks_from_labels`, which clusters
    nothing and builds the same blocks from them; then each rank fetches the rows of the clusters it owns. Counters
    clustering_batches, clustering_seconds (0 with `labels`) and clustering_from_checkpoint (whether `labels` was
    given).
    """
    from hpcflow.experiments.common import sample_train_test_shares
    from hpcflow.parallel.comm import resolve
    from hpcflow.parallel.decompose import displs

    c = resolve(comm)
    _, train, test, counters = sample_train_test_shares(cfg["geometry"], comm=c, test_seed=test_seed)
    cl = cfg["clustering"]
    if cl["method"] is None:
        lo = displs(c.allgather(len(train)))[c.Get_rank()]
        lo_t = displs(c.allgather(0 if test is None else len(test)))[c.Get_rank()]
        return train, test, Layout(np.arange(lo, lo + len(train)), np.arange(lo_t, lo_t + (len(test) if test else 0)),
                                   None, None, None), counters
    from hpcflow.cluster.distributed import blocks_from_labels, distributed_blocks

    if labels is None:
        db = distributed_blocks(train.points, None if test is None else test.points, comm=c, method=cl["method"],
                                n_clusters=cl["n_clusters"], batch_size=cl["batch_size"], seed=cl["seed"],
                                merge=cl["merge"], halo_cutoff=cl["halo_cutoff"])
    else:
        db = blocks_from_labels(train.points, None if test is None else test.points, labels=labels, comm=c,
                                halo_cutoff=cl["halo_cutoff"])
    say_clusters_found(cl, len(db.blocks), comm=c)
    rows, test_rows = db.train_rows(), db.test_rows()
    train = _rows_of(db.fetch_train, train, rows, c)
    test = None if test is None else _rows_of(db.fetch_test, test, test_rows, c)
    counters.update({k: v for k, v in db.counters.items() if k.startswith("clustering_")},
                    clustering_from_checkpoint=labels is not None)
    return train, test, Layout(rows, test_rows, [db.blocks[b] for b in db.owned()], db.labels[rows],
                               db.cluster_owner), counters


def say_clusters_found(cl: dict, found: int, *, comm=None) -> None:
    """One line (rank 0) when the clustering of [clustering] `cl` found fewer clusters than its n_clusters (Birch at
    its fixed threshold on points too close together): the flow runs with those blocks."""
    from hpcflow.cluster.birch import THRESHOLD
    from hpcflow.parallel.comm import is_root

    k = cl["n_clusters"]
    if found < k and is_root(comm):
        why = f" (Birch's subclusters at its threshold {THRESHOLD:g}, which a flow job does not set)" if (
            cl["method"] == "birch") else ""
        print(f"flow: [clustering] method {cl['method']!r} found {found} of the {k} clusters asked for{why}; the "
              f"flow runs with {found} blocks; set [clustering].n_clusters <= {found} (or another method) to ask "
              "for what it finds", flush=True)


def progress(label: str, every: int = 10, *, total: int | None = None):
    """A kernel_flow callback printing sigma_train/sigma_test every `every` steps (rank 0), and besides those at any
    step that ends over LINE_SECONDS (a minute) after the last line said (so that long steps show in a log), and a
    progress bar over `total` steps when stderr is a terminal (`hpcflow.progress`; the plain lines stay for logs,
    --quiet too). A line ends with the seconds of the flow so far and, with `total`, an estimate of those left (the
    mean step so far times the steps left): `(37.3 s of the flow, ~150 s left)`. Its `close(res)`, after the flow,
    prints the last step's line where it was not one of those, and where the flow met its early stop
    ([flow].early_stop) one line saying so (`{label}: stopped: step N: no improvement for ...`)."""
    from hpcflow import progress as clocked  # its `clock`, the one the sampling and clustering lines read
    from hpcflow.parallel.comm import is_root
    from hpcflow.progress import progress as bar_of

    t0 = clocked.clock()
    bar = bar_of(total=total, desc=label, unit="step") if total else None
    last = {}  # the last step's info, while its line is unsaid
    seen = {"steps": 0, "said": t0}  # steps taken by this process, when its last line was said

    def line(info):
        now = clocked.clock()
        seen["said"], elapsed = now, now - t0
        left = (f", ~{elapsed / seen['steps'] * max(total - info['step'], 0):.0f} s left"
                if total and seen["steps"] else "")
        print(f"{label}: step {info['step']:4d} sigma_train={info['sigma_train']:.4e} "
              f"sigma_test={info['sigma_test']:.4e} dt={info['dt']:.3g} rejected={info['rejected']} "
              f"({elapsed:.1f} s of the flow{left})", flush=True)

    def cb(info):
        seen["steps"] += 1
        if bar is not None:
            bar.update(1)
            if info["step"] >= total:
                bar.close()
        last.clear()
        if info["step"] % every == 0 or clocked.clock() - seen["said"] >= clocked.LINE_SECONDS:
            if is_root():
                line(info)
        else:
            last.update(info)
        return False

    def close(res):
        if bar is not None:
            bar.close()
        if not is_root():
            return
        if last:
            line(last)
        if res.stop_kind == "early_stop" and res.stopped:
            print(f"{label}: stopped: {res.stopped}", flush=True)

    cb.close = close
    return cb


#: what a checkpoint written before a key existed did: flows before [flow].kappa_gradient held kappa fixed
LEGACY_DEFAULTS = {("flow", "kappa_gradient"): "fixed"}


def with_defaults(saved: dict) -> dict:
    """A checkpoint's job configuration completed with this schema's later keys (`schema.with_defaults`)."""
    return schema_defaults(saved, SCHEMA, LEGACY_DEFAULTS)


def _both(first, second):
    """One kernel_flow callback calling `first` then `second` (if any); True when either asks to stop."""
    if second is None:
        return first
    return lambda info: bool(first(info)) | bool(second(info))


def flow_summary(res, n_train: int, n_test: int) -> dict:
    """Summary numbers of a FlowResult (gains = sigma at step 0 / sigma at the last step)."""
    out = sigma_figures(res.sigma_train, res.sigma_test, n_test)
    out.update(n_train=n_train, n_test=n_test, steps_taken=int(res.steps_taken),
               rejected_steps=int(res.rejected_steps), test_held=int(res.test_held), stopped=res.stopped)
    return out


def sigma_figures(st, se, n_test: int) -> dict:
    """The summary's figures of the sigma histories `st`, `se` (train, test; index 0 = g_FS) of a flow with `n_test`
    test points: sigma at step 0 and at the last step, gains = sigma at step 0 / sigma at the last step, and the best
    test step (None for the test keys without test points). Offline readers compare a summary.json with its
    checkpoint.h5 by these (`hpcflow.analysis.rundir`)."""
    out = {"sigma_train_initial": float(st[0]), "sigma_train_final": float(st[-1]), "gain_train": gain(st[0], st[-1])}
    if n_test:
        best = int(np.nanargmin(se))
        out.update(sigma_test_initial=float(se[0]), sigma_test_final=float(se[-1]), gain_test=gain(se[0], se[-1]),
                   sigma_test_best=float(se[best]), step_test_best=best, gain_test_best=gain(se[0], se[best]))
    else:
        out.update(sigma_test_initial=None, sigma_test_final=None, gain_test=None)
    return out


def legs_summary(legs: list) -> dict:
    """Summary keys of a checkpointed flow's runs: `legs` (hpcflow.checkpoint schema) and `wall_seconds_total`."""
    from hpcflow.checkpoint import wall_seconds_total

    return {"legs": [dict(g) for g in legs], "wall_seconds_total": wall_seconds_total(legs)}


def resume_state(cfg: dict, outdir, *, comm=None):
    """The checkpoint in `outdir` that job `cfg` continues on --resume; InputFileError / ConfigError (exit 2) when
    it is damaged (its job lacking a required key too), belongs to another job, or holds more steps than
    [flow].steps, or lacks a static dataset `run` writes (`static_rows`: the point data, a clustered job's
    cluster/labels and cluster/owner) or holds one of another shape or type (`static_layout`;
    `hpcflow.checkpoint.check_static_present`, h5py's metadata alone, so --check refuses it too), raised by every
    rank alike. (Its point data are compared with the job's in `run`, which samples them.)"""
    from hpcflow.checkpoint import check_resumable, check_saved_job, check_static_present, run_checkpoint
    from hpcflow.parallel.comm import arguments_together, resolve

    path = os.path.join(outdir, "checkpoint.h5")
    state = run_checkpoint(path, comm=comm)  # collective: a rank that cannot read it makes every rank raise

    def check():
        check_saved_job(state.config, SCHEMA, path)
        check_resumable(effective(with_defaults(state.config)), effective(cfg), path, step=state.step)

    arguments_together(check, comm=comm)
    c = resolve(comm)
    birch = cfg["clustering"]["method"] == "birch"  # (which may find fewer clusters than n_clusters)
    check_static_present(path, static_rows(cfg), clustered=cfg["clustering"]["method"] is not None,
                         layout=static_layout(cfg), up_to=("cluster/owner",) if birch else (), comm=c)
    if c.Get_size() > 1:  # the engine the run keeps (`resumed_engine`): rank 0's reading of it on every rank
        state = dataclasses.replace(state, engine=c.bcast(state.engine, root=0))
    return state


def static_rows(cfg: dict) -> dict:
    """{name: global rows} of the static datasets `run` writes into the checkpoint of job `cfg` (its `n_rows`): the
    point data of both sets and, clustered, cluster/labels and cluster/owner (one row a cluster: at most
    [clustering].n_clusters, known once the points are clustered)."""
    n_train, n_test = cfg["geometry"]["n_train"], cfg["geometry"]["n_test"]
    rows = {f"{kind}/{k}": n for kind, n in (("train", n_train), ("test", n_test))
            for k in ("points", "weights", "omega2")}
    if cfg["clustering"]["method"] is not None:
        rows.update({"cluster/labels": n_train, "cluster/owner": cfg["clustering"]["n_clusters"]})
    return rows


def static_layout(cfg: dict) -> dict:
    """{name: (shape of a row, dtype)} of the `static_rows` datasets `run` writes for job `cfg` (points: homogeneous
    coordinates of P^(dim+1), complex; weights and |Omega|^2 real; cluster labels and owners integers)."""
    from hpcflow.experiments.common import manifold

    width = manifold(cfg["geometry"]).n + 1
    layout = {name: ((width,), np.complex128) if name.endswith("/points") else ((), np.float64)
              for name in static_rows(cfg) if not name.startswith("cluster/")}
    if cfg["clustering"]["method"] is not None:
        layout.update({"cluster/labels": ((), np.int64), "cluster/owner": ((), np.int64)})
    return layout


def resumed_engine(kcfg: dict, state) -> str | None:
    """The engine a resume of checkpoint `state` builds a Gaussian kernel of [kernel] `kcfg` with in place of "auto"
    (or unset): the one its steps ran (attribute engine), so that the steps the resume adds (a larger [flow].steps,
    whose kernel entries may resolve "auto" otherwise: `hpcflow.kernels.jit.engine_for`) run as the steps before;
    None (resolved as a new run's) for a new run, another kernel, a checkpoint without the attribute, or "numba"
    where Numba does not import here (`engine_note` says so)."""
    from hpcflow.kernels.jit import numba_version

    engine = None if state is None or kcfg.get("name") != "gaussian" else state.engine
    return None if engine == "numba" and numba_version() is None else engine


def engine_note(kernel, state, prefix: str) -> str | None:
    """The line a resume says where its `kernel` evaluates the tiles with another engine than the checkpoint's steps
    (`state.engine`): Numba's loop and NumPy's passes differ in the last bits of K, so the run continues to rounding,
    not bit for bit. Its fix for a checkpoint's "numba": install numba, or where Numba is installed but fails its
    import here, that failed import with its one-line error and a reinstall. None where the engines are the same, or
    either is not known."""
    from hpcflow.kernels.jit import NUMBA_REINSTALL, numba_import_error

    now, was = getattr(kernel, "engine", None), getattr(state, "engine", None)
    if now is None or was is None or now == was:
        return None
    failed = numba_import_error() if was == "numba" else None
    if failed:
        fix = f"Numba is installed but failed to import ({failed}): {NUMBA_REINSTALL} to resume it bit for bit"
    else:
        fix = ("install numba to resume it bit for bit" if was == "numba" else
               "start it again with --force (or in a new --out) to run one engine throughout")
    return (f"{prefix} note: the Gaussian kernel's tiles run on engine {now!r}, where the checkpoint's steps ran "
            f"{was!r} (its attribute engine): the run continues to rounding (a few ulps of K), not bit for bit; {fix}")


def effective(cfg: dict) -> dict:
    """A validated flow job `cfg` with the keys whose unset value means a documented one given that value, so that
    jobs that run alike compare equal (--resume): [kernel]'s optional parameters of its kernel unset = the kernel's
    own defaults (`make_kernel`; normalize unset = "none"), [geometry].test_seed unset = seed + 1."""
    import inspect

    from hpcflow.kernels.registry import KERNELS

    out = {section: dict(values) if isinstance(values, dict) else values for section, values in cfg.items()}
    kernel, geometry = out.get("kernel"), out.get("geometry")
    if isinstance(kernel, dict) and kernel.get("name") in KERNEL_PARAMS:
        params = inspect.signature(KERNELS[kernel["name"]]).parameters
        for key in KERNEL_PARAMS[kernel["name"]][1]:
            if kernel.get(key) is None and key in params and params[key].default is not inspect.Parameter.empty:
                kernel[key] = "none" if key == "normalize" and params[key].default is None else params[key].default
    if isinstance(geometry, dict) and geometry.get("test_seed") is None and isinstance(geometry.get("seed"), int):
        geometry["test_seed"] = geometry["seed"] + 1
    return out


class Finished(NamedTuple):
    """A checkpointed flow that ended by its own rule, which --resume has nothing to add to: the last step held, what
    ended it ("already finished at step N ..."), what would let it go on, and the exit status saying so (0, or 3
    for a numerical stop, as the run itself exited)."""

    step: int
    why: str
    fix: str
    exit_status: int


def out_of_date(outdir, *, comm=None) -> None:
    """Remove (rank 0) the summary.json of the run a resume continues in `outdir`, once the resume is accepted and
    before it runs a step: it describes the checkpoint as it was (a "preempted" or "finished" one), which this run
    moves on, so a resume killed without a signal left a summary that said the run stopped steps ago. Without it the
    directory reads as an interrupted run (`output.interrupted`) until this run writes its own."""
    from hpcflow.parallel.comm import is_root

    if is_root(comm):
        try:
            os.unlink(os.path.join(outdir, "summary.json"))
        except FileNotFoundError:
            pass


def resume_done(state, cfg: dict) -> Finished | None:
    """Whether --resume of job `cfg` would add nothing to the ended run `state` (its checkpoint): its [flow].steps are
    done, its early stop was met ([flow].early_stop, which a resume keeps, so more steps add none), or it stopped
    numerically (a resume keeps [flow].dt and would repeat the step that failed); else None."""
    from hpcflow.errors import EXIT_NUMERICAL
    from hpcflow.flow import KERNEL_NOT_FINITE, stopped_early

    fl, step = cfg["flow"], int(state.step)
    keep = "start over with --force or in a new --out"
    if state.status == "diverged" and KERNEL_NOT_FINITE in str(state.stopped):  # (no dt helps: the kernel's numbers)
        return Finished(step, f"ended after step {step} ({state.stopped})",
                        f"a resume would repeat step {step + 1} with the same [kernel] parameters, which --resume "
                        f"keeps: {keep} with other [kernel] parameters", EXIT_NUMERICAL)
    if state.status == "diverged":
        return Finished(step, f"ended after step {step} ({state.stopped})",
                        f"a resume would repeat step {step + 1} with the same [flow].dt = {fl['dt']:g}, which --resume "
                        f"keeps: {keep} with a smaller dt (--set flow.dt=...)", EXIT_NUMERICAL)
    if state.status != "finished":
        return None
    if step >= fl["steps"]:
        return Finished(step, f"already finished at step {step} ([flow].steps = {fl['steps']})",
                        "raise [flow].steps to extend it", 0)
    if stopped_early(state, fl["early_stop"]):
        return Finished(step, f"already finished at step {step} by its early stop (no improvement for [flow]."
                        f"early_stop = {fl['early_stop']} step{'s' * (fl['early_stop'] != 1)})",
                        f"--resume keeps early_stop, so more steps add none: {keep} to change it", 0)
    return None


def run(cfg: dict, outdir, *, resume=False, comm=None, callback=None, test_seed: int | None = None,
        job_text: str | None = None, log_prefix: str | None = None) -> dict:
    """Run the flow on this rank's rows with checkpoints; --resume continues DIR/checkpoint.h5 (collective): `resume`
    True reads it (`resume_state`), a FlowResume is the state `resume_state` returned already (not read again).

    callback(info) (see `kernel_flow`) runs after every step besides the progress lines; True stops the flow.
    test_seed: seed of the test points (default [geometry].test_seed, unset = [geometry].seed + 1).
    job_text: DIR/job.toml, written beside the first checkpoint (`CheckpointWriter`).

    Returns the summary; a numerical stop (diverged / no positive-definite step) raises NumericalStop after the
    checkpoint is written, carrying the summary (status "diverged") for the caller to write.
    A stop request (SIGTERM, SIGUSR1, a first Ctrl-C) is recorded from the start (`stop_signals.requests`): one
    received while the points are sampled and clustered (on a resume: sampled; its clusters are the checkpoint's)
    stops the flow as soon as they are, before its first step's kernel work, with the checkpoint of the state that
    step starts from (step 0: g_FS; under --resume the checkpoint's step: `CheckpointWriter.before_steps`), if a
    step is left (a resume with none left, or of a run that had stopped early, ends "finished" as if no request had
    come); with `log_prefix` ("hpcflow run:") rank 0 acknowledges the first one there at once in one line
    (`setup_stop_said`).
    """
    from hpcflow.stop_signals import requests

    resumed = resume is not None and resume is not False  # its clusters are the checkpoint's: none clustered
    clustered = cfg["clustering"]["method"] is not None and not resumed
    said = None if log_prefix is None else setup_stop_said(log_prefix, clustered=clustered)
    with requests(said) as pending:  # the checkpoint writer takes the signals over once it exists
        return _run(cfg, outdir, resume=resume, comm=comm, callback=callback, test_seed=test_seed,
                    job_text=job_text, pending=pending, prefix=log_prefix or "flow:")


def setup_stop_said(prefix: str, *, clustered: bool):
    """The line that acknowledges a flow job's first stop request during its setup (`run`), as a function of the
    signal's number: when the run will stop, and for Ctrl-C that a second one interrupts at once (a repeated
    SIGTERM/SIGUSR1 is ignored: `stop_signals.restore`)."""
    import signal

    setup = "sampled and clustered" if clustered else "sampled"

    def said(signum: int) -> str:
        ctrl_c = signum == signal.SIGINT
        by = "" if ctrl_c else f" by {signal.Signals(signum).name}"
        return (f"{prefix} stop requested{by}: the run stops with a checkpoint before its first step, if one is left, "
                f"once its points are {setup}" + ("; Ctrl-C again interrupts now" if ctrl_c else ""))

    return said


def _run(cfg: dict, outdir, *, resume, comm, callback, test_seed, job_text, pending, prefix) -> dict:
    """`run` with the stop requests of its setup in the Event `pending`; `prefix` begins its note lines."""
    from hpcflow.backend import agree_backend, default_threads
    from hpcflow.checkpoint import (CheckpointWriter, FlowResume, backend_note, check_static, code_note,
                                    earlier_legs, stored_labels, threads_note)
    from hpcflow.errors import NumericalStop, Preempted
    from hpcflow.flow import NUMERICAL_STOPS, kernel_flow
    from hpcflow.parallel.comm import resolve
    from hpcflow.provenance import array_backend, git_commit, provenance
    from hpcflow.resources import kernel_entries, peak_rss

    started = time.perf_counter()  # this leg's wall time (the checkpoint's `legs`)
    c = resolve(comm)
    on = agree_backend(c)  # the ranks' one backend (each probes its GPU; cupy with one failing: refused together)
    fl, ck = cfg["flow"], cfg["checkpoint"]
    path = os.path.join(outdir, "checkpoint.h5")
    state = resume if isinstance(resume, FlowResume) else resume_state(cfg, outdir, comm=c) if resume else None
    kernel = check_kernel_range(check_kernel(cfg["kernel"], "job", kernel_entries(cfg, "flow"),
                                             kept=resumed_engine(cfg["kernel"], state)), cfg["geometry"], "job")
    test_seed = cfg["geometry"].get("test_seed") if test_seed is None else test_seed
    check_test_seed(cfg["geometry"], "job", test_seed)
    cl = cfg["clustering"]
    labels = None  # a resume flows the checkpoint's clusters (checked before the points are sampled): none clustered
    if state is not None and cl["method"] is not None:
        labels = stored_labels(path, cfg["geometry"]["n_train"], cl["n_clusters"], method=cl["method"], comm=c)
    train, test, lay, counters = distribute(cfg, comm=c, test_seed=test_seed, labels=labels)
    counters["sample_share_points"] = counters.pop("points_owned", None)  # train + test rows sampled here
    n_train, n_test = cfg["geometry"]["n_train"], cfg["geometry"]["n_test"]
    static = {f"train/{k}": (lay.train_idx, getattr(train, k)) for k in ("points", "weights", "omega2")}
    static.update({f"test/{k}": (lay.test_idx, getattr(test, k) if test is not None else getattr(train, k)[:0])
                   for k in ("points", "weights", "omega2")})  # no test set: the same datasets with 0 rows
    if lay.labels is not None:
        mine = np.arange(len(lay.owner)) if c.Get_rank() == 0 else np.zeros(0, dtype=np.int64)
        static.update({"cluster/labels": (lay.train_idx, lay.labels), "cluster/owner": (mine, lay.owner[mine])})
    n_rows = {name: rows for name, rows in static_rows(cfg).items() if name in static}
    if lay.labels is not None:
        n_rows["cluster/owner"] = len(lay.owner)  # (the clusters found: birch may find fewer than n_clusters)
    if state is not None:  # the metrics it holds belong to its points: those sampled here, or it is refused
        check_static(path, static, n_rows, comm=c)
        state = dataclasses.replace(state, sets_checked=True)  # (kernel_flow's check_sets: read them once)
        out_of_date(outdir, comm=c)
    threads = default_threads()  # the kernel sums' worker threads ($HPCFLOW_THREADS, else the usable CPUs)
    tiled = on == "numpy"  # (on the GPU the tiles are summed by one worker whatever the threads)
    note = (threads_note(earlier_legs(state), threads, prefix, ranks=c.Get_size())
            if state is not None and tiled and c.Get_rank() == 0 else None)
    if note:
        print(note, file=sys.stderr, flush=True)
    note = engine_note(kernel, state, prefix) if c.Get_rank() == 0 else None
    if note:
        print(note, file=sys.stderr, flush=True)
    if state is not None and c.Get_rank() == 0:  # (another backend, other code than the last leg's)
        for note in (backend_note(earlier_legs(state), prefix, array_backend()),
                     code_note(earlier_legs(state), prefix, git_commit())):
            if note:
                print(note, file=sys.stderr, flush=True)
    writer = CheckpointWriter(path, cfg, every=ck["every"], seconds=ck["seconds"], static=static, n_rows=n_rows,
                              resume=state, comm=c, started=started, job_text=job_text,
                              signalled=pending, threads=threads, engine=getattr(kernel, "engine", None))
    described = dict(kernel=cfg["kernel"]["name"], kernel_params=kernel.params(), steps=fl["steps"], dt=fl["dt"],
                     loss=fl["loss"], kappa_gradient=fl["kappa_gradient"], chart=cfg["geometry"]["chart"],
                     n_blocks=None if lay.owner is None else len(lay.owner), ranks=c.Get_size(),
                     resumed=state is not None)
    said = progress(f"flow[{cfg['kernel']['name']}]", total=fl["steps"])
    try:
        res = kernel_flow(kernel, train, test, dt=fl["dt"], steps=fl["steps"], loss=fl["loss"],
                          weighted=fl["weighted"], tile=fl["tile"], blocks=lay.blocks, max_halvings=fl["max_halvings"],
                          clip=fl["clip"], early_stop=fl["early_stop"], kappa_gradient=fl["kappa_gradient"],
                          callback=_both(said, callback),
                          train_idx=lay.train_idx, test_idx=lay.test_idx if test is not None else None, comm=c,
                          resume=state, on_step=writer)
    except Preempted as exc:  # every rank: the checkpoint is written; the caller writes this summary and job.toml
        exc.summary = dict(described, status="preempted", checkpoint_step=writer.last_view.step, n_train=n_train,
                           n_test=n_test, provenance=provenance(comm=c), config=cfg, **legs_summary(writer.legs))
        raise
    said.close(res)
    status = ("diverged" if res.stop_kind in NUMERICAL_STOPS else
              "stopped" if res.stop_kind in ("stopped", "callback") else "finished")
    step = writer.close(status)
    summary = flow_summary(res, n_train, n_test)
    summary.update(described, status=status, checkpoint_step=step, provenance=provenance(comm=c), config=cfg,
                   **legs_summary(writer.legs))
    summary["per_rank"] = c.allgather({"rank": c.Get_rank(), **res.per_rank, **counters,
                                       "peak_rss_bytes": peak_rss()})
    if status == "diverged":
        exc = NumericalStop(f"{res.stopped}; outputs up to step {step} are in {outdir}")
        exc.summary = summary
        raise exc
    return summary
