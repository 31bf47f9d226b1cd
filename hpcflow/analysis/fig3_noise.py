"""Fig. 3 left: factor gained in the sigma loss versus the mean shortest FS distance of the noised test points
to the train points (the paper's axis), per kernel.

Reads DIR/noise_scan.h5 of "noise_scan" jobs (table/mean_distance_to_nearest_train, table/gain, and
table/mean_distance_to_source, printed alongside; one job per kernel or reading).
"""

from __future__ import annotations

import numpy as np

from hpcflow.analysis.figure import new_figure
from hpcflow.analysis.rundir import NOISE_SCAN, data_file, label, read_attrs, read_datasets

HINT = "pass the run directory of a noise_scan job (hpcflow run jobs/noise_scan.toml --out DIR)"
COLUMNS = ("table/scale", "table/mean_distance_to_nearest_train", "table/mean_distance_to_source", "table/gain")


def load(run_dir) -> dict:
    """{'kernel', 'label', 'scale', 'distance' (to the nearest train point), 'distance_to_source', 'gain'} of one
    noise scan (gain = sigma_FS / sigma_final of the test points)."""
    path = data_file(run_dir, NOISE_SCAN, hint=HINT)
    d = read_datasets(path, COLUMNS, hint=HINT)
    cfg = read_attrs(path).get("config") or {}
    kernel = (cfg.get("kernel") or {}).get("name", "?") if isinstance(cfg, dict) else "?"
    return {"kernel": kernel, "label": label(run_dir), "scale": d["table/scale"],
            "distance": d["table/mean_distance_to_nearest_train"],
            "distance_to_source": d["table/mean_distance_to_source"], "gain": d["table/gain"]}


def plot(scans):
    """One line per scan (log gain versus FS distance; symlog distance axis so that distance 0 shows)."""
    fig, (ax,) = new_figure(size=(6.4, 4.6))
    positive = []
    for s in scans:
        ax.plot(s["distance"], s["gain"], "o-", label=f"{s['kernel']} ({s['label']})")
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
    """One line per scan and noise level: kernel, scale, mean distances (nearest train point, source), gain."""
    return [f"{s['label']} [{s['kernel']}] scale={sc:g} d_nn={d:.4g} d_src={ds:.4g} gain={g:.4g}"
            for s in scans for sc, d, ds, g in zip(s["scale"], s["distance"], s["distance_to_source"], s["gain"])]
