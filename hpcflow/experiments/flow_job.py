"""Job kind "flow": the kernel metric flow of eq. 3.5 on train/test points of one chart (Table 1 jobs).

Writes DIR/checkpoint.h5 (history/sigma_train, history/sigma_test, history/dt per step, step 0 = FS; final
metrics g of train and test points with their points, weights and |Omega|^2; the job configuration as the
`config` attribute) and returns the summary (sigma initial/final, gains = sigma_FS / sigma_final, ...).
"""

from __future__ import annotations

import os
import time

import numpy as np

from hpcflow.errors import ConfigError
from hpcflow.experiments.common import GEOMETRY_SECTION, check_geometry, gain, sample_train_test
from hpcflow.jobs.schema import JOB_SECTION, MAX_STEPS, SEED_MAX, Field

#: kernel name -> (required params, optional params) of `hpcflow.kernels.make_kernel`
KERNEL_PARAMS = {
    "gaussian": (("width",), ("form", "normalize", "method")),
    "delta": ((), ()),
    "relu_ntk": (("w_std", "b_std"), ()),
    "cosine_ntk": (("sigma_w",), ("amplitude",)),
}

KERNEL_SECTION = {
    "name": Field(str, choices=tuple(KERNEL_PARAMS), help="kernel of the flow (sec. 3.2)"),
    "width": Field(float, None, lo=1e-12, hi=1e12, help="gaussian: width w (see hpcflow.kernels.gaussian)"),
    "form": Field(str, None, choices=("exp", "gauss"), help="gaussian: exp(-d/2w) (eq. 3.6) or exp(-d^2/2w^2)"),
    "normalize": Field(str, None, choices=("none", "row"), help="gaussian: 'row' divides rows by their sum"),
    "method": Field(str, None, choices=("auto", "poly", "direct")),
    "w_std": Field(float, None, lo=0, lo_open=True, hi=1e6, help="relu_ntk: weight std sigma_w (Table 1: 5.716)"),
    "b_std": Field(float, None, lo=0, lo_open=True, hi=1e6, help="relu_ntk: bias std sigma_b (Table 1: 80.52)"),
    "sigma_w": Field(float, None, lo=0, lo_open=True, hi=1e6, help="cosine_ntk: frequency std (eq. 2.32)"),
    "amplitude": Field(float, None, lo=0, lo_open=True, hi=1e12, help="cosine_ntk: normalisation A (eq. 2.36)"),
}

FLOW_SECTION = {
    "dt": Field(float, lo=0, lo_open=True, hi=1e12, help="step size Delta t of eq. 3.5"),
    "steps": Field(int, 50, lo=0, hi=MAX_STEPS, help="number of flow steps (paper: 50)"),
    "loss": Field(str, "sigma", choices=("sigma", "ultralocal"), help="eq. B.11 or eq. B.14"),
    "weighted": Field(bool, True, help="multiply the pointwise loss by w/sum(w)"),
    "tile": Field(int, 2048, lo=1, hi=2**20, help="rows per kernel tile (memory bound)"),
    "max_halvings": Field(int, 10, lo=0, hi=60, help="dt halvings of a rejected (non-PD) step (2^-60 ~ 1e-18)"),
    "clip": Field(float, None, lo=0, lo_open=True, hi=1e12, help="max norm of a point's update (unset = no clipping)"),
    "early_stop": Field(int, None, lo=1, hi=MAX_STEPS, help="stop after this many steps without improvement"),
}

CLUSTERING_SECTION = {
    "method": Field(str, None, choices=("batched", "full", "birch"), help="unset = no clustering"),
    "n_clusters": Field(int, 10, lo=1),
    "batch_size": Field(int, 1000, lo=1),
    "seed": Field(int, 0, lo=0, hi=SEED_MAX),
    "halo_cutoff": Field(float, None, lo=0, hi=4.0,
                         help="FS distance of halo sources (unset = none, pi/2 = all train points)"),
}

SCHEMA = {"job": JOB_SECTION, "geometry": GEOMETRY_SECTION, "kernel": KERNEL_SECTION, "flow": FLOW_SECTION,
          "clustering": CLUSTERING_SECTION}


def kernel_params(kcfg: dict) -> dict:
    """The make_kernel keyword arguments of a validated [kernel] section (unset keys left out)."""
    params = {k: v for k, v in kcfg.items() if k != "name" and v is not None}
    if params.get("normalize") == "none":
        params["normalize"] = None
    return params


def check_kernel(kcfg: dict, source: str):
    """Cross-field checks of [kernel]: required/foreign parameters; returns the kernel object."""
    from hpcflow.kernels import make_kernel

    name = kcfg["name"]
    required, optional = KERNEL_PARAMS[name]
    given = {k for k, v in kcfg.items() if k != "name" and v is not None}
    for key in required:
        if key not in given:
            raise ConfigError(f"{source}: [kernel].{key} is required for name = {name!r}; add it")
    for key in sorted(given - set(required) - set(optional)):
        raise ConfigError(f"{source}: [kernel].{key} does not apply to name = {name!r}; remove it")
    try:
        return make_kernel(name, **kernel_params(kcfg))
    except ValueError as exc:
        raise ConfigError(f"{source}: [kernel]: {exc}; change the kernel parameters") from None


def check(cfg: dict, source: str) -> None:
    check_geometry(cfg["geometry"], source)
    check_kernel(cfg["kernel"], source)
    cl, n = cfg["clustering"], cfg["geometry"]["n_train"]
    if cl["method"] is None:  # clustering switched off: its keys are not cross-checked
        return
    if cl["n_clusters"] > n:
        raise ConfigError(f"{source}: [clustering].n_clusters = {cl['n_clusters']} exceeds [geometry].n_train; "
                          "lower it")
    from hpcflow.cluster import check_settings

    try:
        check_settings(n, method=cl["method"], n_clusters=cl["n_clusters"], batch_size=cl["batch_size"])
    except ConfigError as exc:
        raise ConfigError(f"{source}: [clustering] with [geometry].n_train = {n}: {exc}") from None


def flow_blocks(cfg: dict, train, test):
    """FlowBlocks from the optional [clustering] table (None = one block), via hpcflow.cluster."""
    cl = cfg["clustering"]
    if cl["method"] is None:
        return None
    from hpcflow.cluster import flow_blocks as _flow_blocks  # helper C's module; import only when asked for

    return _flow_blocks(train.points, None if test is None else test.points, method=cl["method"],
                        n_clusters=cl["n_clusters"], batch_size=cl["batch_size"], seed=cl["seed"],
                        halo_cutoff=cl["halo_cutoff"])


def progress(label: str, every: int = 10):
    """A kernel_flow callback printing sigma_train/sigma_test every `every` steps."""
    t0 = time.perf_counter()

    def cb(info):
        if info["step"] % every == 0:
            print(f"{label}: step {info['step']:4d} sigma_train={info['sigma_train']:.4e} "
                  f"sigma_test={info['sigma_test']:.4e} dt={info['dt']:.3g} rejected={info['rejected']} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
        return False

    return cb


def flow_summary(res, n_train: int, n_test: int) -> dict:
    """Summary numbers of a FlowResult (gains = sigma at step 0 / sigma at the last step)."""
    st, se = res.sigma_train, res.sigma_test
    out = {"sigma_train_initial": float(st[0]), "sigma_train_final": float(st[-1]),
           "gain_train": gain(st[0], st[-1]), "n_train": n_train, "n_test": n_test,
           "steps_taken": int(res.steps_taken), "rejected_steps": int(res.rejected_steps),
           "test_held": int(res.test_held), "stopped": res.stopped}
    if n_test:
        best = int(np.nanargmin(se))
        out.update(sigma_test_initial=float(se[0]), sigma_test_final=float(se[-1]), gain_test=gain(se[0], se[-1]),
                   sigma_test_best=float(se[best]), step_test_best=best, gain_test_best=gain(se[0], se[best]))
    else:
        out.update(sigma_test_initial=None, sigma_test_final=None, gain_test=None)
    return out


def run(cfg: dict, outdir) -> dict:
    from hpcflow.flow import kernel_flow
    from hpcflow.jobs.output import write_hdf5

    fl = cfg["flow"]
    kernel = check_kernel(cfg["kernel"], "job")
    _, train, test = sample_train_test(cfg["geometry"])
    blocks = flow_blocks(cfg, train, test)
    res = kernel_flow(kernel, train, test, dt=fl["dt"], steps=fl["steps"], loss=fl["loss"], weighted=fl["weighted"],
                      tile=fl["tile"], blocks=blocks, max_halvings=fl["max_halvings"], clip=fl["clip"],
                      early_stop=fl["early_stop"], callback=progress(f"flow[{cfg['kernel']['name']}]"))
    data = {"history/sigma_train": res.sigma_train, "history/sigma_test": res.sigma_test,
            "history/dt": res.dt_history, "train/points": train.points, "train/weights": train.weights,
            "train/omega2": train.omega2, "train/g": res.g_train}
    if test is not None:
        data.update({"test/points": test.points, "test/weights": test.weights, "test/omega2": test.omega2,
                     "test/g": res.g_test})
    summary = flow_summary(res, len(train), 0 if test is None else len(test))
    summary.update(kernel=cfg["kernel"]["name"], kernel_params=kernel.params(), steps=fl["steps"], dt=fl["dt"],
                   loss=fl["loss"], chart=cfg["geometry"]["chart"], n_blocks=None if blocks is None else len(blocks))
    write_hdf5(os.path.join(outdir, "checkpoint.h5"), data,
               attrs={"config": cfg, "kind": "hpcflow.flow_checkpoint", "stopped": res.stopped,
                      "conventions": "step 0 = g_FS; g: final metrics (N, m, m); sigma per eq. B.11"})
    return summary
