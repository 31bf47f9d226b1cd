"""Batched FS clustering at scale (§3.1) and the cost/benefit of the per-cluster flow.

  cluster: time and peak memory (max RSS of a fresh child process) of clustering N points with the
           paper's settings: mini-batches of B = 10,000, k = N/5000 clusters (10^5 -> 20 clusters of ~5000).
  flow:    per-cluster vs unclustered kernel-flow step time at N train points (k = --clusters, default N/5000), kernel
           streamed tile by tile every step (cache off) and timed over `--time-steps` steps; then sigma_test
           after `--steps` steps of both (kernel blocks cached, `--cache-gb`), i.e. the accuracy the
           clustering approximation costs. Gaussian kernel (exp form, width 1/30, row-normalised),
           weighted ultra-local loss and dt = dt_per_point * N: the settings of jobs/table1_gaussian_tuned.toml
           (dt 17 at N = 2500; the weights w/sum w scale gradients like 1/N), not jobs/table1_gaussian.toml
           (the paper's literal sigma = 30, unnormalised, sigma loss).

Usage: python benchmarks/bench_cluster.py cluster [--n 10000 100000] [--batch-size 10000] [--full-up-to 10000]
                                                 [--clusters K] [--silhouette-rows 2000]
       python benchmarks/bench_cluster.py flow [--n 20000] [--n-test 2000] [--clusters K] [--time-steps 3] [--steps 50]
Prints one JSON line per measurement.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

import _args


def _sample(n, seed, chart=None):
    from hpcflow.geometry import Hypersurface

    return Hypersurface.fermat(3).sample(n, seed=seed, chart=chart)


def one_clustering(method: str, n: int, k: int, batch_size: int, silhouette_rows: int = 0, seed: int = 0) -> dict:
    """Run in a child process: sample, cluster, report seconds and this process's peak RSS (and silhouette)."""
    from hpcflow.cluster import batched_clustering, full_clustering, silhouette_fs

    t0 = time.perf_counter()
    z = _sample(n, seed).points
    t1 = time.perf_counter()
    if method == "batched":
        res = batched_clustering(z, n_clusters=k, batch_size=batch_size, seed=seed)
    else:
        res = full_clustering(z, n_clusters=k)
    t2 = time.perf_counter()
    sizes = res.sizes()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB, read before the silhouette
    sil = {}
    if silhouette_rows:
        t3 = time.perf_counter()
        q = silhouette_fs(z, res.labels, sample_size=silhouette_rows, seed=seed)
        sil = {"silhouette": q.score, "silhouette_stderr": q.stderr, "silhouette_rows": q.n_rows,
               "silhouette_seconds": time.perf_counter() - t3}
    return {"bench": "cluster", "method": method, "n": n, "k": k,
            "batch_size": batch_size if method == "batched" else n, "sample_seconds": t1 - t0,
            "cluster_seconds": t2 - t1, "peak_rss_gib": peak, **sil,
            "cluster_size_min": int(sizes.min()), "cluster_size_median": float(np.median(sizes)),
            "cluster_size_max": int(sizes.max())}


def clusters(n: int, given: int | None) -> int:
    """k: the one given, else the paper's N/5000 (at least 1)."""
    return given or max(1, round(n / 5000))


def check_cluster(ap, args) -> None:
    """Refuse, before any clustering, a k the points or mini-batches cannot hold, or a silhouette of one cluster."""
    from hpcflow.cluster.full import MAX_POINTS
    from hpcflow.cluster.inputs import check_n_clusters
    from hpcflow.cluster.quality import MIN_SAMPLE
    from hpcflow.errors import ConfigError

    if args.silhouette_rows and args.silhouette_rows < MIN_SAMPLE:
        ap.error(f"argument --silhouette-rows: {args.silhouette_rows} rows give no standard error; pass 0 (skip) "
                 f"or >= {MIN_SAMPLE}")
    if args.full_up_to > MAX_POINTS:
        ap.error(f"argument --full-up-to: the unbatched method holds at most {MAX_POINTS} points; pass <= {MAX_POINTS}")
    for n in args.n:
        k = clusters(n, args.clusters)
        try:
            check_n_clusters(k, n, batch_size=args.batch_size)
        except ConfigError as exc:
            ap.error(f"--n {n} with k = {k} (--clusters) and --batch-size {args.batch_size}: {exc}")
        if args.silhouette_rows and not 2 <= k <= n - 1:
            ap.error(f"--n {n}: the silhouette needs 2 <= k <= N-1 clusters, and k = {k}"
                     f"{'' if args.clusters else ' (N/5000)'}; pass --clusters 2 or more, or --silhouette-rows 0")


def bench_cluster(args):
    for n in args.n:
        k = clusters(n, args.clusters)
        methods = ["batched"] + (["full"] if n <= args.full_up_to else [])
        for method in methods:
            cmd = [sys.executable, __file__, "_child", method, str(n), str(k), str(args.batch_size),
                   str(args.silhouette_rows)]
            out = _args.child(cmd, f"{method} clustering of N={n}").stdout
            print(out.strip().splitlines()[-1], flush=True)


def _run_flow(kernel, train, test, blocks, args, *, steps, cache_bytes):
    from hpcflow.flow import kernel_flow

    stamps = []
    t0 = time.perf_counter()
    res = kernel_flow(kernel, train, test, dt=args.dt_per_point * len(train), steps=steps, blocks=blocks,
                      loss="ultralocal", weighted=True, cache_bytes=cache_bytes,
                      callback=lambda info: stamps.append(time.perf_counter()) and False)
    total = time.perf_counter() - t0
    diffs = np.diff(stamps)
    return res, float(np.median(diffs)) if diffs.size else float("nan"), total


def check_flow(ap, args) -> None:
    """Refuse, before any sampling, a flow comparison that measures nothing or whose clusters cannot be made."""
    from hpcflow.cluster.inputs import check_n_clusters
    from hpcflow.errors import ConfigError
    from hpcflow.experiments.common import MIN_POINTS

    for flag, n in (("--n", args.n), ("--n-test", args.n_test)):
        if n < MIN_POINTS:  # sigma of one point is 0 by construction: its gains are 0/0
            ap.error(f"argument {flag}: sigma needs two points (for one it is 0 by construction); "
                     f"pass >= {MIN_POINTS}")
    if args.time_steps == 1:
        ap.error("argument --time-steps: one step has no step interval to time; pass 0 (skip) or >= 2")
    if not args.time_steps and not args.steps:
        ap.error("--time-steps 0 and --steps 0 measure nothing; pass either >= 1")
    k = clusters(args.n, args.clusters)
    try:
        check_n_clusters(k, args.n, batch_size=args.batch_size)
    except ConfigError as exc:
        ap.error(f"--n {args.n} with k = {k} ({'--clusters' if args.clusters else 'N/5000'}) and --batch-size "
                 f"{args.batch_size}: {exc}")


def bench_flow(args):
    from hpcflow.cluster import flow_blocks
    from hpcflow.kernels import make_kernel

    chart = (0, 1)
    train, test = _sample(args.n, 0, chart), _sample(args.n_test, 1, chart)
    k = clusters(args.n, args.clusters)
    t0 = time.perf_counter()
    blocks = flow_blocks(train, test, method="batched", n_clusters=k, batch_size=args.batch_size, seed=0)
    t_blocks = time.perf_counter() - t0
    kernel = make_kernel("gaussian", width=args.width, form="exp", normalize="row")
    out = {"bench": "flow", "n_train": args.n, "n_test": args.n_test, "clusters": len(blocks),
           "cluster_sizes": [int(b.train_idx.size) for b in blocks], "kernel": kernel.params(),
           "loss": "ultralocal", "dt": args.dt_per_point * args.n, "blocks_seconds": t_blocks}
    if args.time_steps:
        _, step_ref, _ = _run_flow(kernel, train, test, None, args, steps=args.time_steps, cache_bytes=0)
        _, step_clu, _ = _run_flow(kernel, train, test, blocks, args, steps=args.time_steps, cache_bytes=0)
        out.update(step_seconds_unclustered=step_ref, step_seconds_clustered=step_clu,
                   step_time_ratio_clustered_over_unclustered=step_clu / step_ref)
        print(json.dumps(out), flush=True)
    if args.steps:
        cache = int(args.cache_gb * 2**30)
        ref, _, total_ref = _run_flow(kernel, train, test, None, args, steps=args.steps, cache_bytes=cache)
        clu, _, total_clu = _run_flow(kernel, train, test, blocks, args, steps=args.steps, cache_bytes=cache)
        out.update(steps=args.steps, total_seconds_unclustered=total_ref, total_seconds_clustered=total_clu,
                   sigma_train_initial=ref.sigma_train[0], sigma_train_final_unclustered=ref.sigma_train[-1],
                   sigma_train_final_clustered=clu.sigma_train[-1], sigma_test_initial=ref.sigma_test[0],
                   sigma_test_final_unclustered=ref.sigma_test[-1], sigma_test_final_clustered=clu.sigma_test[-1],
                   sigma_test_ratio_clustered_over_unclustered=clu.sigma_test[-1] / ref.sigma_test[-1],
                   test_gain_unclustered=ref.sigma_test[0] / ref.sigma_test[-1],
                   test_gain_clustered=clu.sigma_test[0] / clu.sigma_test[-1],
                   rejected_steps=[ref.rejected_steps, clu.rejected_steps])
        print(json.dumps(out), flush=True)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        method, n, k, b, rows = argv[1], int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5])
        print(json.dumps(one_clustering(method, n, k, b, rows)))
        return
    p = _args.parser(__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cluster", help="time and peak memory of batched clustering")
    c.add_argument("--n", type=_args.POSITIVE, nargs="+", default=[10_000, 100_000])
    c.add_argument("--batch-size", type=_args.whole(2), default=10_000)
    c.add_argument("--full-up-to", type=_args.NONNEGATIVE, default=10_000,
                   help="also run the unbatched method up to this N")
    c.add_argument("--clusters", type=_args.POSITIVE, default=None, help="k (default N/5000, the paper's choice)")
    c.add_argument("--silhouette-rows", type=_args.NONNEGATIVE, default=0,
                   help="FS silhouette on this many rows (0 = skip)")
    f = sub.add_parser("flow", help="per-cluster vs unclustered flow: step time and sigma_test")
    f.add_argument("--n", type=_args.POSITIVE, default=20_000)
    f.add_argument("--n-test", type=_args.POSITIVE, default=2000)
    f.add_argument("--batch-size", type=_args.whole(2), default=10_000)
    f.add_argument("--clusters", type=_args.POSITIVE, default=None, help="k (default N/5000, the paper's choice)")
    f.add_argument("--time-steps", type=_args.NONNEGATIVE, default=3,
                   help="streamed steps timed per variant (0 = skip; else >= 2, a median of step intervals)")
    f.add_argument("--steps", type=_args.NONNEGATIVE, default=50,
                   help="cached steps for the sigma_test comparison (0 = skip)")
    f.add_argument("--cache-gb", type=_args.real(0.0, above=False), default=8.0,
                   help="kernel cache budget (halved train/test)")
    f.add_argument("--dt-per-point", type=_args.real(), default=17.0 / 2500)
    f.add_argument("--width", type=_args.real(), default=1 / 30)
    args = p.parse_args(argv)
    if args.what == "cluster":
        check_cluster(c, args)
        bench_cluster(args)
    else:
        check_flow(f, args)
        bench_flow(args)

if __name__ == "__main__":
    _args.run(main)
