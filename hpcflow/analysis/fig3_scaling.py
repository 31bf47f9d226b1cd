"""Fig. 3 right: min / mean / max nearest-neighbour FS distance (radians) versus N (log-log), our fit d = a N^b of
the mean (and of its N >= [scaling].fit_from part), and for the quintic the paper's eq. 3.7 line 0.968 N^-0.184.

Reads DIR/distances.h5 of a "distance_scaling" job (table/n, table/min, table/mean, table/max).
"""

from __future__ import annotations

import math
import os

import numpy as np

from hpcflow.analysis.figure import new_figure
from hpcflow.analysis.rundir import (DISTANCES, MissingData, check_range, config_table, data_file, read_attrs,
                                     read_datasets, read_summary, same_length)

HINT = "pass the run directory of a distance_scaling job (hpcflow run jobs/distance_scaling.toml --out DIR)"
PAPER = (0.968, -0.184)  # eq. 3.7, the quintic's
#: the real dimension of the paper's manifold, the quintic threefold in P^4: its fit applies to it alone
QUINTIC_REAL_DIM = 6
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
    for stat in STATS:  # a NaN, an inf or a distance <= 0 has no logarithm; an FS distance is at most pi/2 (eq. 3.2)
        check_range(path, f"table/{stat}", out[stat], 0.0, math.pi / 2, what="distance", low_open=True)
    out["fit_from"] = _fit_from(path)
    out["real_dim"] = _real_dim(path)
    out["manifold"] = _manifold(path)
    return out


def _manifold(path) -> str:
    """The run's manifold as its [geometry] (the file's `config` attribute) records it: 'fermat, dim 3', 'dwork, dim
    3, psi 0.5'; '' where it does not."""
    geo = (read_attrs(path, hint=HINT).get("config") or {}).get("geometry")
    if not isinstance(geo, dict) or not isinstance(geo.get("manifold"), str):
        return ""
    dim, psi = geo.get("dim"), geo.get("psi")
    words = [geo["manifold"]]
    if isinstance(dim, int) and not isinstance(dim, bool):
        words.append(f"dim {dim}")
    if geo["manifold"] == "dwork" and isinstance(psi, (int, float)) and not isinstance(psi, bool):
        words.append(f"psi {psi:g}")
    return ", ".join(words)


def _real_dim(path) -> int | None:
    """The real dimension D of the run's manifold, whose uniform density gives d ~ N^(-1/D): -1 / theory_b of the
    run's summary.json (beside `path`), else twice the complex dimension of the [geometry] of the file's `config`
    attribute; None where neither says."""
    from hpcflow.geometry import Hypersurface

    summary = read_summary(os.path.dirname(os.path.abspath(path))) or {}
    b = summary.get("theory_b")
    if isinstance(b, (int, float)) and not isinstance(b, bool) and b < 0 and math.isfinite(b):
        return round(-1.0 / b)
    geo = (read_attrs(path, hint=HINT).get("config") or {}).get("geometry")
    dim = geo.get("dim") if isinstance(geo, dict) else None
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        return None
    return 2 * Hypersurface.fermat(dim).dim  # a Dwork member has the dimension of the Fermat one of its dim


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


def _fit_from_line(data):
    """(fit_from, a, b) of the fit of the mean on N >= [scaling].fit_from, None where the job asks for none or fewer
    than two sizes are that large."""
    start = data.get("fit_from", 0)
    large = data["n"] >= start
    if start <= 0 or len(np.unique(data["n"][large])) < 2:
        return None
    return (start, *fit(data["n"][large], data["mean"][large]))


def _quintic(data) -> bool:
    return data.get("real_dim") == QUINTIC_REAL_DIM


def plot(data):
    fig, (ax,) = new_figure(size=(6.4, 4.6))
    for stat, marker in zip(STATS, ("v", "o", "^")):
        ax.plot(data["n"], data[stat], marker, ls="", label=stat)
    grid = np.geomspace(data["n"].min(), data["n"].max(), 50)
    a, b = fit(data["n"], data["mean"])
    ax.plot(grid, a * grid**b, "-", label=f"fit {a:.3f} N^{b:.3f}")
    if (tail := _fit_from_line(data)) is not None:
        start, a, b = tail
        part = grid[grid >= data["n"][data["n"] >= start].min()]
        ax.plot(part, a * part**b, "-.", label=f"fit N >= {start}: {a:.3f} N^{b:.3f}")
    if _quintic(data):
        ax.plot(grid, PAPER[0] * grid ** PAPER[1], "--", label=f"paper {PAPER[0]} N^{PAPER[1]}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N points")
    ax.set_ylabel("nearest-neighbour FS distance [rad]")
    ax.set_title("Fig. 3 right: distance scaling" + (f" ({data['manifold']})" if data.get("manifold") else ""))
    ax.legend(fontsize="small")
    return fig


def numbers(data) -> list:
    out = []
    for stat in STATS:
        a, b = fit(data["n"], data[stat])
        out.append(f"fit {stat}: a={a:.4g} b={b:.4g}")
    if (tail := _fit_from_line(data)) is not None:
        out.append("fit mean (N >= {}): a={:.4g} b={:.4g}".format(*tail))
    if _quintic(data):
        out.append(f"paper mean: a={PAPER[0]} b={PAPER[1]} (eq. 3.7)")
    if (dim := data.get("real_dim")) is not None:
        out.append(f"uniform density on real dim {dim}: b=-1/{dim}")
    return out
