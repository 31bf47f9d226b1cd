"""Sampler throughput: quintic points/s (charts, g_FS, Omega, weights included) and peak memory.

Each size runs in a fresh subprocess so that its peak RSS is its own. Usage:
    .venv/bin/python benchmarks/bench_sampler.py [--sizes 10000 100000 1000000] [--threads 2] [--chart 0 1]
(--chart I J: only points whose canonical chart is (I, J), as the Table 1 and scale jobs sample.)
"""

import json
import sys

import _args

CHILD = r"""
import json, resource, sys, time
from hpcflow.geometry import Hypersurface
from hpcflow.backend import gpu_available
n, threads = int(sys.argv[1]), int(sys.argv[2])
chart = tuple(map(int, sys.argv[3].split(","))) if sys.argv[3] != "-" else None
X = Hypersurface.fermat(3)
X.sample(1000, seed=1, threads=threads, chart=chart)  # warm-up (imports, FFT plans)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
ps = X.sample(n, seed=0, threads=threads, chart=chart)
dt = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "threads": threads, "seconds": dt, "points_per_s": n / dt,
                  "peak_rss_mib": peak / 1024, "sigma_fs": ps.sigma(), "gpu": gpu_available()}))
"""


def main():
    from hpcflow.arguments import MAX_THREADS
    from hpcflow.errors import ConfigError
    from hpcflow.geometry import Hypersurface
    from hpcflow.geometry.sampling import check_chart

    ap = _args.parser(__doc__)
    ap.add_argument("--sizes", type=_args.POSITIVE, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--threads", type=_args.whole(1, MAX_THREADS), nargs="+", default=[1, 2])
    ap.add_argument("--chart", type=_args.NONNEGATIVE, nargs=2, default=None, metavar=("I", "J"))
    args = ap.parse_args()
    try:
        check_chart(Hypersurface.fermat(3), args.chart)
    except ConfigError as exc:
        ap.error(f"argument --chart: {exc}")
    chart = ",".join(map(str, args.chart)) if args.chart else "-"
    print(f"{'N':>9} {'threads':>7} {'seconds':>8} {'points/s':>10} {'peak RSS MiB':>11} {'sigma_FS':>9}")
    for n in args.sizes:
        for th in args.threads:
            out = _args.child([sys.executable, "-c", CHILD, str(n), str(th), chart], f"sampling N={n}").stdout
            r = json.loads(out)
            print(f"{r['n']:>9} {r['threads']:>7} {r['seconds']:>8.3f} {r['points_per_s']:>10,.0f} "
                  f"{r['peak_rss_mib']:>11.0f} {r['sigma_fs']:>9.5f}")


if __name__ == "__main__":
    _args.run(main)
