"""The table of each run's key numbers: sigma initial/final, gains, N, kernel, ranks, wall time."""

from __future__ import annotations

import math

from hpcflow.analysis.rundir import label

COLUMNS = ("run", "kind", "status", "N train / test", "kernel", "ranks", "sigma train", "sigma test",
           "gain train", "gain test", "wall time [s]")


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
    """The table cells of one RunInfo (summary.json keys of flow and nn runs; '-' where absent)."""
    s = info.summary
    cfg = _table(s, "config")
    geo = _table(cfg, "geometry", "points")
    status = _status(s, info.kind) if info.complete else f"incomplete: {info.reason}"
    if info.complete and status not in ("finished", "-") and isinstance(s.get("stopped"), str) and s["stopped"]:
        status = f"{status}: {s['stopped']}"  # diverged, stopped: why
    n_test = s.get("n_test", geo.get("n_test", geo.get("n_val")))
    n = f"{_num(s.get('n_train', geo.get('n_train', geo.get('n_points'))))} / {_num(n_test)}"
    kernel = s.get("kernel") if isinstance(s.get("kernel"), str) else _table(cfg, "kernel").get("name")
    if info.kind == "nn":
        m = _table(cfg, "model")
        kernel = f"network {m.get('depth')}x{m.get('width')} {m.get('activation')}" if m else "network"
    train_i, train_f = s.get("sigma_train_initial"), s.get("sigma_train_final")
    test_i = s.get("sigma_test_initial", s.get("sigma_val_initial"))
    test_f = s.get("sigma_test_final", s.get("sigma_val_final"))
    return [label(info.path), info.kind or "-", status, n, kernel or "-", _num(s.get("ranks", 1 if s else None)),
            _arrow(train_i, train_f), _arrow(test_i, test_f), _num(_gain(s.get("gain_train"), train_i, train_f)),
            _num(_gain(s.get("gain_test"), test_i, test_f)), _num(s.get("wall_seconds"))]


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
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row(i)) + " |" for i in infos if i.kind is not None]
    return "\n".join(lines) + "\n"
