"""Local limit (eqs. 2.29-2.31): Gaussian-kernel flows for a sweep of widths.

As the width -> 0 the kernel tends to delta_{x x'}: each train point flows by its own gradient only (the
pointwise / ultra-local flow), so the train gain grows while test points, which no longer see any train
point, keep g_FS (test gain -> 1). Each width is one flow on the same train/test points.
"""

from __future__ import annotations

import os

import numpy as np

from hpcflow.experiments.common import GEOMETRY_SECTION, check_geometry, sample_train_test
from hpcflow.experiments.flow_job import FLOW_SECTION, flow_summary, progress
from hpcflow.jobs.schema import JOB_SECTION, Field


def _widths(v):
    return None if v else "must be a non-empty list of widths"


SCHEMA = {
    "job": JOB_SECTION,
    "geometry": GEOMETRY_SECTION,
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
               "step")


def check(cfg: dict, source: str) -> None:
    check_geometry(cfg["geometry"], source)


def run(cfg: dict, outdir) -> dict:
    from hpcflow.flow import kernel_flow
    from hpcflow.parallel.comm import SerialComm, is_root  # at R > 1 every rank runs the whole job
    from hpcflow.jobs.output import write_hdf5
    from hpcflow.kernels import GaussianKernel

    fl, ll = cfg["flow"], cfg["local_limit"]
    _, train, test = sample_train_test(cfg["geometry"])
    rows, data = [], {}
    for i, w in enumerate(ll["widths"]):
        kernel = GaussianKernel(w, form=ll["form"], normalize=None if ll["normalize"] == "none" else "row")
        res = kernel_flow(kernel, train, test, dt=fl["dt"], steps=fl["steps"], loss=fl["loss"],
                          weighted=fl["weighted"], tile=fl["tile"], max_halvings=fl["max_halvings"], clip=fl["clip"],
                          early_stop=fl["early_stop"], kappa_gradient=fl["kappa_gradient"], comm=SerialComm(),
                          callback=progress(f"local_limit[w={w:g}]", every=fl["steps"]))
        row = {"width": w, **flow_summary(res, len(train), 0 if test is None else len(test))}
        rows.append(row)
        if is_root():  # every rank runs the whole job; one prints
            print(f"local_limit: width={w:g} train gain={row['gain_train']:.4g} test gain={row.get('gain_test')}",
                  flush=True)
        data[f"width_{i}/sigma_train"] = res.sigma_train
        data[f"width_{i}/sigma_test"] = res.sigma_test
    data["table/width"] = np.array(ll["widths"], dtype=float)
    data["table/gain_train"] = np.array([r["gain_train"] for r in rows], dtype=float)
    if test is not None:
        data["table/gain_test"] = np.array([r["gain_test"] for r in rows], dtype=float)
    write_hdf5(os.path.join(outdir, "local_limit.h5"), data, attrs={"config": cfg, "conventions": CONVENTIONS})
    return {"table": rows, "kernel": "gaussian", "form": ll["form"], "normalize": ll["normalize"],
            "n_train": len(train), "n_test": 0 if test is None else len(test), "steps": fl["steps"]}
