"""What a run directory holds: its kind, completeness (run-directory contract) and the figures that apply."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

import numpy as np

from hpcflow.analysis.fig2 import made_without_fig2
from hpcflow.analysis.rundir import (CHECKPOINT, DISTANCES, FIG2, JOURNAL, LOCAL_LIMIT, NN, NN_CHECKPOINT,
                                     NN_UNREADABLE, NOISE_SCAN, RUNNING, MissingData, completeness, data_missing,
                                     dataset_names, file_refusal, holder, in_use_file, in_use_reason, inconsistency,
                                     judged, network_checkpoint, network_config, network_legs, nn_damaged_fix,
                                     nn_missing, read_attrs, read_datasets, read_strings, read_summary, rerun_fix,
                                     restore_fix, run_state, same_length, scan_rows, set_aside_note, stop_reason,
                                     unread_checkpoint, unreadable)

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
    name: str = ""  # its row's name in the runs table (`rundir.names`): the base name, or more where base names repeat
    running: str = ""  # the live run that holds the directory's lock (`outlock.live_holder`), "" when none
    status: str = ""  # a flow or network run's status in the runs table (`RunState.status_line`), "" for other kinds
    unreported: str = ""  # why data files of another kind that the directory holds are not reported (`_unreported`)
    missing: str = ""  # a complete network run whose nn.h5 is gone: 'nn.h5 missing: <fix>' (`rundir.nn_missing`)
    fig4: str = ""  # why Fig. 4 of a network run whose job draws it (`_draws_fig4`) is not drawn: its nn.h5 gone or
    # damaged, or not yet written (`_not_yet_written`); "" otherwise
    other_study: str = ""  # a study directory whose study.json names another study than --study: why (kind None)
    damaged: str = ""  # why its data file is damaged or cannot be read (`_unreadable`, `_scan_fault`), else ""


def _present(path) -> list:
    """The data files of FILES that directory `path` holds, in FILES' order (the first decides its kind)."""
    return [name for name in FILES if os.path.isfile(os.path.join(path, name))]


def data_file_of(path) -> str:
    """The name of the data file that decides the kind of run directory `path` (the first of FILES it holds), "" when
    none."""
    return next(iter(_present(path)), "")


def _set_aside(path) -> str:
    """The words naming an earlier run's files that a killed --force run left set aside in `path`, "" if none."""
    from hpcflow.jobs.replaced import leftovers

    left = leftovers(path)
    if not left:
        return ""
    return (f"; {os.path.join(path, left[0])} holds an earlier run's files, set aside by a --force run that was "
            "killed: report that directory, or move its files back")


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
    if not present and made_without_fig2(path):  # a clustering run without Fig. 2: a row, no figure
        complete, reason = judged(path)
        return RunInfo(path, "clustering", complete, reason, read_summary(path) or {}, ())
    if not present:
        running = holder(path)  # a run before its first checkpoint (its lock file alone), as first asked
        if running:
            return RunInfo(path, None, False, f"{RUNNING}{running}; nothing written yet", running=running)
        return RunInfo(path, None, False, _missing_data(path) + _set_aside(path))
    info = _detect(path, present, study_name)
    info.unreported = "; ".join(filter(None, [_unreported(present), set_aside_note(path, verb="reported")]))
    return info


def _unreported(present) -> str:
    """Why the data files among `present` (`_present`) of another kind than the first's are not reported, "" when
    there are none: one directory is one row, of the kind its first data file says."""
    kind = FILES[present[0]][0]
    other = [name for name in present if FILES[name][0] != kind]
    if not other:
        return ""
    what = "a study" if kind == "study" else f"a {kind} run"
    return (f"also holds {', '.join(other)} (another run's), not reported: the directory is reported as {what} "
            f"({present[0]}); move the other run's files into a directory of their own and report that")


def _detect(path, present, study_name) -> RunInfo:
    """detect() of a directory holding the data files `present`."""
    kind, products = FILES[present[0]]
    if kind == "nn" and not {"ntk/spectrum", "width_sweep/width"} & set(dataset_names(os.path.join(path, NN))):
        products = ("sigma_history",)  # Fig. 4 draws the NTK and the width sweep
    if kind == "study":
        from hpcflow.analysis.study import other_study

        if other := other_study(path, study_name):  # another study's directory: skipped, not shown as --study's
            return RunInfo(path, None, False, other, other_study=other)
        if glob.glob(os.path.join(glob.escape(path), "trials", "*", NN)):  # trials of an nn job: no Table 1
            products = ("optuna_view",)
        return RunInfo(path, kind, True, "", _study_summary(path, study_name), products)
    state = run_state(path) if kind in ("flow", "nn") else None  # how far an incomplete run got, as Table 1 says
    complete, reason = (state.complete, state.reason) if state else judged(path)  # a live run: "running: ..."
    damaged = ""
    if not state and not reason.startswith(RUNNING) and (damaged := _unreadable(path, present[0])):
        complete, reason = False, damaged  # whatever its summary says, as a flow's damaged checkpoint.h5
    if kind in SCANS and not damaged and not reason.startswith(RUNNING) and (damaged := _scan_fault(path, kind)):
        complete, reason = False, damaged  # before what its summary says: the file's own damage first
    running = reason.removeprefix(RUNNING) if reason.startswith(RUNNING) else ""
    summary = _run_summary(path, kind, complete=complete)
    if damaged and kind in SCANS:  # its gains are those of a damaged file: '-', as a file cut short shows them
        summary = {k: v for k, v in summary.items() if k != "table"}
    missing = state.missing if state else ""
    return RunInfo(path, kind, complete, reason, summary, products, running=running,  # the data file's kind
                   status=state.status_line() if state else "", missing=missing, damaged=damaged,
                   fig4=_fig4_not_drawn(path, kind, summary, missing, reason, complete=complete))


def _fig4_not_drawn(path, kind, summary: dict, missing: str, reason: str, *, complete: bool) -> str:
    """Why Fig. 4 of a network run directory `path` whose job draws it (`_draws_fig4`) is not drawn: its nn.h5 gone
    (`missing`) or damaged (`reason`), or not yet written by a run stopped after its training, in its width sweep or
    kernel flow (summary.json: status "preempted" at checkpoint_step = the job's [training].epochs), or in its
    training, whose resume writes it; "" when it is drawn, or the job draws none."""
    if kind != "nn" or not _draws_fig4(summary):
        return ""
    if missing or reason.startswith(NN_UNREADABLE):
        return missing or reason
    said = read_summary(path) or {}
    if complete or said.get("status") != "preempted" or os.path.isfile(os.path.join(path, NN)):
        return ""
    step, epochs = _int_or_none(said.get("checkpoint_step")), _job_epochs(said)
    if step is not None and epochs is not None and step >= epochs:  # its training done: in its sweep or kernel flow
        return f"no {NN} yet: the run stopped after its training, before writing it ({reason})"
    at = f" (epoch {step} of {epochs})" if step is not None and epochs is not None else ""
    return f"no {NN} yet: the run was interrupted in its training{at}, before it wrote it ({reason})"


def _int_or_none(value) -> int | None:
    """`value` where it is an int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _job_epochs(summary: dict) -> int | None:
    """The training epochs a network run's job asks for (summary.json's config, [training].epochs: summary.json's own
    "epochs" counts those done), None where it does not say."""
    cfg = summary.get("config")
    training = cfg.get("training") if isinstance(cfg, dict) else None
    return _int_or_none(training.get("epochs")) if isinstance(training, dict) else None


def _draws_fig4(summary: dict) -> bool:
    """Whether a network run's job (summary.json's config) draws Fig. 4: [ntk] enabled or [width_sweep].widths set;
    True where the config does not say (a summary without it)."""
    cfg = summary.get("config")
    if not isinstance(cfg, dict):
        return True
    ntk, sweep = cfg.get("ntk"), cfg.get("width_sweep")
    return bool((isinstance(ntk, dict) and ntk.get("enabled")) or (isinstance(sweep, dict) and sweep.get("widths")))


def _missing_data(path) -> str:
    """Why directory `path`, holding none of FILES, has nothing to report: the data file of the run its summary.json
    describes is missing, or it holds none of FILES."""
    kind = (read_summary(path) or {}).get("kind")
    files = [name for name, (k, _) in FILES.items() if k == kind and kind != "study"]
    if files:
        return data_missing(path, kind, files)
    return "holds none of " + ", ".join(FILES)


def _unreadable(path, name) -> str:
    """Why data file `name` of run directory `path` makes the run incomplete when h5py cannot open it or walk its
    groups and datasets (`rundir.unreadable`), with the fix a run's own row names (a network's nn.h5:
    `rundir.nn_damaged_fix`), or its status unknown where another process holds it locked (`rundir.in_use_reason`);
    "" when it reads; this user's lack of permission to read it is said so (`rundir.file_refusal`), not damage."""
    if why := file_refusal(os.path.join(path, name)):
        return why
    if in_use_file(os.path.join(path, name)):
        return in_use_reason(name)
    if unreadable(os.path.join(path, name)):
        return f"{name} unreadable (damaged); {nn_damaged_fix(path) if name == NN else rerun_fix(path)}"
    return ""


#: the gains of local_limit.h5, one per width: finite and > 0 in every row (a width whose flow stopped keeps the gains
#: of its last finite step)
LOCAL_LIMIT_GAINS = ("table/gain_train", "table/gain_test")
#: the numeric columns of local_limit.h5's table, one row per width (docs/outputs.md); table/steps_taken, with the text
#: column table/stopped, checked where the file holds it
LOCAL_LIMIT_TABLE = ("table/width", *LOCAL_LIMIT_GAINS)
LOCAL_LIMIT_STEPS = "table/steps_taken"


def _scan_fault(path, kind) -> str:
    """Why the data file of scan run directory `path` (SCANS), which h5py reads, is damaged, with the fix
    (`rerun_fix`); "" where it reads whole: local_limit.h5 as `_local_limit_damage` checks it, noise_scan.h5 as
    Fig. 3 reads it (`hpcflow.analysis.fig3_noise.load`: its table, each level's histories against its steps taken,
    its gains)."""
    name = SCANS[kind]
    file = os.path.join(path, name)
    try:
        if kind == "local_limit":
            _local_limit_damage(file)
        else:
            from hpcflow.analysis.fig3_noise import load

            load(path)
    except MissingData as exc:
        return f"{name} damaged: {str(exc).removeprefix(f'{file}: ').split('; ')[0]}; {rerun_fix(path)}"
    return ""


def _local_limit_damage(file) -> None:
    """MissingData naming what in local_limit.h5 `file` no run writes (docs/outputs.md): a column of its table
    (LOCAL_LIMIT_TABLE, table/steps_taken, table/stopped) missing, not 1-D or of another length than table/width; a
    width's history (width_i/sigma_train, width_i/sigma_test, i < L) missing, not 1-D, or not of table/steps_taken + 1
    values (step 0 and each step taken; train and test alike where the file has no steps_taken); steps taken
    beyond the job's [flow].steps (@config); a gain (LOCAL_LIMIT_GAINS) that is not a finite number > 0."""
    names = (*LOCAL_LIMIT_TABLE, LOCAL_LIMIT_STEPS)
    table = read_datasets(file, LOCAL_LIMIT_TABLE, hint="", optional=(LOCAL_LIMIT_STEPS,),
                          ndim=dict.fromkeys(names, 1))
    stopped = read_strings(file, "table/stopped", hint="")
    if stopped is not None:
        table["table/stopped"] = stopped
    n = same_length(file, table, (*names, "table/stopped"), hint="")
    steps = table.get(LOCAL_LIMIT_STEPS)
    cfg = read_attrs(file, hint="").get("config")
    flow = cfg.get("flow") if isinstance(cfg, dict) else None
    most = flow.get("steps") if isinstance(flow, dict) else None
    if steps is not None:
        steps = np.asarray(steps, dtype=float)
        top = most if isinstance(most, int) and not isinstance(most, bool) else np.inf
        if (bad := np.flatnonzero(~(np.isfinite(steps) & (steps >= 0) & (steps == np.round(steps))
                                    & (steps <= top)))).size:
            bound = f"[flow].steps = {most} (@config)" if np.isfinite(top) else "[flow].steps"
            raise MissingData(f"{file}: dataset '{LOCAL_LIMIT_STEPS}' holds {float(steps[bad[0]]):g} at row {bad[0]}, "
                              f"not a count of steps taken from 0 to {bound}")
    histories = [f"width_{i}/sigma_{part}" for i in range(n) for part in ("train", "test")]
    held = read_datasets(file, histories, hint="", ndim=dict.fromkeys(histories, 1))
    for i in range(n):
        train, test = (f"width_{i}/sigma_{part}" for part in ("train", "test"))
        want = int(steps[i]) + 1 if steps is not None else len(held[train])
        for name in (train, test):
            if len(held[name]) != want:
                said = (f"table/steps_taken gives {want - 1} steps at row {i}, so {want} values (step 0 and each "
                        "step)") if steps is not None else f"'{train}' holds {want}"
                raise MissingData(f"{file}: dataset '{name}' holds {len(held[name])} values, but {said}")
    for name in LOCAL_LIMIT_GAINS:
        values = table[name]
        bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
        if len(bad):
            raise MissingData(f"{file}: dataset '{name}' holds {float(values[bad[0]])!r} at row {bad[0]}, not a "
                              "finite gain > 0")


#: summary.json's count of validation points whose metric is not positive definite after a network's last epoch
#: (`hpcflow.analysis.definite`), which the run's history supplies where the summary lacks it or is superseded
COUNT_FINAL = "val_not_positive_definite_final"
#: summary.json's numbers that the checkpoint of an incomplete run (further on than its summary, or the summary's own
#: step) stands in for: the sigmas, gains and wall time shown beside its "incomplete" status are the checkpoint's
#: summary.json's numbers that a run's history gives (a flow's checkpoint.h5): left out where that cannot be read
HISTORY_NUMBERS = ("sigma_train_initial", "sigma_train_final", "sigma_test_initial", "sigma_test_final", "gain_train",
                   "gain_test")
SUPERSEDED = ("sigma_train_initial", "sigma_train_final", "sigma_test_initial", "sigma_test_final", "sigma_val_initial",
              "sigma_val_final", "gain_train", "gain_test", "wall_seconds", "wall_seconds_total", "legs", COUNT_FINAL)


def _run_summary(path, kind, *, complete: bool = True) -> dict:
    """summary.json of a run directory ({} when none), a scan's table read from its data file (`_scan_summary`), with
    what a flow's checkpoint.h5 or a network's checkpoint.pt
    (`_checkpoint_numbers`, `_network_numbers`) and the run's history (`_history_sigmas`) add where it lacks them; of
    an incomplete run whose history is its checkpoint's, the checkpoint's numbers win (SUPERSEDED), as in its sigma
    histories and Table 1 row."""
    summary = read_summary(path) or {}
    if kind in SCANS:
        return _scan_summary(path, summary, SCANS[kind])
    if kind not in ("flow", "nn"):
        return summary
    if isinstance(summary.get("stopped"), str):  # a trial its study pruned: said so (`rundir.stop_reason`)
        summary["stopped"] = stop_reason(path, summary.get("status"), summary["stopped"])
    if kind == "flow" and unread_checkpoint(path):  # the data file is the record: no sigma, no gain, as in Table 1
        return {k: v for k, v in summary.items() if k not in HISTORY_NUMBERS}
    newer = _checkpoint_numbers(path) if kind == "flow" else _network_numbers(path)
    sigmas = {} if complete else _history_sigmas(path, {}, kind, checkpoint_only=True)
    if sigmas:  # an incomplete run whose history is its checkpoint's: the checkpoint's numbers win
        return {**{k: v for k, v in summary.items() if k not in SUPERSEDED}, **newer, **sigmas}
    timed = "wall_seconds" in summary or "wall_seconds_total" in summary  # else the checkpoint's legs time the run
    summary = {**{k: v for k, v in newer.items() if k in CHECKPOINT_KEYS or not timed}, **summary}
    return {**summary, **_history_sigmas(path, summary, kind)}


#: scan kinds -> their data file, whose table the runs table's gains are read from (`_scan_summary`)
SCANS = {"noise_scan": NOISE_SCAN, "local_limit": LOCAL_LIMIT}


def _scan_summary(path, summary: dict, name: str) -> dict:
    """`summary` (summary.json of a scan run directory `path`) with its table's parameters and gains those of its data
    file `name` (`rundir.scan_rows`: what Fig. 3 draws; a summary that says otherwise is not the file's record, which
    `rundir.completeness` says), its other entries kept where it holds as many rows; without a table where the file's
    cannot be read (damaged, or in use: the row says why), so that its gains are '-', as a damaged flow
    checkpoint's."""
    try:
        rows = scan_rows(os.path.join(path, name))
    except MissingData:
        return {k: v for k, v in summary.items() if k != "table"}
    mine = summary.get("table") if isinstance(summary.get("table"), list) else []
    if len(mine) == len(rows):
        rows = [{**(says if isinstance(says, dict) else {}), **its} for says, its in zip(mine, rows)]
    return {**summary, "table": rows}


def _study_summary(path, study_name) -> dict:
    """The runs table's numbers of a study directory (see detect); the overview's 'best_kind' is the kind of its
    best trial's run (the row's kernel cell names a network's), 'best_legs' its legs (the ranks cell names their rank
    counts), and 'best_inconsistent' why that run is not whole
    (`_best_run_problem`: its data file missing or damaged, or its summary.json not the record of that file, whose
    numbers the row then shows, as a run's own row does)."""
    from hpcflow.analysis.study import NoSuchStudy, overview
    from hpcflow.errors import UserError

    try:
        ov = overview(path, study_name)
    except (UserError, ImportError) as exc:  # unreadable storage, several studies without --study, no optuna
        return {"study_error": " ".join(str(exc).split()), **({"no_such_study": True} if isinstance(
            exc, NoSuchStudy) else {})}
    run_dir = ov.pop("best_run_dir", None)
    present = _present(run_dir) if run_dir else []
    kind = FILES[present[0]][0] if present else None
    why = _best_run_problem(run_dir, present) if run_dir and os.path.isdir(run_dir) else ""
    if why:
        ov["best_inconsistent"] = why
    best = _run_summary(run_dir, kind, complete=not why) if run_dir else {}
    ov["best_kind"] = kind  # its data file's (a summary.json of another kind is `_best_run_problem`'s to say)
    if isinstance(best.get("legs"), list):  # the trial's legs, for its rank counts (the wall time is the study's)
        ov["best_legs"] = best["legs"]
    skip = ("kind", "status", "stopped", "wall_seconds", "wall_seconds_total", "legs")  # the study's, not the trial's
    return {**{k: v for k, v in best.items() if k not in skip}, "study": ov}


def _best_run_problem(run_dir, present) -> str:
    """Why a study's best trial's run directory, holding the data files `present` (`_present`), is not a whole run,
    checked as a run's own row checks it: its data file missing (a partial copy: `_missing_data`; a network's nn.h5:
    `rundir.nn_missing`) or unreadable (`_unreadable`), its summary.json missing, damaged or preempted
    (`rundir.completeness`'s reason), or not that file's record (`rundir.inconsistency`); "" when none of these. The fix named is the one for a trial's directory
    (`rundir.rerun_fix`)."""
    if not present:
        if (read_summary(run_dir) or {}).get("kind") in ("flow", "nn"):
            return _missing_data(run_dir)
        return (f"its run directory holds no data file ({CHECKPOINT}, {NN} or {NN_CHECKPOINT}); "
                f"{restore_fix(run_dir, 'its files')}")
    if present[0] == NN_CHECKPOINT and (gone := nn_missing(run_dir)):  # a finished network run without its nn.h5
        return gone
    damaged = _unreadable(run_dir, present[0]) if present[0] in (CHECKPOINT, NN) else ""  # HDF5 files
    if damaged:
        return damaged
    summary = read_summary(run_dir)
    if summary is None or summary.get("status") == "preempted":  # no record of its end: judged as its own row is
        return completeness(run_dir)[1]
    return inconsistency(run_dir)


#: checkpoint.h5 attributes (hpcflow.checkpoint schema) that stand in for summary keys a flow run lacks
CHECKPOINT_KEYS = {"n_train": int, "n_test": int, "ranks": int, "config": dict}


def _checkpoint_numbers(path) -> dict:
    """N train / test, ranks and job configuration (CHECKPOINT_KEYS) and the legs from checkpoint.h5's attributes,
    for a flow run killed before it wrote its summary or further on than it ({} when the file cannot be read; values
    of another type left out)."""
    try:
        attrs = read_attrs(os.path.join(path, CHECKPOINT))
    except MissingData:
        return {}
    return _typed(attrs)


def _network_numbers(path) -> dict:
    """Ranks, job configuration and legs from a network run's checkpoint.pt (read without torch), as
    `_checkpoint_numbers` ({} when the file cannot be read so)."""
    entries = network_checkpoint(path)
    out = {"ranks": entries.get(("ranks",)), "legs": network_legs(entries)}
    out["config"], _ = network_config(entries)  # None where damaged: left out by `_typed`; the row says why
    return _typed(out)


def _typed(numbers: dict) -> dict:
    """The CHECKPOINT_KEYS of `numbers` of their types, and its non-empty list of legs with their whole wall time
    (wall_seconds_total: the sum of the legs' timed wall_seconds, as `hpcflow.checkpoint.wall_seconds_total`)."""
    out = {k: v for k, t in CHECKPOINT_KEYS.items() if isinstance(v := numbers.get(k), t) and not isinstance(v, bool)}
    legs = numbers.get("legs")
    if isinstance(legs, list) and legs:
        out["legs"] = legs
        timed = [g["wall_seconds"] for g in legs if isinstance(g, dict) and isinstance(
            g.get("wall_seconds"), (int, float)) and not isinstance(g["wall_seconds"], bool)]
        if timed:
            out["wall_seconds_total"] = float(sum(timed))
    return out


def _history_sigmas(path, summary: dict, kind: str, *, checkpoint_only: bool = False) -> dict:
    """sigma at the first and last step (epoch) of a flow or network run's own history (`histories.load`:
    checkpoint.h5; nn.h5, or checkpoint.pt where it is further on), and a network's COUNT_FINAL, for the summary keys
    that are absent or null (a network summary holds no initial train sigma; a run stopped before its summary has
    none; one written before the count has no count): {} when the
    history cannot be read, or with checkpoint_only is not the checkpoint's; non-finite values (a flow without test
    points) are left out."""
    from hpcflow.analysis.histories import COUNTS, load

    test = "sigma_val" if kind == "nn" else "sigma_test"
    keys = {"sigma_train_initial": ("train", 0), "sigma_train_final": ("train", -1),
            f"{test}_initial": ("test", 0), f"{test}_final": ("test", -1)}
    if kind == "nn":
        keys[COUNT_FINAL] = (COUNTS, -1)
    missing = [k for k in keys if not isinstance(summary.get(k), (int, float)) or isinstance(summary.get(k), bool)]
    if not missing:
        return {}
    try:
        hist = load(path)
    except MissingData:
        return {}
    if checkpoint_only and os.path.basename(hist["file"]) not in (CHECKPOINT, NN_CHECKPOINT):
        return {}
    out = {}
    for key in missing:
        series, i = keys[key]
        values = hist.get(series, ())
        if len(values) and np.isfinite(values[i]):
            out[key] = int(values[i]) if series == COUNTS else float(values[i])
    return out
