"""Task 0 of a `hpcflow submit` Slurm job of several tasks requeues the job only once the other tasks' processes have
exited: the requeue kills the step, and a 2-rank network job's task 1, still tearing down (torch) after both had left
MPI, was killed with it ("srun: error: NODE: task 1: Killed" in a job that had stopped with its checkpoint). Each
task above 0 holds a lock on a file beside the job's logs until its process ends; here a process of its own stands
in for task 1 and exits a while after task 0's run has stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import hpcflow.cli
import hpcflow.submit.task
from hpcflow.submit.task import HpcflowTask

#: task 1: a POSIX lock on its file beside the logs (JOBID_PROCID.alive), held until it ends its process a while later
TASK_1 = ("import fcntl, os, sys, time\n"
          "fd = os.open(os.path.join({folder!r}, '77_1.alive'), os.O_RDWR | os.O_CREAT)\n"
          "fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
          "open(sys.argv[1], 'w').close()\n"
          "time.sleep(4)\n")
#: task 1 taking its lock by `hold_alive_lock` (SLURM_PROCID=1), then never ending
HUNG_TASK_1 = ("import sys, time\n"
               "import hpcflow.submit.task as t\n"
               "t.hold_alive_lock()\n"
               "assert t._alive_fds, 'no lock taken'\n"
               "open(sys.argv[1], 'w').close()\n"
               "time.sleep(60)\n")

JOB_ENV = """
import types, submitit
submitit.JobEnvironment = lambda: types.SimpleNamespace(paths=types.SimpleNamespace(folder={folder!r}), job_id='77')
"""


def _task_1(tmp_path, code: str) -> subprocess.Popen:
    """Task 1 running `code` (SLURM_PROCID=1), once it has taken its lock (its file `ready` made)."""
    ready = tmp_path / "ready"
    task_1 = subprocess.Popen([sys.executable, "-c", code, str(ready)], env=dict(os.environ, SLURM_PROCID="1"))
    deadline = time.monotonic() + 60
    while not ready.exists():
        if task_1.poll() is not None or time.monotonic() > deadline:
            task_1.kill()
            task_1.wait()
            raise AssertionError(f"task 1 did not take its lock (status {task_1.returncode})")
        time.sleep(0.02)
    return task_1


def _slurm_env(monkeypatch, procid: str) -> None:
    for name in [k for k in os.environ if k.startswith(("PMI_", "PMIX_", "OMPI_", "SLURM_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_STEP_NUM_TASKS", "2")
    monkeypatch.setenv("SLURM_PROCID", procid)


def test_task_0_requeues_the_job_only_once_the_other_task_has_exited(tmp_path, monkeypatch):
    _slurm_env(monkeypatch, "0")
    job = SimpleNamespace(paths=SimpleNamespace(folder=tmp_path), job_id="77")
    monkeypatch.setattr(hpcflow.submit.task.submitit, "JobEnvironment", lambda: job)
    monkeypatch.setattr(hpcflow.submit.task, "leave_mpi", lambda: None)
    monkeypatch.setattr(hpcflow.submit.task, "_mark_requeue", lambda: None)
    task_1 = _task_1(tmp_path, TASK_1.format(folder=str(tmp_path)))
    try:
        seen = []

        def requeue(*_):  # submitit's requeue on Slurm: the step is killed, task 1 with it where still running
            try:  # (the kernel drops task 1's lock as its process exits, a moment before it can be reaped)
                seen.append(task_1.wait(timeout=2))
            except subprocess.TimeoutExpired:  # still running, seconds before its end: killed by the requeue
                seen.append(None)
            raise SystemExit(-1)

        old = {s: signal.getsignal(s) for s in (signal.SIGUSR1, signal.SIGUSR2)}
        try:
            signal.signal(signal.SIGUSR2, requeue)

            def run(argv):
                signal.signal(signal.SIGUSR1, lambda *_: None)  # the run's checkpoint handler
                os.kill(os.getpid(), signal.SIGUSR2)  # Slurm's signal before the time limit
                return 4

            monkeypatch.setattr(hpcflow.cli, "main", run)
            try:
                HpcflowTask().run(["nn", "j.toml", "--out", "d"])
            except SystemExit as exc:
                assert exc.code == 0
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        assert seen == [0], seen  # task 1 had exited (status 0) when task 0 requeued the job
        assert not (tmp_path / "77_1.alive").exists()
    finally:
        task_1.kill()
        task_1.wait()


def test_task_0_does_not_wait_past_its_limit_for_a_task_that_does_not_end(tmp_path, monkeypatch):
    """A task that never ends (hung) delays the requeue by the wait's limit at most (OTHER_TASKS_WAIT_S), then Slurm's
    kill takes it; its lock taken by `hold_alive_lock`, as every task above 0 takes it."""
    _slurm_env(monkeypatch, "0")
    job = SimpleNamespace(paths=SimpleNamespace(folder=tmp_path), job_id="77")
    task_1 = _task_1(tmp_path, JOB_ENV.format(folder=str(tmp_path)) + HUNG_TASK_1)
    try:
        start = time.monotonic()
        hpcflow.submit.task.wait_for_other_tasks(folder_job=job, timeout=0.5)
        assert 0.5 <= time.monotonic() - start < 30 and task_1.poll() is None
    finally:
        task_1.kill()
        task_1.wait()


def test_a_task_whose_leg_ends_without_a_requeue_leaves_no_lock_file(tmp_path, monkeypatch):
    """Task 1 takes its lock as its leg starts and, the leg over without a requeue, removes the file."""
    _slurm_env(monkeypatch, "1")
    monkeypatch.delenv("SUBMITIT_FOLDER", raising=False)
    job = SimpleNamespace(paths=SimpleNamespace(folder=tmp_path), job_id="77")
    monkeypatch.setattr(hpcflow.submit.task.submitit, "JobEnvironment", lambda: job)
    held = []
    monkeypatch.setattr(hpcflow.cli, "main", lambda argv: held.append((tmp_path / "77_1.alive").exists()) or 0)
    assert HpcflowTask()(["run", "j.toml", "--out", "d"]) == 0
    assert held == [True] and list(tmp_path.iterdir()) == [] and not hpcflow.submit.task._alive_fds


def _no_locks(monkeypatch):
    """A filesystem without POSIX locks (Lustre mounted without flock: ENOSYS; some NFS and FUSE: ENOLCK, EINVAL)."""
    import errno
    import fcntl

    def lockf(fd, cmd, *args):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))

    monkeypatch.setattr(fcntl, "lockf", lockf)


def test_a_task_that_can_not_take_its_lock_leaves_no_file_and_no_descriptor(tmp_path, monkeypatch):
    """Without locks task 1 takes none; it left its file (and an open descriptor) behind, which task 0 then waited
    on as a task alive."""
    _slurm_env(monkeypatch, "1")
    job = SimpleNamespace(paths=SimpleNamespace(folder=tmp_path), job_id="77")
    _no_locks(monkeypatch)
    fds = set(os.listdir("/proc/self/fd"))
    hpcflow.submit.task.hold_alive_lock(job)
    assert list(tmp_path.iterdir()) == [] and not hpcflow.submit.task._alive_fds
    assert set(os.listdir("/proc/self/fd")) <= fds


def test_task_0_does_not_wait_on_a_file_it_can_not_lock(tmp_path, monkeypatch):
    """A task's file that task 0 can not lock for a reason other than another's lock (ENOSYS here) is not waited on:
    every requeue waited the whole limit (OTHER_TASKS_WAIT_S, here 20 s) for a task long gone. The file is removed."""
    _slurm_env(monkeypatch, "0")
    job = SimpleNamespace(paths=SimpleNamespace(folder=tmp_path), job_id="77")
    (tmp_path / "77_1.alive").touch()
    _no_locks(monkeypatch)
    start = time.monotonic()
    hpcflow.submit.task.wait_for_other_tasks(folder_job=job, timeout=20)
    assert time.monotonic() - start < 10 and list(tmp_path.iterdir()) == []
