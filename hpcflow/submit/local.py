"""The jobs of `hpcflow submit --executor local`: submitit's local executor, with its job controller (the process
whose pid is the job id, which starts the job's task and restarts it after a time-limit checkpoint) started

- in its own process group: a Ctrl-C at the terminal reaches `hpcflow submit` alone (SIGINT to the terminal's process
  group reached the controller too, which printed a KeyboardInterrupt traceback on submit's stderr and killed the
  task a second later, its checkpoint maybe unwritten); `hpcflow submit` stops its job itself (`stop`), and a job
  queued without --wait runs on after the terminal is closed, as a Slurm job would;
- without the launcher's variables of the process that submitted it (`unlaunched`): its run is one rank of its own,
  where under them it took itself for a rank of the launcher's (under mpiexec it failed in MPI_Init: PMI_Init
  returned -1; `hpcflow submit` now refuses to run there);
- as `python -m hpcflow.submit.local FOLDER` (`Controller`), which notes the exit status of each run of its task in
  FOLDER/JOBID_exit.txt, so that a task killed by a signal (SIGKILL: the kernel's out-of-memory killer, kill -9) is
  said as such (`killed_line`), where submitit knew only "state FINISHED" and no result.

`kill -TERM JOBID` stops a local job as `hpcflow submit` does (the controller passes SIGTERM on to the task: the run
writes its checkpoint and exits with status 4).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path

from submitit.local import local as _local

#: the module submitit starts its controller as (`python -m submitit.local._local FOLDER`), replaced by this one
SUBMITIT_CONTROLLER = "submitit.local._local"


def exit_file(folder, job_id) -> str:
    """The file in a local job's submitit folder where its controller notes the task's exit status."""
    return os.path.join(os.fspath(folder), f"{job_id}_exit.txt")


class Controller(_local.Controller):
    """submitit's controller, noting the exit status of each run of the task (`exit_file`; a negative one: killed by
    that signal, as subprocess gives it)."""

    def wait(self, freq: int = 24):
        codes = super().wait(freq)
        try:
            with open(exit_file(self.folder, self.pid), "w", encoding="utf-8") as f:
                f.write(" ".join("running" if c is None else str(c) for c in codes) + "\n")
        except OSError:  # (a folder that went away: nothing to note; the job's end is seen all the same)
            pass
        return codes


class _OwnSession:
    """What submitit's start_controller finds as `subprocess`: the module itself but for Popen, which starts this
    module's controller in its own process group, with the job's --out (`out`, where given) after its folder on its
    command line (`hpcflow.submit.queued` finds it there)."""

    def __init__(self, out: str | None = None):
        self.out = out

    def __getattr__(self, name):
        import subprocess

        return getattr(subprocess, name)

    def Popen(self, command, **kwargs):  # noqa: N802 - subprocess's name
        import subprocess

        if isinstance(command, list) and SUBMITIT_CONTROLLER in command:
            command = [__name__ if word == SUBMITIT_CONTROLLER else word for word in command]
            command += [self.out] if self.out is not None else []
        if kwargs.get("env") is not None:
            kwargs["env"] = unlaunched(kwargs["env"])
        return subprocess.Popen(command, start_new_session=True, **kwargs)


def unlaunched(env: dict) -> dict:
    """`env` without the variables of a launcher (`hpcflow.parallel.comm.LAUNCH_PREFIXES`: PMI_*, PMIX_*, OMPI_*,
    SLURM_PROCID, SLURM_STEP_*, ...): a local job is a process of its own, one rank, which initialises no MPI. Passed
    on (`hpcflow submit` in a Slurm batch script or step sets SLURM_PROCID), its run took itself for a launched rank."""
    from hpcflow.parallel.comm import LAUNCH_PREFIXES

    return {k: v for k, v in env.items() if not k.startswith(LAUNCH_PREFIXES)}


class LocalExecutor(_local.LocalExecutor):
    """submitit's LocalExecutor, its controller this module's (`Controller`) in its own process group; `out`: the
    --out of the jobs, named on the controller's command line."""

    def __init__(self, *args, out: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.out = out

    def _submit_command(self, command: str):
        saved, _local.subprocess = _local.subprocess, _OwnSession(self.out)
        try:
            job = super()._submit_command(command)
        finally:
            _local.subprocess = saved
        # the result file of a job of this host is there as its controller ends: submitit's wait of 15 s for a slow
        # file system, before "no result", only delayed the notice of a killed job
        job._results_timeout_s = 0
        return job


def is_local(job) -> bool:
    return isinstance(job, _local.LocalJob)


def running(job) -> bool:
    """Whether local job `job`'s controller still runs."""
    process = getattr(job, "_process", None)
    return process is not None and process.poll() is None


def stop(job) -> bool:
    """Ask local job `job` to stop as `kill -TERM JOBID` does (its run writes its checkpoint and exits with status 4);
    whether it was still running."""
    process = getattr(job, "_process", None)
    if process is None or process.poll() is not None:
        return False
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    return True


def _signal_name(number: int) -> str:
    try:
        return f"signal {number} ({signal.Signals(number).name})"
    except ValueError:
        return f"signal {number}"


def killed_line(job) -> tuple[str, int] | None:
    """For a local job without a result whose task (or controller) a signal killed: what was killed, by which signal
    and what commonly sends it, and the status a shell gives such a process (128 + the signal); else None."""
    codes = []
    with contextlib.suppress(OSError, ValueError):
        with open(exit_file(job.paths.folder, job.job_id), encoding="utf-8") as f:
            codes = [int(c) for c in f.read().split() if c != "running"]
    process = getattr(job, "_process", None)
    killed = next((-c for c in codes if c < 0), None)
    what = "its process"
    if killed is None and process is not None and process.returncode is not None and process.returncode < 0:
        killed, what = -process.returncode, f"its controller (pid {job.job_id})"
    if killed is None:
        return None
    why = (" (the kernel's out-of-memory killer sends it, as does kill -9: dmesg or journalctl -k says which)"
           if killed == signal.SIGKILL else "")
    return f"{what} was killed by {_signal_name(killed)}{why}", 128 + killed


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):  # (OUT: read by hpcflow.submit.queued only)
        print("usage: python -m hpcflow.submit.local SUBMITIT_FOLDER [OUT]", file=sys.stderr)
        sys.exit(2)
    Controller(Path(sys.argv[1])).run()
