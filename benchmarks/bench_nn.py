"""Finite networks (sec. 3.3, Fig. 4): seconds per training epoch and per empirical metric-NTK, by method and width.

Epochs: the 3x64 ReLU baseline on 10^5 points; the NTK: the Fig. 4 model (3xW GELU) on 10 + 10 points.
Usage: python benchmarks/bench_nn.py [--threads 1 2] [--n 100000] [--epochs 2] [--batches 64 1000]
       [--dtypes float64 float32] [--features reim reim_abs2] [--device cpu|cuda]
Prints one JSON line per measurement. The whole Fig. 4 run: `hpcflow nn jobs/nn_ntk_evolution.toml --out DIR`
(wall_seconds in DIR/summary.json).
"""

from __future__ import annotations

import json
import time

import _args
from hpcflow.arguments import MAX_THREADS

# torch and hpcflow.nn are imported where they are used, after the arguments are parsed: a bad argument is refused
# without torch's seconds of import.


def _sync(device):
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def bench_epoch(tr, va, *, width, depth, activation, batch, dtype, epochs, device, features="reim"):
    from hpcflow.nn.model import MetricMLP
    from hpcflow.nn.train import TrainConfig, train

    model = MetricMLP(tr.x.shape[1], depth=depth, width=width, activation=activation, dtype=dtype, seed=0,
                      output_scale=0.1, features=features).to(device)
    hist = train(model, tr, va, TrainConfig(epochs=epochs, batch_size=batch, lr=1e-3))
    return min(hist.epoch_seconds)


def bench_ntk(data, *, width, method, device, repeat=3):
    from hpcflow.nn.model import MetricMLP
    from hpcflow.nn.ntk import empirical_ntk

    model = MetricMLP(data.x.shape[1], depth=3, width=width, activation="gelu", seed=0).to(device)
    empirical_ntk(model, data.x, data.gfs, method=method)  # warm-up (torch.func tracing)
    best = float("inf")
    for _ in range(repeat):
        _sync(device)
        t0 = time.perf_counter()
        empirical_ntk(model, data.x, data.gfs, method=method)
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = _args.parser(__doc__)
    ap.add_argument("--threads", type=_args.whole(1, MAX_THREADS), nargs="+", default=[1, 2])
    ap.add_argument("--n", type=_args.POSITIVE, default=100_000)
    ap.add_argument("--epochs", type=_args.POSITIVE, default=2, help="epochs timed per case (the fastest is reported)")
    ap.add_argument("--batches", type=_args.POSITIVE, nargs="+", default=[64, 1000],
                    help="64 = the baseline job's batch")
    ap.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=("float64", "float32"))
    ap.add_argument("--features", nargs="+", default=["reim"], choices=("reim", "reim_abs2"))
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--ntk-widths", type=_args.POSITIVE, nargs="+", default=[128, 1024, 4096])
    args = ap.parse_args()
    from hpcflow.commands.info import torch_cuda

    if args.device == "cuda" and torch_cuda() is not True:  # without torch's import where no GPU driver can answer
        ap.error("argument --device: torch sees no CUDA GPU on this machine; use --device cpu")
    import torch

    from hpcflow.geometry import Hypersurface
    from hpcflow.nn.data import MetricData

    X = Hypersurface.fermat(3)
    ps = X.sample(args.n + 2000, seed=0)
    for threads in args.threads:
        torch.set_num_threads(threads)
        for dtype in args.dtypes:
            dt = torch.float64 if dtype == "float64" else torch.float32
            tr = MetricData.from_pointset(ps[: args.n], dtype=dt, device=args.device)
            va = MetricData.from_pointset(ps[args.n:], dtype=dt, device=args.device)
            for batch in args.batches:
                for features in args.features:
                    s = bench_epoch(tr, va, width=64, depth=3, activation="relu", batch=batch, dtype=dtype,
                                    epochs=args.epochs, device=args.device, features=features)
                    print(json.dumps({"case": "epoch_3x64_relu", "n": args.n, "batch": batch, "dtype": dtype,
                                      "features": features, "threads": threads, "device": args.device,
                                      "seconds_per_epoch": round(s, 3)}), flush=True)
        data = MetricData.from_pointset(ps[:20], device=args.device)
        for width in args.ntk_widths:
            for method in ("jacobian", "layerwise"):
                if method == "jacobian" and width > 256:
                    continue  # J needs 20*9*P*8 bytes: 3 GB at width 1024, 48 GB at 4096
                s = bench_ntk(data, width=width, method=method, device=args.device)
                print(json.dumps({"case": "ntk_3xW_gelu_20pts", "width": width, "method": method,
                                  "threads": threads, "device": args.device, "seconds": round(s, 4)}), flush=True)


if __name__ == "__main__":
    _args.run(main)
