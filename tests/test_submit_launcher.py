"""`hpcflow submit` under an MPI launcher (`mpiexec -n R hpcflow submit ...`, a several-task srun): each process
queued the job (R local jobs onto the same --out), a refusal was printed R times, and a local job inherited the
launcher's variables and failed in MPI_Init (PMI_Init returned -1, exit 1). It is refused before any work, in one
line from the launcher's rank 0, exit 2. A local job submitted where a launcher's variables are set without one (a
Slurm batch script or one-task step: SLURM_PROCID, SLURM_STEP_*) runs without them: one process, no MPI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hpcflow.commands.submit import launched_why
from hpcflow.submit.local import unlaunched
from test_parallel import mpiexec
from test_submit import JOB, ROOT

REFUSAL = ("hpcflow submit: error: an MPI launcher started it (PMI_RANK is set): hpcflow submit queues jobs and runs "
           "no ranks itself, and each process the launcher started would queue the job; run it once without mpiexec "
           "or srun (the job's own ranks come from --nodes and --ntasks-per-node)\n")


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SUBMITIT_", "PMI", "OMPI_", "HYDRA_"))}
    return dict(env, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)


@pytest.mark.parametrize("ranks, options", [(1, ["--wait"]), (2, ["--wait"]), (2, ["--check", "--set", "flow.dt=0"])])
def test_submit_under_mpiexec_is_refused_once_and_queues_nothing(tmp_path, ranks, options):
    (tmp_path / "job.toml").write_text(JOB)
    r = subprocess.run([mpiexec(), "-n", str(ranks), sys.executable, "-m", "hpcflow", "submit", "job.toml", "--out",
                        "o", "--executor", "local", *options], cwd=tmp_path, env=_env(), capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == "" and r.stderr == REFUSAL, (r.returncode, r.stdout, r.stderr)
    assert sorted(os.listdir(tmp_path)) == ["job.toml"]  # no --out, no logs folder


@pytest.mark.parametrize("env, refused", [
    ({}, None),
    ({"SLURM_JOB_ID": "5", "SLURM_PROCID": "0", "SLURM_NTASKS": "4"}, None),  # a batch script of a 4-task job
    ({"SLURM_PROCID": "0", "SLURM_STEP_ID": "1", "SLURM_STEP_NUM_TASKS": "1"}, None),  # srun -n 1, no MPI type
    ({"SLURM_PROCID": "1", "SLURM_STEP_ID": "1", "SLURM_STEP_NUM_TASKS": "2"},
     "srun started it as one of 2 tasks (SLURM_STEP_NUM_TASKS=2)"),
    ({"PMIX_RANK": "0"}, "an MPI launcher started it (PMIX_RANK is set)"),
    ({"OMPI_COMM_WORLD_SIZE": "1"}, "an MPI launcher started it (OMPI_COMM_WORLD_SIZE is set)"),
])
def test_what_counts_as_a_launcher(env, refused):
    assert launched_why(env) == refused


def test_a_local_job_gets_no_launcher_variables():
    env = {"PATH": "/bin", "SLURM_JOB_ID": "5", "SLURM_CPUS_PER_TASK": "2", "SLURM_PROCID": "0", "SLURM_STEP_ID": "1",
           "PMI_FD": "9", "PMIX_NAMESPACE": "x", "OMPI_COMM_WORLD_RANK": "0", "HPCFLOW_THREADS": "2"}
    assert unlaunched(env) == {"PATH": "/bin", "SLURM_JOB_ID": "5", "SLURM_CPUS_PER_TASK": "2", "HPCFLOW_THREADS": "2"}


def test_a_local_job_submitted_in_a_one_task_slurm_step_runs_as_one_process_without_mpi(tmp_path):
    """SLURM_PROCID and SLURM_STEP_* (a Slurm step's, here without Slurm) reached the local job, whose run took itself
    for a launched rank and loaded MPI (its provenance named the MPI library)."""
    (tmp_path / "job.toml").write_text(JOB)
    env = _env(SLURM_PROCID="0", SLURM_STEP_ID="0", SLURM_STEP_NUM_TASKS="1", SLURM_LOCALID="0")
    r = subprocess.run([sys.executable, "-m", "hpcflow", "submit", "job.toml", "--out", "o", "--executor", "local",
                        "--wait", "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    provenance = json.loads((tmp_path / "o" / "summary.json").read_text())["provenance"]
    assert provenance["mpi_library"].startswith("not loaded (one process without MPI)"), provenance
