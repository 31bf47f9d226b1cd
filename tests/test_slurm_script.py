"""slurm/hpcflow_run.sbatch run by bash with a stand-in `srun` (no Slurm here): arguments reach hpcflow run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "slurm" / "hpcflow_run.sbatch"

JOB = """
[job]
kind = "flow"
[geometry]
chart = [0, 1]
n_train = 40
n_test = 20
[kernel]
name = "delta"
[flow]
dt = 0.5
steps = 3
"""


def _run(tmp_path, *args):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    srun = bin_dir / "srun"  # drops srun's own options, then runs the command, as srun does for one task
    srun.write_text('#!/bin/bash\nwhile [[ "$1" == --* ]]; do shift; done\nexec "$@"\n')
    srun.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", HPCFLOW_PYTHON=sys.executable,
               PYTHONPATH=str(ROOT), SLURM_SUBMIT_DIR=str(tmp_path), SLURM_CPUS_PER_TASK="1")
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=120)


def test_sbatch_script_runs_the_job_with_extra_arguments(tmp_path):
    job = tmp_path / "job.toml"
    job.write_text(JOB)
    r = _run(tmp_path, job, "runs/out", "--set", "flow.steps=2")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "runs" / "out" / "summary.json").read_text())  # relative to the submit dir
    assert summary["steps"] == 2 and summary["overrides"] == ["flow.steps=2"]
    assert "hpcflow" in r.stdout  # `hpcflow info` ran first
    r = _run(tmp_path, job)  # OUTDIR missing: usage message, non-zero exit, nothing written
    assert r.returncode != 0 and "usage" in r.stderr
