"""The kernel flow divided over MPI ranks: strong scaling, the exact-mode step at 10^5 points, communication volume.

CPU seconds per step and rank (process time, all threads) are printed next to wall times: on a shared machine
they say what the step costs when the rank has its cores to itself (contention inflates them somewhat too).

  scaling:    clustered and exact flows of N train points, kernel streamed tile by tile every step (cache off):
              one process with T threads, one process with 1 thread, and T ranks with 1 thread each, on the same
              cores; step time = the slowest rank's, median over the steps.
  exact-step: one exact-mode step of N train points (no test points) on R ranks with T threads each.
  volume:     bytes each rank receives per step (and once, for points) against the model
                clustered: once 80 h_r, per step 72 h_r               (h_r = halo rows of rank r)
                exact:     once 80 (N - n_r), per step 72 (N - n_r) + 8 P (R - 1) n_r   (P = 10 row-normalised)
              for several N, R and halo cutoffs.
Every run first takes one untimed warm-up step (Numba's compilation or cache load, the ranks' first messages), then
flows from step 0 again: the steps timed, and their CPU seconds, kernel and communication figures, are warm ones.
Every run flows the Gaussian of jobs/table1_gaussian_tuned.toml (exp form, width 1/30, row-normalised, weighted
ultra-local loss, dt = 17 N / 2500), not that of jobs/table1_gaussian.toml (the paper's literal sigma = 30,
unnormalised, sigma loss).

Usage: python benchmarks/bench_flow_mpi.py scaling [--n 20000] [--n-test 2000] [--steps 3] [--threads 2]
       python benchmarks/bench_flow_mpi.py exact-step [--n 100000] [--ranks 2] [--threads 1]
       python benchmarks/bench_flow_mpi.py volume [--n 2000 4000] [--ranks 2 3] [--halo 0.1 0.2 0.4]
Prints one JSON line per run (strict JSON: a run without test points has sigma_test null).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np

import _args


#: mini-batch size of the clustered flows' [clustering]
BATCH_SIZE = 10_000


def volume_clusters(n: int) -> int:
    """Clusters of the volume runs at N train points."""
    return max(2, n // 500)


def worker(mode: str, n: int, n_test: int, steps: int, clusters: int, halo: float) -> None:
    from hpcflow.experiments import flow_job
    from hpcflow.experiments.flow_job import distribute
    from hpcflow.resources import peak_rss
    from hpcflow.flow import kernel_flow
    from hpcflow.jobs.schema import validate
    from hpcflow.kernels import GaussianKernel
    from hpcflow.parallel import comm as pcomm

    c = pcomm.resolve()
    threads = pcomm.limit_threads(c)
    t0 = time.perf_counter()
    job = {"job": {"kind": "flow"}, "geometry": {"chart": [0, 1], "n_train": n, "n_test": n_test, "seed": 1},
           "kernel": {"name": "gaussian", "width": 1 / 30, "normalize": "row"}, "flow": {"dt": 1.0}}
    if mode == "clustered":
        job["clustering"] = {"method": "batched", "n_clusters": clusters, "batch_size": BATCH_SIZE}
        if halo > 0:
            job["clustering"]["halo_cutoff"] = halo
    train, test, lay, _ = distribute(validate(job, flow_job.SCHEMA, source="bench"), comm=c)
    setup = time.perf_counter() - t0
    kernel = GaussianKernel(1 / 30, form="exp", normalize="row")

    def flow(steps):
        return kernel_flow(kernel, train, test, dt=17.0 * n / 2500, steps=steps, loss="ultralocal", cache_bytes=0,
                           blocks=lay.blocks, train_idx=lay.train_idx,
                           test_idx=None if test is None else lay.test_idx, comm=c)

    flow(1)  # untimed warm-up step (Numba's compilation or cache load, the first messages between the ranks)
    t1, cpu1 = time.perf_counter(), time.process_time()
    res = flow(steps)  # from step 0 again: every step timed is a warm one
    wall, cpu = time.perf_counter() - t1, time.process_time() - cpu1
    mine = {**res.per_rank, "history": res.history, "rss_bytes": peak_rss(), "cpu_s": cpu}
    everyone = c.allgather(mine)
    if c.Get_rank() == 0:
        step_s = np.max([r["history"]["step_seconds"] for r in everyone], axis=0)
        out = {"mode": mode, "n": n, "n_test": n_test, "ranks": c.Get_size(), "threads": threads, "halo": halo,
               "clusters": clusters if mode == "clustered" else None, "setup_s": round(setup, 2),
               "flow_wall_s": round(wall, 2), "step_s": [round(float(s), 3) for s in step_s],
               "step_s_median": round(float(np.median(step_s)), 3), "sigma_train": finite(res.sigma_train),
               "sigma_test": finite(res.sigma_test), "per_rank": [
                   {"points": r["points"], "halo_rows": r["halo_rows"], "clusters": r["clusters"],
                    "kernel_entries_per_step": r["kernel_entries"] // max(1, steps),
                    "kernel_s_per_step": round(r["kernel_seconds"] / max(1, steps), 3),
                    "cpu_s_per_step": round(r["cpu_s"] / max(1, steps), 3),
                    "comm_s_per_step": round(float(np.mean(r["history"]["comm_seconds"])), 4),
                    "comm_bytes_per_step": int(r["history"]["comm_bytes"][-1]) if steps else 0,
                    "comm_bytes_once": int(r["comm_bytes"] - sum(r["history"]["comm_bytes"])),
                    "peak_rss_mib": round(r["rss_bytes"] / 2 ** 20, 1)} for r in everyone]}
        print(json.dumps(out, allow_nan=False), flush=True)


def finite(values) -> list:
    """A history as strict JSON: NaN (sigma_test without test points) as None (null)."""
    return [float(v) if np.isfinite(v) else None for v in values]


def _launch(ranks: int, threads: int, args: list) -> dict:
    """Run the worker on `ranks` ranks (plain python for one) with `threads` threads each; its JSON line."""
    env = dict(os.environ, HPCFLOW_THREADS=str(threads), PYTHONPATH=os.getcwd())
    cmd = [sys.executable, os.path.abspath(__file__), WORKER, *map(str, args)]
    if ranks > 1:
        exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or "mpiexec"
        cmd = [exe, "-n", str(ranks), *cmd]
    r = _args.child(cmd, f"the {args[0]} flow of N={args[1]} at {_args.layout(ranks, threads)}", env=env)
    return json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])


def _model(run: dict) -> list:
    """Modelled (once, per step) bytes received by each rank (see module docstring)."""
    out, R, n = [], run["ranks"], run["n"]
    for p in run["per_rank"]:
        if run["mode"] == "clustered":
            out.append((80 * p["halo_rows"], 72 * p["halo_rows"]))
        else:
            others = n - p["points"]
            out.append((80 * others, (72 * others + 80 * (R - 1) * p["points"]) if R > 1 else 0))
    return out


def check_clusters(ap, k: int, n: int, flag: str) -> None:
    """Refuse k clusters that N points in mini-batches of BATCH_SIZE cannot hold, before any run."""
    from hpcflow.cluster.inputs import check_n_clusters
    from hpcflow.errors import ConfigError

    try:
        check_n_clusters(k, n, batch_size=BATCH_SIZE)
    except ConfigError as exc:
        ap.error(f"--n {n} with k = {k} ({flag}) and mini-batches of {BATCH_SIZE}: {exc}")


def check_points(ap, flag: str, n: int, *, none: bool = False) -> None:
    """Refuse, before any run, a point count sigma means nothing for (one point: sigma is 0 by construction, as
    the [geometry] of the worker's job checks): at least 2, or 0 where `none` (no test points)."""
    from hpcflow.experiments.common import MIN_POINTS

    if n < MIN_POINTS and not (none and n == 0):
        ap.error(f"argument {flag}: sigma needs two points (for one it is 0 by construction); pass "
                 f"{'0 (none) or ' if none else ''}>= {MIN_POINTS}")


#: the first argument of what `_launch` starts under mpiexec: not a subcommand of the command line (nor in its --help)
WORKER = "_worker"


def run_worker(argv: list) -> None:
    """The `worker` that `_launch` starts, from its arguments (mode n n_test steps clusters halo)."""
    w = _args.parser(f"The flow run that {os.path.basename(__file__)} starts under mpiexec.")
    for name, typ in (("mode", str), ("n", int), ("n_test", int), ("steps", int), ("clusters", int), ("halo", float)):
        w.add_argument(name, type=typ)
    a = w.parse_args(argv)
    with _args.together():
        worker(a.mode, a.n, a.n_test, a.steps, a.clusters, a.halo)


def check_scaling(ap, threads: int) -> None:
    """Refuse a --threads that makes the three scaling runs one (T = 1: 1x1 against itself) or starts more ranks
    (T x 1) than this machine's cores can hold (`_args.ranks`), before any run."""
    if threads < 2:
        ap.error(f"argument --threads: {threads} makes the three runs compared (1 x T, 1 x 1, T x 1) the same run; "
                 "pass 2 or more")
    try:
        _args.ranks(str(threads))
    except argparse.ArgumentTypeError as exc:
        ap.error(f"argument --threads: the T x 1 run starts T ranks: {exc}")


def main(argv=None) -> None:
    from hpcflow.arguments import MAX_THREADS

    threads = _args.whole(1, MAX_THREADS)
    ap = _args.parser(__doc__)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [WORKER]:
        return run_worker(argv[1:])
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="{scaling,exact-step,volume}")
    s = sub.add_parser("scaling", description="Step times of 1 x T, 1 x 1 and T x 1 runs: the median over --steps "
                       "steps, each run after one untimed warm-up step.")
    s.add_argument("--n", type=_args.POSITIVE, default=20_000)
    s.add_argument("--n-test", type=_args.NONNEGATIVE, default=2000)
    s.add_argument("--steps", type=_args.POSITIVE, default=3)
    s.add_argument("--threads", type=threads, default=2, help="T of the three runs compared: 1 process x T threads, "
                   "1 x 1 and T ranks x 1 (T >= 2; default %(default)s)")
    s.add_argument("--clusters", type=_args.POSITIVE, default=4)
    s.add_argument("--halo", type=_args.real(0.0, above=False), default=0.1, help="halo cutoff (0: none)")
    e = sub.add_parser("exact-step", description="One exact-mode step, timed after one untimed warm-up step.")
    e.add_argument("--n", type=_args.POSITIVE, default=100_000)
    e.add_argument("--ranks", type=_args.ranks, default=2)
    e.add_argument("--threads", type=threads, default=1, help="threads per rank")
    v = sub.add_parser("volume")
    v.add_argument("--n", type=_args.POSITIVE, nargs="+", default=[2000, 4000])
    v.add_argument("--ranks", type=_args.ranks, nargs="+", default=[2, 3])
    v.add_argument("--halo", type=_args.real(0.0, above=False), nargs="+", default=[0.1, 0.2, 0.4],
                   help="halo cutoffs (0: none)")
    a = ap.parse_args(argv)
    if a.cmd == "scaling":
        check_scaling(s, a.threads)
        check_points(s, "--n", a.n)
        check_points(s, "--n-test", a.n_test, none=True)
        check_clusters(s, a.clusters, a.n, "--clusters")
    elif a.cmd == "exact-step":
        check_points(e, "--n", a.n)
    else:
        for n in a.n:
            check_points(v, "--n", n)
            if n // 10 == 1:  # the volume runs' test points: N // 10
                v.error(f"argument --n: {n} gives N // 10 = 1 test point, and sigma needs two (for one it is 0 by "
                        "construction); pass --n from 2 to 9 (no test points) or >= 20")
            check_clusters(v, volume_clusters(n), n, "N/500, at least 2")
    if a.cmd == "scaling":
        for mode in ("clustered", "exact"):
            args = [mode, a.n, a.n_test, a.steps, a.clusters, a.halo]
            runs = {"1x%d" % a.threads: _launch(1, a.threads, args), "1x1": _launch(1, 1, args),
                    "%dx1" % a.threads: _launch(a.threads, 1, args)}
            t_best, t_one, t_many = (runs[k]["step_s_median"] for k in ("1x%d" % a.threads, "1x1", "%dx1" % a.threads))
            sig = [r["sigma_test"][-1] for r in runs.values()]
            print(json.dumps({"mode": mode, "n": a.n, "step_s": {k: r["step_s_median"] for k, r in runs.items()},
                              "efficiency_vs_threads": round(t_best / t_many, 3),
                              "efficiency_vs_one_core": round(t_one / (a.threads * t_many), 3),
                              "sigma_test_rel_spread": float(np.ptp(sig) / np.mean(sig)) if a.n_test else None,
                              "runs": runs}), flush=True)
    elif a.cmd == "exact-step":
        print(json.dumps(_launch(a.ranks, a.threads, ["exact", a.n, 0, 1, 0, 0.0]), allow_nan=False), flush=True)
    else:
        for n in a.n:
            for mode, halo in [("exact", 0.0)] + [("clustered", h) for h in a.halo]:
                for ranks in a.ranks:
                    run = _launch(ranks, 1, [mode, n, n // 10, 2, volume_clusters(n), halo])
                    measured = [(p["comm_bytes_once"], p["comm_bytes_per_step"]) for p in run["per_rank"]]
                    print(json.dumps({"mode": mode, "n": n, "ranks": ranks, "halo": halo,
                                      "halo_rows": [p["halo_rows"] for p in run["per_rank"]],
                                      "measured_once_step": measured, "model_once_step": _model(run),
                                      "comm_s_per_step": [p["comm_s_per_step"] for p in run["per_rank"]],
                                      "kernel_s_per_step": [p["kernel_s_per_step"] for p in run["per_rank"]]}),
                          flush=True)


if __name__ == "__main__":
    _args.run(main)
