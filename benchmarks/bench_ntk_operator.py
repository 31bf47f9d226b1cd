"""Seconds of one kernel-flow step's network-NTK operator products, layer-wise against torch.func, and the whole flow.

The products (train x train and test x train) of the nn job's kernel flow, at its defaults (kernel_flow n_train =
n_test = 500, tile 256, kernel_flow's cache_bytes; [model] 3x64 ReLU, multiplicative, float64): the layer-wise form
(method "auto" for a MetricMLP; with its tiles' ntk_factors cached, as in a flow, and without) against torch.func's
vjp/jvp ("jacobian"), their largest difference relative to the largest entry, and the seconds a fresh process spends
importing torch._dynamo, which torch.func's first vjp/jvp call imports (the jacobian form only); then the job's whole
kernel flow (kernel_flow steps, dt) each way.

Usage: python benchmarks/bench_ntk_operator.py [--repeat 5] [--threads T]
"""

from __future__ import annotations

import sys
import time

import numpy as np

import _args
from hpcflow.arguments import MAX_THREADS


def defaults(section: str) -> dict:
    from hpcflow.nn import job

    return {k: f.default for k, f in job.SCHEMA[section].items()}


def step_seconds(kernel, train, test, grad, tile: int, cache_bytes: int, repeat: int):
    """Best seconds of one step's two products (operators built once, each with half the flow's cache budget, as
    kernel_flow builds them; each repeat with another gradient, as a flow's changes every step) and the products."""
    ops = [kernel.operator(x, train.points, tile=tile, cache_bytes=cache_bytes // 2) for x in (train.points,
                                                                                               test.points)]
    outs = [op(grad) for op in ops]  # first call outside the timing (torch.func's import, the cache's fill)
    best = np.inf
    for r in range(repeat):
        step_grad = np.roll(grad, r + 1, axis=0)
        t0 = time.perf_counter()
        for op in ops:
            op(step_grad)
        best = min(best, time.perf_counter() - t0)
    return best, np.concatenate(outs)


def import_seconds() -> float:
    """Wall seconds of `import torch._dynamo` in a fresh process that already imported torch."""
    code = "import time, torch; t = time.perf_counter(); import torch._dynamo; print(time.perf_counter() - t)"
    return float(_args.child([sys.executable, "-c", code], "the torch._dynamo import").stdout)


def main():
    ap = _args.parser(__doc__)
    ap.add_argument("--repeat", type=_args.POSITIVE, default=5)
    ap.add_argument("--threads", type=_args.whole(1, MAX_THREADS), default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    import torch  # after the arguments: a bad one is refused without torch's seconds of import

    from hpcflow.flow import DEFAULT_CACHE_BYTES, kernel_flow
    from hpcflow.geometry import Hypersurface
    from hpcflow.nn.kernel import NetworkNTKKernel
    from hpcflow.nn.model import MetricMLP
    from hpcflow.parallel.comm import SerialComm

    if args.threads:
        torch.set_num_threads(args.threads)
    kf, mc, geo = defaults("kernel_flow"), defaults("model"), defaults("geometry")
    X = Hypersurface.fermat(3)
    train, test = X.sample(kf["n_train"], seed=0), X.sample(kf["n_test"], seed=1)
    model = MetricMLP(10, depth=mc["depth"], width=mc["width"], activation=mc["activation"], kind=mc["kind"],
                      dtype=mc["dtype"], output_scale=mc["output_scale"], features=mc["features"], init=mc["init"],
                      seed=geo.get("seed") or 0)
    grad = np.random.default_rng(0).standard_normal((len(train), 9))
    print(f"n_train {len(train)}  n_test {len(test)}  tile {kf['tile']}  network {mc['depth']}x{mc['width']} "
          f"{mc['activation']}  P {sum(p.numel() for p in model.parameters())}  torch threads {torch.get_num_threads()}")
    found = {}
    for name, method, cache in (("layer-wise", "auto", DEFAULT_CACHE_BYTES), ("layer-wise, no cache", "auto", 0),
                                ("torch.func", "jacobian", DEFAULT_CACHE_BYTES)):
        found[name] = step_seconds(NetworkNTKKernel(model, X, method=method), train, test, grad, kf["tile"], cache,
                                   args.repeat)
        print(f"{name:21s} (method {method!r}, cache_bytes {cache}): {1e3 * found[name][0]:7.1f} ms per step "
              f"(train + test products, best of {args.repeat})")
    ref = found["torch.func"]
    for name in ("layer-wise", "layer-wise, no cache"):
        diff = np.abs(found[name][1] - ref[1]).max() / np.abs(ref[1]).max()
        print(f"{name}: {ref[0] / found[name][0]:.1f}x torch.func's speed; max |difference| / max |Θu| {diff:.1e}")
    for name, method in (("layer-wise", "auto"), ("torch.func", "jacobian")):
        t0 = time.perf_counter()
        res = kernel_flow(NetworkNTKKernel(model, X, method=method), train, test, dt=kf["dt"], steps=kf["steps"],
                          tile=kf["tile"], comm=SerialComm())
        print(f"kernel_flow, {name:10s}: {time.perf_counter() - t0:6.2f} s for {res.steps_taken} steps "
              f"(sigma_test {res.sigma_test[-1]:.6f})")
    print(f"import torch._dynamo in a fresh process: {import_seconds():.2f} s (the jacobian form's first call only)")


if __name__ == "__main__":
    _args.run(main)
