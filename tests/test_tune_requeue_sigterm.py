"""A tune worker stopped with its trial's checkpoint (status 4) ignores SIGTERM from then on, as a run and a network
run do: `hpcflow submit`'s task requeues the job once the command has returned 4 (`scontrol requeue`), and Slurm's
SIGTERM to the step reached the worker as it left, after Python had put back the default action in place of
submitit's handler, which ended it ("srun: error: NODE: task 0: Terminated" in the leg's log, "srun: Force Terminated
StepId=J.0" for an array task; a run's or network run's task leaves with status 0 there). Every rank: rank 1 of an
MPI worker stops in `follow`, not where rank 0 does."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_parallel import each_rank_status, rank_statuses
from test_tune_records import JOB, _job  # tests/ is on sys.path (pytest's default import mode)

ROOT = Path(__file__).resolve().parents[1]
DRIVER = str(ROOT / "tests" / "mpi" / "stop_then_sigterm_driver.py")
ENV = dict(os.environ, PYTHONPATH=str(ROOT), HPCFLOW_THREADS="1", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
LONG = JOB.replace("steps = 3", "steps = 12") + "[checkpoint]\nevery = 2\n"
LEFT = "outlived a SIGTERM as it left"


def _command(tmp_path, kind: str, sig: str, rank: int = 0) -> list:
    """The driver's command line: trial 0's flow (a tune), or the run itself, stopped by `sig` at step 5."""
    assert "steps = 3\n" in JOB
    job = _job(tmp_path, LONG)
    args = ["tune", str(job), "--trials", "2"] if kind == "tune" else ["run", str(job)]
    return [sys.executable, DRIVER, "5", f"{rank}:{sig}", *args, "--out", str(tmp_path / "s"), "--quiet"]


@pytest.mark.parametrize("kind", ["tune", "run"])
@pytest.mark.parametrize("sig", ["SIGUSR1", "SIGTERM"])
def test_a_stopped_worker_outlives_a_sigterm_as_it_leaves(tmp_path, kind, sig):
    r = subprocess.run(_command(tmp_path, kind, sig), env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode == 4 and LEFT in r.stderr, (r.returncode, r.stderr)
    if kind == "tune":
        assert "signal received during trial 0" in r.stderr, r.stderr
        assert (tmp_path / "s" / "trials" / "0000" / "checkpoint.h5").is_file()


@pytest.mark.parametrize("rank", [0, 1])
def test_every_rank_of_a_stopped_mpi_worker_outlives_a_sigterm_as_it_leaves(tmp_path, rank):
    statuses = tmp_path / "statuses"
    r = subprocess.run(["timeout", "90", *each_rank_status(statuses, 2, _command(tmp_path, "tune", "SIGUSR1", rank))],
                       env=ENV, capture_output=True, text=True, timeout=120)
    assert r.returncode != 124, r.stdout + r.stderr
    assert rank_statuses(statuses, 2) == [4, 4], r.stdout + r.stderr
    assert r.stderr.count(LEFT) == 2, r.stderr
