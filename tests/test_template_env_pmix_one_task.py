"""An sbatch template's srun passes --mpi to a job of one task too (`hpcflow submit` passes none to one task), and
Slurm's pmix plugin gives that task PMIX_RANK and PMIX_NAMESPACE as it gives several. Where mpi4py loads the mpich
wheel (PMI-1/PMI-2 only) such a task does not start as an MPI world of one: its MPI_Init aborts on the PMIx launch.
So the templates refuse HPCFLOW_MPI=pmix for one task (`template_env.mpi`) exactly where that MPI_Init aborts."""

from __future__ import annotations

import os
import subprocess
import sys

from hpcflow.errors import UserError
from hpcflow.submit import mpi_types, template_env


def _one_pmix_task_env() -> dict:
    """The environment srun --mpi=pmix -n 1 gives its task (the PMIx variables MPICH reads), nothing of another
    launch."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_", "SLURM_", "MPIR_"))}
    return dict(env, PMIX_RANK="0", PMIX_NAMESPACE="slurm.pmix.77.0", PMIX_SERVER_URI2="x", SLURM_NTASKS="1",
                SLURM_PROCID="0", SLURM_JOB_ID="77")


def test_a_one_task_template_refuses_pmix_exactly_where_its_task_could_not_start_mpi(monkeypatch):
    env = _one_pmix_task_env()
    started = subprocess.run([sys.executable, "-c", "from mpi4py import MPI; print(MPI.COMM_WORLD.Get_size())"],
                             env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    world_of_one = started.returncode == 0 and started.stdout.split() == ["1"]
    monkeypatch.setattr(mpi_types, "offered", lambda timeout=None: ["none", "pmi2", "pmix"])
    try:
        template_env.mpi(dict(env, HPCFLOW_MPI="pmix"))
        refused = None
    except UserError as exc:
        refused = str(exc)
    assert template_env.tasks(env) == 1
    assert (refused is not None) == (not world_of_one), (refused, started.returncode, started.stderr[-2000:])
    if refused is not None:
        assert refused.startswith("HPCFLOW_MPI='pmix': mpi4py loads the MPI library of the mpich wheel"), refused
        assert "HPCFLOW_MPI=pmi2" in refused
