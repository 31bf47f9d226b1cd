"""The pieces of an `nn` job: sample points, build and train a network while tracking its metric-NTK,
the width sweep (lazy vs feature-learning regime) and the kernel flow with the epoch-0 NTK (paper sec. 3.3).

Each function takes plain values (no job-file dicts), so tests and benchmarks call them directly.
"""

from __future__ import annotations

import copy
import math
import time

import h5py
import numpy as np

from hpcflow.arguments import MAX_BATCHES
from hpcflow.nn._torch import require_torch, torch_dtype
from hpcflow.nn.data import MetricData
from hpcflow.nn.model import MetricMLP
from hpcflow.nn.ntk import NTKTracker
from hpcflow.nn.replicas import Shard
from hpcflow.nn.train import TrainConfig, train

torch = require_torch()


def sample_points(X, n_train: int, n_val: int, seed: int, chart=None):
    """Train and validation PointSets (validation from seed + 1, so the two are independent samples)."""
    chart = tuple(chart) if chart else None
    return X.sample(n_train, seed=seed, chart=chart), X.sample(n_val, seed=seed + 1, chart=chart)


def sample_shards(X, n_train: int, n_val: int, seed: int, chart=None, *, comm=None, max_batches=MAX_BATCHES,
                  batches_said=None):
    """This rank's Shards (hpcflow.nn.replicas) of the train and validation PointSets of `sample_points`.

    Each rank samples only the blocks its rows need (Hypersurface.sample(..., layout="share")); the rows are
    bitwise those of one process for every R (per-block seed streams). The arguments are checked on every rank
    together first (one allgather at R > 1): a bad one on any rank (ConfigError, as Hypersurface.sample's), or
    an X, n_train, n_val, seed, chart or max_batches that differs between ranks, is refused by every rank.
    `max_batches`, `batches_said`: the sampler's (`Hypersurface.sample`), for both sets.
    """
    from hpcflow.errors import ConfigError
    from hpcflow.geometry.sampling import agreed, sample_checked, sampling_arguments
    from hpcflow.parallel.comm import arguments_together, resolve
    from hpcflow.parallel.decompose import share

    c = resolve(comm)
    sets, names = [], {"surface": "X", "n_points": "n_train"}

    def check():
        kw = dict(chart=tuple(chart) if chart else None, layout="share", error=ConfigError, max_batches=max_batches,
                  batches_said=batches_said)
        train = sampling_arguments(X, n_train, seed, **kw, names=names)
        if seed is None:
            raise TypeError("seed=None is invalid; pass an integer >= 0 (the validation set uses seed + 1)")
        sets[:] = [train, sampling_arguments(X, n_val, train["seed"] + 1, **kw, names={"n_points": "n_val"})]

    arguments_together(check, comm=c, same=lambda: {**agreed(X, sets[0], names), "n_val": sets[1]["n_points"]})
    out = []
    for args in sets:
        ps = sample_checked(X, **args, comm=c)[0]
        out.append(Shard(ps, share(args["n_points"], c.Get_size(), c.Get_rank())[0], args["n_points"]))
    return tuple(out)


def build_model(n_in: int, model_cfg: dict, seed: int) -> MetricMLP:
    return MetricMLP(n_in, depth=model_cfg["depth"], width=model_cfg["width"], activation=model_cfg["activation"],
                     kind=model_cfg["kind"], dtype=model_cfg.get("dtype", "float64"), seed=seed,
                     output_scale=model_cfg.get("output_scale", 1.0), features=model_cfg.get("features", "reim"),
                     init=model_cfg.get("init", "torch"))


def ntk_indices(n_train_total: int, n_val_total: int, n_train: int, n_test: int, seed: int):
    """Sorted global indices of the fixed random train / test points for the NTK (drawn once, seeded)."""
    rng = np.random.default_rng(seed)
    i = np.sort(rng.choice(n_train_total, size=min(n_train, n_train_total), replace=False))
    j = np.sort(rng.choice(n_val_total, size=min(n_test, n_val_total), replace=False))
    return i, j


def ntk_points(train: MetricData, val: MetricData, n_train: int, n_test: int, seed: int):
    """Fixed random train / test points for the NTK (drawn once, seeded)."""
    i, j = ntk_indices(len(train), len(val), n_train, n_test, seed)
    return train[torch.as_tensor(i, device=train.x.device)], val[torch.as_tensor(j, device=val.x.device)], i, j


def train_with_ntk(model, train_data, val_data, cfg: TrainConfig, *, ntk_train=None, ntk_test=None,
                   ntk_method: str = "auto", log=None, comm=None, on_step=None, abort_on_error=True) -> dict:
    """Train `model`, recording σ history and (if ntk points are given) the NTK at epoch 0 and every epoch.

    Returns {"history", "train_seconds", "diverged", "ntk" (with NTK points)}: `diverged` is None, or why the training
    stopped early for a numerical reason (History.diverged; the NTK then ends at the last epoch whose σ are finite).
    Under `comm` the training is data parallel and every rank computes the (identical) NTK of the given points;
    `on_step(trainer)` runs after every optimiser step (`train`; so does `abort_on_error`: at R > 1 an exception
    raised during the training ends the job, unless False). A bad ntk_method on any rank, or NTK points or a
    method that differ between ranks, is refused by every rank before training (one allgather at R > 1).
    """
    from hpcflow.parallel.comm import arguments_together

    got = {}
    arguments_together(lambda: got.update(_ntk_settings(model, ntk_train, ntk_test, ntk_method)), comm=comm,
                       same=lambda: got)
    tracker = NTKTracker(ntk_train, ntk_test, method=got["ntk_method"]) if got["ntk points"] else None
    t0 = time.perf_counter()
    hist = train(model, train_data, val_data, cfg, on_epoch=tracker, log=log, comm=comm, on_step=on_step,
                 abort_on_error=abort_on_error)
    out = {"history": hist.arrays(), "train_seconds": time.perf_counter() - t0, "diverged": hist.diverged}
    if tracker is not None:
        h = out["history"]
        bad = np.flatnonzero(~(np.isfinite(h["sigma_val"]) & np.isfinite(h["sigma_train"])))
        if bad.size:  # the network of an epoch whose σ is not finite has no NTK to compare (epoch 0's is kept)
            tracker.truncate(max(int(bad[0]) - 1, 0))
        out["ntk"] = tracker.results()
    return out


def _ntk_settings(model, ntk_train, ntk_test, method) -> dict:
    """`train_with_ntk`'s NTK settings, checked (no collective): whether NTK points are given (both sets or
    neither) and the exact method (`hpcflow.nn.ntk.ntk_method`)."""
    from hpcflow.nn.ntk import ntk_method

    if (ntk_train is None) != (ntk_test is None):
        raise TypeError("ntk_train and ntk_test: pass both sets of NTK points or neither")
    return {"ntk points": ntk_train is not None, "ntk_method": ntk_method(model, method)}


def _sweep_settings(widths, n_in, model_cfg, cfg, width_ref, lr_exponent, seed, ntk_train, ntk_test) -> dict:
    """`width_sweep`'s widths (integers >= 1), width_ref (> 0), lr_exponent (finite), cfg (a TrainConfig) and every
    width's learning rate and schedule (`rates.sweep_fault`), checked, model_cfg by building its network at width 1,
    and NTK points given (no collective)."""
    from hpcflow.arguments import api_integer, api_keys, api_number
    from hpcflow.nn.data import check_metric_data
    from hpcflow.nn.rates import sweep_fault

    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg is a {type(cfg).__name__}; pass a TrainConfig")
    for name, d in (("ntk_train", ntk_train), ("ntk_test", ntk_test)):
        if d is None:
            raise TypeError(f"{name} is None: width_sweep measures each width's NTK change on ntk_train and ntk_test; "
                            "pass MetricData of a few points of each set, e.g. train_data[:10] and val_data[:10]")
        check_metric_data(name, d)
    with torch.random.fork_rng(devices=[]):  # a network without a seed draws from the global generator
        build_model(n_in, {**api_keys(model_cfg, "model_cfg", ("depth", "activation", "kind")), "width": 1}, seed)
    got = {"widths": [api_integer(f"widths[{i}]", w, "an integer >= 1 (units per hidden layer)", lo=1)
                      for i, w in enumerate(widths)],
           "width_ref": api_number("width_ref", width_ref, "a number > 0", lo=0, lo_open=True),
           "lr_exponent": api_number("lr_exponent", lr_exponent, "a finite number"), "seed": seed}
    fault = sweep_fault(cfg.__dict__, got["widths"], got["width_ref"], got["lr_exponent"])
    if fault is not None:
        raise ValueError(f"width_sweep: {fault}")
    return got


def width_sweep(widths, train_data, val_data, model_cfg: dict, cfg: TrainConfig, *, width_ref: int,
                lr_exponent: float, ntk_train, ntk_test, seed: int, log=None, comm=None, on_step=None,
                abort_on_error=True) -> dict:
    """Train one network per width with lr(width) = lr (width_ref / width)^lr_exponent; NTK change per width.
    `stopped` says why a width's training stopped early for a numerical reason ('' when it did not); its final σ
    and NTK change are then NaN (no result). `on_step(trainer)` runs after every optimiser step of every width's
    training (`train`; so does `abort_on_error`). A bad width, width_ref, lr_exponent, cfg or model_cfg on any rank,
    or widths, width_ref, lr_exponent or seed that differ between ranks, is refused by every rank before the first
    network is built (one allgather at R > 1)."""
    from hpcflow.parallel.comm import arguments_together

    got = {}
    arguments_together(lambda: got.update(_sweep_settings(widths, train_data.x.shape[1], model_cfg, cfg, width_ref,
                                                          lr_exponent, seed, ntk_train, ntk_test)),
                       comm=comm, same=lambda: got)
    widths, width_ref, lr_exponent = got["widths"], got["width_ref"], got["lr_exponent"]
    rows = {k: [] for k in ("width", "lr", "n_parameters", "sigma_val_initial", "sigma_val_final",
                            "rel_frobenius_final", "wasserstein_final", "seconds", "stopped")}
    for width in widths:
        lr = cfg.lr * (width_ref / width) ** lr_exponent
        model = build_model(train_data.x.shape[1], {**model_cfg, "width": int(width)}, seed).to(train_data.x.device)
        t0 = time.perf_counter()
        res = train_with_ntk(model, train_data, val_data, TrainConfig(**{**cfg.__dict__, "lr": lr}),
                             ntk_train=ntk_train, ntk_test=ntk_test, ntk_method="layerwise", comm=comm,
                             on_step=on_step, abort_on_error=abort_on_error)
        final = math.nan if res["diverged"] else 1.0  # a diverged width has no final result
        vals = (int(width), lr, sum(p.numel() for p in model.parameters()), res["history"]["sigma_val"][0],
                final * res["history"]["sigma_val"][-1], final * res["ntk"]["rel_frobenius"][-1],
                final * res["ntk"]["wasserstein"][-1], time.perf_counter() - t0, res["diverged"] or "")
        for k, v in zip(rows, vals):
            rows[k].append(v)
        if log is not None:
            log(f"width {width:5d}  lr {lr:.3g}  " + (f"diverged: {res['diverged']}" if res["diverged"] else
                                                    f"sigma_val {vals[4]:.4f}  NTK rel. change {vals[5]:.4f}"))
    out = {k: np.asarray(v) for k, v in rows.items() if k != "stopped"}
    return {**out, "stopped": np.array(rows["stopped"], dtype=h5py.string_dtype("utf-8"))}


def ntk_kernel_flow(model0, X, train_ps, test_ps, *, dt: float, steps: int, tile: int = 256,
                    loss: str = "sigma", callback=None) -> dict:
    """Kernel flow (eq. 3.5) with the fixed empirical NTK of `model0` (a frozen copy is used), from g_FS, not from
    model0's own metric (hpcflow.nn.kernel); `callback(info)` runs after every step (`kernel_flow`'s: True stops the
    flow; an exception it raises ends the flow there)."""
    from hpcflow.flow import kernel_flow
    from hpcflow.nn.kernel import NetworkNTKKernel
    from hpcflow.parallel.comm import SerialComm

    kernel = NetworkNTKKernel(copy.deepcopy(model0), X)
    t0 = time.perf_counter()
    # every rank holds the same gathered points: the flow is replicated, not divided over ranks
    res = kernel_flow(kernel, train_ps, test_ps, dt=dt, steps=steps, loss=loss, tile=tile, comm=SerialComm(),
                      callback=callback)
    return {"sigma_train": res.sigma_train, "sigma_test": res.sigma_test, "rejected_steps": res.rejected_steps,
            "steps_taken": res.steps_taken, "seconds": time.perf_counter() - t0, "stopped": res.stopped}


def as_data(ps, dtype_name: str, device="cpu") -> MetricData:
    return MetricData.from_pointset(ps, dtype=torch_dtype(dtype_name), device=device)
