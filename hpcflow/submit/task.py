"""The submitted callable: `hpcflow ARGV` run in-process on every task (each task one MPI rank under srun).

Preemption: Slurm sends submitit's signal (USR2) before the time limit; it is handed to the run's checkpoint
handler (the one set for SIGUSR1) as the signal it is (a line of the run names SIGUSR2), the run writes a checkpoint
and stops with exit status 4, and the job is requeued through submitit with `--resume` added, after every rank has
left MPI and task 0 has seen the other tasks' processes exit or waited 30 s for them (`wait_for_other_tasks`). A
command without a checkpoint handler (a flow or network run preempted before its first checkpoint, a kind without
checkpoints) is requeued at once, as it was submitted, on one rank; on several it is not requeued (its ranks cannot
leave MPI together mid-computation).
A run stopped by SIGTERM (scancel) writes its checkpoint and stops with 4 too; it is not requeued. A job that Slurm
requeues itself (PreemptMode=REQUEUE sends SIGTERM first; node failure) resumes all the same when it starts again.
What a requeued leg runs, here and in the sbatch templates, is decided by one rule (`next_leg`).

A command that ends with a status other than 0 (refused 2, diverged 3, stopped 4 and not requeued, crashed 1) fails
the job with that status (Slurm: FAILED, ExitCode=3:0, as sacct, --dependency=afterok and --mail-type=FAIL read it;
returned as submitit's result, the process exited 0 and the job was COMPLETED): its result, the status that
`hpcflow submit --wait` reports, is written first, then the process exits with it (`finish`).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import NamedTuple

import submitit

from hpcflow.errors import EXIT_NUMERICAL, EXIT_PREEMPTED


#: the file a command's run checkpoints into in --out, which a requeued leg continues (`next_leg`)
CHECKPOINTS = {"run": "checkpoint.h5", "nn": "checkpoint.pt"}


def _out(argv: list) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--out" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--out="):
            return arg[len("--out="):]
    return None


class Ended(NamedTuple):
    """What `next_leg` gives for a requeued leg whose --out holds the run this job ended, with no checkpoint there to
    continue it from (a kind without checkpoints, whose --resume is refused): nothing is run; `said`, the line that
    says so, and `status`, the run's own (0; 3 for a run that ended by a numerical stop, summary.json status
    "diverged"), as a --resume of a finished run says "nothing to do" with it."""

    said: str
    status: int


def this_job(environ=None) -> str | None:
    """The Slurm job whose legs continue each other's run: SLURM_JOB_ID (a requeue keeps it, and every run's
    summary.json records it, `provenance.slurm_job_id`). None outside a Slurm job, and in a job of submitit's local
    executor, which sets none of its own (an id there is that of the allocation `hpcflow submit` ran in)."""
    env = os.environ if environ is None else environ
    job = env.get("SLURM_JOB_ID", "").strip()
    return job if job and env.get("SUBMITIT_EXECUTOR") != "local" else None


def scontrol_job(environ=None) -> str | None:
    """The id that names this Slurm job alone to scontrol (`scontrol requeue`, `scontrol show job`): an array task's
    ARRAYJOBID_TASKID (SLURM_ARRAY_JOB_ID, SLURM_ARRAY_TASK_ID), whose own SLURM_JOB_ID can be the array's (Slurm
    gives one task the array's id: `scontrol requeue` of it requeued every task, and `scontrol show job` gave a line
    for each); else SLURM_JOB_ID. None as for `this_job` (outside a Slurm job, a job of submitit's local executor)."""
    env = os.environ if environ is None else environ
    job = this_job(env)
    array, index = env.get("SLURM_ARRAY_JOB_ID", "").strip(), env.get("SLURM_ARRAY_TASK_ID", "").strip()
    return f"{array}_{index}" if job is not None and array and index else job


def next_leg(argv: list, *, job: str | None = None) -> list | Ended | None:
    """What a requeued leg of the job whose command is `hpcflow ARGV` runs: the one rule of `hpcflow submit`'s jobs
    (decided when preempted, `HpcflowTask.checkpoint`, and again where Slurm starts the job again, `HpcflowTask.run`)
    and of the sbatch templates (`hpcflow.submit.requeue`, `hpcflow.submit.step`). A first leg runs `argv` as given
    (--force too); `job`: this Slurm job (`this_job`; None where unknown), whose earlier legs' run is continued.

    - `hpcflow tune`: `argv` as given (its requeue, same job and a higher restart count, adds only the trials it has
      not finished, and continues a preempted one from its checkpoint);
    - a command without checkpoints (not run or nn): None, not continued;
    - --out holds a run that another job made (its summary.json's `provenance.slurm_job_id` is not `job`): `argv` as
      given, as the first leg ran it: this job was stopped before it replaced that run (a --force given starts it
      over; without one the command refuses it, as it would have at first);
    - --out holds the command's checkpoint of an interrupted run (`hpcflow.jobs.output.interrupted`): `argv` with
      --resume, --force dropped (it would start over);
    - --out holds the run this job ended (summary.json naming `job`, status not "preempted"): with the command's
      checkpoint there, `argv` with --resume, --force dropped (the command says "nothing to do", status 0, or 3 for
      a numerical stop, as the run ended; `hpcflow nn` writes a missing model.pt or nn.h5 again); without one
      (`hpcflow run --resume` refuses a kind without checkpoints) `Ended`: nothing is run;
    - else (preempted before the first checkpoint: --out missing, empty, or holding only the lock file and debris
      of a killed run, which count as empty): `argv` as given.
    """
    from hpcflow.jobs.output import interrupted, read_summary

    argv = list(argv)
    if argv[0] == "tune":
        return argv
    if argv[0] not in CHECKPOINTS:
        return None
    out = _out(argv)
    if out is None:
        return argv
    summary = read_summary(out)
    maker = _maker(summary)
    if job is not None and maker is not _UNKNOWN and maker != job:
        return argv
    checkpoint = os.path.join(out, CHECKPOINTS[argv[0]])
    ours = job is not None and maker == job and summary.get("status") != "preempted"
    if interrupted(out, CHECKPOINTS[argv[0]]) or (ours and os.path.isfile(checkpoint)):
        return [a for a in argv if a not in ("--resume", "--force")] + ["--resume"]
    if ours:
        status = EXIT_NUMERICAL if summary.get("status") == "diverged" else 0
        return Ended(f"{out} holds the run this job (Slurm job {job}) ended (summary.json, status "
                     f"{summary.get('status')!r}): nothing to do", status)
    return argv


_UNKNOWN = object()


def _maker(summary: dict | None):
    """The Slurm job that wrote `summary` (its provenance's slurm_job_id: None for a run outside Slurm); _UNKNOWN
    without a summary, or for one that does not say (written before the id was recorded)."""
    provenance = summary.get("provenance") if summary is not None else None
    if not isinstance(provenance, dict) or "slurm_job_id" not in provenance:
        return _UNKNOWN
    job = provenance["slurm_job_id"]
    return job.strip() if isinstance(job, str) else None


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
    if (env.get("SUBMITIT_EXECUTOR") != "local" or not env.get("SUBMITIT_LOCAL_JOB_ID")
            or not env.get("SUBMITIT_FOLDER")):
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


def _launcher_ranks() -> tuple[int, int]:
    """(how many tasks the launcher started, this task's rank among them) as the launcher's variables say
    (SLURM_STEP_NUM_TASKS, SLURM_PROCID, ...; 1 and 0 where none is set): read before MPI_Init and without it, so
    that a signal handler can decide on them. Asking MPI's world from the handler initialised MPI there when the
    signal came as the task started: inside the task's own MPI_Init its ranks hung (srun's PMI server: "invalid
    pmi1 command received: 'init'"), or in the middle of an import the task ended on an ImportError."""
    from hpcflow.parallel.comm import launcher_tasks
    from hpcflow.stop_signals import launcher_rank

    return launcher_tasks() or 1, launcher_rank()


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
    print(f"hpcflow submit: {_ended_line(status)}", file=sys.stderr, flush=True)
    raise SystemExit(status)


def task_zero(environ=None) -> bool:
    """Whether this process is task 0 of its Slurm step (SLURM_PROCID 0, or not set: no step)."""
    env = os.environ if environ is None else environ
    return env.get("SLURM_PROCID", "0").strip() in ("", "0")


def _ended_line(status: int, environ=None) -> str:
    """What `finish` says of the command's status: that the job fails with it; for a run stopped with its checkpoint
    (4) in a Slurm job that Slurm has requeued meanwhile (`scontrol requeue`, preemption: its SIGTERM stopped the run;
    `hpcflow.submit.step.requeued_by_slurm`), that the job continues from the checkpoint instead, as it does. Slurm
    is asked by task 0 only (SLURM_PROCID; one request, not one a task, as a big job is preempted): another task says
    its status, and that task 0's log says whether the job continues."""
    env = os.environ if environ is None else environ
    if status == EXIT_PREEMPTED and not task_zero(env):
        return (f"the command stopped with its checkpoint (exit status {status}); task 0's log says whether Slurm "
                "has requeued the job to continue from it")
    if status == EXIT_PREEMPTED:
        from hpcflow.submit.step import requeued_by_slurm

        if requeued_by_slurm(scontrol_job(env)):
            return (f"the command stopped with its checkpoint (exit status {status}); Slurm has requeued the job "
                    "(scontrol requeue, preemption): it continues from the checkpoint when it starts again")
    return f"the command ended with exit status {status}; the job fails with it"


def _from_submitit() -> dict:
    """SIGTERM (and SIGUSR1) from submitit's handler, which only logs it ("Bypassing signal"), to the command's
    recording of a stop request before its own handlers (`stop_signals.record_early`): a SIGTERM during the command's
    start-up (scancel, preemption) ends it with its one line and 143, as outside a job, instead of being dropped.
    Returns the handlers taken over, to give back once the command has returned."""
    from hpcflow.stop_signals import ENDING, record_early

    taken = {}
    if threading.current_thread() is threading.main_thread():
        for ending in ENDING:
            handler = signal.getsignal(ending)
            if str(getattr(handler, "__module__", "")).startswith("submitit."):
                taken[ending] = handler
                signal.signal(ending, signal.SIG_DFL)
        if taken:  # (elsewhere, e.g. a caller's in-process run, the handlers stay as they are)
            record_early()
    return taken


def _forget_ended_mark() -> None:
    """Task 0 of a Slurm job's later leg removes the mark its earlier leg's batch shell left as its step ended, or
    its task 0 as it requeued the job (`executor.ended_file`, `_mark_requeue`): `hpcflow submit --wait` asks Slurm
    for the job's state while it is there, which it did every 10 s for the rest of the job."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm" or not task_zero():
        return
    from hpcflow.submit.executor import ended_file

    try:
        os.remove(ended_file(submitit.JobEnvironment()))
    except Exception:  # noqa: BLE001 - none there, or no job environment: the wait asks Slurm a little more often
        pass


def _mark_requeue() -> None:
    """Task 0 of a Slurm job, as it has submitit requeue the job at the end of a leg, marks the leg's end as the batch
    shell marks its step's (`executor.ended_file`; the requeue kills that shell before it could): `hpcflow submit
    --wait` then asks Slurm at once and every few seconds while the mark is there, through the ~2 minutes Slurm holds
    the requeued job (reason BeginTime), until the next leg's task 0 removes it (`_forget_ended_mark`). Asked at its
    own pace only (backing off to 10 minutes), the wait saw the hold of one leg in five."""
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm" or not task_zero():
        return
    from hpcflow.submit.executor import ended_file

    try:
        path = ended_file(submitit.JobEnvironment())
        with open(path, "a"):
            pass
        os.utime(path)  # (a new time for each leg's end, which the wait tells apart)
    except Exception:  # noqa: BLE001 - no job environment, the folder not writable: the wait asks at its own pace
        pass


#: seconds task 0 waits for the job's other tasks to exit before it requeues the job (`wait_for_other_tasks`)
OTHER_TASKS_WAIT_S = 30.0  # (well inside the 120 s the time-limit signal comes before it)
#: the files the tasks of a Slurm job hold a lock on while they live (`hold_alive_lock`), numbered by SLURM_PROCID
_alive_fds: list = []


def alive_file(job, procid: int) -> str:
    """The file task `procid` of submitit job `job` holds a lock on while its process lives, beside the job's logs
    (a folder every node of the job writes to)."""
    return os.path.join(os.fspath(job.paths.folder), f"{job.job_id}_{procid}.alive")


def _alive_job(folder_job=None):
    """The submitit job whose tasks hold `alive_file` locks (`folder_job`, else this task's), None without one."""
    try:
        return submitit.JobEnvironment() if folder_job is None else folder_job
    except Exception:  # noqa: BLE001 - no job environment
        return None


def hold_alive_lock(folder_job=None) -> None:
    """A task above 0 of a Slurm job of several tasks takes a POSIX lock (fcntl) on its `alive_file`, held until its
    process ends, however it ends: the kernel (and NFS's lock manager) releases it as the process exits, after
    interpreter teardown. Task 0 waits for it before it requeues the job (`wait_for_other_tasks`)."""
    import fcntl

    tasks, _ = _launcher_ranks()
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm" or tasks < 2 or task_zero():
        return
    job = _alive_job(folder_job)
    try:
        path = alive_file(job, int(os.environ["SLURM_PROCID"]))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except Exception:  # noqa: BLE001 - no job environment, folder not writable: task 0 does not wait
        return
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # no locks on this filesystem (Lustre without flock: ENOSYS; ENOLCK, EINVAL): no file, no wait
        os.close(fd)
        try:
            os.remove(path)
        except OSError:
            pass
        return
    _alive_fds.append(fd)  # (open, so locked, until the process ends)


def release_alive_lock(folder_job=None) -> None:
    """A task whose leg ends without a requeue removes its `alive_file` (task 0 waits on it only to requeue)."""
    if not _alive_fds:
        return
    try:
        os.remove(alive_file(_alive_job(folder_job), int(os.environ["SLURM_PROCID"])))
    except Exception:  # noqa: BLE001 - gone already, or no job environment: a file of no weight left
        pass
    while _alive_fds:
        os.close(_alive_fds.pop())


def wait_for_other_tasks(folder_job=None, timeout: float | None = None, poll: float = 0.05) -> None:
    """Task 0, before it requeues the job, waits until every other task of its step has exited (its `alive_file`
    lock released), up to `timeout` seconds (OTHER_TASKS_WAIT_S). The requeue kills the step: a task still tearing
    down its interpreter (a network job's torch) after it left MPI was killed with it, "srun: error: NODE: task 1:
    Killed" in the log of a job that had stopped with its checkpoint as it should. A task without such a file (it
    could not take its lock) is not waited for, nor one whose file can not be locked here at all (a lock refused
    for a reason other than another's lock: EAGAIN, EACCES)."""
    import errno
    import fcntl
    import time

    tasks, _ = _launcher_ranks()
    if os.environ.get("SUBMITIT_EXECUTOR") != "slurm" or tasks < 2 or not task_zero():
        return
    job = _alive_job(folder_job)
    if job is None:
        return
    deadline = time.monotonic() + (OTHER_TASKS_WAIT_S if timeout is None else timeout)
    for procid in range(1, tasks):
        path = alive_file(job, procid)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            while True:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.monotonic() > deadline:
                        break
                    time.sleep(poll)
        finally:
            os.close(fd)
        try:
            os.remove(path)
        except OSError:
            pass


def _requeue_with(requeue, signum, frame) -> None:
    """Call submitit's requeue handler `requeue`. On Slurm it requeues the job (task 0: `scontrol requeue`, which has
    returned) and ends the process with sys.exit(-1), status 255, which srun logged as an error at every requeue
    ("srun: error: NODE: task 0: Exited with exit code 255") and, with --kill-on-bad-exit, ended the job's other tasks
    with it: the leg ends with status 0 instead (`REQUEUED_EXIT`), the job requeued. A job of submitit's local executor
    keeps the status its controller reads as a request to start it again."""
    try:
        requeue(signum, frame)
    except SystemExit as exc:
        if exc.code == SUBMITIT_REQUEUED_EXIT and os.environ.get("SUBMITIT_EXECUTOR") == "slurm":
            if task_zero():  # (the run's own line before, if any, ends "continue with: hpcflow ... --resume")
                print(f"hpcflow submit: {SELF_REQUEUED_LINE.format(job=scontrol_job() or 'JOBID')}",
                      file=sys.stderr, flush=True)
            raise SystemExit(REQUEUED_EXIT) from None
        raise


#: what task 0 says once submitit has requeued the job (`_requeue_with`): without it a leg's log ended with the run's
#: "continue with: hpcflow ... --resume", which, run by hand as well, raced the requeued job over the same --out
SELF_REQUEUED_LINE = ("the job has requeued itself (scontrol requeue {job}): it continues the run (from its "
                      "checkpoint, --resume) when Slurm starts it again, so do not run the command above by hand as "
                      "well")


#: the exit of submitit's requeue on Slurm (`SignalHandler._exit`: status 255), and that of a leg requeued here
SUBMITIT_REQUEUED_EXIT = -1
REQUEUED_EXIT = 0


class HpcflowTask(submitit.helpers.Checkpointable):
    """Run `hpcflow ARGV`; its exit status is the job's result, and the job fails with a status other than 0."""

    def __call__(self, argv: list) -> int:
        status, requeued_leg = self.run(argv)
        if requeued_leg:
            return status
        release_alive_lock()
        return finish(status)

    def run(self, argv: list) -> tuple[int, bool]:
        """(the exit status of `hpcflow ARGV`, whether the job was requeued after it: a rank above 0 comes back
        from submitit's requeue, which ends rank 0's process)."""
        from hpcflow.cli import main
        from hpcflow.jobs.shell import shell_line
        from hpcflow.submit.shm import remove_stale
        from hpcflow.tune.storage import masked

        remove_stale("hpcflow submit:")  # before MPI_Init: what a killed earlier start of this step left (`shm`)
        hold_alive_lock()  # (task 0 waits for its release before it requeues the job)
        if requeued():  # started again by Slurm (submitit's requeue, preemption, node failure): `next_leg`
            _forget_ended_mark()
            nxt = next_leg(argv, job=this_job())
            if isinstance(nxt, Ended):
                if task_zero():
                    print(f"hpcflow submit: {nxt.said}", flush=True)
                return nxt.status, False
            argv = nxt or argv
        leg = local_leg()
        if leg is not None and argv[0] == "tune":  # the worker's job and run count, as Slurm gives them a tune
            os.environ["SLURM_JOB_ID"], os.environ["SLURM_RESTART_COUNT"] = leg[0], str(leg[1])
        shown = masked(shell_line(["hpcflow", *argv]))  # (a log shows no storage password)
        sig = preemption_signal()
        requeue = signal.getsignal(sig)
        preempted, handed = [], []
        tasks, launcher_rank = _launcher_ranks()  # (here: the handler below imports nothing and touches no MPI)
        task = os.getpid()

        def forward(signum, frame):
            if os.getpid() != task:  # a process forked from the task (`stop_signals.ends_if_blocked`'s watcher of
                return  # MPI_Init), which the step's signal reaches too: the task decides, and says, alone
            checkpoint = signal.getsignal(signal.SIGUSR1)
            # a checkpoint writer's handler; not one that only ends the command (stop_signals: `default_action`)
            if callable(checkpoint) and checkpoint is not forward and not getattr(checkpoint, "default_action", False):
                preempted.append(signum)  # (its exit with 4 requeues the job)
                checkpoint(signum, frame)  # the run checkpoints at its next step, then exits with 4 (its line: signum)
            elif tasks > 1:  # ranks mid-computation cannot leave MPI together: requeued, the job would fail.
                # Not `preempted`: the run goes on, and a later stop with 4 (SIGTERM at the time limit, scancel) is
                # not requeued. The signal can come long before the limit (Slurm sends it up to 60 s early, at once
                # where --signal-delay is near --time), so the run may yet finish. Said once, by launcher rank 0
                if launcher_rank != 0:
                    return
                print(f"hpcflow submit: the signal before the time limit came while the job's command had no "
                      f"checkpoint to stop at; it runs on several ranks, so the job is not requeued and the run goes "
                      f"on: if the time limit stops it before it finishes, submit it again (its command: {shown})",
                      file=sys.stderr, flush=True)
            elif callable(requeue):
                preempted.append(signum)
                handed.append(signum)
                _mark_requeue()
                _requeue_with(requeue, signum, frame)  # submitit's: requeues the job, ends this process (SystemExit)

        signal.signal(sig, forward)
        bypassed = _from_submitit()
        try:
            status = main(list(argv))
        except SystemExit as exc:
            if handed:  # submitit's requeue ends the process so: its exit, not the command's
                raise
            # ranks above 0 of a refusal decided together (refuse_together) and argparse end so: the task's result
            status = exit_status(exc.code)
        finally:
            for ending, handler in bypassed.items():  # submitit's again while it writes the result
                now = signal.getsignal(ending)
                if now in (signal.SIG_DFL, signal.SIG_IGN) or getattr(now, "early", False):
                    signal.signal(ending, handler)
        # requeued after submitit's signal only: the run stops with 4 on SIGTERM too (scancel), and is not requeued
        if status == EXIT_PREEMPTED and callable(requeue) and _any_rank(bool(preempted)):
            leave_mpi()
            wait_for_other_tasks()  # (the requeue kills the step: not a task still ending its process)
            _mark_requeue()
            _requeue_with(requeue, sig, None)  # submitit: checkpoint() below, requeue (rank 0), exit
            return status, True
        return status, False

    def checkpoint(self, argv: list):  # noqa: D102 - submitit's hook
        nxt = next_leg(argv, job=this_job())  # (decided again where Slurm starts the requeued job: `run`)
        if nxt is None:
            return None
        return submitit.helpers.DelayedSubmission(HpcflowTask(), argv if isinstance(nxt, Ended) else nxt)
