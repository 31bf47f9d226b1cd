"""What a run directory holds: its kind, completeness (run-directory contract) and the figures that apply."""

from __future__ import annotations

import glob
import json
import os
from dataclasses import dataclass, field

import numpy as np

from hpcflow.analysis.rundir import (CHECKPOINT, DISTANCES, FIG2, JOURNAL, NN, NN_CHECKPOINT, NOISE_SCAN, RUNNING,
                                     MissingData, dataset_names, judged, network_checkpoint, read_attrs,
                                     read_summary)
from hpcflow.jobs.outlock import live_holder

LOCAL_LIMIT = "local_limit.h5"
STUDY_RECORD = "study.json"

#: data file -> (kind, products of hpcflow.analysis.products.PRODUCTS that read it)
FILES = {
    JOURNAL: ("study", ("optuna_view", "table1")),
    STUDY_RECORD: ("study", ("optuna_view", "table1")),  # a study kept in another storage (sqlite:///...)
    CHECKPOINT: ("flow", ("sigma_history", "table1")),
    NN: ("nn", ("sigma_history", "fig4_ntk")),
    NN_CHECKPOINT: ("nn", ("sigma_history",)),  # a network run interrupted before it wrote nn.h5
    NOISE_SCAN: ("noise_scan", ("fig3_noise",)),
    DISTANCES: ("distance_scaling", ("fig3_scaling",)),
    FIG2: ("clustering", ("fig2_heatmaps",)),
    LOCAL_LIMIT: ("local_limit", ()),  # no figure: listed in the runs table
}


@dataclass
class RunInfo:
    path: str
    kind: str | None
    complete: bool
    reason: str  # why incomplete, or why skipped (kind None)
    summary: dict = field(default_factory=dict)
    products: tuple = ()
    name: str = ""  # its row's name in the runs table (`names`): the base name, or more where base names repeat
    running: str = ""  # the live run that holds the directory's lock (`outlock.live_holder`), "" when none


def names(paths) -> list:
    """Names that tell the runs apart in one table: each directory's base name (`label`), and where two share one,
    their paths below the deepest directory they share (x/run and y/run, not run twice)."""
    from hpcflow.analysis.rundir import label

    short = [label(p) for p in paths]
    out = []
    for p, s in zip(paths, short):
        twins = [os.path.abspath(q) for q, t in zip(paths, short) if t == s]
        out.append(s if len(twins) == 1 else os.path.relpath(os.path.abspath(p), os.path.commonpath(twins)))
    return out


def _present(path) -> list:
    """The data files of FILES that directory `path` holds, in FILES' order (the first decides its kind)."""
    return [name for name in FILES if os.path.isfile(os.path.join(path, name))]


def detect(path, *, study_name: str | None = None) -> RunInfo:
    """The RunInfo of a directory; kind None (with the reason) when it holds none of the known data files. A
    study's summary is its overview (`hpcflow.analysis.study.overview`, key 'study': trials by state, best
    trial; or 'study_error' when it cannot be read) with the numbers of its best trial's run directory, read as
    that run's own (`_run_summary`)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return RunInfo(path, None, False, "does not exist")
    if not os.path.isdir(path):
        return RunInfo(path, None, False, "not a directory")
    present = _present(path)
    if not present:
        running = live_holder(path)  # a run before its first checkpoint (its lock file alone)
        return RunInfo(path, None, False, f"{RUNNING}{running}; nothing written yet" if running else
                       "holds none of " + ", ".join(FILES), running=running)
    kind, products = FILES[present[0]]
    if kind == "nn" and "ntk/spectrum" not in dataset_names(os.path.join(path, NN)):
        products = ("sigma_history",)
    if kind == "study":
        if glob.glob(os.path.join(glob.escape(path), "trials", "*", NN)):  # trials of an nn job: no Table 1
            products = ("optuna_view",)
        return RunInfo(path, kind, True, "", _study_summary(path, study_name), products)
    complete, reason = judged(path)  # a live run: "running: ..."
    running = reason.removeprefix(RUNNING) if reason.startswith(RUNNING) else ""
    summary = _run_summary(path, kind)
    return RunInfo(path, summary.get("kind", kind), complete, reason, summary, products, running=running)


def _run_summary(path, kind) -> dict:
    """summary.json of a run directory ({} when none) with what a flow's checkpoint.h5 and a flow's or network's
    history add where it lacks them (`_checkpoint_numbers`, `_history_sigmas`)."""
    summary = read_summary(path) or {}
    if kind == "flow":
        summary = {**_checkpoint_numbers(path), **summary}
    if kind == "nn":
        summary = {**_network_numbers(path), **summary}
    if kind in ("flow", "nn"):
        summary = {**summary, **_history_sigmas(path, summary, kind)}
    return summary


def _study_summary(path, study_name) -> dict:
    """The runs table's numbers of a study directory (see detect); the overview's 'best_kind' is the kind of its
    best trial's run (the row's kernel cell names a network's)."""
    from hpcflow.analysis.study import overview
    from hpcflow.errors import UserError

    try:
        ov = overview(path, study_name)
    except (UserError, ImportError) as exc:  # unreadable storage, several studies without --study, no optuna
        return {"study_error": " ".join(str(exc).split())}
    run_dir = ov.pop("best_run_dir", None)
    present = _present(run_dir) if run_dir else []
    kind = FILES[present[0]][0] if present else None
    best = _run_summary(run_dir, kind) if run_dir else {}
    ov["best_kind"] = best.get("kind", kind)
    skip = ("kind", "status", "stopped", "wall_seconds", "wall_seconds_total", "legs")  # the study's, not the trial's
    return {**{k: v for k, v in best.items() if k not in skip}, "study": ov}


#: checkpoint.h5 attributes (hpcflow.checkpoint schema) that stand in for summary keys a flow run lacks
CHECKPOINT_KEYS = {"n_train": int, "n_test": int, "ranks": int, "config": dict}


def _checkpoint_numbers(path) -> dict:
    """N train / test, ranks and job configuration from checkpoint.h5's attributes, for a flow run killed before it
    wrote its summary ({} when the file cannot be read; values of another type left out)."""
    try:
        attrs = read_attrs(os.path.join(path, CHECKPOINT))
    except MissingData:
        return {}
    return {k: attrs[k] for k, t in CHECKPOINT_KEYS.items()
            if isinstance(attrs.get(k), t) and not isinstance(attrs[k], bool)}


def _network_numbers(path) -> dict:
    """Ranks and job configuration from a network run's checkpoint.pt (read without torch), for a run killed before
    it wrote its summary ({} when the file cannot be read so; values of another type left out)."""
    entries = network_checkpoint(path)
    out = {}
    try:
        cfg = json.loads(entries.get(("config",)))
    except (TypeError, ValueError):
        cfg = None
    if isinstance(cfg, dict):
        out["config"] = cfg
    ranks = entries.get(("ranks",))
    if isinstance(ranks, int) and not isinstance(ranks, bool):
        out["ranks"] = ranks
    return out


def _history_sigmas(path, summary: dict, kind: str) -> dict:
    """sigma at the first and last step (epoch) of a flow or network run's own history (checkpoint.h5; nn.h5, else
    checkpoint.pt of a network interrupted before it wrote nn.h5) for the summary keys that are absent or null
    (a network summary holds no initial train sigma; a run stopped before its summary has none): {} when the
    history cannot be read; non-finite values (a flow without test points) are left out."""
    from hpcflow.analysis.histories import load

    test = "sigma_val" if kind == "nn" else "sigma_test"
    keys = {"sigma_train_initial": ("train", 0), "sigma_train_final": ("train", -1),
            f"{test}_initial": ("test", 0), f"{test}_final": ("test", -1)}
    missing = [k for k in keys if not isinstance(summary.get(k), (int, float)) or isinstance(summary.get(k), bool)]
    if not missing:
        return {}
    try:
        hist = load(path)
    except MissingData:
        return {}
    out = {}
    for key in missing:
        series, i = keys[key]
        values = hist[series]
        if len(values) and np.isfinite(values[i]):
            out[key] = float(values[i])
    return out
