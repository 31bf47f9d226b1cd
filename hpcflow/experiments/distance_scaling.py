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
density on a real 6-dimensional X gives b = -1/6; on a hypersurface in P^n, of real dimension 2(n-1), b = -1/(2(n-1))).
`[geometry] chart = [I, J]` samples inside one chart only (the paper's setting, sec. 3.1); default all charts.
Under MPI the points are sampled distributed (bitwise the same set for every R), each rank searches its share
for every queried point and the candidates are reduced (smallest distance, ties to the lowest index), so the
output does not depend on R.
"""

from __future__ import annotations

import os
import time

import numpy as np

from hpcflow.experiments.common import file_attrs, manifold
from hpcflow.arguments import api_integer, api_keys
from hpcflow.geometry.sampling import agreed, sample_checked, sampling_arguments
from hpcflow.errors import ConfigError
from hpcflow.jobs.schema import (JOB_SECTION, MANIFOLD_FIELDS, MAX_BATCHES, MAX_BATCHES_FIELD, MAX_DIM, MAX_THREADS,
                                 SEED_MAX, Field, batches_said, chart_pair, projective_coordinates, refuse_inapplicable,
                                 shown, zero_or_at_least)


def _sizes(v):
    """A power law d = a N^b needs at least two different sizes; a repeated size is what `repeats` is for."""
    if len(set(v)) < 2:
        return "must list at least two different sizes N to fit d = a N^b"
    return None if len(set(v)) == len(v) else "repeats a size; list each N once and set [scaling].repeats"


SCHEMA = {
    "job": JOB_SECTION,
    "geometry": {
        **MANIFOLD_FIELDS,
        "chart": Field(list, None, items=int, check=chart_pair, lo=0, hi=MAX_DIM + 1, within=projective_coordinates,
                       help="[I, J]: sample inside this one chart only, as the paper does (default: all charts)"),
        "max_batches": MAX_BATCHES_FIELD,
    },
    "scaling": {
        "n_points": Field(list, [100, 1000, 10000, 100000], items=int, check=_sizes, lo=2,
                          help="sample sizes N"),
        "repeats": Field(int, 1, lo=1, hi=1000, help="independent samples per N (seed + 1000 i + repeat)"),
        "seed": Field(int, 0, lo=0, hi=SEED_MAX),
        "workers": Field(int, 1, lo=1, hi=MAX_THREADS, help="threads for the KD-tree queries"),
        "method": Field(str, "brute", choices=("brute", "tree"), help="neighbour search (see module docstring)"),
        "queries": Field(int, 0, lo=0, check=zero_or_at_least(2, "query every point", "one queried point has no "
                                                               "spread: its mean_err would read 0"),
                         help="brute only: query this many random points per N when N is larger (0 = all)"),
        "fit_from": Field(int, 0, lo=0,
                          help="also fit the mean on N >= fit_from only (the asymptotic regime); 0 = no"),
    },
}


def check(cfg: dict, source: str = "job") -> None:
    """Cross-field checks, before any work: a `fit_from` fit needs two different sizes N >= fit_from; workers (tree)
    or queries (brute) given for the other method are refused; the chart's indices must exist on P^n."""
    sc = cfg["scaling"]
    if sc["fit_from"] > 0 and len({n for n in sc["n_points"] if n >= sc["fit_from"]}) < 2:
        raise ConfigError(f"{source}: [scaling].fit_from = {sc['fit_from']} leaves fewer than two sizes N >= fit_from "
                          f"of [scaling].n_points = {shown(sc['n_points'])} to fit; lower it or set 0")
    if sc["method"] == "brute":
        refuse_inapplicable(cfg, "scaling", SCHEMA["scaling"], ("workers",), "method = 'brute' (KD-tree threads)",
                            "set method = \"tree\"", source)
    else:
        refuse_inapplicable(cfg, "scaling", SCHEMA["scaling"], ("queries",), "method = 'tree' (it queries every "
                            "point)", "set method = \"brute\"", source)
    geo = cfg["geometry"]
    if geo["chart"] is not None and max(geo["chart"]) > geo["dim"] + 1:
        raise ConfigError(f"{source}: [geometry].chart = {geo['chart']} needs indices <= {geo['dim'] + 1} on "
                          f"P^{geo['dim'] + 1} ([geometry].dim = {geo['dim']}); change it")


def nearest_neighbour_distance(points, *, workers: int = 1) -> np.ndarray:
    """FS distance from each point to its nearest other point, O(N log N) with a KD-tree."""
    return tree_candidates(points, points, np.arange(len(points)), workers=workers)[0]


def nearest_neighbour_brute(points, query_idx=None, *, tile_q: int = 512, tile_s: int = 65536):
    """FS distance from each query point (default: all) to its nearest other point, by tiled BLAS products."""
    q = np.arange(len(points)) if query_idx is None else np.asarray(query_idx)
    return brute_candidates(points, points[q], q, tile_q=tile_q, tile_s=tile_s)[0]


def tree_candidates(ref, z_query, q_idx, *, offset: int = 0, workers: int = 1):
    """(FS distance, global index) of each query's nearest point among `ref` (global rows offset, offset+1, ...),
    excluding the query itself (global index q_idx); distance inf where `ref` has no other point. KD-tree."""
    from scipy.spatial import cKDTree

    from hpcflow.geometry.distance import projector_features, query_in_pieces

    n_q = len(z_query)
    if len(ref) == 0 or n_q == 0:
        return _paired(ref, z_query, np.zeros(n_q, np.int64), np.zeros(n_q, bool), offset)
    k = min(2, len(ref))
    _, idx = query_in_pieces(cKDTree(projector_features(ref)), projector_features(z_query), k, workers=workers)
    idx = np.asarray(idx, dtype=np.int64).reshape(n_q, k)
    is_self = idx[:, 0] == np.asarray(q_idx) - offset  # column 0 is the query itself unless it has a duplicate
    nn = np.where(is_self, idx[:, -1], idx[:, 0])
    found = ~is_self if k == 1 else np.ones(n_q, bool)
    return _paired(ref, z_query, nn, found, offset)


def brute_candidates(ref, z_query, q_idx, *, offset: int = 0, tile_q: int = 512, tile_s: int = 65536):
    """As `tree_candidates`, by tiled BLAS products: maximises f_q . f = cos^2 d over `ref`; memory O(tile_q tile_s)."""
    from hpcflow.geometry.distance import projector_features

    feats, fq_all = projector_features(ref), projector_features(z_query)
    q_local = np.asarray(q_idx) - offset  # the query's own row in `ref` (outside [0, n) when it is elsewhere)
    n = len(ref)
    best = np.full(len(z_query), -np.inf)
    arg = np.zeros(len(z_query), dtype=np.int64)
    for qs in range(0, len(z_query), tile_q):
        q, fq = q_local[qs:qs + tile_q], fq_all[qs:qs + tile_q]
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
    return _paired(ref, z_query, arg, best > -np.inf, offset)


def _paired(ref, z_query, nn, found, offset):
    """Stable FS distances of the found pairs (inf elsewhere) and the partners' global indices."""
    from hpcflow.geometry.distance import fs_distance_paired

    d = np.full(len(z_query), np.inf)
    if found.any():
        d[found] = fs_distance_paired(z_query[found], ref[nn[found]])
    return d, np.where(found, nn + offset, -1).astype(np.int64)


def nearest_over_ranks(d, arg, *, comm=None):
    """Each query's nearest point over all ranks' candidates: smallest distance, ties to the lowest global index."""
    from hpcflow.parallel.reduce import allgatherv

    all_d = allgatherv(d[None, :], comm=comm)
    all_arg = allgatherv(arg[None, :], comm=comm)
    best = all_d.min(axis=0)
    arg = np.where(all_d == best, all_arg, np.iinfo(np.int64).max).min(axis=0)
    return best, arg


#: the `conventions` attribute of distances.h5
CONVENTIONS = ("nn_distance/N{N}_seed{seed}: FS geodesic distance d(z, z') = arccos(|<z,z'>| / (|z||z'|)) in [0, pi/2] "
               "(eq. 3.2) from each queried point to its nearest other point of the same N-point sample; table/*: one "
               "row per (N, seed) with min, mean (mean_err = std / sqrt(n_queries)), max, median; attribute fits: "
               "d = a N^b by least squares in log d vs log N (a, b, standard errors, residual rms)")


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


#: `neighbour_distances`' names of its sampling arguments
NAMES = {"surface": "X", "n_points": "n_pts"}


def neighbour_distances(X, n_pts: int, seed: int, sc: dict, *, chart=None, comm=None, max_batches=MAX_BATCHES,
                        batches_said=None):
    """(d, counters): FS distance of each queried point to its nearest other point of an N-point sample.

    Points are sampled distributed (each rank keeps its share); every rank gets the query points, searches
    its share, and the per-rank candidates are reduced, so d is the same for every R. Memory per rank: its
    share of points plus the queried points (all N when `queries` is 0). A bad argument on any rank, or an X,
    n_pts, seed, chart, sc["method"] or (brute) sc["queries"] that differs between ranks (sc["workers"] is each
    rank's own), is refused by every rank together before any sampling (one allgather at R > 1). `max_batches`,
    `batches_said`: the sampler's (`Hypersurface.sample`).
    """
    from hpcflow.parallel.comm import arguments_together, resolve
    from hpcflow.parallel.decompose import share
    from hpcflow.parallel.redistribute import fetch_rows

    c = resolve(comm)
    args = {}

    def check():
        args.update(_checked(X, n_pts, seed, sc, chart, max_batches, batches_said))

    arguments_together(check, comm=c, same=lambda: {
        **agreed(X, args, NAMES), "sc['method']": args["method"],
        **({"sc['queries']": args["queries"]} if args["method"] == "brute" else {})})
    n_pts, method, queries, workers = (args.pop(k) for k in ("n_points", "method", "queries", "workers"))
    lo, _ = share(n_pts, c.Get_size(), c.Get_rank())
    ps, counters = sample_checked(X, n_points=n_pts, **args, comm=c)
    q = np.arange(n_pts)
    if method == "brute" and 0 < queries < n_pts:  # from the sample's seed: the same on every rank with seed None
        q = np.sort(np.random.default_rng(ps.seed).choice(n_pts, queries, replace=False))
    z_query = fetch_rows(ps.points, lo, q, comm=c)
    t1 = time.perf_counter()
    if method == "tree":
        d, arg = tree_candidates(ps.points, z_query, q, offset=lo, workers=workers)
    else:
        d, arg = brute_candidates(ps.points, z_query, q, offset=lo)
    d, _ = nearest_over_ranks(d, arg, comm=c)
    counters["neighbour_seconds"] = time.perf_counter() - t1
    return d, counters


#: keys of `neighbour_distances`' sc
SC_KEYS = ("method", "queries", "workers")


def _checked(X, n_pts, seed, sc, chart, max_batches=MAX_BATCHES, batches_said=None) -> dict:
    """`sample_checked`'s keywords for `neighbour_distances` (`sampling_arguments`) with sc's method, and the
    setting that method uses checked: queries (brute: an integer >= 0) or workers (tree: >= 1); no collective."""
    args = sampling_arguments(X, n_pts, seed, chart=chart, layout="share", names=NAMES, max_batches=max_batches,
                              batches_said=batches_said)
    api_keys(sc, "sc", SC_KEYS)
    method, queries, workers = (sc[k] for k in SC_KEYS)
    if method == "brute":
        queries = api_integer("sc['queries']", queries, "an integer >= 0 (0: query every point)", lo=0)
    if method == "tree":
        workers = api_integer("sc['workers']", workers, "an integer >= 1 (KD-tree threads)", lo=1)
    return {**args, "method": method, "queries": queries, "workers": workers}


def run(cfg, outdir) -> dict:
    from hpcflow.jobs.output import write_hdf5
    from hpcflow.parallel.comm import resolve

    c = resolve()
    X = manifold(cfg["geometry"])
    chart = None if cfg["geometry"]["chart"] is None else tuple(cfg["geometry"]["chart"])
    sc = cfg["scaling"]
    rows, datasets, per_rank = [], {}, []
    for i, n_pts in enumerate(sc["n_points"]):
        for rep in range(sc["repeats"]):
            seed = sc["seed"] + 1000 * i + rep  # independent samples per N (same-seed samples would be nested)
            d, counters = neighbour_distances(X, n_pts, seed, sc, chart=chart, comm=c,
                                              max_batches=cfg["geometry"]["max_batches"],
                                              batches_said=batches_said("geometry"))
            per_rank.append(counters)
            rows.append({"n": int(n_pts), "seed": seed, "n_queries": int(d.size), "min": float(d.min()),
                         "mean": float(d.mean()), "mean_err": float(d.std() / np.sqrt(len(d))),
                         "max": float(d.max()), "median": float(np.median(d)),
                         "sample_seconds": counters["sample_seconds"],
                         "neighbour_seconds": counters["neighbour_seconds"]})
            datasets[f"nn_distance/N{n_pts}_seed{seed}"] = d
            if c.Get_rank() == 0:
                print(f"distance_scaling: N={n_pts} seed={seed} queries={d.size} min={d.min():.4g} "
                      f"mean={d.mean():.4g} max={d.max():.4g} ({counters['neighbour_seconds']:.1f} s)", flush=True)
    n = [r["n"] for r in rows]
    fits = {stat: power_law_fit(n, [r[stat] for r in rows]) for stat in ("mean", "min", "max")}
    for key in ("n", "seed", "n_queries", "min", "mean", "mean_err", "max", "median"):
        datasets[f"table/{key}"] = np.array([r[key] for r in rows])
    large = [r for r in rows if r["n"] >= sc["fit_from"]]
    if sc["fit_from"] > 0 and len({r["n"] for r in large}) >= 2:
        fits["mean_from"] = power_law_fit([r["n"] for r in large], [r["mean"] for r in large])
        fits["mean_from"]["fit_from"] = sc["fit_from"]
    attrs = {**file_attrs("hpcflow.distance_scaling"), "config": cfg, "fits": fits, "conventions": CONVENTIONS}
    write_hdf5(os.path.join(outdir, "distances.h5"), datasets, attrs=attrs, comm=c)
    totals = {k: sum(p[k] for p in per_rank) for k in per_rank[0]}
    # every kind's summary has a status; this job cannot stop early (a signal ends it with no summary.json)
    return {"status": "finished", "table": rows, "fit_mean": fits["mean"], "fit_min": fits["min"],
            "fit_max": fits["max"], "fit_mean_from": fits.get("mean_from"),
            "chart": None if chart is None else list(chart),
            "paper_fit_mean": {"a": 0.968, "b": -0.184}, "theory_b": -1.0 / (2 * (X.n - 1)),
            "ranks": c.Get_size(), "per_rank": c.allgather(totals) if c.Get_size() > 1 else [totals]}
