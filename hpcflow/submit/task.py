"""The submitted callable: `hpcflow ARGV` run in-process on every task (each task one MPI rank under srun).

Preemption: Slurm sends submitit's signal (USR2) before the time limit; it is handed to the run's checkpoint
handler (SIGUSR1), the run writes a checkpoint and stops with exit status 4, and the job is requeued through
submitit with `--resume` added, after every rank has left MPI. A command without a checkpoint handler (a flow or
network run preempted before its first checkpoint, a kind without checkpoints) is requeued at once, as it was
submitted, on one rank; on several it is not requeued (its ranks cannot leave MPI together mid-computation).
A run stopped by SIGTERM (scancel) writes its checkpoint and stops with 4 too; it is not requeued. A job that Slurm
requeues itself (PreemptMode=REQUEUE sends SIGTERM first; node failure) resumes all the same when it starts again.

A command that ends with a status other than 0 (refused 2, diverged 3, stopped 4 and not requeued, crashed 1) fails
the job with that status (Slurm: FAILED, ExitCode=3:0, as sacct, --dependency=afterok and --mail-type=FAIL read it;
returned as submitit's result, the process exited 0 and the job was COMPLETED): its result, the status that
`hpcflow submit --wait` reports, is written first, then the process exits with it (`finish`).
"""

from __future__ import annotations

import os
import signal
import sys

import submitit

from hpcflow.errors import EXIT_PREEMPTED


#: the file a command's run checkpoints into in --out: when it exists at preemption, the requeue resumes it
CHECKPOINTS = {"run": "checkpoint.h5", "nn": "checkpoint.pt"}


def _out(argv: list) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--out" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--out="):
            return arg[len("--out="):]
    return None


def resume_argv(argv: list) -> list | None:
    """The command line that continues `argv` after preemption (None: not continued), decided when preempted: a
    run or network run whose --out holds its checkpoint resumes it (--force dropped: it would start over);
    without one (preempted before the first checkpoint, or a kind without checkpoints) it runs again as given."""
    argv = list(argv)
    if argv[0] == "tune":
        return argv  # its requeue (same job, higher restart count: `local_leg` for a local job) adds only the trials
        # it has not finished
    if argv[0] not in CHECKPOINTS:
        return None
    out = _out(argv)
    if out is not None and os.path.isfile(os.path.join(out, CHECKPOINTS[argv[0]])):
        return [a for a in argv if a not in ("--resume", "--force")] + ["--resume"]
    return argv


#: the runs a job of submitit's local executor gets: its Controller.run(max_retry=6) starts a job that asks to be
#: requeued at most 6 times in all (max_num_timeout does not lift it); the 6th run's requeue ends it without a result
LOCAL_MAX_LEGS = 6


def legs_file(folder, job_id) -> str:
    """The file in a local job's submitit folder that counts its runs (`local_leg`)."""
    return os.path.join(os.fspath(folder), f"{job_id}_legs.txt")


def local_leg(environ=None) -> tuple[str, int] | None:
    """For a job of submitit's local executor (SUBMITIT_EXECUTOR=local): (a key naming the job, this run's number
    from 0), counted in `legs_file` in its folder, as Slurm raises SLURM_RESTART_COUNT at every requeue of a job
    (the local executor starts the same job again, its id unchanged, and sets no count). The key holds the first
    run's start time, so that a later job with the same id (a process id) is another job. None outside one."""
    import socket
    import time

    env = os.environ if environ is None else environ
    if env.get("SUBMITIT_EXECUTOR") != "local" or not env.get("SUBMITIT_LOCAL_JOB_ID") or not env.get("SUBMITIT_FOLDER"):
        return None
    from hpcflow.atomic import atomic_file

    job_id = env["SUBMITIT_LOCAL_JOB_ID"]
    path = legs_file(env["SUBMITIT_FOLDER"].replace("%j", job_id), job_id)
    last = _last_leg(path)
    key, leg = (last[0], last[1] + 1) if last else (f"local-{socket.gethostname()}-{job_id}-{int(time.time())}", 0)
    with atomic_file(path, "w", encoding="utf-8") as f:
        f.write(f"{key} {leg}\n")
    return key, leg


def _last_leg(path) -> tuple[str, int] | None:
    """(key, number) of the last run that `legs_file` `path` counts; None before the first (or unreadable)."""
    try:
        with open(path, encoding="utf-8") as f:
            key, leg = f.read().split()
        return key, int(leg)
    except (OSError, ValueError):
        return None


def local_legs(folder, job_id) -> int:
    """How many runs local job `job_id` (its submitit folder `folder`) has had: 0 before its first."""
    last = _last_leg(legs_file(folder, job_id))
    return 0 if last is None else last[1] + 1


def requeued(environ=None) -> bool:
    """Whether this is a Slurm job started again after a requeue (preemption, node failure, scontrol requeue):
    SLURM_RESTART_COUNT above 0. ConfigError for a count that is not a whole number."""
    from hpcflow.resources import slurm_restart_count

    return slurm_restart_count(environ) > 0


def _world_size() -> int:
    from hpcflow.parallel.comm import size

    return size()


def _any_rank(flag: bool) -> bool:
    from hpcflow.parallel.reduce import any_true

    return any_true(flag)


def leave_mpi() -> None:
    """Every rank leaves MPI together (Barrier, Finalize) before rank 0 requeues the job, which kills the step: a rank
    killed inside MPI leaves its shared-memory segment (/dev/shm/mpich_shm_*) under a name that the requeued step,
    with the same job and step id, opens again, and its MPI_Init then fails."""
    from hpcflow.parallel.comm import _mpi

    MPI = _mpi()
    if MPI is not None and MPI.Is_initialized() and not MPI.Is_finalized():
        MPI.COMM_WORLD.Barrier()
        MPI.Finalize()


def exit_status(code) -> int:
    """The process status that SystemExit(code) gives: None 0, an integer itself, anything else 1 (as Python)."""
    if code is None:
        return 0
    return code if isinstance(code, int) else 1


def preemption_signal() -> int:
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


def _agreed(status: int) -> int:
    """The largest status over the ranks of the job's MPI world (one collective; `status` where there is none)."""
    from hpcflow.parallel.comm import _mpi

    MPI = _mpi()
    if MPI is None or not MPI.Is_initialized() or MPI.Is_finalized() or MPI.COMM_WORLD.Get_size() == 1:
        return status
    from hpcflow.parallel.reduce import max_value

    return int(max_value(status, comm=MPI.COMM_WORLD))


def finish(status: int) -> int:
    """`status` where it is 0. Else, in a submitit job, write `status` as the task's result (what `--wait` reads)
    and exit with it, so that the job fails with the command's status; every rank of an MPI world first agrees on the
    largest and leaves MPI together (with srun --kill-on-bad-exit a rank that exited first ended the others before
    they wrote their result)."""
    if "SUBMITIT_FOLDER" not in os.environ:  # (not a submitit job: the status is returned)
        return status
    status = _agreed(status)
    if status == 0:
        return 0
    from submitit.core.utils import cloudpickle_dump, temporary_save_path

    paths = submitit.JobEnvironment().paths
    with temporary_save_path(paths.result_pickle) as tmp:  # submitit's own result file, as it writes it
        cloudpickle_dump(("success", status), tmp)
    leave_mpi()
    print(f"hpcflow submit: the command ended with exit status {status}; the job fails with it", file=sys.stderr,
          flush=True)
    raise SystemExit(status)


class HpcflowTask(submitit.helpers.Checkpointable):
    """Run `hpcflow ARGV`; its exit status is the job's result, and the job fails with a status other than 0."""

    def __call__(self, argv: list) -> int:
        status, requeued_leg = self.run(argv)
        return status if requeued_leg else finish(status)

    def run(self, argv: list) -> tuple[int, bool]:
        """(the exit status of `hpcflow ARGV`, whether the job was requeued after it: a rank above 0 comes back
        from submitit's requeue, which ends rank 0's process)."""
        from hpcflow.cli import main
        from hpcflow.commands.run import shell_line
        from hpcflow.tune.storage import masked

        if requeued():  # requeued by Slurm itself (preemption, node failure)
            argv = resume_argv(argv) or argv
        leg = local_leg()
        if leg is not None and argv[0] == "tune":  # the worker's job and run count, as Slurm gives them a tune
            os.environ["SLURM_JOB_ID"], os.environ["SLURM_RESTART_COUNT"] = leg[0], str(leg[1])
        shown = masked(shell_line(["hpcflow", *argv]))  # (a log shows no storage password)
        sig = preemption_signal()
        requeue = signal.getsignal(sig)
        preempted, handed = [], []

        def forward(signum, frame):
            checkpoint = signal.getsignal(signal.SIGUSR1)
            # a checkpoint writer's handler; not one that only ends the command (stop_signals: `default_action`)
            if callable(checkpoint) and checkpoint is not forward and not getattr(checkpoint, "default_action", False):
                preempted.append(signum)  # (its exit with 4 requeues the job)
                checkpoint(signal.SIGUSR1, frame)  # the run checkpoints at its next step, then exits with 4
            elif _world_size() > 1:  # ranks mid-computation cannot leave MPI together: requeued, the job would fail.
                # Not `preempted`: the run goes on, and a later stop with 4 (SIGTERM at the time limit, scancel) is
                # not requeued. The signal can come long before the limit (Slurm sends it up to 60 s early, at once
                # where --signal-delay is near --time), so the run may yet finish
                print(f"hpcflow submit: the signal before the time limit came while the job's command had no "
                      f"checkpoint to stop at; it runs on several ranks, so the job is not requeued and the run goes "
                      f"on: if the time limit stops it before it finishes, submit it again (its command: {shown})",
                      file=sys.stderr, flush=True)
            elif callable(requeue):
                preempted.append(signum)
                handed.append(signum)
                requeue(signum, frame)  # submitit's: requeues the job and ends this process (SystemExit)

        signal.signal(sig, forward)
        try:
            status = main(list(argv))
        except SystemExit as exc:
            if handed:  # submitit's requeue ends the process so: its exit, not the command's
                raise
            # ranks above 0 of a refusal decided together (refuse_together) and argparse end so: the task's result
            status = exit_status(exc.code)
        # requeued after submitit's signal only: the run stops with 4 on SIGTERM too (scancel), and is not requeued
        if status == EXIT_PREEMPTED and callable(requeue) and _any_rank(bool(preempted)):
            leave_mpi()
            requeue(sig, None)  # submitit: checkpoint() below, requeue (rank 0), exit
            return status, True
        return status, False

    def checkpoint(self, argv: list):  # noqa: D102 - submitit's hook
        nxt = resume_argv(argv)
        return None if nxt is None else submitit.helpers.DelayedSubmission(HpcflowTask(), nxt)
