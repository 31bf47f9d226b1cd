"""The analysis and report of the experiment job kinds (clustering, distance_scaling, noise_scan, local_limit): the
fix the report names for an incomplete run, Fig. 3 right's theory line and fits, damaged data refused, and what the
runs table shows of these kinds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from analysis_runs import JOBS, ROOT, _run_job, env, md_rows

K3_SCALING = JOBS["scaling"][1].replace("dim = 3", "dim = 2")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{name: run directory} of small noise_scan, distance_scaling (quintic and K3), clustering and local_limit
    runs (a clustering run without fig2_distances.h5 too)."""
    root = str(tmp_path_factory.mktemp("experiment_runs"))
    extra = {"scaling_k3": ("run", K3_SCALING),
             "clustering_nofig": ("run", JOBS["clustering"][1] + "[quality]\nfig2 = false\n")}
    JOBS.update(extra)
    try:
        names = ("noise", "scaling", "scaling_k3", "clustering", "clustering_nofig", "local_limit")
        for name in names:
            proc = _run_job(root, name)
            assert proc.returncode == 0, f"{name}: {proc.stderr}"
    finally:
        for key in extra:
            JOBS.pop(key)
    return {name: os.path.join(root, name) for name in names}


def report(out, *dirs):
    proc = subprocess.run([sys.executable, "-m", "hpcflow", "report", *map(str, dirs), "--out", str(out)], cwd=ROOT,
                          env=env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with open(os.path.join(out, "report.md"), encoding="utf-8") as fh:
        return fh.read()


@pytest.mark.parametrize("name", ["noise", "scaling", "clustering", "local_limit"])
def test_incomplete_run_without_checkpoints_is_rerun_not_resumed(runs, tmp_path, name):
    """A run of a kind without checkpoints whose summary.json is gone: `hpcflow run --resume` refuses such a kind,
    so the report's fix is the rerun with --force."""
    copy = tmp_path / "cut"
    shutil.copytree(runs[name], copy)
    os.remove(copy / "summary.json")
    refused = subprocess.run([sys.executable, "-m", "hpcflow", "run", str(copy / "job.toml"), "--out", str(copy),
                              "--resume"], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "has no checkpoints" in refused.stderr
    status = md_rows(report(tmp_path / "rep", copy))["cut"][2]
    assert status.startswith("incomplete: no summary.json") and "--resume" not in status
    assert "rerun the job with --force" in status
