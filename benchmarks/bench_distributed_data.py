"""Distributed data: sampling and clustered flow blocks at R ranks under mpiexec, time and peak RSS per rank.

Each (what, N, R) runs in a fresh `mpiexec -n R` so that peak RSS is its own; threads per rank follow
`hpcflow.parallel.comm.limit_threads` (cores / local ranks). Usage:
    .venv/bin/python benchmarks/bench_distributed_data.py sample [--sizes 100000 1000000] [--ranks 1 2]
    .venv/bin/python benchmarks/bench_distributed_data.py blocks [--sizes 20000] [--ranks 1 2]
"""

import json
import os
import shutil
import sys

import _args

#: fewest points of a blocks case: its test set is N/10 points, at least one
MIN_BLOCKS_N = 10

CHILD = r"""
import json, resource, sys, time
import numpy as np
from hpcflow.geometry import Hypersurface
from hpcflow.geometry.sampling import sample_points
from hpcflow.parallel import comm


def measure(c, what, n):
    threads = comm.limit_threads()
    X = Hypersurface.fermat(3)
    sample_points(X, 1000, 1, comm=c)  # warm-up (imports)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    c.Barrier()
    t = time.perf_counter()
    if what == "sample":
        ps, cnt = sample_points(X, n, 0, comm=c, layout="share")
    else:
        from hpcflow.cluster.distributed import distributed_blocks
        train, cnt = sample_points(X, n, 0, chart=(0, 1), comm=c, layout="share")
        test, _ = sample_points(X, n // 10, 1, chart=(0, 1), comm=c, layout="share")
        t = time.perf_counter()
        d = distributed_blocks(train.points, test.points, comm=c, method="batched", n_clusters=max(1, n // 5000),
                               batch_size=5000, seed=0, halo_cutoff=0.1)
        cnt = d.counters
    c.Barrier()
    dt = time.perf_counter() - t
    row = {"rank": c.Get_rank(), "threads": threads, "seconds": dt, "base_rss_mib": base / 1024,
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           **{k: v for k, v in cnt.items() if "seconds" not in k}}
    rows = c.gather(row, root=0) if c.Get_size() > 1 else [row]
    if c.Get_rank() == 0:
        print(json.dumps(rows))


with comm.abort_on_error() as c:  # one rank's exception ends every rank, none left in a collective
    measure(c, sys.argv[1], int(sys.argv[2]))
"""


def main():
    ap = _args.parser(__doc__)
    ap.add_argument("what", choices=("sample", "blocks"))
    ap.add_argument("--sizes", type=_args.POSITIVE, nargs="+", default=None)
    ap.add_argument("--ranks", type=_args.ranks, nargs="+", default=[1, 2])
    args = ap.parse_args()
    if args.what == "blocks" and args.sizes and min(args.sizes) < MIN_BLOCKS_N:
        ap.error(f"argument --sizes: blocks of {min(args.sizes)} points have no test point (N/10); pass N >= "
                 f"{MIN_BLOCKS_N}")
    sizes = args.sizes or ([100_000, 1_000_000] if args.what == "sample" else [20_000])
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or "mpiexec"
    print(f"{args.what}: N, R, rank, threads, seconds (after warm-up), peak RSS MiB (base after imports), counters")
    for n in sizes:
        for ranks in args.ranks:
            out = _args.child([exe, "-n", str(ranks), sys.executable, "-c", CHILD, args.what, str(n)],
                              f"{args.what} N={n} at {ranks} ranks").stdout
            for r in json.loads(out.strip().splitlines()[-1]):
                extra = {k: v for k, v in r.items() if k not in ("rank", "threads", "seconds", "base_rss_mib",
                                                                    "peak_rss_mib")}
                print(f"{n:>9} {ranks:>2} {r['rank']:>2} {r['threads']:>2} {r['seconds']:>8.2f} "
                      f"{r['peak_rss_mib']:>8.0f} ({r['base_rss_mib']:.0f}) {json.dumps(extra)}", flush=True)


if __name__ == "__main__":
    _args.run(main)
