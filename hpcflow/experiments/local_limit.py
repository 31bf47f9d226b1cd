"""Local limit (eqs. 2.29-2.31): Gaussian-kernel flows for a sweep of widths.

As the width -> 0 the kernel tends to delta_{x x'}: each train point flows by its own gradient only (the
pointwise / ultra-local flow), so the train gain grows while test points, which no longer see any train
point, keep g_FS (test gain -> 1). Each width is one flow on the same train/test points (n_test >= 2: the test
gain is the point of the sweep). A width whose flow stops for a numerical reason keeps the gains of its last
finite step; local_limit.h5 says which (table/stopped, table/steps_taken) and the job ends with status
"diverged" (exit status 3) after writing everything.
"""

from __future__ import annotations

import os

import numpy as np

from hpcflow.experiments.common import (GEOMETRY_SECTION, check_geometry, enough_points, finish, sample_train_test,
                                        write_scan)
from hpcflow.experiments.flow_job import FLOW_SECTION, flow_summary, progress
from hpcflow.jobs.schema import JOB_SECTION, Field


def _widths(v):
    """A non-empty list of distinct widths (a repeated one would only flow the same kernel again under another row)."""
    if not v:
        return "must be a non-empty list of widths"
    return None if len(set(v)) == len(v) else "repeats a width; list each Gaussian width once"


SCHEMA = {
    "job": JOB_SECTION,
    "geometry": {**GEOMETRY_SECTION,
                 "n_test": Field(int, 1000, lo=0, check=enough_points,
                                 help="number of test points; the sweep is about their gain (-> 1)")},
    "flow": FLOW_SECTION,
    "local_limit": {
        "widths": Field(list, [1.0, 0.1, 0.03, 0.01, 0.003, 0.001], items=float, check=_widths, lo=1e-12, hi=1e12,
                        help="Gaussian widths w, from wide to narrow"),
        "form": Field(str, "exp", choices=("exp", "gauss"), help="exp(-d/2w) (eq. 3.6) or exp(-d^2/2w^2)"),
        "normalize": Field(str, "none", choices=("none", "row")),
    },
}


#: the `conventions` attribute of local_limit.h5
CONVENTIONS = ("width_i/sigma_train, sigma_test: sigma (eq. B.11) per flow step (step 0 = FS) of the Gaussian-kernel "
               "flow with [local_limit].widths[i]; table/*: one row per width, gain = sigma at step 0 / at the last "
               "step; steps_taken: flow steps taken; stopped: why the flow stopped before [flow].steps for a "
               "numerical reason ('' when it did not); attributes status ('finished' or 'diverged': some width's "
               "table/stopped is set) and stopped")


def check(cfg: dict, source: str) -> None:
    check_geometry(cfg["geometry"], source)


def run(cfg: dict, outdir) -> dict:
    """Run the sweep into outdir/local_limit.h5; the summary, or NumericalStop carrying it (status "diverged", exit
    status 3) when the flow of any width stopped for a numerical reason (local_limit.h5 is written either way)."""
    from hpcflow.flow import NUMERICAL_STOPS, kernel_flow
    from hpcflow.parallel.comm import SerialComm, is_root  # at R > 1 every rank runs the whole job
    from hpcflow.kernels import GaussianKernel
    from hpcflow.kernels.jit import engine_for
    from hpcflow.resources import kernel_entries

    fl, ll = cfg["flow"], cfg["local_limit"]
    engine = engine_for(kernel_entries(cfg, "local_limit"))  # (one process runs every width's flow)
    _, train, test = sample_train_test(cfg["geometry"])
    rows, data = [], {}
    for i, w in enumerate(ll["widths"]):
        kernel = GaussianKernel(w, form=ll["form"], normalize=None if ll["normalize"] == "none" else "row",
                                engine=engine)
        res = kernel_flow(kernel, train, test, dt=fl["dt"], steps=fl["steps"], loss=fl["loss"],
                          weighted=fl["weighted"], tile=fl["tile"], max_halvings=fl["max_halvings"], clip=fl["clip"],
                          early_stop=fl["early_stop"], kappa_gradient=fl["kappa_gradient"], comm=SerialComm(),
                          callback=progress(f"local_limit[w={w:g}]", every=fl["steps"]))
        row = {"width": w, **flow_summary(res, len(train), len(test)),
               "numerical_stop": res.stop_kind in NUMERICAL_STOPS}
        rows.append(row)
        if is_root():  # every rank runs the whole job; one prints
            mark = f" (flow stopped after step {res.steps_taken}: {res.stopped})" if row["numerical_stop"] else ""
            print(f"local_limit: width={w:g} train gain={row['gain_train']:.4g} test gain={row['gain_test']:.4g}{mark}",
                  flush=True)
        data[f"width_{i}/sigma_train"] = res.sigma_train
        data[f"width_{i}/sigma_test"] = res.sigma_test
    data["table/width"] = np.array(ll["widths"], dtype=float)
    data["table/gain_train"] = np.array([r["gain_train"] for r in rows], dtype=float)
    data["table/gain_test"] = np.array([r["gain_test"] for r in rows], dtype=float)
    status = write_scan(os.path.join(outdir, "local_limit.h5"), data, rows, "width", cfg, CONVENTIONS,
                        "hpcflow.local_limit")
    return finish({"table": rows, "kernel": "gaussian", "form": ll["form"], "normalize": ll["normalize"],
                   "n_train": len(train), "n_test": len(test), "steps": fl["steps"], **status}, outdir)
