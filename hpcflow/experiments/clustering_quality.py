"""Job kind "clustering": batched vs unbatched FS clustering vs Birch, silhouettes and Fig. 2 data (§3.1).

Samples N points on the manifold, clusters them three ways (batched §3.1 / eq. 3.3, full average linkage,
Birch on Euclidean features), scores each with the silhouette on FS distances (paper, 1000 points, 10
clusters, 5 batches: .016, -.011, -.032) and writes DIR/fig2_distances.h5 with the FS distance matrix
unordered and ordered cluster by cluster (batched, full) for `analysis/fig2_heatmaps.py`.
"""

from __future__ import annotations

import os
import time
import warnings

import numpy as np

from hpcflow.errors import ConfigError
from hpcflow.cluster.birch import THRESHOLD, THRESHOLD_MAX
from hpcflow.cluster.quality import MIN_SAMPLE
from hpcflow.experiments.common import file_attrs
from hpcflow.jobs.schema import (JOB_SECTION, MANIFOLD_FIELDS, MAX_BATCHES, MAX_BATCHES_FIELD, MAX_DIM, SEED_MAX,
                                 Field, batches_said, chart_pair, named_keys, projective_coordinates,
                                 refuse_inapplicable, zero_or_at_least)

#: the silhouette scores the paper reports for this experiment (§3.1)
PAPER_SILHOUETTE = {"batched": 0.016, "full": -0.011, "birch": -0.032}
#: the Fig. 2 file stores N x N matrices; above this N it is skipped (the full method is capped too)
FIG2_MAX_POINTS = 5000
FIG2_FILE = "fig2_distances.h5"
#: the `conventions` attribute of fig2_distances.h5
FIG2_CONVENTIONS = ("points: homogeneous coordinates (see hpcflow.geometry); distance: FS geodesic distance matrix "
                    "d(z, z') = arccos(|<z,z'>| / (|z||z'|)) (eq. 3.2) in sampling order; distance_batched / "
                    "distance_full: the same matrix with rows and columns in order/batched / order/full (points "
                    "grouped cluster by cluster); labels/METHOD: each point's cluster; attributes silhouette_METHOD: "
                    "mean silhouette with the FS distance over sample_rows rows (N: exact; [quality].sample_size rows "
                    "drawn when set: an estimate), stderr_METHOD: its standard error (0 when exact)")


SCHEMA = {
    "job": JOB_SECTION,
    "points": {
        **MANIFOLD_FIELDS,
        "n_points": Field(int, 1000, lo=2, hi=20000, help="points clustered (<= 20000: full method)"),
        "seed": Field(int, 0, lo=0, hi=SEED_MAX, help="sampling seed"),
        "chart": Field(list, None, items=int, check=chart_pair, lo=0, hi=MAX_DIM + 1, within=projective_coordinates,
                       help="[I, J] to sample one chart; omit for all"),
        "max_batches": MAX_BATCHES_FIELD,
    },
    "clustering": {
        "n_clusters": Field(int, 10, lo=2, help="clusters k (per mini-batch and in total)"),
        "batch_size": Field(int, 200, lo=2, help="mini-batch size B (1000 points / 200 = 5 batches)"),
        "seed": Field(int, 0, lo=0, hi=SEED_MAX, help="seed of the mini-batch shuffle"),
        "merge": Field(str, "nearest", choices=("nearest", "paper"),
                       help="eq. 3.3: each batch cluster picks its nearest seed, or 'paper' as printed"),
        "birch_threshold": Field(float, THRESHOLD, lo=0, lo_open=True, hi=THRESHOLD_MAX,
                                 help="Birch subcluster radius in feature units"),
    },
    "quality": {
        "sample_size": Field(int, 0, lo=0, check=zero_or_at_least(MIN_SAMPLE, "every point, exact", "the standard "
                                                                  "error of a subsample needs two rows"),
                             help="silhouette rows, at most n_points (0 = all points, exact)"),
        "seed": Field(int, 0, lo=0, hi=SEED_MAX, help="seed of the silhouette row subsample"),
        "fig2": Field(bool, True, help="write the Fig. 2 distance matrices (N <= 5000)"),
    },
}


def check(cfg: dict, source: str = "job") -> None:
    """Cross-field checks (k within the smallest mini-batch, Fig. 2 size, silhouette rows within the points, chart;
    a row-subsample seed with sample_size = 0 is refused), run by the registry before any work."""
    from hpcflow.cluster import check_settings

    n, cl = cfg["points"]["n_points"], cfg["clustering"]
    if cl["n_clusters"] > n - 1:  # the silhouette needs 2 <= clusters <= N - 1 (a point alone in each: no score)
        raise ConfigError(f"{source}: [clustering].n_clusters = {cl['n_clusters']} with [points].n_points = {n}: the "
                          f"silhouette needs at most N - 1 = {n - 1} clusters; lower n_clusters or raise n_points")
    try:
        check_settings(n, method="batched", n_clusters=cl["n_clusters"], batch_size=cl["batch_size"],
                       merge=cl["merge"])
    except ConfigError as exc:
        said = named_keys(str(exc), "clustering", ("n_clusters", "batch_size", "merge"))
        raise ConfigError(f"{source}: clustering the [points].n_points = {n} points: {said}") from None
    rows = cfg["quality"]["sample_size"]
    if rows > n:  # the silhouette averages rows drawn without replacement from the N points clustered
        raise ConfigError(f"{source}: [quality].sample_size = {rows} with [points].n_points = {n}: the silhouette "
                          f"draws its rows from the {n} points, so at most {n}; lower sample_size or set 0 (every "
                          "point, exact)")
    if rows == 0:  # every point is a row: no subsample to seed
        refuse_inapplicable(cfg, "quality", SCHEMA["quality"], ("seed",), "sample_size = 0 (the exact silhouette "
                            "over every point draws no rows)", "set sample_size to the rows to draw", source)
    if cfg["quality"]["fig2"] and n > FIG2_MAX_POINTS:
        raise ConfigError(f"{source}: [quality].fig2 = true needs [points].n_points <= {FIG2_MAX_POINTS} (N^2 "
                          f"matrices), not {n}; set fig2 = false")
    chart = cfg["points"]["chart"]
    if chart is not None and max(chart) > cfg["points"]["dim"] + 1:
        raise ConfigError(f"{source}: [points].chart = {chart} needs indices <= {cfg['points']['dim'] + 1} "
                          f"([points].dim = {cfg['points']['dim']}); change it")


def _sample(pts: dict):
    from hpcflow.geometry import Hypersurface

    X = Hypersurface.dwork(pts["dim"], pts["psi"]) if pts["manifold"] == "dwork" else Hypersurface.fermat(pts["dim"])
    chart = None if pts["chart"] is None else tuple(pts["chart"])
    return X.sample(pts["n_points"], seed=pts["seed"], chart=chart, max_batches=pts.get("max_batches", MAX_BATCHES),
                    batches_said=batches_said("points"))


def run(cfg: dict, outdir, *, source: str = "job") -> dict:
    """Cluster, score and write DIR/fig2_distances.h5; ConfigError naming `source` (the job file) and the key when a
    method leaves fewer than two clusters (Birch with a large threshold): no silhouette exists then."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import adjusted_rand_score

    from hpcflow.cluster import batched_clustering, birch_clustering, full_clustering, silhouette_fs
    from hpcflow.cluster.batched import merge_census
    from hpcflow.geometry import fs_distance
    from hpcflow.jobs.output import write_hdf5
    from hpcflow.parallel.comm import is_root, raise_together

    check(cfg, source)
    cl, q = cfg["clustering"], cfg["quality"]
    z = _sample(cfg["points"]).points
    k = cl["n_clusters"]
    runs = {  # Birch (cheap, and the one that may find too few clusters) runs first; reported in the paper's order
        "birch": lambda: birch_clustering(z, n_clusters=k, threshold=cl["birch_threshold"]),
        "batched": lambda: batched_clustering(z, n_clusters=k, batch_size=cl["batch_size"], seed=cl["seed"],
                                              merge=cl["merge"]),
        "full": lambda: full_clustering(z, n_clusters=k),
    }
    # status: summary.json's field of every kind; this job has no early stop (a signal ends it without a summary)
    summary, results, seconds = {"status": "finished", "n_points": len(z), "n_clusters": k,
                                 "batch_size": cl["batch_size"], "merge": cl["merge"],
                                 "paper_silhouette": PAPER_SILHOUETTE}, {}, {}
    for name, fn in runs.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # Birch's "fewer subclusters than n_clusters" becomes the line below
            warnings.simplefilter("ignore", ConvergenceWarning)
            res = results[name] = fn()
        seconds[name] = time.perf_counter() - t0
        found = int(np.unique(res.labels).size)
        why = f" ([clustering].birch_threshold = {cl['birch_threshold']:g} is large for these points)" if (
            name == "birch") else ""
        if 2 <= found < k and is_root():
            print(f"clustering: {name} found {found} of the {k} clusters asked for{why}; its silhouette is of {found} "
                  "clusters", flush=True)
        if found < 2:
            key = (f"birch_threshold = {cl['birch_threshold']:g}" if name == "birch" else f"n_clusters = {k}")
            fix = "lower birch_threshold" if name == "birch" else "raise n_clusters"
            raise_together(ConfigError(  # every rank clusters the same points (the sample's "all" layout)
                f"{source}: [clustering].{key}: {name} clustering found {found} cluster of the {k} asked for, and "
                f"the silhouette needs 2 <= clusters <= N - 1; {fix}"))
    for name in PAPER_SILHOUETTE:
        res = results[name]
        sil = silhouette_fs(z, res.labels, sample_size=q["sample_size"] or None, seed=q["seed"])
        summary[f"silhouette_{name}"] = sil.score
        summary[f"silhouette_{name}_stderr"] = sil.stderr
        summary[f"cluster_sizes_{name}"] = res.sizes().tolist()
        summary[f"seconds_{name}"] = seconds[name]
    summary["n_batches"] = int(results["batched"].batch_index.max()) + 1
    summary["merge_census"] = merge_census(results["batched"])
    summary["silhouette_rows"] = sil.n_rows
    summary["adjusted_rand_batched_vs_full"] = float(adjusted_rand_score(results["full"].labels,
                                                                         results["batched"].labels))
    if q["fig2"]:
        d = fs_distance(z)
        ob, of = results["batched"].order(), results["full"].order()
        datasets = {"points": z, "distance": d, "distance_batched": d[np.ix_(ob, ob)],
                    "distance_full": d[np.ix_(of, of)], "order/batched": ob, "order/full": of}
        datasets.update({f"labels/{m}": r.labels for m, r in results.items()})
        # the standard errors and row count not named silhouette_*: readers take every silhouette_* as a score
        attrs = {**file_attrs("hpcflow.clustering_fig2"),
                 **{f"silhouette_{m}": summary[f"silhouette_{m}"] for m in PAPER_SILHOUETTE},
                 **{f"stderr_{m}": summary[f"silhouette_{m}_stderr"] for m in PAPER_SILHOUETTE},
                 "sample_rows": summary["silhouette_rows"]}
        attrs.update(description="Fig. 2 (sec. 3.1): FS distance matrix of the points, unordered and ordered "
                                 "cluster by cluster (batched eq. 3.3 / full average linkage)",
                     n_batches=summary["n_batches"], n_clusters=k, config=cfg, conventions=FIG2_CONVENTIONS)
        write_hdf5(os.path.join(outdir, FIG2_FILE), datasets, attrs=attrs)
        summary["fig2_file"] = FIG2_FILE
    return summary
