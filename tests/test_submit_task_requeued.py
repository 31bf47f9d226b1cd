"""The line a `hpcflow submit` job's task says as its command ends with a status other than 0 (`task.finish`): a run
stopped with its checkpoint (4) in a job that Slurm has requeued (`scontrol requeue`, preemption), asked of `scontrol
show job` (a stand-in here), is said to continue from it, not to fail the job."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _finish(tmp_path, status: int, restarts: int, **extra) -> subprocess.CompletedProcess:
    """`task.finish(status)` in the task of Slurm job 77's first leg, whose `scontrol show job` gives `restarts`;
    `extra`: more of the task's environment."""
    bin_dir, logs = tmp_path / "bin", tmp_path / "logs"
    bin_dir.mkdir()
    logs.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/bash\necho "$@" > {bin_dir}/args\necho "JobId=77 JobName=hpcflow '
                                      f'JobState=RUNNING Requeue=1 Restarts={restarts} BatchFlag=1 ExitCode=0:0"\n')
    (bin_dir / "scontrol").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SUBMITIT_"))}
    env.update(PATH=str(bin_dir), PYTHONPATH=str(ROOT), SLURM_JOB_ID="77", SLURM_RESTART_COUNT="0",
               SUBMITIT_FOLDER=str(logs), SUBMITIT_EXECUTOR="slurm")
    env.update(extra)
    return subprocess.run([sys.executable, "-c", f"from hpcflow.submit.task import finish; finish({status})"],
                          capture_output=True, text=True, env=env, timeout=60)


def test_a_run_stopped_by_slurms_requeue_says_the_job_continues_not_that_it_fails(tmp_path):
    """`scontrol requeue JOBID` of a running submit job: Slurm raises its restart count, then sends SIGTERM, and the
    run stops with its checkpoint (4); the requeued job resumes. The log said "the job fails with it"."""
    r = _finish(tmp_path, 4, 1)
    assert r.returncode == 4, r.stderr
    assert r.stderr == ("hpcflow submit: the command stopped with its checkpoint (exit status 4); Slurm has requeued "
                        "the job (scontrol requeue, preemption): it continues from the checkpoint when it starts "
                        "again\n"), r.stderr
    assert (tmp_path / "bin" / "args").read_text().split() == ["-o", "show", "job", "77"]
    with open(tmp_path / "logs" / "77_0_result.pkl", "rb") as f:  # what `--wait` reads (and follows the requeue)
        assert pickle.load(f) == ("success", 4)


@pytest.mark.parametrize("status, restarts", [(4, 0), (3, 1)])
def test_a_job_not_requeued_or_not_stopped_fails_with_its_status(tmp_path, status, restarts):
    """Stopped with 4 and not requeued (`scancel --signal=TERM`), or ended with another status: the job fails."""
    r = _finish(tmp_path, status, restarts)
    assert r.returncode == status
    assert r.stderr == f"hpcflow submit: the command ended with exit status {status}; the job fails with it\n", r.stderr


def test_only_task_0_asks_slurm_whether_the_job_was_requeued(tmp_path):
    """Every task of a job preempted on many nodes asked `scontrol show job` at once as it stopped with 4: task 0
    asks; another says its status and where the answer is, without asking."""
    r = _finish(tmp_path, 4, 1, SLURM_PROCID="1", SLURM_LOCALID="1", SLURM_NTASKS="2")
    assert r.returncode == 4, r.stderr
    assert r.stderr == ("hpcflow submit: the command stopped with its checkpoint (exit status 4); task 0's log says "
                        "whether Slurm has requeued the job to continue from it\n"), r.stderr
    assert not (tmp_path / "bin" / "args").exists()  # (scontrol not run)
    (tmp_path / "t0").mkdir()
    r = _finish(tmp_path / "t0", 4, 1, SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NTASKS="2")
    assert r.returncode == 4 and "Slurm has requeued the job" in r.stderr, r.stderr
    assert (tmp_path / "t0" / "bin" / "args").read_text().split() == ["-o", "show", "job", "77"]


@pytest.mark.parametrize("procid, kept", [("0", False), ("1", True)])
def test_a_later_leg_removes_the_ended_mark_of_the_leg_before(tmp_path, procid, kept):
    """The mark an earlier leg's batch shell left (`executor.ended_file`) made `hpcflow submit --wait` ask Slurm for
    the job's state every 10 s for the rest of the requeued job: task 0 of the next leg removes it as it starts."""
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "77_ended").touch()
    (logs / "76_ended").touch()  # (another job's)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SUBMITIT_"))}
    env.update(PYTHONPATH=str(ROOT), SLURM_JOB_ID="77", SLURM_RESTART_COUNT="1", SLURM_PROCID=procid,
               SLURM_LOCALID=procid, SLURM_NTASKS="2", SUBMITIT_FOLDER=str(logs), SUBMITIT_EXECUTOR="slurm")
    r = subprocess.run([sys.executable, "-c", "import sys; from hpcflow.submit.task import HpcflowTask; "
                        "sys.exit(HpcflowTask().run(['--version'])[0])"], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert (logs / "77_ended").exists() == kept and (logs / "76_ended").exists()


def test_an_array_task_asks_slurm_of_itself_alone(tmp_path):
    """A task of a tune array (`hpcflow submit --command tune --array 2`) whose SLURM_JOB_ID is the array's own id
    (Slurm gives it to one task): `scontrol show job 1794` answers a line for each task of the array, so whether the
    stopped task was requeued went unknown and its log said the job fails. It asks of 1794_1, the task alone."""
    r = _finish(tmp_path, 4, 1, SLURM_JOB_ID="1794", SLURM_ARRAY_JOB_ID="1794", SLURM_ARRAY_TASK_ID="1")
    assert r.returncode == 4, r.stderr
    assert (tmp_path / "bin" / "args").read_text().split() == ["-o", "show", "job", "1794_1"]
    assert "Slurm has requeued the job" in r.stderr, r.stderr
