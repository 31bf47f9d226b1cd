"""Resource options -> a submitit executor (Slurm or local subprocesses); submit, print where things go, wait."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass

from hpcflow.errors import UserError


class SubmitError(UserError):
    """The submission cannot be made as asked (no Slurm here, impossible resources)."""


@dataclass
class Resources:
    """What each submitted job asks for: Slurm's --nodes/--ntasks-per-node/... and the srun MPI type."""

    nodes: int = 1
    ntasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    time: int = 60
    partition: str | None = None
    mpi: str = "pmi2"
    signal_delay: int = 120

    @property
    def tasks(self) -> int:
        return self.nodes * self.ntasks_per_node


def require_slurm() -> None:
    """SubmitError unless sbatch and srun are on PATH."""
    missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
    if missing:
        raise SubmitError(f"--executor slurm: {' and '.join(missing)} not on PATH (no Slurm here); use --executor "
                          "local, or start a one-node Slurm with: sudo slurm/local-cluster.sh start")


def make_executor(kind: str, folder: str, res: Resources, *, name: str, array: int = 1):
    """A submitit executor writing its pickles and logs under `folder`."""
    import submitit

    if kind == "local":
        if res.tasks > 1:
            raise SubmitError("--executor local runs one task per job; use --executor slurm, or mpiexec -n T "
                              "hpcflow ... for an MPI run on this machine")
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=res.time, gpus_per_node=res.gpus_per_node,
                             signal_delay_s=res.signal_delay)
        return ex
    require_slurm()
    ex = submitit.SlurmExecutor(folder=folder, python=sys.executable)
    params = dict(job_name=name, nodes=res.nodes, ntasks_per_node=res.ntasks_per_node, cpus_per_task=res.cpus_per_task,
                  time=res.time, signal_delay_s=res.signal_delay, array_parallelism=array)
    if res.gpus_per_node:
        params["gpus_per_node"] = res.gpus_per_node
    if res.partition:
        params["partition"] = res.partition
    if res.tasks > 1 and res.mpi != "none":
        params["srun_args"] = [f"--mpi={res.mpi}"]  # the tasks form one MPI world (plain srun: R worlds of 1)
    ex.update_parameters(**params)
    return ex


def submit(ex, task, argvs: list) -> list:
    """Submit one job per command line (a Slurm job array when several); return the submitit jobs."""
    if len(argvs) == 1:
        return [ex.submit(task, argvs[0])]
    return ex.map_array(task, argvs)


def wait(jobs, *, log=print) -> int:
    """Wait for every job; the largest exit status of their tasks (1 when a job failed without one)."""
    status = 0
    for job in jobs:
        try:
            results = job.results()
        except Exception as exc:  # noqa: BLE001 - submitit's FailedJobError/UncompletedJobError
            first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            log(f"hpcflow submit: job {job.job_id} failed: {first.strip()[:200]}; see {job.paths.stderr}")
            status = max(status, 1)
            continue
        status = max([status, *(int(r) for r in results)])
    return status


def log_paths(job) -> tuple[str, str]:
    return os.fspath(job.paths.stdout), os.fspath(job.paths.stderr)
