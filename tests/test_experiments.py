"""Experiments: noise projection onto X, nearest-neighbour distances, power-law fit, tiny scans end to end."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from hpcflow.experiments.distance_scaling import nearest_neighbour_brute, nearest_neighbour_distance, power_law_fit
from hpcflow.experiments.noise_scan import add_noise, project_to_hypersurface
from hpcflow.geometry import Hypersurface, fs_distance, fs_distance_paired


@pytest.fixture(scope="module")
def quintic():
    return Hypersurface.fermat(3)


@pytest.fixture(scope="module")
def train(quintic):
    return quintic.sample(200, seed=5, chart=(0, 1))


# ---- projection onto X -----------------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e-6, 1e-3, 0.1, 0.5])
def test_projection_lands_on_x_and_keeps_scale_coordinate(quintic, train, scale):
    fixed = train.chart[:, 0]
    zn = add_noise(train.points, scale, np.random.default_rng(1), fixed=fixed)
    assert np.all(zn[:, 0] == train.points[:, 0]) and np.allclose(zn[:, 0], 1.0, atol=1e-15)
    z, ok = project_to_hypersurface(quintic, zn, fixed=fixed)
    assert ok.mean() > 0.97
    # |p(z)| / |z|^5 at round-off level, relative to the noised points' distance from X
    assert np.max(quintic.residual(z[ok])) < 1e-12
    assert np.max(quintic.residual(zn)) > 1e3 * np.max(quintic.residual(z[ok]))
    assert np.all(z[:, 0] == train.points[:, 0])


def test_projection_moves_points_order_noise(quintic, train):
    """FS distance to the source ~ c * noise with the same c for small noise (linear regime)."""
    fixed = train.chart[:, 0]
    ratios = []
    for scale in (1e-4, 1e-6):
        # the same noise direction at both scales
        zn = add_noise(train.points, scale, np.random.default_rng(2), fixed=fixed)
        z, ok = project_to_hypersurface(quintic, zn, fixed=fixed)
        d = fs_distance_paired(z, train.points, noise_floor=0.0)
        ratios.append(d / scale)
        # the projection itself moves the point no further than the noise put it from the source (x 3)
        assert np.all(np.linalg.norm(z - zn, axis=1) < 3 * np.linalg.norm(zn - train.points, axis=1))
    assert 0.05 < np.median(ratios[0]) < 5
    np.testing.assert_allclose(ratios[0], ratios[1], rtol=2e-3)


def test_projection_along_normal_returns_and_tangent_moves_second_order(quintic, train):
    """Newton along conj(grad p) undoes a normal displacement exactly and a tangent one to O(eps^2)."""
    z0 = train.points[:50]
    fixed = np.zeros(len(z0), dtype=int)
    g = quintic.grad(z0)
    g[:, 0] = 0.0
    normal = np.conj(g) / np.linalg.norm(g, axis=1, keepdims=True)
    eps = 1e-4
    z, ok = project_to_hypersurface(quintic, z0 + eps * normal, fixed=fixed)
    assert ok.all() and np.max(np.linalg.norm(z - z0, axis=1)) < 1e-3 * eps
    # a tangent direction t (grad p . t = 0, t_0 = 0): the point is already on X to first order
    rng = np.random.default_rng(0)
    t = rng.standard_normal(z0.shape) + 1j * rng.standard_normal(z0.shape)
    t[:, 0] = 0.0
    t -= np.sum(t * g, axis=1, keepdims=True) * np.conj(g) / np.sum(np.abs(g) ** 2, axis=1, keepdims=True)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    assert np.max(np.abs(np.sum(t * g, axis=1))) < 1e-12
    z, ok = project_to_hypersurface(quintic, z0 + eps * t, fixed=fixed)
    moved = np.linalg.norm(z - (z0 + eps * t), axis=1)
    assert ok.all() and np.max(moved) < 100 * eps**2 and np.max(moved) > 0


# ---- nearest-neighbour distances and the power law --------------------------------------------------------
def test_nearest_neighbour_distance_matches_brute_force(quintic):
    z = quintic.sample(400, seed=9).points
    d = fs_distance(z)
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(nearest_neighbour_distance(z), d.min(axis=1), rtol=1e-9, atol=1e-12)
    # tiled BLAS search: tiles smaller than N, all points and a query subset
    np.testing.assert_allclose(nearest_neighbour_brute(z, tile_q=64, tile_s=150), d.min(axis=1), rtol=1e-9,
                               atol=1e-12)
    q = np.array([3, 77, 150, 151, 399])
    np.testing.assert_allclose(nearest_neighbour_brute(z, q, tile_q=2, tile_s=150), d.min(axis=1)[q], rtol=1e-9,
                               atol=1e-12)


def test_power_law_fit_recovers_exact_law():
    n = np.array([1e2, 1e3, 1e4, 1e5, 1e6])
    fit = power_law_fit(n, 0.968 * n**-0.184)
    assert fit["a"] == pytest.approx(0.968, rel=1e-12) and fit["b"] == pytest.approx(-0.184, rel=1e-12)
    assert fit["b_err"] < 1e-12


def test_power_law_fit_uncertainty_is_calibrated():
    """Log-normal scatter: |b - b_true| within a few standard errors, and se matches the Monte Carlo spread."""
    rng = np.random.default_rng(0)
    n = np.repeat(10.0 ** np.arange(2, 7), 3)
    bs, errs = [], []
    for _ in range(2000):
        d = 0.5 * n ** (-1 / 6) * np.exp(0.05 * rng.standard_normal(n.size))
        fit = power_law_fit(n, d)
        bs.append(fit["b"])
        errs.append(fit["b_err"])
    bs, errs = np.array(bs), np.array(errs)
    # exact OLS standard error: 0.05 / sqrt(sum (x - xbar)^2)
    x = np.log(n)
    se_true = 0.05 / np.sqrt(np.sum((x - x.mean()) ** 2))
    assert abs(bs.mean() + 1 / 6) < 4 * se_true / np.sqrt(len(bs))
    assert bs.std() == pytest.approx(se_true, rel=0.05)
    assert np.mean(errs) == pytest.approx(se_true, rel=0.05)
    assert np.mean(np.abs(bs + 1 / 6) < 2 * errs) > 0.9


# ---- tiny scans in-process ---------------------------------------------------------------------------------
def _cfg(module, text, tmp_path):
    from hpcflow.jobs import registry

    p = tmp_path / "job.toml"
    p.write_text(text)
    mod, cfg = registry.load(p)
    assert mod is module
    return cfg


TINY_NOISE_SCAN = """
[job]
kind = "noise_scan"
[geometry]
n_train = 80
[kernel]
name = "delta"
[flow]
dt = 0.5
steps = 5
loss = "ultralocal"
[noise]
scales = [0.0, 0.01, 1.0]
"""


def _printed(out: str, prefix: str) -> list:
    """{key: value} of each printed line starting with `prefix` ('key=value' pairs), checking that the line has no
    trailing blank and that every number is short (4 significant digits, as %.4g, or the row's own %g)."""
    import re

    found = []
    for line in (x for x in out.splitlines() if x.startswith(prefix)):
        assert line == line.rstrip(), repr(line)
        pairs = dict(re.findall(r"((?:\w+ )?[\w()]+)=(\S+)", line))  # 'test gain=1.5' -> {'test gain': '1.5'}
        assert all(len(v.replace(".", "").replace("-", "").split("e")[0].lstrip("0")) <= 4 for v in pairs.values()), line
        found.append({k: float(v) for k, v in pairs.items()})
    return found


def test_noise_scan_zero_noise_reproduces_train_gain(tmp_path, capsys):
    from hpcflow.experiments import noise_scan

    cfg = _cfg(noise_scan, TINY_NOISE_SCAN, tmp_path)
    capsys.readouterr()
    s = noise_scan.run(cfg, tmp_path)
    rows = s["table"]
    printed = _printed(capsys.readouterr().out, "noise_scan: ")
    assert [p["scale"] for p in printed] == [0.0, 0.01, 1.0]
    for p, r in zip(printed, rows):  # the lines say the table's numbers, rounded
        assert (p["test gain"], p["train gain"], p["mean d(source)"]) == pytest.approx(
            (r["gain"], r["gain_train"], r["mean_distance_to_source"]), rel=5e-4)
    # zero noise: test points are the train points, so the delta kernel gives them exactly the train flow
    assert rows[0]["mean_distance_to_source"] == 0.0
    assert rows[0]["gain"] == pytest.approx(rows[0]["gain_train"], rel=1e-9) and rows[0]["gain"] > 1
    # small noise: the test gain falls below the train gain, and further with more noise
    assert rows[1]["gain"] < rows[1]["gain_train"] and rows[2]["gain"] < rows[1]["gain"]
    d = [r["mean_distance_to_source"] for r in rows]
    assert d[0] < d[1] < d[2]
    assert all(r["mean_distance_to_nearest_train"] <= r["mean_distance_to_source"] + 1e-12 for r in rows)
    assert (tmp_path / "noise_scan.h5").exists()


def test_noise_scan_paper_variant_keeps_points_off_x(tmp_path, quintic, train):
    """project = false: test points are exactly the noised points (off X), with g_FS of the level set of p
    through them (its tangent vectors annihilate grad p there); zero noise reproduces the train flow."""
    from hpcflow.experiments import noise_scan

    fixed = train.chart[:, 0]
    sets = noise_scan.noisy_test_sets(quintic, train, [0.0, 0.05], np.random.default_rng(4), 50, project=False)
    noised = add_noise(train.points, 0.05, _second_draw(train), fixed=fixed)
    ps, src, failed = sets[1]
    np.testing.assert_array_equal(ps.points, noised[src])
    assert failed < 0.05 * len(train) and np.median(quintic.residual(ps.points)) > 1e-4
    tangent = np.einsum("nak,nk->na", ps.jacobian, quintic.grad(ps.points))
    assert np.abs(tangent).max() < 1e-10 * np.abs(quintic.grad(ps.points)).max()
    cfg = _cfg(noise_scan, TINY_NOISE_SCAN + "project = false\n", tmp_path)
    s = noise_scan.run(cfg, tmp_path)
    rows = s["table"]
    assert s["project"] is False
    assert rows[0]["gain"] == pytest.approx(rows[0]["gain_train"], rel=1e-9) and rows[0]["max_residual"] < 1e-12
    assert rows[1]["max_residual"] > 1e-6 and rows[1]["gain"] < rows[1]["gain_train"]
    assert all(r["mean_distance_to_nearest_train"] <= r["mean_distance_to_source"] + 1e-12 for r in rows)
    # docs/outputs.md: scale_{i}/points holds the kept noised points, off X; n_points + projection_failed = N
    with h5py.File(tmp_path / "noise_scan.h5", "r") as f:
        for i, r in enumerate(rows):
            points = f[f"scale_{i}/points"][()]
            assert len(points) == r["n_points"] == s["n_train"] - r["projection_failed"]
            assert r["max_residual"] == pytest.approx(float(np.max(quintic.residual(points))), rel=1e-12)


def test_unprojected_noise_keeps_only_points_with_a_metric_in_the_train_chart():
    """jobs/noise_scan_paper_gaussian.toml's points at scale 1: where dp/dz_1 of the train chart (0, 1) nearly
    vanishes, g_FS (entries ~1e20) had eigenvalues below its rounding (numpy's eigvalsh: -1.6e4) and a weight ~1e-21,
    yet was kept, and kernel_flow refused the whole job. Every kept g_FS is positive definite by its eigenvalues."""
    from hpcflow.experiments import noise_scan

    x = Hypersurface.fermat(3)
    train = x.sample(2500, seed=0, chart=(0, 1))
    scales = [0.0, 0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0]
    sets = noise_scan.noisy_test_sets(x, train, scales, np.random.default_rng(1), 50, project=False)
    for ps, src, failed in sets:
        assert np.linalg.eigvalsh(ps.g_fs).min(axis=1).min() > 0
        assert len(src) + failed == len(train) and failed < 0.01 * len(train)


def _second_draw(train):
    """The generator state noisy_test_sets uses for its second scale (the first scale drew once before)."""
    rng = np.random.default_rng(4)
    add_noise(train.points, 0.0, rng, fixed=train.chart[:, 0])
    return rng


#: a local_limit job of 60 train and 30 test points, 4 steps; the [local_limit] keys follow
TINY_LOCAL_LIMIT = """
[job]
kind = "local_limit"
[geometry]
n_train = 60
n_test = 30
[flow]
dt = 0.5
steps = 4
loss = "ultralocal"
[local_limit]
"""


def test_local_limit_narrow_width_is_pointwise(tmp_path, capsys):
    """Width -> 0: train flow equals the delta-kernel (pointwise) flow and test points stay at g_FS."""
    from hpcflow.experiments import local_limit
    from hpcflow.experiments.common import sample_train_test
    from hpcflow.flow import kernel_flow
    from hpcflow.kernels import DeltaKernel

    cfg = _cfg(local_limit, TINY_LOCAL_LIMIT + "widths = [1.0, 1e-5]\n", tmp_path)
    capsys.readouterr()
    rows = local_limit.run(cfg, tmp_path)["table"]
    printed = _printed(capsys.readouterr().out, "local_limit: ")
    assert [p["width"] for p in printed] == [1.0, 1e-5]
    for p, r in zip(printed, rows):  # the lines say the table's numbers, rounded
        assert (p["train gain"], p["test gain"]) == pytest.approx((r["gain_train"], r["gain_test"]), rel=5e-4)
    _, train, _ = sample_train_test(cfg["geometry"])
    ref = kernel_flow(DeltaKernel(), train, None, dt=0.5, steps=4, loss="ultralocal")
    assert rows[1]["sigma_train_final"] == pytest.approx(ref.sigma_train[-1], rel=1e-9)
    assert rows[1]["gain_test"] == pytest.approx(1.0, abs=1e-9)
    assert rows[1]["gain_train"] > rows[0]["gain_train"]


def test_local_limit_row_normalised_narrow_width_is_the_nearest_neighbour_flow(tmp_path):
    """normalize="row", form="gauss": as w -> 0 each test point takes its nearest train point's update, so the
    sweep's narrow end is the delta-kernel flow, train and test (the row sums underflowed to 0/0: every test
    update was held and the test gain read exactly 1)."""
    from hpcflow.experiments import local_limit
    from hpcflow.experiments.common import sample_train_test
    from hpcflow.flow import kernel_flow
    from hpcflow.kernels import DeltaKernel

    cfg = _cfg(local_limit, TINY_LOCAL_LIMIT + 'widths = [1e-3, 1e-5]\nform = "gauss"\nnormalize = "row"\n', tmp_path)
    rows = local_limit.run(cfg, tmp_path)["table"]
    _, train, test = sample_train_test(cfg["geometry"])
    d2 = np.sort(fs_distance(test.points, train.points) ** 2, axis=1)
    # the second-nearest train point's weight exp(-(d_2^2 - d_1^2) / 2w^2) is below 1e-300 at both widths
    assert np.all(d2[:, 1] - d2[:, 0] > 700 * 2 * 1e-3 ** 2)
    ref = kernel_flow(DeltaKernel(), train, test, dt=0.5, steps=4, loss="ultralocal")
    assert ref.test_held == 0 and abs(ref.sigma_test[-1] / ref.sigma_test[0] - 1) > 1e-3  # not the held gain 1
    for r in rows:
        assert not r["numerical_stop"]
        assert r["sigma_train_final"] == pytest.approx(ref.sigma_train[-1], rel=1e-12)
        assert r["gain_test"] == pytest.approx(ref.sigma_test[0] / ref.sigma_test[-1], rel=1e-12)


def test_local_limit_whose_flows_stop_writes_them_and_exits_3(tmp_path, capsys):
    """dt = 10^6 without halving leaves no positive-definite first step: the sweep used to exit 0 with gains 1 and
    no status; now local_limit.h5 and the summary record each width's stop, and the job exits 3 naming them."""
    import json

    import h5py

    from hpcflow.cli import main

    job = tmp_path / "ll.toml"
    job.write_text('[job]\nkind = "local_limit"\n[geometry]\nn_train = 40\nn_test = 20\n[flow]\ndt = 1e6\n'
                   'steps = 3\nmax_halvings = 0\nloss = "ultralocal"\n[local_limit]\nwidths = [1.0, 0.1]\n')
    out = tmp_path / "out"
    assert main(["run", str(job), "--out", str(out), "--quiet"]) == 3
    err = capsys.readouterr().err
    with h5py.File(out / "local_limit.h5", "r") as f:
        why, steps = [v.decode() for v in f["table/stopped"][()]], list(f["table/steps_taken"][()])
        hist = [len(f[f"width_{i}/sigma_train"][()]) for i in range(2)]
        status, stopped = f.attrs["status"], f.attrs["stopped"]
    assert steps == [0, 0] and hist == [1, 1]
    assert all(w == "step 1: no dt >= 1e+06 keeps all metrics positive definite" for w in why), why
    s = json.loads((out / "summary.json").read_text())
    assert s["status"] == status == "diverged" and s["stopped"] == stopped
    assert stopped == f"the flows of 2 of 2 widths stopped (width 1: {why[0]}; width 0.1: {why[1]}); a stopped " \
                      "flow's gains are those of its last finite step"
    assert err.strip().splitlines()[-1] == f"hpcflow run: stopped: {stopped}; outputs are in {out}"
    assert (out / "job.toml").is_file()


def test_local_limit_under_mpiexec_prints_each_width_once(tmp_path):
    """At R > 1 every rank runs the whole local-limit job (only rank 0 writes); one result line per width."""
    import os
    import subprocess
    import sys

    from test_parallel import mpiexec

    job = tmp_path / "ll.toml"
    job.write_text('[job]\nkind = "local_limit"\n[geometry]\nn_train = 60\nn_test = 30\n[flow]\ndt = 0.5\n'
                   'steps = 2\nloss = "ultralocal"\n[local_limit]\nwidths = [1.0, 0.1]\n')
    r = subprocess.run([mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "run", str(job), "--out",
                        str(tmp_path / "out"), "--quiet"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, HPCFLOW_THREADS="1"))
    assert r.returncode == 0, r.stderr
    assert [line.split()[1] for line in r.stdout.splitlines() if line.startswith("local_limit:")] == [
        "width=1", "width=0.1"], r.stdout
    import json

    assert json.loads((tmp_path / "out" / "summary.json").read_text())["ranks"] == 2


def test_distance_scaling_job_small(tmp_path):
    import h5py

    from hpcflow.experiments import distance_scaling

    cfg = _cfg(distance_scaling, """
[job]
kind = "distance_scaling"
[scaling]
n_points = [50, 200, 800]
repeats = 2
fit_from = 200
queries = 300
""", tmp_path)
    s = distance_scaling.run(cfg, tmp_path)
    rows = s["table"]
    assert [r["n"] for r in rows] == [50, 50, 200, 200, 800, 800]
    assert [r["n_queries"] for r in rows] == [50, 50, 200, 200, 300, 300]
    assert len({r["seed"] for r in rows}) == 6  # independent samples
    assert all(0 < r["min"] <= r["mean"] <= r["max"] < np.pi / 2 for r in rows)
    ref = power_law_fit([r["n"] for r in rows], [r["mean"] for r in rows])
    assert s["fit_mean"]["b"] == pytest.approx(ref["b"], rel=1e-12) and -0.5 < ref["b"] < -0.05
    ref_from = power_law_fit([r["n"] for r in rows[2:]], [r["mean"] for r in rows[2:]])
    assert s["fit_mean_from"]["b"] == pytest.approx(ref_from["b"], rel=1e-12)
    with h5py.File(tmp_path / "distances.h5") as f:
        d = f[f"nn_distance/N800_seed{rows[4]['seed']}"][()]
        assert d.shape == (300,) and d.mean() == pytest.approx(rows[4]["mean"], rel=1e-12)  # 300 queried


def test_distance_scaling_theory_exponent_follows_the_dimension(tmp_path):
    """Nearest-neighbour distances of N uniform points on a real D-dimensional X fall as N^(-1/D): on the quartic
    K3 (D = 4) the fitted b lies near -1/4, which the summary's theory_b states (not the threefold's -1/6)."""
    from hpcflow.experiments import distance_scaling

    cfg = _cfg(distance_scaling, """
[job]
kind = "distance_scaling"
[geometry]
dim = 2
[scaling]
n_points = [1000, 3162, 10000, 31623]
queries = 3000
fit_from = 0
""", tmp_path)
    s = distance_scaling.run(cfg, tmp_path)
    fit = s["fit_mean"]
    assert abs(fit["b"] + 0.25) < max(0.02, 5 * fit["b_err"]) and abs(fit["b"] + 1 / 6) > 0.05, fit
    assert s["theory_b"] == pytest.approx(-0.25, rel=1e-15)
