"""`--check`'s kernel time estimate against real flow runs: the kernel entries the busiest rank evaluates, as the
flow's counters count them, and its kernel seconds (fresh processes, one thread per rank)."""

import json
import os
import subprocess
import sys

import pytest

from hpcflow.jobs import registry
from hpcflow.resources import estimate
from test_parallel import mpiexec  # tests/ is on sys.path (pytest's default import mode)

JOB = os.path.join(os.path.dirname(__file__), "..", "jobs", "quickstart.toml")
CASES = {
    # two clusters of ~5000 train points, no halo: each block's symmetric kernel streamed as tile pairs every step
    "clustered, streamed": (1, ["geometry.n_train=10000", "geometry.n_test=2500", "clustering.n_clusters=2",
                                "clustering.halo_cutoff=none", "flow.steps=2"]),
    # unclustered on 2 ranks: the train tile pairs and the test rows dealt over the ranks, each share cached
    "unclustered, cached, 2 ranks": (2, ["geometry.n_train=4000", "geometry.n_test=1000", "clustering.method=none",
                                         "flow.steps=2"]),
}


@pytest.mark.parametrize("case", CASES)
def test_time_estimate_follows_the_flows_kernel_work(tmp_path, monkeypatch, case):
    """The estimated seconds are not 3x the measured kernel seconds (a load on the machine only lengthens the run;
    the estimate was 5-9x the measured when it counted whole blocks at the NumPy passes' rate) nor a tenth of them,
    and the estimated kernel entries lie within 15% of the busiest rank's counted ones (cluster sizes vary)."""
    ranks, sets = CASES[case]
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    cmd = [sys.executable, "-m", "hpcflow", "run", JOB, "--out", str(tmp_path / "run"), "--quiet"]
    cmd += [a for s in sets for a in ("--set", s)]
    launch = ["timeout", "250", mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    r = subprocess.run(launch + cmd, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert r.returncode == 0, r.stderr
    per_rank = json.loads((tmp_path / "run" / "summary.json").read_text())["per_rank"]
    busiest = max(per_rank, key=lambda x: x["kernel_entries"])
    _, cfg = registry.load(JOB, sets)
    est = estimate(cfg, ranks=ranks)
    measured = max(x["kernel_seconds"] for x in per_rank)
    assert measured / 10 <= est.seconds <= 3 * measured, (est.seconds, measured)
    assert abs(est.entries / busiest["kernel_entries"] - 1) <= 0.15, (est.entries, per_rank)


@pytest.mark.parametrize("scan, flow", [("noise_scan_gaussian.toml", "table1_gaussian_tuned.toml"),
                                        ("noise_scan.toml", "table1_delta_tuned.toml")])
def test_noise_scan_seconds_follow_its_kernel(monkeypatch, scan, flow):
    """A noise scan's seconds are its levels' flows of n_train train and test points, each timed as a flow job of
    that size and kernel (they were timed at the NumPy passes' rate whatever the kernel); its memory does not follow
    the kernel (a Gaussian scan's NumPy engine, the Delta kernel: the same bytes). The Gaussian engine is given: with
    "auto" a scan takes Numba's loop on its levels' entries together, which one level's flow alone does not."""
    monkeypatch.setenv("HPCFLOW_THREADS", "1")
    jobs = os.path.join(os.path.dirname(__file__), "..", "jobs")
    engine = ["kernel.engine=numba"] if "gaussian" in scan else []
    _, ns = registry.load(os.path.join(jobs, scan), engine, memory_check=False)
    geo = ns["geometry"]
    _, fl = registry.load(os.path.join(jobs, flow), ["clustering.method=none", f"geometry.n_train={geo['n_train']}",
                                                     f"geometry.n_test={geo['n_train']}",
                                                     f"flow.steps={ns['flow']['steps']}", *engine], memory_check=False)
    assert fl["kernel"] == ns["kernel"] and fl["geometry"]["dim"] == geo["dim"]
    levels = len(ns["noise"]["scales"])
    for ranks in (1, 2):
        # every rank runs the whole scan: one process's flows at any rank count
        assert estimate(ns, ranks=ranks).seconds == pytest.approx(levels * estimate(fl, ranks=1).seconds)
    est, numpy_engine = estimate(ns), estimate({**ns, "kernel": {"name": "gaussian", "engine": "numpy"}})
    assert est.bytes - est.parts.get("compiled kernel", 0.0) == numpy_engine.bytes


@pytest.mark.parametrize("job", ["jobs/noise_scan_gaussian.toml", "jobs/local_limit.toml"])
def test_jobs_every_rank_runs_whole_are_estimated_whole_per_rank(job):
    """noise_scan and local_limit run the whole job on every rank (README): the memory and seconds a rank needs at R
    ranks are one process's; the estimate divided them over R (515 -> 467 MiB for the Gaussian scan at 2 ranks), so
    the memory check passed jobs whose ranks each need the whole."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), job)
    _, cfg = registry.load(path, [], memory_check=False)
    one = estimate(cfg, ranks=1)
    for ranks in (2, 3):
        est = estimate(cfg, ranks=ranks)
        assert est.bytes == one.bytes and est.seconds == one.seconds, (ranks, est.bytes, one.bytes)
