"""Distance scaling (Fig. 3 right): nearest-neighbour FS distances of N sampled points and d = a N^b.

For each N, nearest neighbours are searched on `projector_features` f (|f - f'| = sqrt(2) sin d_FS, monotone in
d_FS, and f.f' = cos^2 d_FS). method="tree": exact KD-tree, O(N log N) only asymptotically: in the
24-dimensional feature space it is slow at N ~ 1e4-1e5 (see BENCHMARKS.md). method="brute": tiled BLAS
products f_q . f over all points (argmax of cos^2 d), O(Q N) for Q query points and bounded memory; with
`queries` > 0 and N > queries only a random subset of Q points is queried (against all N): the mean and
quantiles are then unbiased Monte Carlo estimates, min and max are over the queried points only. The FS
distance of each found pair is recomputed with the stable paired formula (a near-tie closer than ~1e-8 in
d may pick either neighbour). min/mean/max over points are fitted by least squares in log-log space: log d = log a + b log N,
with standard errors from the residuals (paper, eq. 3.7: a = 0.968, b = -0.184 for the mean; a uniform
density on a real 6-dimensional X gives b = -1/6).
"""

from __future__ import annotations

import os
import time

import numpy as np

from hpcflow.experiments.common import manifold
from hpcflow.errors import ConfigError
from hpcflow.jobs.schema import JOB_SECTION, MANIFOLD_FIELDS, MAX_THREADS, SEED_MAX, Field


def _sizes(v):
    """A power law d = a N^b needs at least two different sizes; a repeated size is what `repeats` is for."""
    if len(set(v)) < 2:
        return "must list at least two different sizes N to fit d = a N^b"
    return None if len(set(v)) == len(v) else "repeats a size; list each N once and set [scaling].repeats"


SCHEMA = {
    "job": JOB_SECTION,
    "geometry": {
        **MANIFOLD_FIELDS,
    },
    "scaling": {
        "n_points": Field(list, [100, 1000, 10000, 100000], items=int, check=_sizes, lo=2,
                          help="sample sizes N"),
        "repeats": Field(int, 1, lo=1, hi=1000, help="independent samples per N (seed + 1000 i + repeat)"),
        "seed": Field(int, 0, lo=0, hi=SEED_MAX),
        "workers": Field(int, 1, lo=1, hi=MAX_THREADS, help="threads for the KD-tree queries"),
        "method": Field(str, "brute", choices=("brute", "tree"), help="neighbour search (see module docstring)"),
        "queries": Field(int, 0, lo=0,
                         help="brute only: query this many random points per N when N is larger (0 = all)"),
        "fit_from": Field(int, 0, lo=0,
                          help="also fit the mean on N >= fit_from only (the asymptotic regime); 0 = no"),
    },
}


def check(cfg: dict, source: str = "job") -> None:
    """Cross-field checks, before any work: a `fit_from` fit needs two different sizes N >= fit_from."""
    sc = cfg["scaling"]
    if sc["fit_from"] > 0 and len({n for n in sc["n_points"] if n >= sc["fit_from"]}) < 2:
        raise ConfigError(f"{source}: [scaling].fit_from = {sc['fit_from']} leaves fewer than two sizes N >= fit_from "
                          "to fit; lower it or set 0")


def nearest_neighbour_distance(points, *, workers: int = 1) -> np.ndarray:
    """FS distance from each point to its nearest other point, O(N log N) with a KD-tree."""
    from scipy.spatial import cKDTree

    from hpcflow.geometry.distance import fs_distance_paired, projector_features

    feats = projector_features(points)
    _, idx = cKDTree(feats).query(feats, k=2, workers=workers)
    # column 0 is the point itself unless it has an exact duplicate; take the other index
    self_idx = np.arange(len(points))
    nn = np.where(idx[:, 0] == self_idx, idx[:, 1], idx[:, 0])
    return fs_distance_paired(points, points[nn])


def nearest_neighbour_brute(points, query_idx=None, *, tile_q: int = 512, tile_s: int = 65536):
    """FS distance from each query point (default: all) to its nearest other point, by tiled BLAS products.

    Maximises f_q . f = cos^2 d over all points except the query itself; memory O(tile_q * tile_s).
    """
    from hpcflow.geometry.distance import fs_distance_paired, projector_features

    feats = projector_features(points)
    n = len(points)
    q_idx = np.arange(n) if query_idx is None else np.asarray(query_idx)
    best = np.full(len(q_idx), -np.inf)
    arg = np.zeros(len(q_idx), dtype=np.int64)
    for qs in range(0, len(q_idx), tile_q):
        q = q_idx[qs:qs + tile_q]
        fq = feats[q]
        rows = np.arange(len(q))
        for ss in range(0, n, tile_s):
            c = fq @ feats[ss:ss + tile_s].T
            own = (q >= ss) & (q < ss + c.shape[1])
            c[rows[own], q[own] - ss] = -np.inf
            j = np.argmax(c, axis=1)
            cj = c[rows, j]
            better = cj > best[qs:qs + tile_q]
            best[qs:qs + tile_q][better] = cj[better]
            arg[qs:qs + tile_q][better] = j[better] + ss
    return fs_distance_paired(points[q_idx], points[arg])


def power_law_fit(n, d) -> dict:
    """Least-squares fit log d = log a + b log n; returns a, b, their standard errors and the residual rms.

    Standard errors come from the residual variance (n_points - 2 degrees of freedom); a's error is
    propagated from log a (a_err = a * se(log a)).
    """
    x, y = np.log(np.asarray(n, dtype=float)), np.log(np.asarray(d, dtype=float))
    A = np.stack([np.ones_like(x), x], axis=1)
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    resid = y - A @ coef
    dof = len(x) - 2
    s2 = float(resid @ resid / dof) if dof > 0 else float("nan")
    cov = s2 * np.linalg.inv(A.T @ A)
    a = float(np.exp(coef[0]))
    return {"a": a, "b": float(coef[1]), "a_err": a * float(np.sqrt(cov[0, 0])), "b_err": float(np.sqrt(cov[1, 1])),
            "log_rms_residual": float(np.sqrt(np.mean(resid**2)))}


def run(cfg, outdir) -> dict:
    from hpcflow.jobs.output import write_hdf5

    X = manifold(cfg["geometry"])
    sc = cfg["scaling"]
    rows, datasets = [], {}
    for i, n_pts in enumerate(sc["n_points"]):
        for rep in range(sc["repeats"]):
            seed = sc["seed"] + 1000 * i + rep  # independent samples per N (same-seed samples would be nested)
            t0 = time.perf_counter()
            ps = X.sample(n_pts, seed=seed)
            t1 = time.perf_counter()
            n_q = n_pts
            if sc["method"] == "tree":
                d = nearest_neighbour_distance(ps.points, workers=sc["workers"])
            else:
                q = None
                if 0 < sc["queries"] < n_pts:
                    q = np.sort(np.random.default_rng(seed).choice(n_pts, sc["queries"], replace=False))
                    n_q = sc["queries"]
                d = nearest_neighbour_brute(ps.points, q)
            rows.append({"n": int(n_pts), "seed": seed, "n_queries": int(n_q), "min": float(d.min()),
                         "mean": float(d.mean()), "mean_err": float(d.std() / np.sqrt(len(d))),
                         "max": float(d.max()), "median": float(np.median(d)), "sample_seconds": t1 - t0,
                         "neighbour_seconds": time.perf_counter() - t1})
            datasets[f"nn_distance/N{n_pts}_seed{seed}"] = d
            print(f"distance_scaling: N={n_pts} seed={seed} queries={n_q} min={d.min():.4g} mean={d.mean():.4g} "
                  f"max={d.max():.4g} ({time.perf_counter() - t1:.1f} s)", flush=True)
    n = [r["n"] for r in rows]
    fits = {stat: power_law_fit(n, [r[stat] for r in rows]) for stat in ("mean", "min", "max")}
    for key in ("n", "seed", "n_queries", "min", "mean", "mean_err", "max", "median"):
        datasets[f"table/{key}"] = np.array([r[key] for r in rows])
    large = [r for r in rows if r["n"] >= sc["fit_from"]]
    if sc["fit_from"] > 0 and len({r["n"] for r in large}) >= 2:
        fits["mean_from"] = power_law_fit([r["n"] for r in large], [r["mean"] for r in large])
        fits["mean_from"]["fit_from"] = sc["fit_from"]
    write_hdf5(os.path.join(outdir, "distances.h5"), datasets, attrs={"config": cfg, "fits": fits})
    return {"table": rows, "fit_mean": fits["mean"], "fit_min": fits["min"], "fit_max": fits["max"],
            "fit_mean_from": fits.get("mean_from"),
            "paper_fit_mean": {"a": 0.968, "b": -0.184}, "theory_b": -1.0 / 6.0}
