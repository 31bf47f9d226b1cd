"""Job kind "nn" (`hpcflow nn JOB.toml --out DIR`): train a metric network, track its metric-NTK (Fig. 4),
optionally a width sweep and the kernel flow with the epoch-0 NTK. Writes DIR/nn.h5, DIR/model.pt(.json);
returns the summary (sigma_val_initial, sigma_val_final, epochs, ntk_wasserstein per epoch, ...).
"""

from __future__ import annotations

import copy
import json
import math
import os

import numpy as np

from hpcflow.errors import ConfigError
from hpcflow.jobs.schema import (JOB_SECTION, MANIFOLD_FIELDS, MAX_DIM, MAX_STEPS, MAX_THREADS, SEED_MAX, Field,
                                 chart_pair)

LOG_PREFIX = "hpcflow nn:"


def _chart(v):
    return None if v == [] or chart_pair(v) is None else "must be [] (all charts) or [I, J] with I != J, both >= 0"


#: widest layer accepted (a 3x2^20 MLP has ~2e12 parameters; memory is checked by hpcflow.resources)
MAX_WIDTH = 2**20
#: the learning rate at any epoch or width must lie in [LR_MIN, LR_MAX] (no under/overflow of lr * factor^k)
LR_MIN, LR_MAX = 1e-300, 1e6


SCHEMA = {
    "job": JOB_SECTION,
    "geometry": {
        **MANIFOLD_FIELDS,
        "chart": Field(list, [], items=int, check=_chart, lo=0, hi=MAX_DIM + 1,
                       help="[] = points in all charts, or one chart [I, J]"),
        "n_train": Field(int, 100_000, lo=1, help="train points"),
        "n_val": Field(int, 10_000, lo=1, help="held-out validation points (seed + 1)"),
        "seed": Field(int, 0, lo=0, hi=SEED_MAX, help="seed of the train points"),
    },
    "model": {
        "kind": Field(str, "multiplicative", choices=("multiplicative", "additive"),
                      help="g = g_FS + g_FS ⊙ NN(x) or g = g_FS + NN(x)"),
        "depth": Field(int, 3, lo=1, hi=1000, help="hidden layers"),
        "width": Field(int, 64, lo=1, hi=MAX_WIDTH, help="units per hidden layer"),
        "activation": Field(str, "relu", choices=("relu", "gelu")),
        "dtype": Field(str, "float64", choices=("float64", "float32")),
        "features": Field(str, "reim", choices=("reim", "reim_abs2"),
                          help="first-layer inputs: (Re z, Im z) (the paper's), or with |z_k|^2 appended"),
        "init": Field(str, "torch", choices=("torch", "he"),
                      help="hidden layers: PyTorch's default, or He (N(0, 2/fan_in), zero bias)"),
        "output_scale": Field(float, 0.1, lo=0, lo_open=True, hi=1e6,
                              help="last-layer init times this (1 = PyTorch default; < 1 starts near g_FS)"),
    },
    "training": {
        "epochs": Field(int, 50, lo=0, hi=MAX_STEPS),
        "batch_size": Field(int, 1000, lo=1),
        "lr": Field(float, 1e-3, lo=LR_MIN, hi=LR_MAX, help="learning rate"),
        "lr_schedule": Field(str, "exponential", choices=("exponential", "cosine"),
                             help="exponential: lr * lr_decay^epoch; cosine: lr -> lr_min over all steps"),
        "lr_decay": Field(float, 1.0, lo=0, lo_open=True, hi=1e6,
                          help="exponential schedule: lr multiplied by this per epoch"),
        "lr_min": Field(float, 0.0, lo=0.0, hi=LR_MAX, help="cosine schedule: the final learning rate"),
        "optimizer": Field(str, "adam", choices=("adam", "sgd")),
        "loss": Field(str, "sigma", choices=("sigma", "ultralocal"), help="eq. B.11 or eq. B.14"),
        "detach_kappa": Field(bool, False, help="treat the batch κ as a constant in the gradient"),
        "seed": Field(int, 0, lo=0, hi=SEED_MAX, help="initialisation and batch-order seed"),
        "threads": Field(int, 0, lo=0, hi=MAX_THREADS, help="torch CPU threads (0 = torch's default)"),
        "device": Field(str, "auto", choices=("auto", "cpu", "cuda"), help="auto = cuda when torch sees a GPU"),
    },
    "ntk": {
        "enabled": Field(bool, True, help="track the empirical metric-NTK every epoch"),
        "n_train_points": Field(int, 10, lo=1, hi=10_000),
        "n_test_points": Field(int, 10, lo=1, hi=10_000),
        "method": Field(str, "auto", choices=("auto", "jacobian", "layerwise")),
        "seed": Field(int, 0, lo=0, hi=SEED_MAX, help="seed choosing the fixed NTK points"),
    },
    "width_sweep": {
        "widths": Field(list, [], items=int, lo=1, hi=MAX_WIDTH, help="hidden widths to train ([] = no sweep)"),
        "lr": Field(float, None, lo=LR_MIN, hi=LR_MAX, help="lr at width_ref (default: the [training] lr)"),
        "width_ref": Field(int, 64, lo=1, hi=MAX_WIDTH, help="width at which the lr is `lr`"),
        "lr_exponent": Field(float, 1.0, lo=-10.0, hi=10.0, help="lr(width) = lr * (width_ref/width)^lr_exponent"),
        "epochs": Field(int, 10, lo=1, hi=MAX_STEPS),
        "n_train": Field(int, 5000, lo=1, help="first n_train train points are used"),
        "optimizer": Field(str, "adam", choices=("adam", "sgd")),
    },
    "kernel_flow": {
        "enabled": Field(bool, False, help="flow eq. 3.5 with the network's epoch-0 NTK as fixed kernel"),
        "n_train": Field(int, 500, lo=1, help="first n_train train points"),
        "n_test": Field(int, 500, lo=1, help="first n_test validation points"),
        "dt": Field(float, 1e-3, lo=0, lo_open=True, hi=1e12),
        "steps": Field(int, 50, lo=1, hi=MAX_STEPS),
        "tile": Field(int, 256, lo=1, hi=2**20),
    },
}


def check(cfg: dict, source: str = "job") -> None:
    """Cross-field checks, run by hpcflow.jobs.registry.load before any work (torch must be importable)."""
    from hpcflow.nn._torch import require_torch

    torch = require_torch()
    if cfg["training"]["device"] == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{source}: [training].device = 'cuda' but torch sees no GPU; use 'auto' or 'cpu'")
    geo, tr = cfg["geometry"], cfg["training"]
    if geo["chart"] and max(geo["chart"]) > geo["dim"] + 1:
        raise ConfigError(f"{source}: [geometry].chart = {geo['chart']} needs indices <= {geo['dim'] + 1}; change it")
    if geo["dim"] != 3:
        raise ConfigError(f"{source}: [geometry].dim = {geo['dim']}: the networks output 9 = 3x3 components; "
                          "use dim = 3")
    _check_schedule(cfg, source)
    # sections that are switched off are not cross-checked
    limits = []
    if cfg["ntk"]["enabled"]:
        limits += [("ntk", "n_train_points", geo["n_train"]), ("ntk", "n_test_points", geo["n_val"])]
    if cfg["width_sweep"]["widths"]:
        limits += [("width_sweep", "n_train", geo["n_train"])]
    if cfg["kernel_flow"]["enabled"]:
        limits += [("kernel_flow", "n_train", geo["n_train"]), ("kernel_flow", "n_test", geo["n_val"])]
    for sec, key, limit in limits:
        if cfg[sec][key] > limit:
            raise ConfigError(f"{source}: [{sec}].{key} = {cfg[sec][key]} exceeds the {limit} sampled points; lower it")


def _lr_in_range(log_lr: float) -> bool:
    return math.log(LR_MIN) <= log_lr <= math.log(LR_MAX)


def _check_schedule(cfg: dict, source: str) -> None:
    """Every learning rate the run will use (per epoch, per sweep width) lies in [LR_MIN, LR_MAX]."""
    tr, ws = cfg["training"], cfg["width_sweep"]
    if tr["lr_min"] > tr["lr"]:
        raise ConfigError(f"{source}: [training].lr_min = {tr['lr_min']} exceeds lr = {tr['lr']}; lower lr_min")
    if tr["lr_schedule"] == "exponential":
        last = math.log(tr["lr"]) + max(tr["epochs"], 1) * math.log(tr["lr_decay"])
        if not _lr_in_range(last):
            raise ConfigError(f"{source}: [training].lr_decay = {tr['lr_decay']} over {tr['epochs']} epochs takes the "
                              f"learning rate to exp({last:.4g}), outside [{LR_MIN:g}, {LR_MAX:g}]; move lr_decay "
                              "towards 1")
    lr = tr["lr"] if ws["lr"] is None else ws["lr"]
    for w in ws["widths"]:
        log_lr = math.log(lr) + ws["lr_exponent"] * math.log(ws["width_ref"] / w)
        if not _lr_in_range(log_lr):
            raise ConfigError(f"{source}: [width_sweep] lr(width={w}) = lr * (width_ref/width)^lr_exponent = "
                              f"exp({log_lr:.4g}) lies outside [{LR_MIN:g}, {LR_MAX:g}]; lower |lr_exponent|")


def run(cfg: dict, outdir: str, *, log=print) -> dict:
    """Train the network (NTK every epoch), then the optional width sweep and NTK kernel flow; write outputs."""
    check(cfg)
    from hpcflow.jobs.output import write_hdf5
    from hpcflow.nn.checkpoint import save_model

    say = lambda s: log(f"{LOG_PREFIX} {s}")  # noqa: E731
    ctx = _prepare(cfg)
    summary, data = _train_main(cfg, ctx, say)
    if cfg["width_sweep"]["widths"]:
        summary["width_sweep"] = _width_sweep(cfg, ctx, data, say)
    if cfg["kernel_flow"]["enabled"]:
        summary["kernel_flow"] = _kernel_flow_vs_network(cfg, ctx, data, say)
    write_hdf5(os.path.join(outdir, "nn.h5"), data, attrs={"kind": "hpcflow.nn", "config": cfg,
                                                           "conventions": _CONVENTIONS})
    save_model(os.path.join(outdir, "model.pt"), ctx["model"], force=True)
    say(f"sigma_val {summary['sigma_val_initial']:.4f} -> {summary['sigma_val_final']:.4f}")
    return summary


def _prepare(cfg: dict) -> dict:
    """Threads, device, the manifold, train/validation points and tensors, the initial network (and a copy)."""
    from hpcflow.geometry import Hypersurface
    from hpcflow.nn import experiment as ex
    from hpcflow.nn._torch import require_torch
    from hpcflow.nn.train import TrainConfig

    torch = require_torch()
    geo, mcfg, tcfg = cfg["geometry"], cfg["model"], cfg["training"]
    if tcfg["threads"]:
        torch.set_num_threads(tcfg["threads"])
    device = tcfg["device"]
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    X = Hypersurface.dwork(3, geo["psi"]) if geo["manifold"] == "dwork" else Hypersurface.fermat(3)
    train_ps, val_ps = ex.sample_points(X, geo["n_train"], geo["n_val"], geo["seed"], geo["chart"])
    train_d, val_d = ex.as_data(train_ps, mcfg["dtype"], device), ex.as_data(val_ps, mcfg["dtype"], device)
    model = ex.build_model(train_d.x.shape[1], mcfg, tcfg["seed"]).to(device)
    tc = TrainConfig(**{k: tcfg[k] for k in ("epochs", "batch_size", "lr", "lr_decay", "lr_schedule", "lr_min",
                                             "optimizer", "loss", "detach_kappa", "seed")})
    return {"X": X, "train_ps": train_ps, "val_ps": val_ps, "train": train_d, "val": val_d, "model": model,
            "model0": copy.deepcopy(model), "tc": tc, "device": device, "threads": torch.get_num_threads(),
            "ntk_train": None, "ntk_test": None}


def _train_main(cfg: dict, ctx: dict, say):
    """Train ctx["model"] with σ history and the NTK on fixed points every epoch: (summary, HDF5 datasets)."""
    from hpcflow.nn import experiment as ex

    ncfg, tc, data = cfg["ntk"], ctx["tc"], {}
    if ncfg["enabled"]:
        ctx["ntk_train"], ctx["ntk_test"], i, j = ex.ntk_points(ctx["train"], ctx["val"], ncfg["n_train_points"],
                                                                ncfg["n_test_points"], ncfg["seed"])
        data.update({"ntk/points_train": ctx["train_ps"].points[i], "ntk/points_test": ctx["val_ps"].points[j]})
    res = ex.train_with_ntk(ctx["model"], ctx["train"], ctx["val"], tc, ntk_train=ctx["ntk_train"],
                            ntk_test=ctx["ntk_test"], ntk_method=ncfg["method"], log=say)
    hist = res["history"]
    data.update({f"history/{k}": v for k, v in hist.items()})
    summary = {"device": str(ctx["device"]), "threads": ctx["threads"], "sigma_fs_val": ctx["val_ps"].sigma(),
               "sigma_val_initial": hist["sigma_val"][0], "sigma_val_final": hist["sigma_val"][-1],
               "sigma_train_final": hist["sigma_train"][-1], "epochs": tc.epochs,
               "train_seconds": res["train_seconds"],
               "seconds_per_epoch": float(np.mean(hist["epoch_seconds"])) if tc.epochs else None,
               "n_parameters": sum(p.numel() for p in ctx["model"].parameters())}
    if "ntk" in res:
        data.update({f"ntk/{k}": v for k, v in res["ntk"].items()})
        summary.update(ntk_wasserstein=res["ntk"]["wasserstein"], ntk_rel_frobenius=res["ntk"]["rel_frobenius"],
                       ntk_seconds_per_epoch=float(np.mean(res["ntk"]["ntk_seconds"])))
    return summary, data


def _width_sweep(cfg: dict, ctx: dict, data: dict, say) -> dict:
    """One network per width on the first n_train train points; NTK change and σ per width."""
    from hpcflow.nn import experiment as ex
    from hpcflow.nn.train import TrainConfig

    ws = cfg["width_sweep"]
    lr = ctx["tc"].lr if ws["lr"] is None else ws["lr"]
    sweep_tc = TrainConfig(**{**ctx["tc"].__dict__, "epochs": ws["epochs"], "optimizer": ws["optimizer"], "lr": lr})
    tr_small = ctx["train"][: ws["n_train"]]
    ntk_tr = tr_small[:10] if ctx["ntk_train"] is None else ctx["ntk_train"]
    ntk_te = ctx["val"][:10] if ctx["ntk_test"] is None else ctx["ntk_test"]
    sw = ex.width_sweep(ws["widths"], tr_small, ctx["val"], cfg["model"], sweep_tc, width_ref=ws["width_ref"],
                        lr_exponent=ws["lr_exponent"], ntk_train=ntk_tr, ntk_test=ntk_te, seed=cfg["training"]["seed"],
                        log=say)
    data.update({f"width_sweep/{k}": v for k, v in sw.items()})
    return dict(sw)


def _kernel_flow_vs_network(cfg: dict, ctx: dict, data: dict, say) -> dict:
    """Kernel flow with the epoch-0 network's NTK vs that network trained on the same (flow) train points."""
    from hpcflow.nn import experiment as ex
    from hpcflow.nn.train import TrainConfig

    kf, tc, model0 = cfg["kernel_flow"], ctx["tc"], ctx["model0"]
    tr, te = ctx["train_ps"][: kf["n_train"]], ctx["val_ps"][: kf["n_test"]]
    flow = ex.ntk_kernel_flow(model0, ctx["X"], tr, te, dt=kf["dt"], steps=kf["steps"], tile=kf["tile"],
                              loss=tc.loss)
    small_tc = TrainConfig(**{**tc.__dict__, "batch_size": min(tc.batch_size, kf["n_train"])})
    dtype, device = cfg["model"]["dtype"], ctx["device"]
    res = ex.train_with_ntk(copy.deepcopy(model0), ex.as_data(tr, dtype, device), ex.as_data(te, dtype, device),
                            small_tc)
    for k in ("sigma_train", "sigma_test"):
        data[f"kernel_flow/{k}"] = flow[k]
    data["kernel_flow/nn_sigma_train"] = res["history"]["sigma_train"]
    data["kernel_flow/nn_sigma_test"] = res["history"]["sigma_val"]
    out = {"flow_sigma_test_final": flow["sigma_test"][-1], "flow_sigma_train_final": flow["sigma_train"][-1],
           "flow_sigma_test_initial": flow["sigma_test"][0], "flow_steps_taken": flow["steps_taken"],
           "flow_rejected_steps": flow["rejected_steps"], "flow_seconds": flow["seconds"],
           "nn_sigma_test_initial": res["history"]["sigma_val"][0],
           "nn_sigma_test_final": res["history"]["sigma_val"][-1],
           "nn_sigma_train_final": res["history"]["sigma_train"][-1]}
    say(f"kernel flow (epoch-0 NTK) sigma_test {out['flow_sigma_test_final']:.4f}  vs  "
        f"network trained on the same points {out['nn_sigma_test_final']:.4f}")
    return out


_CONVENTIONS = json.dumps({
    "packing": "g00, g11, g22, Re g01, Im g01, Re g02, Im g02, Re g12, Im g12 (hpcflow.geometry.hermitian.pack)",
    "history": "index 0 = before training; sigma (eq. B.11) with kappa from the evaluated points",
    "ntk": "Theta[I, J, a, b] = sum_theta dg_I(x_a)/dtheta dg_J(x_b)/dtheta; per epoch (index 0 = init)",
    "spectrum": "eigenvalues of (A_IJ + A_JI)/2, A_IJ[a, b] = Theta_IJ(train_a, train_b), pooled over I, J",
    "spectrum_full": "eigenvalues of the PSD matrix Theta[(I, a), (J, b)] over the train points",
    "wasserstein": "scipy.stats.wasserstein_distance(spectrum[t], spectrum[0])",
    "rel_frobenius": "||Theta_t - Theta_0||_F / ||Theta_0||_F on the train x test block",
    "kernel_flow": "eq. 3.5 from g_FS with the fixed epoch-0 NTK; nn_* = same initial network trained on the "
                   "flow's train points, evaluated on its test points",
})
