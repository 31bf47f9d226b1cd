"""The table of each run's key numbers: sigma initial/final, gains, N, kernel, ranks, wall time."""

from __future__ import annotations

import math
import re

from hpcflow.analysis.definite import not_positive_definite
from hpcflow.analysis.roundoff import ROUNDOFF, at_roundoff, roundoff_note
from hpcflow.analysis.rundir import UNKNOWN, label
from hpcflow.analysis.table1 import md_cell, md_name

#: the wall-time column's heading: every row's cell is the same quantity, the whole run's seconds summed over its legs
#: (`_wall`), never one leg's alone
WALL = "wall time [s], all legs"
#: the held-out columns are a flow's test points, a network's validation points (σ_val, n_val): said in their heads
COLUMNS = ("run", "kind", "status", "N train / test or val", "kernel", "ranks", "sigma train", "sigma test or val",
           "gain train", "gain test or val", WALL)


def _num(v) -> str:
    if isinstance(v, bool) or v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.4g}"
    return str(v)


def _arrow(a, b) -> str:
    return "-" if a is None and b is None else f"{_num(a)} -> {_num(b)}"


def _table(d, *keys) -> dict:
    """The first of d[key] for `keys` that is a dict (a hand-edited summary may hold anything); {} when none."""
    return next((d[k] for k in keys if isinstance(d.get(k), dict)), {})


def row(info) -> list:
    """The table cells of one RunInfo (summary.json keys of flow and nn runs; '-' where absent): a scan's gains at
    the two ends of its parameter (`SCAN_GAINS`); a study's trials by state and best trial in its status, the
    other cells those of the best trial's run; a network's status says where its last epoch's metric is not positive
    definite at validation points (`hpcflow.analysis.definite`)."""
    s = info.summary
    cfg = _table(s, "config")
    geo = _table(cfg, "geometry", "points")
    status = _status(s, info.kind) if info.complete else info.status or f"incomplete: {info.reason}"
    if info.running or info.reason.startswith(UNKNOWN):  # "running: ..." or "status unknown: ...", not "incomplete"
        status = info.status or info.reason  # a live flow or nn run's: ", at step N" (epoch) after it, as its legend
    if info.kind == "study":
        status = _study_status(s)
    if info.complete and status not in ("finished", "-") and isinstance(s.get("stopped"), str) and s["stopped"]:
        status = f"{status}: {_stopped(s, info.kind)}"  # diverged, stopped: why
    if info.complete and info.missing:
        status = f"{status}; {info.missing}"  # a finished network run whose nn.h5 is gone
    unhealthy = not_positive_definite(s.get("val_not_positive_definite_final"), s.get("n_val", geo.get("n_val")))
    if unhealthy:  # a network (a study's best trial) whose sigma uses the signed det g: no healthy gain
        status = f"{status}; {unhealthy}"
    n_test = s.get("n_test", geo.get("n_test", geo.get("n_val")))
    n = f"{_num(s.get('n_train', geo.get('n_train', geo.get('n_points'))))} / {_num(n_test)}"
    # the job's kernel (an incomplete run's job is its checkpoint's: detect), else the summary's word for it
    kernel = next((k for k in (_table(cfg, "kernel").get("name"), s.get("kernel")) if isinstance(k, str)), None)
    if (_table(s, "study").get("best_kind") if info.kind == "study" else info.kind) == "nn":  # a study: its trial's
        m = _table(cfg, "model")
        kernel = f"network {m.get('depth')}x{m.get('width')} {m.get('activation')}" if m else "network"
        if m.get("dtype") == "float32":  # (float64, the default, unsaid)
            kernel += " float32"
    train_i, train_f = s.get("sigma_train_initial"), s.get("sigma_train_final")
    test_i = s.get("sigma_test_initial", s.get("sigma_val_initial"))
    test_f = s.get("sigma_test_final", s.get("sigma_val_final"))
    gains = [_num(_gain(s.get("gain_train"), train_i, train_f)), _num(_gain(s.get("gain_test"), test_i, test_f))]
    sigmas = [_arrow(train_i, train_f), _arrow(test_i, test_f)]
    counts = (s.get("n_train", geo.get("n_train")), n_test)
    for i, (final, points) in enumerate(zip((train_f, test_f), counts)):
        if at_roundoff(final, points) and gains[i] != "-":  # the gain is the rounding's, not the flow's
            sigmas[i] += f" ({ROUNDOFF})"
            gains[i] += f" ({roundoff_note(final)})"
    if info.kind in SCAN_GAINS:
        gains = _scan_gains(s.get("table"), *SCAN_GAINS[info.kind])
    ranks = s.get("ranks", 1 if s and info.kind != "study" else None)  # older summaries: one process
    return [info.name or label(info.path), info.kind or "-", status, n, kernel or "-",
            _ranks(_table(s, "study").get("best_legs") if info.kind == "study" else s.get("legs"), ranks),
            *sigmas, *gains, _wall(s)]


def _stopped(s: dict, kind) -> str:
    """summary.json's `stopped` (why the run stopped early); of a scan, each reason its rows (`table`, their
    `stopped`) share said once, with the values of its parameter it applies to: 'scales 0.001, 0.01: REASON', where
    the summary said 'scale 0.001: REASON; scale 0.01: REASON' (a reason repeated for every level of a scan)."""
    text = s["stopped"]
    name = SCANS.get(kind)
    rows = s.get("table") if isinstance(s.get("table"), list) else []
    reasons = sorted({r["stopped"] for r in rows if isinstance(r, dict) and isinstance(r.get("stopped"), str)
                      and r["stopped"]}, key=len, reverse=True)  # the longest first: one may begin another
    if name is None or not reasons:
        return text
    item = rf"{name} ([^\s:;]+): ({'|'.join(map(re.escape, reasons))})"

    def once(run) -> str:
        said = {}  # reason -> the values it is said for, in the summary's order
        for m in re.finditer(item, run.group(0)):
            said.setdefault(m.group(2), []).append(m.group(1))
        return "; ".join(f"{name}{'s' if len(values) > 1 else ''} {', '.join(values)}: {why}"
                         for why, values in said.items())

    return re.sub(rf"{item}(?:; {item})*", once, text)  # each list (stopped flows, levels without a test gain)


def _ranks(legs, ranks) -> str:
    """The rank counts of a resumed run's `legs` in order (summary.json `legs`, or its checkpoint's; a study's: its
    best trial's), 'R1→R2' where a leg ran at another count than the one before, '?' for a leg recorded without its
    count (the steps a run did before legs were recorded); `ranks` (the last run's) for a run of one leg or of one
    count throughout."""
    legs = legs if isinstance(legs, list) else []
    counts = [_num(r) if isinstance(r := g.get("ranks") if isinstance(g, dict) else None, int) and not isinstance(
        r, bool) else "?" for g in legs]
    changes = [c for i, c in enumerate(counts) if i == 0 or c != counts[i - 1]]
    return "→".join(changes) if len(changes) > 1 else _num(ranks)


def _wall(s: dict) -> str:
    """The whole run's wall time, the sum over its legs that the column's heading (WALL) promises, for every row
    alike: each earlier leg's recorded `wall_seconds` plus the last leg's, which is summary.json's `wall_seconds`
    (that leg's run to its end) where the summary is that leg's record, else the leg's own recorded seconds (a run
    killed after its last checkpoint, whose summary is an earlier leg's: `detect` drops its wall_seconds); a run of
    one leg (or a summary written before runs recorded legs): its `wall_seconds_total`, else its `wall_seconds`.
    '(k legs)' follows for a run of several legs, naming those of unknown time (a leg before legs were recorded),
    which the sum leaves out. A summary of several legs holding only the last leg's `wall_seconds` (no
    `wall_seconds_total`) is so summed too, not shown as the last leg's time."""
    legs = s.get("legs") if isinstance(s.get("legs"), list) else []
    if len(legs) < 2:
        return _num(s.get("wall_seconds_total", s.get("wall_seconds")))
    seconds = [g.get("wall_seconds") if isinstance(g, dict) else None for g in legs]
    seconds = [v if isinstance(v, (int, float)) and not isinstance(v, bool) else None for v in seconds]
    last = s.get("wall_seconds")
    if isinstance(last, (int, float)) and not isinstance(last, bool):
        seconds[-1] = last  # the last leg's run to its end (its recorded seconds stop at its last checkpoint write)
    timed = [v for v in seconds if v is not None]
    text = _num(float(sum(timed))) if timed else "-"
    untimed = len(seconds) - len(timed)
    return f"{text} ({len(legs)} legs" + (f", {untimed} of unknown time" if untimed else "") + ")"


#: scan kind -> (its rows' parameter, the gain keys of the train and test cells, the parameter's end shown first):
#: a local_limit run's widest and narrowest width (train gain grows, test gain -> 1 as w -> 0), a noise scan's
#: smallest and largest noise scale (the test gain falls as the test points move away from the train points)
SCAN_GAINS = {"local_limit": ("width", ("gain_train", "gain_test"), max),
              "noise_scan": ("scale", ("gain_train", "gain"), min)}


def _scan_gains(rows, name: str, keys, first) -> list:
    """[train cell, test cell] of a scan summary's table: 'NAME=V: gain' at the two ends of the parameter `name`
    (`first`'s end first); '-' when the table is unusable."""
    rows = [r for r in (rows if isinstance(rows, list) else []) if isinstance(r, dict)
            and isinstance(r.get(name), (int, float)) and not isinstance(r[name], bool)]
    if not rows:
        return ["-", "-"]
    last = min if first is max else max
    ends = [first(rows, key=lambda r: r[name]), last(rows, key=lambda r: r[name])]
    ends = ends[:1] if ends[0] is ends[1] else ends
    short = name[0] if name == "width" else name
    return ["; ".join(f"{short}={_num(float(r[name]))}: {_num(r.get(key))}" for r in ends) for key in keys]


def _study_status(s: dict) -> str:
    """'N trials: a complete, b pruned, ...; best trial k: OBJECTIVE = v' of a study's overview (detect); trials
    RUNNING in the storage whose worker is gone are counted as interrupted and named."""
    from hpcflow.analysis.study import trial_counts

    ov = s.get("study")
    if not isinstance(ov, dict):
        return f"unreadable: {s.get('study_error', 'no study')}"
    text = trial_counts(ov["trials"], ov["states"], ov.get("diverged", 0))
    gone = ov.get("interrupted") or []
    if gone:
        one = len(gone) == 1
        whose = "its run directory's" if one else "their run directories'"
        text += (f" (trial{'' if one else 's'} {', '.join(map(str, gone))} RUNNING in the storage, but no live process "
                 f"holds {whose} lock: the worker was killed; a later hpcflow tune on the study marks "
                 f"{'it' if one else 'them'} failed)")
    if "best_trial" in ov:
        here = " (the numbers of this row)" if len(s) > 1 else ""  # its run directory's summary.json was read
        text += f"; best trial {ov['best_trial']}{here}: {ov['objective'] or 'value'} = {_num(ov['best_value'])}"
        if ov.get("best_run_dir_problem"):
            text += f" ({ov['best_run_dir_problem']})"
        if ov.get("best_inconsistent"):  # its numbers are its data file's, as a run's own row shows them
            text += f"; its run is incomplete: {ov['best_inconsistent']}"
    return text


#: kinds of one flow per table row (the row's parameter) whose summaries of older versions hold no status
SCANS = {"noise_scan": "scale", "local_limit": "width"}


def _status(s: dict, kind) -> str:
    """summary.json's status; for a scan written before scans recorded one, what its rows say: "finished" when
    every flow took all [flow].steps, else "status unknown" naming the rows whose flow ended early."""
    if "status" in s or not s:
        return str(s.get("status", "-"))
    if kind not in SCANS:
        return "finished"  # kinds without flows: summary.json, written last, marks the end
    rows, steps, name = s.get("table"), s.get("steps"), SCANS[kind]
    known = isinstance(rows, list) and rows and isinstance(steps, int) and all(
        isinstance(r, dict) and isinstance(r.get("steps_taken"), int) for r in rows)
    if not known:
        return "status unknown: summary.json records no status (written by an older hpcflow)"
    short = [r for r in rows if r["steps_taken"] < steps]
    if not short:
        return f"finished (no status recorded; every flow took its {steps} steps)"
    which = ", ".join(_num(r.get(name)) for r in short)
    return (f"status unknown: summary.json records no status (written by an older hpcflow); the flows of {name}s "
            f"{which} ended before step {steps}")


def _gain(given, initial, final):
    """`given`, else initial / final when both are nonzero numbers (network summaries hold no gains)."""
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (initial, final))
    return initial / final if given is None and numbers and initial and final else given


def markdown(infos) -> str:
    """The table of the detected runs (directories without data are listed as skipped elsewhere)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    rows = [row(i) for i in infos if i.kind is not None]
    lines += ["| " + " | ".join([md_name(r[0]), *map(md_cell, r[1:])]) + " |" for r in rows]  # a name's ` is text
    return "\n".join(lines) + "\n"
