"""Launcher tasks that each see an MPI world of size 1 are refused by one line, said by the task that the launcher
numbered 0, the others silent: the task count and the rank are read from one launcher's variables, the innermost's.
An mpiexec without PMI_RANK (Open MPI's mpirun) started inside srun task 3 gave each of its tasks SLURM_PROCID=3,
which was read as their rank while the count came from SLURM_STEP_NUM_TASKS: no task said anything, each ended with
status 2. Fake environments, one per task of a launch."""

from __future__ import annotations

import pytest

from hpcflow.errors import UserError
from hpcflow.parallel import comm as pcomm
from hpcflow.stop_signals import launcher_rank

SLURM_TASK_3 = {"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "3"}  # inherited from the srun task it runs in

#: (one environment per task of a launch, the task count it says)
LAUNCHES = {
    "srun": ([{"SLURM_STEP_NUM_TASKS": "3", "SLURM_PROCID": str(r)} for r in range(3)], 3),
    "srun --mpi=pmi2": ([{"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": str(r), "PMI_SIZE": "2", "PMI_RANK": str(r)}
                         for r in range(2)], 2),
    "mpirun in srun task 3": ([{**SLURM_TASK_3, "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": str(r)}
                               for r in range(2)], 2),
    "Hydra mpiexec in srun task 3": ([{**SLURM_TASK_3, "PMI_SIZE": "3", "PMI_RANK": str(r)} for r in range(3)], 3),
    "PMIx launcher in srun task 3": ([{**SLURM_TASK_3, "PMIX_SIZE": "2", "PMIX_RANK": str(r)} for r in range(2)], 2),
    "Open MPI": ([{"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": str(r)} for r in range(2)], 2),
}


def _cleared(monkeypatch) -> None:
    for name in ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID", "PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE",
                 "OMPI_COMM_WORLD_RANK", "PMIX_SIZE", "PMIX_RANK", "PMIX_NAMESPACE", "MPI4PY_LIBMPI"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("launch", list(LAUNCHES))
def test_one_task_of_each_launch_says_the_refusal(monkeypatch, launch):
    tasks, count = LAUNCHES[launch]
    said = []
    for env in tasks:
        _cleared(monkeypatch)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(UserError) as info:
            pcomm.check_launch()
        assert f"the launcher started {count} tasks but each sees an MPI world of size 1" in str(info.value)
        said.append(not getattr(info.value, "said_elsewhere", False))
    assert said == [True] + [False] * (len(tasks) - 1), said


@pytest.mark.parametrize("launch", list(LAUNCHES))
def test_the_launcher_rank_is_that_of_the_launcher_whose_count_is_read(launch):
    tasks, _ = LAUNCHES[launch]
    assert [launcher_rank(env) for env in tasks] == list(range(len(tasks)))


def test_a_rank_without_a_count_is_still_read():
    assert launcher_rank({}) == 0
    assert launcher_rank({"SLURM_PROCID": "2"}) == 2
    assert launcher_rank({"PMIX_RANK": "1"}) == 1
    # a launcher that sets its count and no rank: 0 (each of its tasks says it), not the srun task's 3
    assert launcher_rank({**SLURM_TASK_3, "PMI_SIZE": "2"}) == 0
