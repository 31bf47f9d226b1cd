"""Distance scaling (Fig. 3 right): nearest-neighbour FS distances of N sampled points and d = a N^b.

For each N, every point's nearest neighbour is found with a KD-tree on `projector_features` (Euclidean
distance sqrt(2) sin d_FS is monotone in d_FS), and its FS distance is recomputed with the stable paired
formula. min/mean/max over points are fitted by least squares in log-log space: log d = log a + b log N,
with standard errors from the residuals (paper, eq. 3.7: a = 0.968, b = -0.184 for the mean; a uniform
density on a real 6-dimensional X gives b = -1/6).
"""

from __future__ import annotations

import os

import numpy as np

from hpcflow.experiments.common import manifold
from hpcflow.jobs.schema import JOB_SECTION, Field, at_least


def _sizes(v):
    return None if v and min(v) >= 2 else "must be a non-empty list of sizes >= 2"


SCHEMA = {
    "job": JOB_SECTION,
    "geometry": {
        "manifold": Field(str, "fermat", choices=("fermat", "dwork")),
        "dim": Field(int, 3, check=at_least(1)),
        "psi": Field(float, 0.0),
    },
    "scaling": {
        "n_points": Field(list, [100, 1000, 10000, 100000], items=int, check=_sizes,
                          help="sample sizes N"),
        "repeats": Field(int, 1, check=at_least(1), help="independent samples per N (seed + 1000 i + repeat)"),
        "seed": Field(int, 0, check=at_least(0)),
        "workers": Field(int, 1, check=at_least(1), help="threads for the KD-tree queries"),
        "fit_from": Field(int, 0, check=at_least(0),
                          help="also fit the mean on N >= fit_from only (the asymptotic regime); 0 = no"),
    },
}


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
            ps = X.sample(n_pts, seed=seed)
            d = nearest_neighbour_distance(ps.points, workers=sc["workers"])
            rows.append({"n": int(n_pts), "seed": seed, "min": float(d.min()), "mean": float(d.mean()),
                         "max": float(d.max()), "median": float(np.median(d))})
            datasets[f"nn_distance/N{n_pts}_seed{seed}"] = d
            print(f"distance_scaling: N={n_pts} seed={seed} min={d.min():.4g} mean={d.mean():.4g} max={d.max():.4g}",
                  flush=True)
    n = [r["n"] for r in rows]
    fits = {stat: power_law_fit(n, [r[stat] for r in rows]) for stat in ("mean", "min", "max")}
    for key in ("n", "seed", "min", "mean", "max", "median"):
        datasets[f"table/{key}"] = np.array([r[key] for r in rows])
    large = [r for r in rows if r["n"] >= sc["fit_from"]]
    if sc["fit_from"] > 0 and len({r["n"] for r in large}) >= 2:
        fits["mean_from"] = power_law_fit([r["n"] for r in large], [r["mean"] for r in large])
        fits["mean_from"]["fit_from"] = sc["fit_from"]
    write_hdf5(os.path.join(outdir, "distances.h5"), datasets, attrs={"config": cfg, "fits": fits})
    return {"table": rows, "fit_mean": fits["mean"], "fit_min": fits["min"], "fit_max": fits["max"],
            "fit_mean_from": fits.get("mean_from"),
            "paper_fit_mean": {"a": 0.968, "b": -0.184}, "theory_b": -1.0 / 6.0}
