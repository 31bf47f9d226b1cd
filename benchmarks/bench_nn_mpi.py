"""Data-parallel network training: seconds per epoch at R ranks against one process, Allreduce cost and its model.

The baseline job (10^5 points, 3x64 ReLU) at 1 and 2 ranks with one thread each against one process with 1 and 2
threads, at the baseline batch and larger global batches; the measured Allreduce time, and a model of its cost for
wider networks and more ranks.

Usage: python benchmarks/bench_nn_mpi.py [--batches 64 1024] [--epochs 2] [--n 100000] [--ranks 1 2]
       [--lr-for 256=6e-3] [--set-for 512:training.lr_warmup=2] [--allreduce]
       [--model-only --alpha A --beta B --c C --t0 T] [--steps-only --rows 64 128 256 512 1024] [--repeat K]
       [--single-threads 2 [--single-mixed]]
Each case runs `hpcflow nn jobs/nn_baseline.toml` (NTK off, `--set training.epochs=E`) in a subprocess and
prints one JSON line: the fastest epoch (history/epoch_seconds), σ_val after the last epoch, and per rank the
seconds and calls of the gradient Allreduce. --allreduce instead times MPI_Allreduce of float64 buffers at 2
ranks, and torch.distributed's gloo all_reduce of the same buffers (the alternative to MPI for the gradient),
prints the MPI latency/bandwidth fit used by the cost model (and the model, with --c), and stops; given with an
option of the epoch comparison (--batches, --epochs, --n, --ranks, --single-threads, --single-mixed, --lr-for,
--set-for, --repeat) it runs that comparison after the fit (--model-only: the model from given --alpha/--beta).
σ after 50 epochs: pass --epochs 50 (minutes per case). --steps-only times one optimiser step of the 3x64 network
in this process (one torch thread, one BLAS thread) on each number of rows, with hpcflow.nn.fast_step and with
autograd + Optimizer.step, and fits t(B) = t0 + c_B B (the per-step fixed cost t0 of the cost model).
--repeat K runs every case of a batch K times, interleaved (1 process, 2 ranks, 1 process, ...), so that drift of
a shared machine hits all cases alike, and prints per batch the median and range of each case's fastest epoch
and the speedup of the ranks over the best single process, run by run. --single-mixed adds a single process
with one torch thread and --single-threads BLAS threads (a one-thread process's products go to NumPy's BLAS,
hpcflow.nn.fast_step), so that every single-process setting competes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import _args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JOB = os.path.join(ROOT, "jobs", "nn_baseline.toml")


def mpiexec() -> str:
    return shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or "mpiexec"


def run_case(ranks: int, threads: int, batch: int, epochs: int, n: int, lr: float | None, extra=(),
             blas: int | None = None) -> dict:
    """One `hpcflow nn` run of the baseline job (`extra`: more --set values) with `threads` torch threads per
    rank and `blas` CPUs per rank (HPCFLOW_THREADS: NumPy's BLAS; default `threads`); the figures of its nn.h5
    and summary.json."""
    import h5py
    import numpy as np

    out = tempfile.mkdtemp(prefix="bench_nn_mpi_")
    try:  # removed however the case ends (a failed child ends this process through _args.child)
        sets = [f"training.epochs={epochs}", f"training.batch_size={batch}", f"training.threads={threads}",
                "ntk.enabled=false", f"geometry.n_train={n}"] + ([f"training.lr={lr}"] if lr else []) + list(extra)
        cmd = [sys.executable, "-m", "hpcflow", "nn", JOB, "--out", os.path.join(out, "run")]
        for s in sets:
            cmd += ["--set", s]
        if ranks > 1:
            cmd = [mpiexec(), "-n", str(ranks)] + cmd
        env = dict(os.environ, HPCFLOW_THREADS=str(blas or threads), PYTHONPATH=ROOT)
        t0 = time.perf_counter()
        _args.child(cmd, f"hpcflow nn at {_args.layout(ranks, threads)}, batch {batch}", env=env,
                    stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        with open(os.path.join(out, "run", "summary.json")) as fh:
            summary = json.load(fh)
        with h5py.File(os.path.join(out, "run", "nn.h5")) as f:
            epoch_seconds = f["history/epoch_seconds"][()]
            comm_seconds = f["history/comm_seconds"][()]  # (epochs, R)
            sigma_val = f["history/sigma_val"][()]
    finally:
        shutil.rmtree(out, ignore_errors=True)
    per = summary.get("per_rank", [])
    best = int(np.argmin(epoch_seconds))
    return {"ranks": ranks, "threads": threads, "blas_threads": blas or threads, "batch": batch,
            "lr": summary["config"]["training"]["lr"], "set": list(extra),
            "epochs": epochs, "n_train": n, "best_epoch_seconds": float(epoch_seconds[best]),
            "best_epoch_comm_seconds": comm_seconds[best].tolist(),
            "best_epoch_compute_seconds_max": float(epoch_seconds[best] - np.min(comm_seconds[best])),
            "mean_epoch_seconds": float(np.mean(epoch_seconds)), "sigma_val_final": float(sigma_val[-1]),
            # per rank: seconds in the collectives of the training epochs (history/comm_seconds), mean over epochs
            "comm_seconds_per_epoch": np.mean(comm_seconds, axis=0).tolist(),
            # per rank: every collective of the run, set-up and validation included (summary per_rank.comm_seconds)
            "comm_seconds_whole_run": [p["comm_seconds"] for p in per],
            "allreduce_seconds_per_epoch": [p["allreduce_seconds"] / epochs for p in per],
            "allreduce_calls_per_epoch": [p["allreduce_calls"] / epochs for p in per], "wall_seconds": wall}


def repeat_summary(batch: int, runs: dict) -> dict:
    """Median and range of each case's fastest epoch over the repeats, and per repeat the speedup of each rank
    count (one thread per rank) over the faster single process of the same repeat, and the ceiling of that speedup:
    R ranks dividing the one-thread process's epoch perfectly (R x best single / one thread)."""
    import numpy as np

    out = {"batch": batch, "repeats": len(next(iter(runs.values()))),
           "cases": {_label(case): {"median": float(np.median(v)), "min": float(min(v)), "max": float(max(v))}
                     for case, v in runs.items()}}
    single = [runs[k] for k in runs if k[0] == 1]
    if single:  # no single-process case asked for: nothing to compare with
        best_single = np.min(single, axis=0)
        out["speedup_vs_best_single"] = {f"{case[0]} ranks": [float(b / x) for b, x in zip(best_single, runs[case])]
                                         for case in runs if case[0] > 1}
        if (1, 1, 1) in runs:  # R ranks cannot beat one thread's epoch divided by R: the speedup that would give
            out["ceiling_vs_best_single"] = {f"{case[0]} ranks": [float(case[0] * b / t) for b, t in
                                                                  zip(best_single, runs[(1, 1, 1)])]
                                             for case in runs if case[0] > 1}
    return out


def _label(case) -> str:
    """'RxT' for R ranks of T threads, with 'bB' when NumPy's BLAS has B threads instead of T."""
    r, t, b = case
    return f"{r}x{t}" + (f"b{b}" if b != t else "")


def _best_seconds(call, barrier, repeat: int) -> float:
    """The fastest of `repeat` calls, each started after a barrier."""
    best = float("inf")
    for _ in range(repeat):
        barrier()
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    return best


def allreduce_worker(sizes, repeat: int) -> None:
    """Under mpiexec: the best time of an in-place SUM Allreduce of float64 buffers of each size, by MPI
    (mpi4py) and by torch.distributed's gloo backend (TCP on loopback, rendezvous address from rank 0)."""
    import socket

    import numpy as np
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rank = comm.Get_rank()

    def report(backend: str, n: int, best: float) -> None:
        best = comm.allreduce(best, op=MPI.MAX)
        if rank == 0:
            print(json.dumps({"backend": backend, "allreduce_floats": n, "ranks": comm.Get_size(),
                              "seconds": best}), flush=True)

    for n in sizes:
        buf = np.ones(n)
        report("mpi", n, _best_seconds(lambda: comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM), comm.Barrier, repeat))
    import torch
    import torch.distributed as dist

    if not dist.is_gloo_available():
        return
    port = None
    if rank == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    port = comm.bcast(port)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=comm.Get_size())
    try:
        for n in sizes:
            t = torch.ones(n, dtype=torch.float64)
            report("gloo", n, _best_seconds(lambda: dist.all_reduce(t), comm.Barrier, repeat))
    finally:
        dist.destroy_process_group()


def n_parameters(width: int, depth: int = 3, n_in: int = 10, n_out: int = 9) -> int:
    sizes = [n_in] + [width] * depth + [n_out]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


def allreduce_model(p: int, ranks: int, alpha: float, beta: float) -> float:
    """Seconds of one Allreduce of p float64 (+3 scalars) at R ranks: recursive doubling for the latency,
    reduce-scatter + allgather for the volume, 2 (R-1)/R · 8p bytes at beta seconds per byte."""
    import math

    if ranks == 1:
        return 0.0
    return 2 * math.ceil(math.log2(ranks)) * alpha + 2 * (ranks - 1) / ranks * 8 * (p + 3) * beta


def print_model(alpha: float, beta: float, c_point_param: float, t0: float, batch: int) -> None:
    """Modelled step time t(R) = t0 + c · (B/R) · P + Allreduce(P, R) + 2 scalar Allreduces (the batch κ sums and
    the κ term) and the speedup t(1)/t(R) per width and R; t0 is the per-step cost that does not shrink with
    B/R (Python, operator launches, the optimiser step)."""
    import math

    for width in (64, 256, 1024, 4096):
        p = n_parameters(width)
        for ranks in (2, 4, 8, 16, 64):
            compute = c_point_param * batch * p
            comm = allreduce_model(p, ranks, alpha, beta) + 4 * math.ceil(math.log2(ranks)) * alpha
            step = t0 + compute / ranks + comm
            print(json.dumps({"model": "data-parallel step", "width": width, "parameters": p, "batch": batch,
                              "ranks": ranks, "comm_seconds": comm, "compute_seconds_per_rank": compute / ranks,
                              "t0": t0, "speedup": (t0 + compute) / step, "comm_share": comm / step}), flush=True)


def step_times(rows_list, repeat: int = 300) -> None:
    """Seconds of one optimiser step of the baseline network on `rows` points on one CPU: hand-written
    (hpcflow.nn.fast_step) and autograd + Optimizer.step; best of 5 x `repeat` in CPU time (process_time);
    then the least-squares t0, c_B."""
    import numpy as np

    from hpcflow.geometry import Hypersurface
    from hpcflow.nn import experiment as ex
    from hpcflow.nn.fast_step import AdamStep, ManualGradient
    from hpcflow.nn.job import SCHEMA
    from hpcflow.nn.replicas import GradientReducer
    from hpcflow.nn.train import TrainConfig, batch_loss, make_optimizer

    from hpcflow.allocator import retain_freed_memory
    from hpcflow.parallel.comm import SerialComm, limit_threads

    # one CPU for torch's threads and NumPy's BLAS (fast_step's products) alike, as `hpcflow nn` limits a rank's
    # (torch is loaded: hpcflow.nn imported it); process_time would otherwise count a second BLAS thread
    os.environ["HPCFLOW_THREADS"] = "1"
    limit_threads(SerialComm())
    retain_freed_memory()  # as `hpcflow nn` does
    model_cfg = {k: f.default for k, f in SCHEMA["model"].items()}
    model_cfg.update(depth=3, width=64, activation="relu", init="he")
    data = ex.as_data(Hypersurface.fermat(3).sample(max(rows_list), seed=0), "float64")
    cfg = TrainConfig(lr=1e-3, loss="ultralocal")
    fits = {}
    for manual in (True, False):
        model = ex.build_model(data.x.shape[1], model_cfg, 0)
        opt = make_optimizer(model, cfg)
        red = GradientReducer(model, extra=3)
        grad = ManualGradient.build(model, red.params, red.views, loss=cfg.loss, detach_kappa=False)
        adam = AdamStep.build(opt)

        def step(b):
            if manual:
                red.extra[0] = grad(b)
                red.reduce()
                adam(1e-4)
            else:
                red.zero()
                loss = batch_loss(model, b, cfg)
                loss.backward()
                red.extra[0] = loss.detach()
                red.reduce()
                opt.step()

        times = []
        for rows in rows_list:
            b = data[:rows]
            for _ in range(20):
                step(b)
            best = float("inf")
            for _ in range(5):  # CPU seconds of this one-thread process: time descheduled does not count
                t0 = time.process_time()
                for _ in range(repeat):
                    step(b)
                best = min(best, (time.process_time() - t0) / repeat)
            times.append(best)
            print(json.dumps({"step": "fast_step" if manual else "autograd", "rows": rows, "seconds": best}),
                  flush=True)
        c_b, t0 = np.polyfit(np.asarray(rows_list, float), np.asarray(times), 1)
        fits["fast_step" if manual else "autograd"] = {"t0_seconds": t0, "seconds_per_row": c_b}
    print(json.dumps({"fit": "t(B) = t0 + c_B B", **fits}), flush=True)


def lr_for(text: str) -> tuple[int, float]:
    """An argparse type: BATCH=LR, a batch size >= 1 and a learning rate > 0."""
    batch, sep, lr = text.partition("=")
    try:
        if not sep:
            raise argparse.ArgumentTypeError("no '='")
        return _args.POSITIVE(batch), _args.real()(lr)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not BATCH=LR ({exc}); pass e.g. 256=6e-3") from None


def set_for(text: str) -> tuple[int, str]:
    """An argparse type: BATCH:KEY=VALUE, a batch size >= 1 and one --set of `hpcflow nn` (which checks it)."""
    batch, sep, kv = text.partition(":")
    try:
        if not sep or not kv.split("=", 1)[0].strip() or "=" not in kv:
            raise argparse.ArgumentTypeError("no ':' or no KEY=VALUE")
        return _args.POSITIVE(batch), kv
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not BATCH:KEY=VALUE ({exc}); pass e.g. "
                                         "512:training.lr_warmup=2") from None


def check_batches(ap, args) -> None:
    """Refuse a --lr-for or --set-for for a batch size that --batches does not run (it would go unused)."""
    for flag, items in (("--lr-for", args.lr_for), ("--set-for", args.set_for)):
        for batch, _ in items:
            if batch not in args.batches:
                ap.error(f"argument {flag}: batch {batch} is not among --batches "
                         f"({' '.join(map(str, args.batches))}); add it to --batches or drop it")


def check_model(ap, args) -> None:
    """Refuse a cost model asked for (--model-only, or any of its numbers) without all its numbers, and a step fit
    on fewer than two batch sizes."""
    if args.steps_only and len(set(args.rows)) < 2:
        ap.error("argument --rows: the fit t(B) = t0 + c_B B needs two or more distinct row counts; pass e.g. "
                 "--rows 64 1024")
    given = {"--alpha": args.alpha, "--beta": args.beta, "--c": args.c}
    if args.steps_only or not (args.model_only or any(v is not None for v in given.values())):
        return
    fitted = ("--alpha", "--beta") if args.allreduce else ()  # --allreduce measures them
    missing = [k for k, v in given.items() if v is None and k not in fitted]
    if missing:
        ap.error(f"the cost model needs {', '.join(missing)}; pass {' and '.join(missing)}"
                 + ("" if args.allreduce else " (or --allreduce, which measures --alpha and --beta)"))


#: the options of the epoch comparison and their defaults: after --allreduce it runs only where one of them is given
EPOCH_OPTIONS = {"batches": [64, 1024], "epochs": 2, "n": 100_000, "ranks": [1, 2], "single_threads": 2,
                 "single_mixed": False, "lr_for": [], "set_for": [], "repeat": 1}


def epoch_options(args) -> list:
    """The options of the epoch comparison given on the command line ('--epochs', ...), their defaults then set in
    `args` (EPOCH_OPTIONS; the parser's defaults are None, so that a default value given is told from none)."""
    given = []
    for name, default in EPOCH_OPTIONS.items():
        if getattr(args, name) is None:
            setattr(args, name, default)
        else:
            given.append("--" + name.replace("_", "-"))
    return given


def main(argv=None) -> None:
    from hpcflow.arguments import MAX_THREADS

    seconds = _args.real(0.0, above=False)
    ap = _args.parser(__doc__)
    ap.add_argument("--batches", type=_args.POSITIVE, nargs="+", default=None, help="batch sizes (default 64 1024)")
    ap.add_argument("--epochs", type=_args.POSITIVE, default=None, help="epochs per case (default 2)")
    ap.add_argument("--n", type=_args.POSITIVE, default=None, help="train points (default 100000)")
    ap.add_argument("--ranks", type=_args.ranks, nargs="+", default=None,
                    help="rank counts at one thread each (default 1 2)")
    ap.add_argument("--single-threads", type=_args.whole(1, MAX_THREADS), default=None,
                    help="one process with this many threads too (default 2)")
    ap.add_argument("--single-mixed", action="store_true", default=None,
                    help="and one process with one torch thread and --single-threads BLAS threads")
    ap.add_argument("--lr-for", nargs="*", type=lr_for, default=None, metavar="BATCH=LR",
                    help="learning rate for a batch size")
    ap.add_argument("--set-for", nargs="*", type=set_for, default=None, metavar="BATCH:KEY=VALUE",
                    help="one more --set for the runs of a batch size (repeatable)")
    ap.add_argument("--steps-only", action="store_true", help="time one optimiser step per --rows, then stop")
    ap.add_argument("--rows", type=_args.POSITIVE, nargs="+", default=[64, 128, 256, 512, 1024])
    ap.add_argument("--allreduce", action="store_true",
                    help="time MPI_Allreduce (and gloo's all_reduce) at 2 ranks and fit alpha, beta, then stop; the "
                         "epoch comparison follows only where one of its options (--batches, --epochs, ...) is given")
    ap.add_argument("--model-only", action="store_true",
                    help="print the cost model alone (needs --alpha, --beta, --c, or --allreduce and --c)")
    ap.add_argument("--alpha", type=seconds, default=None, help="Allreduce latency (s) for the model")
    ap.add_argument("--beta", type=seconds, default=None, help="Allreduce seconds per byte for the model")
    ap.add_argument("--c", type=seconds, default=None, help="compute seconds per point per parameter per step")
    ap.add_argument("--t0", type=seconds, default=0.0, help="per-step seconds independent of the batch")
    ap.add_argument("--repeat", type=_args.POSITIVE, default=None,
                    help="run each batch's cases K times, interleaved (default 1)")
    ap.add_argument("--worker", nargs="*", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    given = epoch_options(args)
    if args.worker is not None:
        with _args.together():  # one rank's exception ends every rank, none left in a collective
            allreduce_worker(args.worker, 50)
        return
    check_model(ap, args)
    check_batches(ap, args)
    if args.steps_only:
        step_times(args.rows)
        return
    if args.allreduce:
        sizes = [1, 10, 100, 1000, 10_000, 100_000, 1_000_000]
        res = _args.child([mpiexec(), "-n", "2", sys.executable, __file__, "--worker", *map(str, sizes)],
                          "the Allreduce timing at 2 ranks", env=dict(os.environ, PYTHONPATH=ROOT))
        every = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
        for r in every:
            print(json.dumps(r))
        rows = [r for r in every if r["backend"] == "mpi"]
        alpha = min(r["seconds"] for r in rows) / 2  # 2 latencies at 2 ranks
        big = rows[-1]
        beta = (big["seconds"] - 2 * alpha) / (8 * big["allreduce_floats"])  # 2 (R-1)/R = 1 at R = 2
        print(json.dumps({"fit": "allreduce", "alpha_seconds": alpha, "beta_seconds_per_byte": beta}))
        args.alpha, args.beta = args.alpha or alpha, args.beta or beta
    lrs = dict(args.lr_for)
    extra = {}
    for b, kv in args.set_for:
        extra.setdefault(b, []).append(kv)
    if not args.model_only and (given or not args.allreduce):  # --allreduce alone: its timing and fit
        for batch in args.batches:
            cases = [(1, args.single_threads, args.single_threads)] if args.single_threads > 1 else []
            if args.single_threads > 1 and args.single_mixed:
                cases.append((1, 1, args.single_threads))
            cases += [(r, 1, 1) for r in args.ranks]
            runs = {case: [] for case in cases}
            for _ in range(args.repeat):
                for ranks, threads, blas in cases:
                    res = run_case(ranks, threads, batch, args.epochs, args.n, lrs.get(batch), extra.get(batch, ()),
                                   blas=blas)
                    runs[(ranks, threads, blas)].append(res["best_epoch_seconds"])
                    print(json.dumps(res), flush=True)
            if args.repeat > 1:
                print(json.dumps(repeat_summary(batch, runs)), flush=True)
    if args.alpha is not None and args.beta is not None and args.c is not None:
        for batch in args.batches:
            print_model(args.alpha, args.beta, args.c, args.t0, batch)


if __name__ == "__main__":
    _args.run(main)
