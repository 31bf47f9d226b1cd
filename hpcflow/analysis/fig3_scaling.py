"""Fig. 3 right: min / mean / max nearest-neighbour FS distance versus N (log-log), our fit d = a N^b of the
mean and the paper's eq. 3.7 line 0.968 N^-0.184.

Reads DIR/distances.h5 of a "distance_scaling" job (table/n, table/min, table/mean, table/max).
"""

from __future__ import annotations

import numpy as np

from hpcflow.analysis.figure import new_figure
from hpcflow.analysis.rundir import (DISTANCES, MissingData, config_table, data_file, read_attrs, read_datasets,
                                     same_length)

HINT = "pass the run directory of a distance_scaling job (hpcflow run jobs/distance_scaling.toml --out DIR)"
PAPER = (0.968, -0.184)  # eq. 3.7
STATS = ("min", "mean", "max")


def load(run_dir) -> dict:
    """{'n', 'min', 'mean', 'max'}: one entry per sample (N, seed)."""
    path = data_file(run_dir, DISTANCES, hint=HINT)
    names = [f"table/{k}" for k in ("n", *STATS)]
    d = read_datasets(path, names, hint=HINT, ndim=dict.fromkeys(names, 1))
    same_length(path, d, names, hint=HINT)
    out = {k: np.asarray(d[f"table/{k}"], dtype=float) for k in ("n", *STATS)}
    if len(np.unique(out["n"])) < 2 or not (out["n"] > 0).all():
        raise MissingData(f"{path}: dataset 'table/n' holds {len(np.unique(out['n']))} distinct size(s) "
                          f"{np.unique(out['n'])[:5].tolist()}; a fit needs two or more positive sizes; {HINT}")
    for stat in STATS:  # the log-log fit of a NaN, an inf or a distance <= 0 is NaN or meaningless
        bad = ~(np.isfinite(out[stat]) & (out[stat] > 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise MissingData(f"{path}: dataset 'table/{stat}' holds {float(out[stat][i])!r} at row {i}, not a finite "
                              "distance > 0: the file is damaged; rerun the job with --force")
    out["fit_from"] = _fit_from(path)
    return out


def _fit_from(path) -> int:
    """[scaling].fit_from of the job configuration (root attribute `config`; 0 where the file, or its job, has none);
    MissingData naming the file and the entry where it is not a whole number >= 0 or its table is not a table."""
    cfg = read_attrs(path, hint=HINT).get("config")
    if cfg is None:
        return 0
    if not isinstance(cfg, dict):
        raise MissingData(f"{path}: attribute 'config' is not a JSON object; {HINT}")
    if cfg.get("scaling") is None:
        return 0
    value = config_table(cfg, "scaling", path, hint=HINT).get("fit_from")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MissingData(f"{path}: config [scaling].fit_from = {value!r} is not a whole number >= 0; {HINT}")
    return value


def fit(n, d) -> tuple[float, float]:
    """(a, b) of the least-squares line log d = log a + b log N."""
    b, log_a = np.polyfit(np.log(n), np.log(d), 1)
    return float(np.exp(log_a)), float(b)


def plot(data):
    fig, (ax,) = new_figure(size=(6.4, 4.6))
    for stat, marker in zip(STATS, ("v", "o", "^")):
        ax.plot(data["n"], data[stat], marker, ls="", label=stat)
    grid = np.geomspace(data["n"].min(), data["n"].max(), 50)
    a, b = fit(data["n"], data["mean"])
    ax.plot(grid, a * grid**b, "-", label=f"fit {a:.3f} N^{b:.3f}")
    ax.plot(grid, PAPER[0] * grid ** PAPER[1], "--", label=f"paper {PAPER[0]} N^{PAPER[1]}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N points")
    ax.set_ylabel("nearest-neighbour FS distance")
    ax.set_title("Fig. 3 right: distance scaling")
    ax.legend(fontsize="small")
    return fig


def numbers(data) -> list:
    out = []
    for stat in STATS:
        a, b = fit(data["n"], data[stat])
        out.append(f"fit {stat}: a={a:.4g} b={b:.4g}")
    large = data["n"] >= data.get("fit_from", 0)
    if data.get("fit_from", 0) > 0 and len(np.unique(data["n"][large])) >= 2:
        a, b = fit(data["n"][large], data["mean"][large])
        out.append(f"fit mean (N >= {data['fit_from']}): a={a:.4g} b={b:.4g}")
    return out + [f"paper mean: a={PAPER[0]} b={PAPER[1]} (eq. 3.7); uniform density on real dim 6: b=-1/6"]
