"""Noise scan (Fig. 3 left): test points = train points + complex Gaussian noise.

Two readings of the paper's test points (`[noise] project`):
- project = true (default): each noised point is projected back onto X with Newton steps along the gradient of
  p (`project_to_hypersurface`), keeping the chart's scale coordinate z_I = 1, so the test points lie on X.
- project = false (the paper's variant): noised points are left off X ("only approximately on the CY"); their
  g_FS, |Omega|^2 and weights are the same chart formulas evaluated at the point, i.e. on the level set
  {p = p(z)} through it (dz_J/dz_k = -dp/dz_k / dp/dz_J), which is how sigma is defined there.
Each noise level is one flow of the train points with its test points (a separate flow per level, because a
test metric that leaves positivity stops the flow it belongs to); per level we report the gain
sigma_FS / sigma_final of the test points versus their mean FS distance to their source train point and to the
nearest train point (the paper's axis: "average shortest geodesic distance between noised and sampled points").
The test points keep the train points' chart (I, J), the coordinate system the train metrics live in.
A level whose flow stops for a numerical reason (diverged, no positive-definite step) keeps the gain of its last
finite step; a level left with fewer than two test points (every noised point failed the projection or the train
chart) has no test sigma: its gain is NaN and its flow moves the train points alone, through all its steps unless
that flow stops. noise_scan.h5 says which (table/stopped, table/steps_taken; root attributes status, stopped), and
the job writes everything, then ends with status "diverged" (exit status 3) naming those scales and what happened
to each.
"""

from __future__ import annotations

import os

import numpy as np

from hpcflow.experiments.common import (GEOMETRY_SECTION, MIN_POINTS, check_geometry, finish, gain, manifold,
                                        sampling_keywords, write_scan)
from hpcflow.experiments.flow_job import (FLOW_SECTION, KERNEL_SECTION, check_kernel, check_kernel_range,
                                          progress)
from hpcflow.jobs.schema import JOB_SECTION, SEED_MAX, Field, refuse_inapplicable

#: a test point's g_FS in its train chart may be conditioned up to this (weights then good to ~eps 1e10 = 2e-6)
MAX_CHART_COND = 1e10
#: Newton iterations stop when |p(z)| / |z|^deg falls below this (the sampler's polish level)
PROJECTION_TOL = 1e-13


# ---- geometry: noise and projection onto X -----------------------------------------------------------
def add_noise(points, scale: float, rng, *, fixed):
    """points + complex Gaussian noise with E|eps_k|^2 = scale^2 in every coordinate except `fixed` (N,)."""
    z = np.array(points, dtype=np.complex128)
    eps = (rng.standard_normal(z.shape) + 1j * rng.standard_normal(z.shape)) * (scale / np.sqrt(2.0))
    eps[np.arange(len(z)), fixed] = 0.0
    return z + eps


def project_to_hypersurface(X, z, *, fixed, max_iter: int = 50, tol: float = PROJECTION_TOL):
    """Project points z (N, n+1) onto X = {p = 0} by Newton steps along conj(grad p), keeping z[fixed] (N,).

    Each step is the minimum-norm solution of the linearised equation p(z) + grad p . dz = 0 with
    dz[fixed] = 0: dz = -p(z) conj(g) / |g|^2 (g = grad p with the fixed entry zeroed), so a point at distance
    eps from X moves O(eps). Returns (projected points, converged mask).
    """
    z = np.array(z, dtype=np.complex128)
    active = np.ones(len(z), dtype=bool)
    for _ in range(max_iter):
        active &= X.residual(z) >= tol
        if not active.any():
            break
        za = z[active]
        g = X.grad(za)
        g[np.arange(len(za)), fixed[active]] = 0.0
        g2 = np.sum(np.abs(g) ** 2, axis=1)
        step = -X.p(za)[:, None] * np.conj(g) / np.where(g2 > 0, g2, np.inf)[:, None]
        z[active] = za + step
    converged = np.isfinite(z).all(axis=1) & (X.residual(z) < tol)
    z[~np.isfinite(z).all(axis=1)] = 0.0
    return z, converged


#: the `conventions` attribute of noise_scan.h5
CONVENTIONS = ("one row of table/* per noise scale: gain = sigma_FS / sigma_final of the test points (eq. B.11, "
               "sigma_FS at step 0); mean_distance_to_source / _to_nearest_train: mean FS distance of the noised "
               "test points to their source train point / the nearest train point; steps_taken: flow steps taken; "
               "stopped: why the flow stopped before [flow].steps for a numerical reason, or why the level has no "
               "test gain (NaN: fewer than 2 test points) ('' when neither); scale_i/sigma_test, sigma_train: "
               "histories (step 0 = FS); attributes status ('finished' or 'diverged': some level's table/stopped is "
               "set) and stopped")


# ---- job -------------------------------------------------------------------------------------------------
def _scales(v):
    """A non-empty list of distinct scales (a repeated one would only redo a row of the table under another index)."""
    if not v:
        return "must be a non-empty list of noise scales"
    return None if len(set(v)) == len(v) else "repeats a scale; list each noise scale once"


SCHEMA = {
    "job": JOB_SECTION,
    "geometry": {k: f for k, f in GEOMETRY_SECTION.items() if k != "n_test"},
    "kernel": KERNEL_SECTION,
    "flow": FLOW_SECTION,
    "noise": {
        "scales": Field(list, [0.0, 0.01, 0.03, 0.1, 0.3, 1.0], items=float, check=_scales, lo=0, hi=100.0,
                        help="noise std per complex coordinate (E|eps|^2 = scale^2)"),
        "seed": Field(int, 1, lo=0, hi=SEED_MAX, help="seed of the noise"),
        "max_newton": Field(int, 50, lo=1, hi=10_000, help="max Newton steps of the projection"),
        "project": Field(bool, True, help="project noised points back onto X (false: the paper's off-X points)"),
    },
}


def check(cfg: dict, source: str) -> None:
    """Cross-field checks before any work; [noise].max_newton given with project = false is refused (no projection)."""
    from hpcflow.resources import kernel_entries

    check_geometry(cfg["geometry"], source)
    check_kernel_range(check_kernel(cfg["kernel"], source, kernel_entries(cfg, "noise_scan")), cfg["geometry"],
                       source)
    if not cfg["noise"]["project"]:
        refuse_inapplicable(cfg, "noise", SCHEMA["noise"], ("max_newton",), "project = false (no Newton projection "
                            "onto X)", "set project = true", source)


def well_conditioned(g):
    """Boolean (N,): Hermitian metrics g (N, m, m) whose eigenvalues (LAPACK) are positive with max/min at most
    MAX_CHART_COND."""
    lam = np.linalg.eigvalsh(g)
    return (lam[:, 0] > 0) & (lam[:, -1] <= MAX_CHART_COND * lam[:, 0])


def noisy_test_sets(X, train, scales, rng, max_newton: int, project: bool = True):
    """For each scale: (test PointSet in the train charts, source index, n_failed), projected onto X or not.

    A point fails when Newton does not converge or the train chart has no finite weight there.
    """
    out = []
    fixed = train.chart[:, 0]
    for s in scales:
        z = add_noise(train.points, s, rng, fixed=fixed)
        if project:
            z, ok = project_to_hypersurface(X, z, fixed=fixed, max_iter=max_newton)
        else:
            ok = np.ones(len(z), dtype=bool)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # degenerate points dropped below
            ps = X.point_set(z[ok], chart=train.chart[ok], check=False)
        # drop points where the train chart degenerates (dp/dz_J ~ 0 or singular g_FS): no finite weight, or a g_FS
        # conditioned beyond MAX_CHART_COND, whose weight keeps fewer than ~6 digits (eps cond) and whose smallest
        # eigenvalues can fall below its rounding (kernel_flow refuses a g_FS that is not positive definite)
        good = np.isfinite(ps.weights) & (ps.weights > 0) & np.isfinite(ps.omega2)
        good[good] = well_conditioned(ps.g_fs[good])
        src = np.nonzero(ok)[0][good]
        out.append((ps[good], src, int(len(z) - len(src))))
    return out


def run(cfg: dict, outdir) -> dict:
    """Run the scan into outdir/noise_scan.h5; the summary, or NumericalStop carrying it (status "diverged", exit
    status 3) when the flow of any scale stopped for a numerical reason (noise_scan.h5 is written either way)."""
    from scipy.spatial import cKDTree

    from hpcflow.flow import NUMERICAL_STOPS, kernel_flow
    from hpcflow.parallel.comm import SerialComm, is_root  # at R > 1 every rank runs the whole job
    from hpcflow.geometry import fs_distance_paired, projector_features
    from hpcflow.geometry.distance import query_in_pieces
    from hpcflow.resources import kernel_entries

    geo, fl, nz = cfg["geometry"], cfg["flow"], cfg["noise"]
    kernel = check_kernel(cfg["kernel"], "job", kernel_entries(cfg, "noise_scan"))
    X = manifold(geo)
    train = X.sample(geo["n_train"], seed=geo["seed"], chart=tuple(geo["chart"]), **sampling_keywords(geo))
    sets = noisy_test_sets(X, train, nz["scales"], np.random.default_rng(nz["seed"]), nz["max_newton"], nz["project"])
    tree = cKDTree(projector_features(train.points))
    rows, data = [], {}
    for i, (s, (ps, src, failed)) in enumerate(zip(nz["scales"], sets)):
        few = len(ps) < MIN_POINTS  # no test sigma (eq. B.11 needs two points): the train points flow alone
        res = kernel_flow(kernel, train, None if few else ps, dt=fl["dt"], steps=fl["steps"], loss=fl["loss"],
                          weighted=fl["weighted"], tile=fl["tile"], max_halvings=fl["max_halvings"], clip=fl["clip"],
                          early_stop=fl["early_stop"], kappa_gradient=fl["kappa_gradient"], comm=SerialComm(),
                          callback=progress(f"noise_scan[scale={s:g}]", every=fl["steps"]))
        d_src = fs_distance_paired(ps.points, train.points[src])
        _, nn = query_in_pieces(tree, projector_features(ps.points)) if len(ps) else (None, np.zeros(0, dtype=np.int64))
        d_nn = fs_distance_paired(ps.points, train.points[nn])
        se, st = np.full(len(res.sigma_train), np.nan) if few else res.sigma_test, res.sigma_train
        stopped, numerical = res.stopped, res.stop_kind in NUMERICAL_STOPS
        if few:
            fix = "raise [noise].max_newton or lower the scale" if nz["project"] else "lower the scale"
            flow_stop = f"; the train flow stopped: {stopped}" if numerical else ""
            stopped, numerical = (f"no test gain: {len(ps)} of {len(train)} test points left ({failed} failed "
                                  f"{'the projection onto X' if nz['project'] else 'the train chart'}; sigma needs "
                                  f">= {MIN_POINTS}), {fix}{flow_stop}"), True
        rows.append({"scale": s, "n_points": len(ps), "projection_failed": failed,
                     "max_residual": float(np.max(X.residual(ps.points))) if len(ps) else 0.0,
                     "mean_distance_to_source": _mean(d_src), "mean_distance_to_nearest_train": _mean(d_nn),
                     "sigma_initial": float(se[0]), "sigma_final": float(se[-1]),
                     "gain": float("nan") if few else gain(se[0], se[-1]),
                     "gain_best": float("nan") if few else gain(se[0], np.min(se)), "gain_train": gain(st[0], st[-1]),
                     "steps_taken": int(res.steps_taken), "rejected_steps": int(res.rejected_steps), "test_held": int(res.test_held),
                     "stopped": stopped, "numerical_stop": numerical, "no_test_gain": few})
        if is_root():  # every rank runs the whole job; one prints
            why = stopped if few else f"flow stopped after step {res.steps_taken}: {stopped}"
            mark = f" ({why})" if numerical else ""
            print(f"noise_scan: scale={s:g} mean d(source)={rows[-1]['mean_distance_to_source']:.4g} test "
                  f"gain={rows[-1]['gain']:.4g} train gain={rows[-1]['gain_train']:.4g}{mark}", flush=True)
        data[f"scale_{i}/distance_to_source"] = d_src
        data[f"scale_{i}/points"] = ps.points
        data[f"scale_{i}/sigma_test"] = se
        data[f"scale_{i}/sigma_train"] = st
    for key in ("scale", "mean_distance_to_source", "mean_distance_to_nearest_train", "gain"):
        data[f"table/{key}"] = np.array([r[key] for r in rows], dtype=float)
    status = write_scan(os.path.join(outdir, "noise_scan.h5"), data, rows, "scale", cfg, CONVENTIONS,
                        "hpcflow.noise_scan")
    return finish({"table": rows, "kernel": cfg["kernel"]["name"], "kernel_params": kernel.params(),
                   "n_train": len(train), "steps": fl["steps"], "dt": fl["dt"], "loss": fl["loss"],
                   "project": nz["project"], **status}, outdir)


def _mean(d) -> float:
    """Mean of the distances d (NaN for none: a scale whose noised points all failed)."""
    return float(d.mean()) if len(d) else float("nan")
