"""Fig. 3 left: factor gained in the sigma loss versus the mean shortest FS distance of the noised test points
to the train points (the paper's axis), per kernel.

Reads DIR/noise_scan.h5 of "noise_scan" jobs (table/mean_distance_to_nearest_train, table/gain, and
table/mean_distance_to_source, printed alongside; one job per kernel or reading). A level whose flow stopped
for a numerical reason (table/stopped, table/steps_taken) is marked with a cross in the figure and its reason in
the printed line: its gain is that of its last finite step, not of the scan's [flow].steps (NaN, with the reason,
for a level left with fewer than two test points: it has no point to draw, and the scan's legend entry names its
scales instead). Each scan's legend entry says whether its test points were projected onto X or left off X
([noise].project of its config). A file written before table/stopped existed does not say how
its flows ended: a level whose history shows fewer than [flow].steps steps is circled and printed as "status
unknown" (a level whose flow ran all its steps did run through).
"""

from __future__ import annotations

import os

import numpy as np

from hpcflow.analysis.figure import legend_beside, new_figure
from hpcflow.analysis.rundir import (NOISE_SCAN, MissingData, check_range, config_table, data_file, label,
                                     read_attrs, read_datasets, read_strings, rerun_fix, same_length)

HINT = "pass the run directory of a noise_scan job (hpcflow run jobs/noise_scan.toml --out DIR)"
COLUMNS = ("table/scale", "table/mean_distance_to_nearest_train", "table/mean_distance_to_source", "table/gain")
STEPS = "table/steps_taken"  # with table/stopped (text): absent in files of older versions
#: the mark of a level of a file without table/stopped whose flow did not reach [flow].steps
UNKNOWN = "status unknown: noise_scan.h5 has no table/stopped record (written by an older hpcflow)"


def load(run_dir) -> dict:
    """{'kernel', 'project', 'label', 'scale', 'distance' (to the nearest train point), 'distance_to_source', 'gain',
    'stopped', 'steps_taken', 'unknown'} of one noise scan (gain = sigma_FS / sigma_final of the test points;
    project: its [noise].project, True (test points projected onto X), False (left off X) or None (not recorded)).

    stopped[i]: why level i's flow stopped for a numerical reason or why it has no test gain ('' when neither);
    unknown[i]: for a file without that record, why level i's status is unknown ('' when its history shows that
    its flow ran all [flow].steps, or when the record exists)."""
    if why := _not_written(run_dir):
        raise MissingData(why)
    path = data_file(run_dir, NOISE_SCAN, hint=HINT)
    fix = _fix(path)  # a noise_scan.h5 that reads but is malformed: damaged
    d = read_datasets(path, COLUMNS, hint=fix, optional=(STEPS,), ndim=dict.fromkeys((*COLUMNS, STEPS), 1))
    stopped = read_strings(path, "table/stopped", hint=fix)
    if stopped is not None:
        d["table/stopped"] = stopped
    n = same_length(path, d, (*COLUMNS, STEPS, "table/stopped"), hint=fix)
    cfg = _config(path)
    kernel = cfg["kernel"]["name"]
    if stopped is None:
        steps, unknown = _steps_of_old_file(path, n, cfg)
        stopped = [""] * n
    else:
        steps, unknown = _whole(path, STEPS, d.get(STEPS, [-1] * n)), [""] * n
        _check_histories(path, steps if STEPS in d else None, n, cfg, fix)
        _check_gains(path, d["table/gain"], stopped)
    _check_ranges(path, d)
    project = cfg.get("noise", {}).get("project") if isinstance(cfg.get("noise"), dict) else None
    return {"kernel": kernel, "project": project if isinstance(project, bool) else None, "label": label(run_dir),
            "scale": d["table/scale"],
            "distance": d["table/mean_distance_to_nearest_train"],
            "distance_to_source": d["table/mean_distance_to_source"], "gain": d["table/gain"],
            "stopped": stopped, "steps_taken": steps, "unknown": unknown}


def _not_written(run_dir) -> str:
    """Why directory `run_dir` has no noise_scan.h5 where it holds a run's lock file (`hpcflow.jobs.outlock`): a noise
    scan writes its files when it ends, so either its run still holds the lock (running: wait for it) or, where the
    lock file is all the directory holds (with a job.toml of a noise_scan job, if any), the run was ended before that
    without a clean-up (SIGKILL, a node lost, memory that ran out): the fix reruns the job into that --out, which a
    lock file no process holds does not block; without a job.toml nothing says the run was a noise scan, so the fix
    is named for that case. "" otherwise (a job.toml of another kind: not a noise scan's directory), and for this
    call's own --out where the lock file is its own (`rundir.found_lock`: it found none there)."""
    from hpcflow.analysis.rundir import command_path, found_lock, holder
    from hpcflow.jobs.outlock import LOCK_NAME, describe
    from hpcflow.jobs.shell import shell_line

    path = os.fspath(run_dir)
    lock = os.path.join(path, LOCK_NAME)
    if not os.path.isdir(path) or os.path.isfile(os.path.join(path, NOISE_SCAN)) or not os.path.isfile(lock):
        return ""
    found = found_lock(path)  # None: not this call's --out; b"": its --out, where the lock file is its own
    if found == b"":
        return ""
    if running := holder(path):
        return (f"{path}: no {NOISE_SCAN} yet: its run ({running}) is still running, and a noise scan writes it when "
                "it ends; wait for it to end")
    names = sorted(os.listdir(path))
    if names not in ([LOCK_NAME], sorted([LOCK_NAME, "job.toml"])):  # other files: not a run killed at once
        return ""
    kind = _job_kind(os.path.join(path, "job.toml")) if "job.toml" in names else None
    if "job.toml" in names and kind != "noise_scan":  # a run of another kind (or job.toml unreadable)
        return ""
    try:
        if found is None:
            with open(lock, "rb") as fh:
                found = fh.read(4096)
        by = f", {describe(found)},"  # (in this call's --out: the killed run's record, which the lock file held)
    except OSError:
        by = ""
    rerun = shell_line(["hpcflow", "run", "JOB", "--out", command_path(path)])
    if kind is None:  # nothing says what the run was: a flow run's directory given by mistake looks the same
        return (f"{path}: no {NOISE_SCAN}: its run{by} was interrupted before writing any file (its {LOCK_NAME} is "
                f"left, and no process holds it); if it was a noise_scan run, rerun the noise_scan job into that "
                f"--out: {rerun} (JOB: its job file, e.g. jobs/noise_scan.toml); else pass the run directory of a "
                "noise_scan job")
    return (f"{path}: no {NOISE_SCAN}: its run{by} was interrupted before writing it (its {LOCK_NAME} is left, and no "
            f"process holds it); rerun the noise_scan job into that --out: {rerun} (JOB: its job file, e.g. "
            "jobs/noise_scan.toml)")


def _fix(path) -> str:
    """The fix of noise_scan.h5 `path` that h5py reads but that holds what no scan writes (damaged): `rerun_fix` of
    its run directory."""
    return rerun_fix(os.path.dirname(os.path.abspath(path)))


def _job_kind(path):
    """[job].kind of job file `path`, None where it has none or cannot be read."""
    import tomllib

    try:
        with open(path, "rb") as fh:
            kind = tomllib.load(fh).get("job", {}).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if isinstance(kind, str) else None


def _check_histories(path, steps, n: int, cfg: dict, fix: str) -> None:
    """MissingData naming the file and what in it no scan writes (docs/outputs.md), as a damaged file (`fix`): steps
    taken (table/steps_taken; None where the file has none) beyond the job's [flow].steps; a level's history
    (scale_i/sigma_train, scale_i/sigma_test, i < L) missing, not 1-D, or not of table/steps_taken + 1 values (step 0
    and each step taken; train and test alike where the file has no steps_taken)."""
    most = cfg["flow"].get("steps")
    if steps is not None and isinstance(most, int) and not isinstance(most, bool):
        for i, k in enumerate(steps):
            if not 0 <= k <= most:
                raise MissingData(f"{path}: dataset '{STEPS}' holds {k} at level {i}, not a count of steps taken "
                                  f"from 0 to [flow].steps = {most} (@config); {fix}")
    names = [f"scale_{i}/sigma_{part}" for i in range(n) for part in ("train", "test")]
    held = read_datasets(path, names, hint=fix, ndim=dict.fromkeys(names, 1))
    for i in range(n):
        train, test = f"scale_{i}/sigma_train", f"scale_{i}/sigma_test"
        want = steps[i] + 1 if steps is not None else len(held[train])
        for name in (train, test):
            if len(held[name]) != want:
                said = (f"{STEPS} gives {want - 1} steps at level {i}, so {want} values (step 0 and each step)"
                        if steps is not None else f"'{train}' holds {want}")
                raise MissingData(f"{path}: dataset '{name}' holds {len(held[name])} values, but {said}; {fix}")


def _check_gains(path, gains, stopped) -> None:
    """MissingData naming the file and the level where a level whose flow ran through (table/stopped empty) has a
    non-finite table/gain: the scan writes NaN only with its reason, so the file was damaged or altered since; the
    level's scale_i/sigma_test history (first / last) says what its gain was, where it reads."""
    for i, (g, why) in enumerate(zip(gains, stopped)):
        if why or np.isfinite(g):
            continue
        name = f"scale_{i}/sigma_test"
        hist = read_datasets(path, (), hint=_fix(path), optional=(name,), ndim={name: 1}).get(name)
        if hist is not None and len(hist) >= 2 and np.isfinite(hist[[0, -1]]).all() and hist[-1] > 0:
            was = f"its {name} gives {hist[0] / hist[-1]:.4g} (first / last)"
        else:
            was = f"no readable {name} gives it"
        raise MissingData(f"{path}: dataset 'table/gain' holds {float(g)!r} at level {i}, whose flow ran through "
                          f"(table/stopped gives no reason), and {was}: the file is damaged; "
                          f"{_fix(path)}")


def _check_ranges(path, d: dict) -> None:
    """MissingData naming the file, the dataset and the level of the first value that no scan writes, as a damaged
    file (`check_range`): a noise scale that is not a finite number >= 0; a gain (sigma_FS / sigma_final, a ratio of
    positive sigmas) <= 0 (NaN is a level without a test gain, `_check_gains`; inf a flow whose final sigma is 0); a
    mean FS distance outside [0, pi/2] (eq. 3.2), NaN only at a level without a test gain (no test points left)."""
    gain = np.asarray(d["table/gain"], dtype=float)
    check_range(path, "table/scale", d["table/scale"], 0.0, np.inf, what="noise scale", item="dataset")
    for name in ("table/mean_distance_to_nearest_train", "table/mean_distance_to_source"):
        dist = np.asarray(d[name], dtype=float)
        check_range(path, name, np.where(np.isnan(dist) & np.isnan(gain), 0.0, dist), 0.0, np.pi / 2,
                    what="FS distance")
    bad = np.flatnonzero(~(np.isnan(gain) | (gain > 0)))
    if len(bad):
        raise MissingData(f"{path}: dataset 'table/gain' holds {float(gain[bad[0]])!r} at level {bad[0]}, not a gain "
                          f"> 0 (sigma_FS / sigma_final, a ratio of positive sigmas): the file is damaged; "
                          f"{_fix(path)}")


def _whole(path, name: str, values) -> list:
    """`values` of dataset `name` as ints; MissingData naming the file, the dataset and the first value that is not a
    whole number (NaN, inf, a fraction: a count of steps cannot be one)."""
    arr = np.asarray(values)
    bad = ~np.isfinite(arr) | (arr != np.round(arr)) if arr.dtype.kind == "f" else np.zeros(arr.shape, bool)
    if bad.any():
        raise MissingData(f"{path}: dataset '{name}' holds {float(arr[bad][0])!r}, not a whole number of steps; "
                          f"{_fix(path)}")
    return [int(v) for v in arr]


def _config(path) -> dict:
    """The scan's job configuration (root attribute `config`, a JSON object) with its [kernel] and [flow] tables and
    the kernel's name; MissingData naming the file and the entry otherwise (the figure's kernel would be unknown)."""
    cfg = read_attrs(path, hint=_fix(path)).get("config")
    if not isinstance(cfg, dict):
        what = "missing" if cfg is None else "not a JSON object"
        raise MissingData(f"{path}: attribute 'config' is {what}; {_fix(path)}")
    name = config_table(cfg, "kernel", path, hint=_fix(path)).get("name")
    config_table(cfg, "flow", path, hint=_fix(path))
    if not isinstance(name, str):
        raise MissingData(f"{path}: config [kernel].name = {name!r} is missing or not a string; {_fix(path)}")
    return cfg


def _steps_of_old_file(path, n: int, cfg: dict):
    """(steps taken, unknown marks) of the n levels of a file without table/stopped: steps from the length of
    each level's scale_i/sigma_test history (-1 when absent); a level whose flow took [flow].steps ran through,
    any other is marked unknown (it stopped early, for a numerical reason or by [flow].early_stop)."""
    names = [f"scale_{i}/sigma_test" for i in range(n)]
    hist = read_datasets(path, (), hint=_fix(path), optional=names, ndim=dict.fromkeys(names, 1))
    total = cfg["flow"].get("steps")
    total = total if isinstance(total, int) and not isinstance(total, bool) else None
    steps, unknown = [], []
    for name in names:
        k = len(hist[name]) - 1 if name in hist else -1
        steps.append(k)
        if k < 0 or total is None:
            unknown.append(UNKNOWN)
        elif k < total:
            unknown.append(f"{UNKNOWN}; its flow ended after step {k} of {total}")
        else:
            unknown.append("")
    return steps, unknown


def _mask(scan, key):
    return np.array([bool(s) for s in scan.get(key, [""] * len(scan["gain"]))], dtype=bool)


#: legend words for a scan's [noise].project
READING = {True: "projected onto X", False: "left off X"}


def _legend(s) -> str:
    """A scan's legend entry: kernel, whether its test points lie on X, its directory, and the scales left without
    test points (NaN gain and distance: nothing drawn for them)."""
    where = f", {READING[s['project']]}" if s.get("project") in READING else ""
    empty = ~np.isfinite(s["gain"]) | ~np.isfinite(s["distance"])
    none = f"; no test points left at scale {', '.join(f'{v:g}' for v in s['scale'][empty])}" if empty.any() else ""
    return f"{s['kernel']}{where} ({s['label']}){none}"


def plot(scans):
    """One line per scan (log gain versus FS distance; symlog distance axis so that distance 0 shows); levels
    whose flow stopped are crossed, levels of unknown status circled; levels without test points have no point,
    and the scan's legend entry names them. The legend stands beside the axes (`legend_beside`), whose width it
    adds to the figure's: an entry naming many scales is wider than the axes."""
    fig, (ax,) = new_figure(size=(6.4, 4.6))
    positive = []
    shown = set()
    for s in scans:  # (not clipped: a point at distance 0 lies on the axis's left end)
        ax.plot(s["distance"], s["gain"], "o-", label=_legend(s), clip_on=False)
        drawn = np.isfinite(s["gain"]) & np.isfinite(s["distance"])
        for key, style, text in (("stopped", dict(marker="x", color="red", ms=11, mew=2, ls="none"),
                                  "flow stopped (gain of its last finite step)"),
                                 ("unknown", dict(marker="o", mfc="none", color="0.3", ms=13, mew=1.5, ls="none"),
                                  "status unknown (no stop record; flow ended early)")):
            bad = _mask(s, key) & drawn
            if bad.any():
                ax.plot(s["distance"][bad], s["gain"][bad], label=None if key in shown else text, clip_on=False,
                        **style)
                shown.add(key)
        finite = s["distance"][np.isfinite(s["distance"])]
        positive.extend(finite[finite > 0])
    linthresh = min(positive) if positive else 1e-3
    ax.set_xscale("symlog", linthresh=linthresh)
    # every decade in view labelled: the margin beyond the farthest distance may hold one (else an unlabelled tick)
    ax.set_xticks(_ticks(linthresh, max(max(positive, default=linthresh), ax.get_xlim()[1])))
    ax.set_xlim(left=0.0)  # an FS distance is >= 0: no negative distances left of it
    ax.set_yscale("log")
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("mean FS distance of test points to the nearest train point [rad]")
    ax.set_ylabel("gain σ_FS / σ_final (test)")
    ax.set_title("Fig. 3 left: noise scan")
    legend_beside(fig, ax, 6.4, 4.6, fontsize="small")
    return fig


def _ticks(linthresh: float, top: float) -> list:
    """0 and the decades from `linthresh` (the smallest distance: the symlog axis is linear below it) to `top`: a
    decade inside the linear part would sit a fraction of a decade from 0, its label over 0's."""
    return [0.0, *10.0 ** np.arange(np.ceil(np.log10(linthresh)), np.floor(np.log10(top)) + 1)]


def _mark(why: str, steps: int, gain: float, unknown: str) -> str:
    """' (...)' after a level's printed line: why it has no test gain (NaN), after which step its flow stopped,
    or why its status is unknown; '' for a level that ran through."""
    if why:
        return f" ({why})" if not np.isfinite(gain) else f" (flow stopped after step {steps}: {why})"
    return f" ({unknown})" if unknown else ""


def numbers(scans) -> list:
    """One line per scan and noise level: kernel, scale, mean distances (nearest train point, source), gain; a
    level whose flow stopped, or whose status a file of an older version does not record, says so."""
    out = []
    for s in scans:
        n = len(s["gain"])
        for sc, d, ds, g, why, k, unknown in zip(s["scale"], s["distance"], s["distance_to_source"], s["gain"],
                                                 s.get("stopped", [""] * n), s.get("steps_taken", [-1] * n),
                                                 s.get("unknown", [""] * n)):
            out.append(f"{s['label']} [{s['kernel']}] scale={sc:g} d_nn={d:.4g} d_src={ds:.4g} gain={g:.4g}"
                       f"{_mark(why, k, g, unknown)}")
    return out
