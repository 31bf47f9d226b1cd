"""Fig. 3 left: factor gained in the sigma loss versus the mean shortest FS distance of the noised test points
to the train points (the paper's axis), per kernel.

Reads DIR/noise_scan.h5 of "noise_scan" jobs (table/mean_distance_to_nearest_train, table/gain, and
table/mean_distance_to_source, printed alongside; one job per kernel or reading). A level whose flow stopped
for a numerical reason (table/stopped, table/steps_taken) is marked with a cross in the figure and its reason in
the printed line: its gain is that of its last finite step, not of the scan's [flow].steps.
"""

from __future__ import annotations

import numpy as np

from hpcflow.analysis.figure import new_figure
from hpcflow.analysis.rundir import NOISE_SCAN, data_file, label, read_attrs, read_datasets, read_strings, same_length

HINT = "pass the run directory of a noise_scan job (hpcflow run jobs/noise_scan.toml --out DIR)"
COLUMNS = ("table/scale", "table/mean_distance_to_nearest_train", "table/mean_distance_to_source", "table/gain")
STEPS = "table/steps_taken"  # with table/stopped (text): absent in files of older versions


def load(run_dir) -> dict:
    """{'kernel', 'label', 'scale', 'distance' (to the nearest train point), 'distance_to_source', 'gain'} of one
    noise scan (gain = sigma_FS / sigma_final of the test points)."""
    path = data_file(run_dir, NOISE_SCAN, hint=HINT)
    d = read_datasets(path, COLUMNS, hint=HINT, optional=(STEPS,), ndim=dict.fromkeys((*COLUMNS, STEPS), 1))
    stopped = read_strings(path, "table/stopped", hint=HINT)
    if stopped is not None:
        d["table/stopped"] = stopped
    n = same_length(path, d, (*COLUMNS, STEPS, "table/stopped"), hint=HINT)
    cfg = read_attrs(path).get("config") or {}
    kernel = (cfg.get("kernel") or {}).get("name", "?") if isinstance(cfg, dict) else "?"
    kernel = kernel if isinstance(kernel, str) else "?"
    stopped = d.get("table/stopped", [""] * n)
    steps = [int(v) for v in d.get(STEPS, [-1] * n)]
    return {"kernel": kernel, "label": label(run_dir), "scale": d["table/scale"],
            "distance": d["table/mean_distance_to_nearest_train"],
            "distance_to_source": d["table/mean_distance_to_source"], "gain": d["table/gain"],
            "stopped": stopped, "steps_taken": steps}


def _stopped_mask(scan):
    return np.array([bool(s) for s in scan.get("stopped", [""] * len(scan["gain"]))], dtype=bool)


def plot(scans):
    """One line per scan (log gain versus FS distance; symlog distance axis so that distance 0 shows)."""
    fig, (ax,) = new_figure(size=(6.4, 4.6))
    positive = []
    crossed = False
    for s in scans:
        (line,) = ax.plot(s["distance"], s["gain"], "o-", label=f"{s['kernel']} ({s['label']})")
        bad = _stopped_mask(s)
        if bad.any():
            ax.plot(s["distance"][bad], s["gain"][bad], "x", color="red", ms=11, mew=2,
                    label=None if crossed else "flow stopped (gain of its last finite step)")
            crossed = True
        positive.extend(s["distance"][s["distance"] > 0])
    ax.set_xscale("symlog", linthresh=min(positive) if positive else 1e-3)
    ax.set_yscale("log")
    ax.axhline(1.0, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("mean FS distance of test points to the nearest train point")
    ax.set_ylabel("gain  sigma_FS / sigma_final (test)")
    ax.set_title("Fig. 3 left: noise scan")
    ax.legend(fontsize="small")
    return fig


def numbers(scans) -> list:
    """One line per scan and noise level: kernel, scale, mean distances (nearest train point, source), gain; a
    level whose flow stopped says so."""
    out = []
    for s in scans:
        n = len(s["gain"])
        for sc, d, ds, g, why, k in zip(s["scale"], s["distance"], s["distance_to_source"], s["gain"],
                                         s.get("stopped", [""] * n), s.get("steps_taken", [-1] * n)):
            mark = f" (flow stopped after step {k}: {why})" if why else ""
            out.append(f"{s['label']} [{s['kernel']}] scale={sc:g} d_nn={d:.4g} d_src={ds:.4g} gain={g:.4g}{mark}")
    return out
