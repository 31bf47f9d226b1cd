"""`python -m hpcflow.submit.step` (the end of the sbatch templates) when the run stops on SIGTERM with its checkpoint
(exit status 4, no SIGUSR1): its line says whether Slurm requeues the job, asked of `scontrol show job` (stand-ins
here), or how to continue it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: a run step that gets SIGTERM (sent to the batch step, which outlives it and notes it) and stops with status 4
STOPPED = [shutil.which("bash"), "-c", f"kill -TERM $PPID; {shutil.which('sleep')} 0.5; exit 4"]
STOPPED_LINE = "hpcflow.submit.step: the run stopped on SIGTERM, its checkpoint written; "


def _step(tmp_path, scontrol: str | None, restart_count: str = "0", step=STOPPED,
          **extra) -> subprocess.CompletedProcess:
    """The step running `step` as job 77 in its leg `restart_count` (`extra`: more of its environment), with a
    stand-in scontrol running `scontrol` (none where None) alone on PATH; scontrol's arguments recorded in bin/args."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if scontrol is not None:
        (bin_dir / "scontrol").write_text(f'#!/bin/bash\necho "$@" > {bin_dir}/args\n{scontrol}\n')
        (bin_dir / "scontrol").chmod(0o755)
    env = dict(os.environ, PATH=str(bin_dir), PYTHONPATH=str(ROOT), SLURM_JOB_ID="77",
               SLURM_RESTART_COUNT=restart_count)
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SUBMITIT_EXECUTOR"):  # (the test's own job's)
        env.pop(name, None)
    env.update(extra)
    return subprocess.run([sys.executable, "-m", "hpcflow.submit.step", *step], capture_output=True, text=True,
                          env=env, timeout=60)


def _info(restarts: int, state: str = "RUNNING") -> str:
    return (f"echo 'JobId=77 JobName=hpcflow UserId=u(1) JobState={state} Reason=None Requeue=1 Restarts={restarts} "
            "BatchFlag=1 ExitCode=0:0'")


@pytest.mark.parametrize("leg", [0, 2])
def test_a_job_slurm_requeued_is_said_requeued_not_to_be_requeued_by_hand(tmp_path, leg):
    """`scontrol requeue JOBID` of a running template job: Slurm raises its restart count, then sends SIGTERM, and the
    run stops with its checkpoint; the next leg resumes. The log said the job is not requeued and to continue it with
    `scontrol requeue`, though it was requeued already."""
    r = _step(tmp_path, _info(leg + 1, "COMPLETING"), str(leg))
    assert r.returncode == 4
    assert r.stderr == (f"{STOPPED_LINE}Slurm has requeued the job (scontrol requeue, preemption): it continues from "
                        "the checkpoint when it starts again\n"), r.stderr
    assert (tmp_path / "bin" / "args").read_text().split() == ["-o", "show", "job", "77"]


@pytest.mark.parametrize("leg", [0, 2])
def test_a_job_stopped_by_the_user_says_how_to_continue_it(tmp_path, leg):
    """`scancel --signal=TERM JOBID`: the restart count is this leg's, the job is not requeued."""
    r = _step(tmp_path, _info(leg), str(leg))
    assert r.returncode == 4
    said = f"{STOPPED_LINE}the job is not requeued for it: continue it with: scontrol requeue 77\n"
    assert r.stderr == said, r.stderr


@pytest.mark.parametrize("scontrol", [None, "echo 'slurm_load_jobs error: Unable to contact slurm controller' >&2; "
                                            "exit 1", "echo 'JobId=77 JobState=RUNNING'"])
def test_where_scontrol_does_not_say_the_line_holds_for_either(tmp_path, scontrol):
    """scontrol missing, failing or without a restart count: one line, right whether Slurm requeues the job or not,
    and nothing of scontrol's."""
    r = _step(tmp_path, scontrol)
    assert r.returncode == 4
    assert r.stderr == (f"{STOPPED_LINE}the job is not requeued for it: unless Slurm requeues it (scontrol requeue, "
                        "preemption), continue it with: scontrol requeue 77\n"), r.stderr


def test_bytes_of_scontrol_that_are_not_utf8_do_not_end_the_step(tmp_path):
    """The job's name, comment and paths in `scontrol show job` may hold any bytes: a \\377 among them ended the batch
    step with a UnicodeDecodeError traceback and status 1, so a clean stop (FAILED 4) read as a crash."""
    r = _step(tmp_path, "printf 'JobId=77 JobName=r\\377n JobState=COMPLETING Restarts=1 BatchFlag=1\\n'")
    assert r.returncode == 4, r.stderr
    assert r.stderr == (f"{STOPPED_LINE}Slurm has requeued the job (scontrol requeue, preemption): it continues from "
                        "the checkpoint when it starts again\n"), r.stderr


def test_a_further_sigterm_while_scontrol_is_asked_does_not_end_the_step_before_its_line(tmp_path):
    """A second SIGTERM (scancel again) to the batch step while it asks scontrol (up to 10 s) ended it with 143 and no
    line: the run had stopped with its checkpoint, and the step's handlers were already put back."""
    r = _step(tmp_path, f"kill -TERM $PPID; {shutil.which('sleep')} 0.3; " + _info(0))
    assert r.returncode == 4, (r.returncode, r.stderr)
    said = f"{STOPPED_LINE}the job is not requeued for it: continue it with: scontrol requeue 77\n"
    assert r.stderr == said, r.stderr


#: an array task whose SLURM_JOB_ID is the array's own id (Slurm gives it to one task of the array: job 1794 is
#: task 1 of array 1794, task 0 is job 1795)
ARRAY_TASK = dict(SLURM_JOB_ID="1794", SLURM_ARRAY_JOB_ID="1794", SLURM_ARRAY_TASK_ID="1")


def _array_info(restarts: int) -> str:
    """`scontrol -o show job ID` of array 1794: one line for each of its tasks when asked for 1794 (Slurm's answer
    for the array's id), the task's own for 1794_1 (task 0 is running its first leg)."""
    line = ("echo 'JobId={} ArrayJobId=1794 ArrayTaskId={} JobName=hpcflow JobState={} Reason=None Requeue=1 "
            "Restarts={} BatchFlag=1 ExitCode=0:0'")
    return (f'if [[ $4 == 1794 ]]; then {line.format(1795, 0, "RUNNING", 0)}; fi\n'
            f'{line.format(1794, 1, "RUNNING", restarts)}')


@pytest.mark.parametrize("leg", [0, 1])
def test_an_array_task_stopped_by_the_user_names_the_requeue_of_that_task_alone(tmp_path, leg):
    """A task of a tune array (hpcflow_tune_array.sbatch) stopped by `scancel --signal=TERM`: its line named
    `scontrol requeue 1794`, its raw SLURM_JOB_ID, which for this task is the array's id: pasted, it requeued every
    task of the array. And scontrol asked of that id answered a line for each task, so the line said 'unless Slurm
    requeues it'. Now the task is asked and named as 1794_1."""
    r = _step(tmp_path, _array_info(leg), str(leg), **ARRAY_TASK)
    assert r.returncode == 4
    assert (tmp_path / "bin" / "args").read_text().split() == ["-o", "show", "job", "1794_1"]
    said = f"{STOPPED_LINE}the job is not requeued for it: continue it with: scontrol requeue 1794_1\n"
    assert r.stderr == said, r.stderr


def test_an_array_task_requeued_by_slurm_is_said_requeued(tmp_path):
    """`scontrol requeue 1794_1` of the running task: its restart count is above its leg's (the other task's is not,
    which the array's id would have shown too)."""
    r = _step(tmp_path, _array_info(1), "0", **ARRAY_TASK)
    assert r.returncode == 4
    assert r.stderr == (f"{STOPPED_LINE}Slurm has requeued the job (scontrol requeue, preemption): it continues from "
                        "the checkpoint when it starts again\n"), r.stderr


@pytest.mark.parametrize("env, requeued", [(ARRAY_TASK, "1794_1"), ({}, "77")])
def test_a_run_stopped_with_its_checkpoint_requeues_its_own_array_task(tmp_path, env, requeued):
    """A run that stops with its checkpoint after a SIGUSR1 (the time-limit signal) requeues its job: an array task
    requeued `scontrol requeue 1794`, its raw SLURM_JOB_ID, which is the array's id for this task, and every task of
    the array was requeued (the others killed mid-trial). Now 1794_1, the task alone; a plain job by its id."""
    usr1 = [shutil.which("bash"), "-c", f"trap '' USR1; kill -USR1 $PPID; {shutil.which('sleep')} 0.5; exit 4"]
    r = _step(tmp_path, "", "0", usr1, **env)
    assert r.returncode == 4, r.stderr
    assert (tmp_path / "bin" / "args").read_text().split() == ["requeue", requeued]
