"""`exec python -m hpcflow.submit.step srun ...`: the end of the sbatch templates (slurm/*.sbatch).

Runs the run's step (COMMAND: `srun ... hpcflow run|nn|tune ...`) as the batch step itself, passes SIGUSR1 (and
SIGUSR2, as SIGUSR1) on to it, and requeues the job when the run stops preempted (exit status 4, checkpoint written:
`scontrol requeue $SLURM_JOB_ID`, an array task alone as `${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}`: Slurm gives
one task the array's id as its SLURM_JOB_ID, and a requeue of that id requeued every task; the requeued job continues
with --resume, a tune array task with its trial's checkpoint: the same `hpcflow tune` command resumes the trial it
stopped). Exit status: COMMAND's (128+N when signal N ended it; 127 when it cannot be started).

In a requeued job (SLURM_RESTART_COUNT above 0) the hpcflow command in COMMAND (the words after `-m hpcflow`) is
continued as `hpcflow submit`'s requeued job continues it, by the same rule (`hpcflow.submit.task.next_leg`, this
Slurm job SLURM_JOB_ID): a run or network run whose --out holds its checkpoint of an interrupted run, or the run this
job finished, runs with --resume (without --force), so that a run that had finished says "nothing to do" (status 0)
instead of being refused as a directory that holds results (status 2); where --out holds the run this job ended
without a checkpoint (a kind without checkpoints) nothing is run: one line says so, with the run's status (0; 3
after a numerical stop). A leg stopped before its first checkpoint, or before it replaced the run of another job in
--out, runs as given.

SIGUSR1 is how Slurm asks for the checkpoint: `--signal=USR1@120` sends it to the step's tasks only, but
`--signal=B:USR1@120` sends it to the batch step alone and `scancel --full --signal=USR1` to both. bash, the batch
step before, ended on it (its default action): the job ended FAILED and was never requeued, while the ranks (when
they got the signal too) wrote their checkpoint. Here it is forwarded to srun, and srun forwards it to every task.
SIGUSR2 (submitit's signal, which `hpcflow submit`'s jobs take before their time limit, and the README's
`scancel --signal=USR2` for them) is taken as SIGUSR1 here and by each task (`task`, which passes it on to the run as
SIGUSR1): the run writes its checkpoint and the job is requeued. The run itself starts with SIGUSR2 ignored and
never takes it: sent to a template's job it was lost (steps only) or ended the batch step (--full: FAILED,
JobLaunchFailure, not requeued).

SIGTERM (`scancel --signal=TERM`, the user's stop) makes the run write its checkpoint and stop with 4 too, but the
job is not requeued, as a `hpcflow submit` job stopped so is not: it ends FAILED with status 4 (`scontrol requeue`
continues it). A SIGTERM that reaches only the tasks is seen by no one here, so each task of the run's step is started
as `python -m hpcflow.submit.step --task python -m hpcflow ...` (added before the hpcflow command in COMMAND): it
outlives SIGTERM, SIGUSR1 and SIGUSR2 (Slurm signals every process of a step, the command too) and notes the ones it
got in a folder of this node (HPCFLOW_STEP_SIGNALS; a task on another node has none and notes nothing). The job is
requeued on status 4 unless a SIGTERM was noted and no SIGUSR1 or SIGUSR2 came (here or to a task). This batch step
outlives SIGTERM too (`scancel`, `scancel --full --signal=TERM`, `scontrol requeue`), noting it, until the run's step
has ended.

Each task, and the hpcflow command it runs, starts with SIGUSR1 and SIGUSR2 ignored (`TASK_START`, `task`): a
checkpoint request in the step's first moments, before the command has set its checkpoint handler, is lost to the
run instead of ending the job (FAILED 138, not requeued). The run takes the later ones; where none comes before the
time limit, its SIGTERM stops the run with its checkpoint, and the job is requeued where a task had noted the lost
SIGUSR1 (a request before even that had set its handler is lost: the job then ends FAILED 4, continued with
`scontrol requeue`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from hpcflow.errors import EXIT_PREEMPTED

#: the signals the batch step passes on to COMMAND (srun), each as the signal it maps to: the run's checkpoint request
FORWARDED = {signal.SIGUSR1: signal.SIGUSR1, signal.SIGUSR2: signal.SIGUSR1}
#: the signals that ask for a checkpoint (and the job's requeue once the run has stopped with it)
CHECKPOINT_REQUESTS = ("SIGUSR1", "SIGUSR2")


#: the folder where the tasks of the run's step note the signals they got (`task`)
SIGNALS_ENV = "HPCFLOW_STEP_SIGNALS"
#: the signals a task notes and outlives
NOTED = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
#: the signals a task passes on to its COMMAND as another: SIGUSR2 as the run's checkpoint request (the run takes
#: SIGUSR1 only, and starts with SIGUSR2 ignored: IGNORED_AT_START)
TRANSLATED = {signal.SIGUSR2: signal.SIGUSR1}


def run(argv: list, *, seen: set | None = None, env: dict | None = None) -> int:
    """Run argv to its end (environment `env`), forwarding FORWARDED signals to it (each as the signal it maps to) and
    outliving SIGTERM, the names of those received added to `seen`; its exit status."""
    child, pending = None, []

    def forward(signum, frame):  # noqa: ARG001 - signal handler signature
        if seen is not None:
            seen.add(signal.Signals(signum).name)
        if child is None:
            pending.append(FORWARDED[signum])  # sent once the child exists
        else:
            child.send_signal(FORWARDED[signum])  # a no-op once the child has been reaped

    def outlive(signum, frame):  # noqa: ARG001 - signal handler signature
        if seen is not None:
            seen.add(signal.Signals(signum).name)  # (Slurm's SIGTERM reaches the tasks itself; so does its SIGKILL)

    old = {s: signal.signal(s, forward) for s in FORWARDED}
    old.update({s: signal.signal(s, outlive) for s in NOTED if s not in FORWARDED})
    try:
        try:
            child = subprocess.Popen(argv, env=env)
        except OSError as exc:
            print(f"hpcflow.submit.step: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr, flush=True)
            return 127
        for signum in pending:
            child.send_signal(signum)
        status = child.wait()  # resumed after each forwarded signal (PEP 475)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return 128 - status if status < 0 else status


def requeue() -> None:
    """Requeue this Slurm job (it keeps its id; Slurm starts it again after a delay, BeginTime); an array task alone
    (`hpcflow.submit.task.scontrol_job`), not every task of its array. Then one line says so (`self_requeued_line`):
    the run's own line before it ends "continue with: hpcflow ... --resume", which, run by hand as well, raced the
    requeued job over the same --out."""
    from hpcflow.submit.task import scontrol_job

    job = scontrol_job()
    if job is None:
        print("hpcflow.submit.step: preempted outside a Slurm job (no SLURM_JOB_ID); continue with --resume",
              file=sys.stderr, flush=True)
        return
    # the requeue's SIGTERM to this batch step, as scontrol returns, must not end it before it has said its line
    old = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        try:
            status = f"exit status {subprocess.run(['scontrol', 'requeue', job], check=False).returncode}"
        except OSError as exc:  # (no scontrol on PATH)
            status = exc.strerror or type(exc).__name__
        print(f"hpcflow.submit.step: {self_requeued_line(job, status)}", file=sys.stderr, flush=True)
    finally:
        signal.signal(signal.SIGTERM, old)


def self_requeued_line(job: str, status: str) -> str:
    """What the batch step says after its `scontrol requeue JOB` ended with `status` ("exit status 0": requeued)."""
    stopped = ("the run stopped with its checkpoint on the checkpoint request (the time limit's SIGUSR1, scancel "
               "--signal)")
    if status == "exit status 0":
        return (f"{stopped}; the job has requeued itself (scontrol requeue {job}): it continues from the checkpoint "
                "(--resume) when Slurm starts it again, so do not run the command above by hand as well")
    return (f"{stopped}; the job could not requeue itself (scontrol requeue {job}: {status}): continue it with: "
            f"scontrol requeue {job}, or the command above")


def task(argv: list) -> int:
    """`--task COMMAND`: run COMMAND (one task of the run's step) to its end, noting each of NOTED that arrives as a
    file of its name in the folder SIGNALS_ENV names, where that exists on this node, and passing SIGUSR2 on to
    COMMAND as SIGUSR1 (TRANSLATED); COMMAND's exit status. First the MPICH shared memory that an earlier start of
    this step left is removed (`hpcflow.submit.shm`: a requeued job's step of the same id failed in MPI_Init on it).

    COMMAND starts with SIGUSR1 and SIGUSR2 ignored (IGNORED_AT_START), as this process does (TASK_START): Slurm
    signals it too, and by their default action a request in its first moments ended it (138), or, once hpcflow's
    start-up had recorded it, stopped it ("stopped by SIGUSR1", 138) before it had a checkpoint; the job FAILED, not
    requeued. Such a request is ignored until the run sets its checkpoint handler (which takes the later ones); one
    this process noted still has the job requeued when the run stops with its checkpoint (the time limit's SIGTERM:
    `main`)."""
    folder = os.environ.get(SIGNALS_ENV)
    started, pending = [], []

    def note(signum, frame):  # noqa: ARG001 - signal handler signature
        if folder and os.path.isdir(folder):
            with contextlib.suppress(OSError):
                open(os.path.join(folder, signal.Signals(signum).name), "a").close()
        if signum in TRANSLATED:
            if started:
                started[0].send_signal(TRANSLATED[signum])  # a no-op once the child has been reaped
            else:
                pending.append(TRANSLATED[signum])  # sent once the child exists

    for sig in NOTED:
        signal.signal(sig, note)
    from hpcflow.submit.shm import remove_stale

    remove_stale("hpcflow.submit.step:")  # before COMMAND's MPI_Init: what a killed earlier start of this step left
    env = {k: v for k, v in os.environ.items() if k != SIGNALS_ENV}
    try:  # (the launcher's PMI descriptors stay open)
        child = subprocess.Popen(argv, env=env, close_fds=False, preexec_fn=_ignoring_at_start)
    except OSError as exc:
        print(f"hpcflow.submit.step: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr, flush=True)
        return 127
    started.append(child)
    for signum in pending:
        child.send_signal(signum)
    status = child.wait()
    # COMMAND's status is final: a SIGTERM from here on (srun --kill-on-bad-exit's, once another task left with 4)
    # must not end this task by the SIG_DFL that Python's finalization puts back in place of a handler (the step's
    # status then 143, not 4: the job was not requeued); SIG_IGN stays in place
    for sig in NOTED:
        signal.signal(sig, signal.SIG_IGN)
    if status != 0:  # a rank killed inside MPI (kill -9, out of memory) left its segment: a new job never removes it
        from hpcflow.submit.shm import remove_ended

        remove_ended("hpcflow.submit.step:")
    return 128 - status if status < 0 else status


def _hpcflow_at(argv: list) -> int | None:
    """The index of the hpcflow command's first word in `argv` (after `-m hpcflow`); None without one."""
    return next((i + 2 for i in range(len(argv) - 2) if argv[i:i + 2] == ["-m", "hpcflow"]), None)


#: what each task of the run's step starts with (`with_tasks_noting`): bash ignoring SIGUSR1 and SIGUSR2, then exec
#: of `python -m hpcflow.submit.step --task` (an ignored signal stays ignored across exec, until `task` sets its
#: handlers). Slurm signals every process of the step as soon as it exists: a checkpoint request before Python had
#: set a handler ended the task by its default action, and the job FAILED 138, not requeued.
TASK_START = ("bash", "-c", 'trap "" USR1 USR2; exec "$@"', "hpcflow-task")
#: the signals the run's command starts with ignored (`task`)
IGNORED_AT_START = (signal.SIGUSR1, signal.SIGUSR2)


def with_tasks_noting(argv: list) -> list:
    """`argv` with `TASK_START python -m hpcflow.submit.step --task` before its `python -m hpcflow ...` (that
    python's)."""
    at = _hpcflow_at(argv)
    if at is None or at < 3:
        return list(argv)
    return argv[:at - 3] + [*TASK_START, argv[at - 3], "-m", "hpcflow.submit.step", "--task"] + argv[at - 3:]


def _ignoring_at_start() -> None:
    """In the forked child before it execs the run's command (a preexec_fn; this process has one thread):
    IGNORED_AT_START ignored, as they are until the command sets its own handlers (`task`)."""
    for sig in IGNORED_AT_START:
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def noted_signals():
    """(the environment for COMMAND, the set of signal names its tasks on this node noted, filled at the end)."""
    folder = tempfile.mkdtemp(prefix=f"hpcflow-step-{os.environ.get('SLURM_JOB_ID', 'nojob')}-")
    noted = set()
    try:
        yield dict(os.environ, **{SIGNALS_ENV: folder}), noted
    finally:
        with contextlib.suppress(OSError):
            noted.update(os.listdir(folder))
        shutil.rmtree(folder, ignore_errors=True)


def continued(argv: list):
    """`argv` with its hpcflow command (after `-m hpcflow`) as a requeued job runs it (see the module's docstring), or
    `hpcflow.submit.task.Ended` where it runs nothing; `argv` itself outside a requeued job. ConfigError for a
    SLURM_RESTART_COUNT that is not a whole number."""
    from hpcflow.submit.task import Ended, next_leg, requeued, this_job

    at = _hpcflow_at(argv)
    if at is None or not requeued():
        return list(argv)
    nxt = next_leg(argv[at:], job=this_job())
    return nxt if isinstance(nxt, Ended) else argv[:at] + (nxt or argv[at:])


#: seconds `requeued_by_slurm` waits for scontrol
SCONTROL_TIMEOUT_S = 10


def requeued_by_slurm(job: str | None) -> bool | None:
    """Whether Slurm has requeued job `job` (an array task as ARRAYJOBID_TASKID, `task.scontrol_job`: the array's
    id gives a line for each task) while this leg of it runs (scontrol requeue, preemption with
    PreemptMode=REQUEUE): its restart count (`scontrol show job`: Restarts, raised as the requeue is made, before the
    SIGTERM that stops the leg) above this leg's SLURM_RESTART_COUNT. None where that is unknown: no job, scontrol
    missing, failing or slow (nothing of it is printed)."""
    from hpcflow.errors import UserError
    from hpcflow.resources import slurm_restart_count

    if not job:
        return None
    try:
        r = subprocess.run(["scontrol", "-o", "show", "job", job], capture_output=True, text=True, errors="replace",
                           timeout=SCONTROL_TIMEOUT_S)  # (the job's name, comment and paths may hold any bytes)
        leg = slurm_restart_count()
    except (OSError, subprocess.SubprocessError, UserError):  # (a SLURM_RESTART_COUNT that is not a count)
        return None
    restarts = re.findall(r"(?:^|\s)Restarts=(\d+)(?:\s|$)", r.stdout)
    if r.returncode != 0 or len(restarts) != 1:
        return None
    return int(restarts[0]) > leg


def sigterm_line(job: str | None) -> str:
    """What the batch step says of a run that stopped on SIGTERM with its checkpoint (no SIGUSR1): whether Slurm
    requeues the job (`requeued_by_slurm`), and where it does not, or that is unknown, how to continue it."""
    stopped = "the run stopped on SIGTERM, its checkpoint written"
    requeued = requeued_by_slurm(job)
    if requeued:
        return (f"{stopped}; Slurm has requeued the job (scontrol requeue, preemption): it continues from the "
                "checkpoint when it starts again")
    again = f"scontrol requeue {job or 'JOBID'}"
    if requeued is False:
        return f"{stopped}; the job is not requeued for it: continue it with: {again}"
    return (f"{stopped}; the job is not requeued for it: unless Slurm requeues it (scontrol requeue, preemption), "
            f"continue it with: {again}")


def main(argv=None) -> int:
    from hpcflow.errors import UserError
    from hpcflow.submit.task import scontrol_job

    args = sys.argv[1:] if argv is None else argv
    if not args or args == ["--task"]:
        print("usage: exec python -m hpcflow.submit.step COMMAND [ARG...]", file=sys.stderr)
        return 2
    if args[0] == "--task":
        return task(args[1:])
    try:
        args = continued(args)
    except UserError as exc:
        print(f"hpcflow.submit.step: error: {exc}", file=sys.stderr, flush=True)
        return 2
    if not isinstance(args, list):  # the run this job ended is in --out: nothing to run
        print(f"hpcflow.submit.step: {args.said}", flush=True)
        return args.status
    seen = set()
    with noted_signals() as (env, noted):
        status = run(with_tasks_noting(args), seen=seen, env=env)
    seen |= noted
    if status == EXIT_PREEMPTED:
        if "SIGTERM" in seen and not seen.intersection(CHECKPOINT_REQUESTS):
            # a further SIGTERM (scancel again) while scontrol is asked, up to its timeout, must not end this step
            # before it has said its line: the run is over, and its status is this step's
            old = signal.signal(signal.SIGTERM, signal.SIG_IGN)
            try:
                line = sigterm_line(scontrol_job())
            finally:
                signal.signal(signal.SIGTERM, old)
            print(f"hpcflow.submit.step: {line}", file=sys.stderr, flush=True)
        else:
            requeue()
    return status


if __name__ == "__main__":
    sys.exit(main())
