"""Seconds of the empirical metric-NTK's two exact forms on probe sets of several sizes, and their largest difference.

The forms: torch.func's vmap(jacrev) ("jacobian") and the layer-wise form from MetricMLP.ntk_factors ("layerwise",
what method "auto" takes for a MetricMLP); the difference is relative to the largest entry.

Usage: python benchmarks/bench_ntk_methods.py [--repeat 3] [--threads 1] [--cases N:DEPTHxWIDTH ...]
Each case: N Fermat-quintic points (seed 1), a GELU MetricMLP of the given depth x width (seed 0); one warm-up call
per form, then the mean of `repeat` calls. Prints one JSON line per case. The default cases are the recorded run's
(20:2x8 20:3x64 100:3x64 200:3x256, about a minute on one thread); e.g. --cases 10:1x4 --repeat 1 runs in seconds.
"""

from __future__ import annotations

import argparse
import json
import re
import time

import numpy as np

import _args
from hpcflow.arguments import MAX_THREADS

#: (points, width, depth)
CASES = ((20, 8, 2), (20, 64, 3), (100, 64, 3), (200, 256, 3))


def case(text: str) -> tuple:
    """An argparse type: 'N:DEPTHxWIDTH' (points, depth, width; each a whole number >= 1) as (points, width, depth)."""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m or min(map(int, m.groups())) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a case; pass N:DEPTHxWIDTH with whole numbers >= 1, "
                                         f"e.g. 20:2x8")
    n, depth, width = map(int, m.groups())
    return n, width, depth


def main(argv=None) -> None:
    ap = _args.parser(__doc__)
    ap.add_argument("--repeat", type=_args.POSITIVE, default=3)
    ap.add_argument("--threads", type=_args.whole(1, MAX_THREADS), default=1)
    ap.add_argument("--cases", type=case, nargs="+", default=list(CASES), metavar="N:DEPTHxWIDTH",
                    help="the cases to run (default: the recorded run's four)")
    args = ap.parse_args(argv)
    import torch  # after the arguments: a bad one is refused without torch's seconds of import

    from hpcflow.geometry import Hypersurface
    from hpcflow.nn.data import MetricData
    from hpcflow.nn.model import MetricMLP
    from hpcflow.nn.ntk import empirical_ntk

    torch.set_num_threads(args.threads)
    data = MetricData.from_pointset(Hypersurface.fermat(3).sample(max(n for n, _, _ in args.cases), seed=1))
    for n, width, depth in args.cases:
        model = MetricMLP(data.x.shape[1], depth=depth, width=width, seed=0, activation="gelu")
        x, gfs = data.x[:n], data.gfs[:n]
        seconds, theta = {}, {}
        for method in ("jacobian", "layerwise"):
            empirical_ntk(model, x, gfs, method=method)  # warm-up
            t0 = time.perf_counter()
            for _ in range(args.repeat):
                theta[method] = empirical_ntk(model, x, gfs, method=method)
            seconds[method] = (time.perf_counter() - t0) / args.repeat
        a, b = theta["jacobian"], theta["layerwise"]
        print(json.dumps({"points": n, "network": f"{depth}x{width} gelu", "threads": args.threads,
                          "jacobian_seconds": round(seconds["jacobian"], 5),
                          "layerwise_seconds": round(seconds["layerwise"], 5),
                          "speedup": round(seconds["jacobian"] / seconds["layerwise"], 1),
                          "max_rel_difference": float(np.abs(a - b).max() / np.abs(a).max())}), flush=True)


if __name__ == "__main__":
    _args.run(main)
