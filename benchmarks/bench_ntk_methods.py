"""Seconds of the empirical metric-NTK's two exact forms on probe sets of several sizes, and their largest difference.

The forms: torch.func's vmap(jacrev) ("jacobian") and the layer-wise form from MetricMLP.ntk_factors ("layerwise",
what method "auto" takes for a MetricMLP); the difference is relative to the largest entry.

Usage: python benchmarks/bench_ntk_methods.py [--repeat 3] [--threads 1]
Each case: N Fermat-quintic points (seed 1), a GELU MetricMLP of the given depth x width (seed 0); one warm-up call
per form, then the mean of `repeat` calls. Prints one JSON line per case.
"""

from __future__ import annotations

import json
import time

import numpy as np

import _args
from hpcflow.arguments import MAX_THREADS

#: (points, width, depth)
CASES = ((20, 8, 2), (20, 64, 3), (100, 64, 3), (200, 256, 3))


def main(argv=None) -> None:
    ap = _args.parser(__doc__)
    ap.add_argument("--repeat", type=_args.POSITIVE, default=3)
    ap.add_argument("--threads", type=_args.whole(1, MAX_THREADS), default=1)
    args = ap.parse_args(argv)
    import torch  # after the arguments: a bad one is refused without torch's seconds of import

    from hpcflow.geometry import Hypersurface
    from hpcflow.nn.data import MetricData
    from hpcflow.nn.model import MetricMLP
    from hpcflow.nn.ntk import empirical_ntk

    torch.set_num_threads(args.threads)
    data = MetricData.from_pointset(Hypersurface.fermat(3).sample(max(n for n, _, _ in CASES), seed=1))
    for n, width, depth in CASES:
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
    main()
