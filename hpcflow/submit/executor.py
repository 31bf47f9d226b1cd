"""Resource options -> a submitit executor (Slurm or local subprocesses); submit, print where things go, wait."""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass

from submitit.core.utils import UncompletedJobError
from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

from hpcflow.errors import RunStop, UserError
from hpcflow.submit import capacity, mpi_types, pending, sbatch_error, step


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
    mem_mib: int | None = None  # sbatch --mem (memory per node); None: the partition's default
    #: more #SBATCH lines, each (sbatch's long option without --, its value or True for a flag, the hpcflow submit
    #: option that gave it): --account, --qos, --constraint, --reservation, --exclusive, --sbatch KEY=VALUE
    sbatch: tuple = ()

    @property
    def tasks(self) -> int:
        return self.nodes * self.ntasks_per_node


def require_slurm() -> None:
    """SubmitError unless sbatch and srun are on PATH."""
    missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
    if missing:
        raise SubmitError(f"--executor slurm: {' and '.join(missing)} not on PATH (no Slurm here); use --executor "
                          "local, or start a one-node Slurm with: sudo slurm/local-cluster.sh start")


def require_fit(res: Resources, asked: tuple | None = None) -> tuple[str | None, str | None]:
    """SubmitError when `res` can never start in its partition (capacity.misfit); else (the partition(s) it was
    checked against, None), or (None, why it was not checked) where sinfo does not answer: a login node may lack
    sinfo, so that refuses nothing, but the line that describes the request says so. `asked`: capacity.ask()'s
    answer where it was asked already."""
    parts, why = capacity.ask() if asked is None else asked
    if parts is None:
        return None, f"sinfo did not answer ({why})"
    misfit = capacity.misfit(res, parts)
    if misfit:
        raise SubmitError(misfit)
    return res.partition or next(p.name for p in parts.values() if p.default), None


def require_mpi_type(mpi: str, tasks: int = 2) -> None:
    """SubmitError when the srun here lacks MPI type `mpi` (mpi_types.unknown), or cannot start the job's `tasks`
    tasks with it; no check where srun is missing or its list cannot be read."""
    why = mpi_types.unknown(mpi, tasks)
    if why:
        raise SubmitError(why)


def require_one_world(res: Resources) -> None:
    """SubmitError for --mpi none on more than one task: srun then starts each task as an MPI world of one rank, and
    each would refuse to run (`parallel.comm`), the job failing inside Slurm; refused before queueing, as the sbatch
    templates refuse HPCFLOW_MPI=none (`template_env.mpi`)."""
    if res.mpi == "none" and res.tasks > 1:
        raise SubmitError(f"--mpi none starts each of the job's {res.tasks} tasks (--nodes {res.nodes} x "
                          f"--ntasks-per-node {res.ntasks_per_node}) as an MPI world of one rank, and the job fails; "
                          f"drop --mpi (default {Resources.mpi}) or give the PMI of your MPI (srun --mpi=list), or "
                          "run one task (--ntasks-per-node 1)")


def check_executor(kind: str, res: Resources, *, cpus_given: bool = False, mpi_given: bool = False) -> None:
    """SubmitError when executor `kind` cannot run `res` as asked (the local executor starts one task per job, and
    makes none of Slurm's requests: `cpus_given`, a --cpus-per-task given, is one, and `mpi_given`, a --mpi given,
    srun's MPI type, another); the same check for `--check` as for a real submission."""
    slurm_only = [opt for opt, given in (("--partition", res.partition), ("--gpus-per-node", res.gpus_per_node),
                                         ("--mem", res.mem_mib), ("--mpi", mpi_given)) if given]
    slurm_only += list(dict.fromkeys(option for _, _, option in res.sbatch))
    if kind == "local" and slurm_only:  # (before the count of tasks: --gpus-per-node G gives G tasks by default)
        raise SubmitError(f"{' and '.join(slurm_only)}: Slurm's request{'s' if len(slurm_only) > 1 else ''}, which "
                          "--executor local does not make (it runs on this machine, with its GPUs and memory as "
                          f"they are): drop {'them' if len(slurm_only) > 1 else 'it'}, or use --executor slurm")
    if kind == "local" and cpus_given:  # (it was taken, and the job ran on the threads it would have without it)
        here = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        raise SubmitError(f"--cpus-per-task {res.cpus_per_task}: Slurm's request, which --executor local does not make: "
                          f"a local job runs on HPCFLOW_THREADS threads where set, else on the CPUs this process may "
                          f"use ({here} here); drop it (export HPCFLOW_THREADS={min(res.cpus_per_task, here)} "
                          "for that many threads), or use --executor slurm")
    if kind == "local" and res.tasks > 1:
        raise SubmitError("--executor local runs one task per job; use --executor slurm, or mpiexec -n T "
                          "hpcflow ... for an MPI run on this machine")


#: time-limit requeues a job may have: each leg resumes from its checkpoint, so none is the last (submitit's default,
#: 3, ended the 4th leg's signal in "timed-out too many times" without a result)
MAX_TIMEOUT_REQUEUES = 10**9


#: the lines submitit's sbatch script runs before its srun: the batch shell ignores SIGUSR1 and SIGUSR2, as the sbatch
#: templates' does SIGUSR1 (`trap '' USR1`). Either sent to the batch step too (scancel --full --signal=USR1, or
#: --signal=B:...) ended bash at once (its default action): the job FAILED with reason JobLaunchFailure, ExitCode
#: 0:10, whatever the run did with the signal. The tasks are started by Slurm, not by this shell, and keep their own
#: handlers (srun forwards the signals it inherits ignored); the job's end is srun's, the command's status
#: (`task.finish`).
BATCH_SHELL_SETUP = ("trap '' USR1 USR2",)

#: what each task's command starts with (as the templates' run step's, `hpcflow.submit.step.TASK_START`): bash
#: ignoring SIGUSR1 and SIGUSR2, then exec of the command (an ignored signal stays ignored across exec). Slurm signals
#: every process of the job's steps as soon as they exist (`scancel --signal=USR2` the moment the step starts, a
#: --time near --signal-delay): a signal before Python had installed a handler (submitit's, after its imports and the
#: unpickling of the task, then hpcflow's) ended the task by its default action, and the job FAILED (ExitCode 140 or
#: 138), not requeued, with nothing written. Such a signal is now lost: the job runs on, and the time limit's SIGTERM
#: stops the run with its checkpoint (exit status 4, not requeued: `hpcflow submit --wait` names the --resume that
#: continues it). The handlers set later replace SIG_IGN.
TASK_START = step.TASK_START


def task_python() -> str:
    """The shell text submitit's srun line starts its Python with (`TASK_START`, then this interpreter): each word
    quoted, so that a venv path with spaces or shell characters stays one word (submitit quotes its own default,
    not a given one)."""
    return shlex.join([*TASK_START, sys.executable])


#: the file the batch shell of Slurm job ID touches in its submitit folder once its srun has ended, and its task 0 as
#: it requeues the job at the end of a leg (`ended_file`, `hpcflow.submit.task._mark_requeue`)
ENDED_SUFFIX = "_ended"


def ended_file(job) -> str:
    """The file Slurm job `job`'s batch shell touches as its step ends (`batch_shell_teardown`), and its task 0 as it
    requeues the job (`hpcflow.submit.task._mark_requeue`)."""
    return os.path.join(os.fspath(job.paths.folder), f"{job.job_id}{ENDED_SUFFIX}")


def batch_shell_teardown(folder: str) -> list:
    """The lines submitit's sbatch script runs after its srun: touch `ended_file` (the job's submitit id, that of an
    array task ARRAY_INDEX); where srun's status is not 0, remove what ranks killed inside MPI left in this node's
    /dev/shm (`hpcflow.submit.shm.remove_ended`); then exit with srun's status, which stays the job's. `wait` asks
    Slurm at once when it appears: a job that ended without a result (a rank killed, out of memory) was seen only at
    the watcher's next ask, which backs off to minutes (up to 100 s late here)."""
    # (an array task: ARRAYJOB_INDEX; a plain job: its SLURM_JOB_ID, SLURM_ARRAY_JOB_ID unset)
    job = "${SLURM_ARRAY_JOB_ID:-$SLURM_JOB_ID}${SLURM_ARRAY_JOB_ID:+_$SLURM_ARRAY_TASK_ID}"
    return ["hpcflow_status=$?", f'touch -- {shlex.quote(os.fspath(folder))}/"{job}{ENDED_SUFFIX}" 2>/dev/null',
            f'[ "$hpcflow_status" = 0 ] || {shlex.quote(sys.executable)} -m hpcflow.submit.shm',
            "exit $hpcflow_status"]


def make_executor(kind: str, folder: str, res: Resources, *, name: str, array: int = 1, out: str | None = None):
    """A submitit executor writing its pickles and logs under `folder`; `out`: the --out its jobs write into, marked
    on them (`queued`: a local job's controller command line, a Slurm job's comment) where given."""
    import submitit

    check_executor(kind, res)
    if kind == "local":
        from hpcflow.submit.local import LocalExecutor

        ex = LocalExecutor(folder=folder, max_num_timeout=MAX_TIMEOUT_REQUEUES,
                           out=None if out is None else os.path.abspath(out))
        ex.update_parameters(timeout_min=res.time, gpus_per_node=res.gpus_per_node,
                             signal_delay_s=res.signal_delay)
        return ex
    require_slurm()
    # `python` goes into the sbatch script's command line as shell text (`task_python`)
    ex = submitit.SlurmExecutor(folder=folder, python=task_python(), max_num_timeout=MAX_TIMEOUT_REQUEUES)
    params = dict(job_name=name, nodes=res.nodes, ntasks_per_node=res.ntasks_per_node, cpus_per_task=res.cpus_per_task,
                  time=res.time, signal_delay_s=res.signal_delay, array_parallelism=array,
                  setup=list(BATCH_SHELL_SETUP), teardown=batch_shell_teardown(folder))
    if res.gpus_per_node:
        params["gpus_per_node"] = res.gpus_per_node
    if res.partition:
        params["partition"] = res.partition
    if res.mem_mib:
        params["mem"] = f"{res.mem_mib}M"
    if res.sbatch:  # (submitit writes each as `#SBATCH --KEY=VALUE`, the value shell-quoted; a flag as `--KEY`)
        params["additional_parameters"] = {key: value for key, value, _ in res.sbatch}
    if out is not None:
        from hpcflow.submit.queued import slurm_comment

        params["comment"] = slurm_comment(out)
    if res.tasks > 1 and res.mpi != "none":
        params["srun_args"] = [f"--mpi={res.mpi}"]  # the tasks form one MPI world (plain srun: R worlds of 1)
    if res.tasks > 1:  # a rank that dies ends the others (Slurm's KillOnBadExit=0 left them in a collective)
        params["srun_args"] = [*params.get("srun_args", []), "--kill-on-bad-exit=1"]
    ex.update_parameters(**params)
    return ex


class SubmitUnknown(RunStop):
    """sbatch failed in a way that leaves unknown whether the job was queued (a lost reply); its files are kept."""


def submit(ex, task, argvs: list) -> list:
    """Submit one job per command line (a Slurm job array when several); return the submitit jobs. Where sbatch
    fails, one line instead of submitit's traceback (and of the sbatch error it prints first): SubmitError when
    nothing was queued, the files this submission wrote removed; SubmitUnknown when the job may be queued."""
    from submitit.core.utils import FailedJobError, FailedSubmissionError, JobPaths

    own = sbatch_error.OwnFiles(JobPaths.get_first_id_independent_folder(ex.folder))
    held = io.StringIO()
    try:
        with own.recording(), contextlib.redirect_stderr(held):
            jobs = [ex.submit(task, argvs[0])] if len(argvs) == 1 else ex.map_array(task, argvs)
    except (FailedJobError, FailedSubmissionError) as exc:  # (what submitit printed is in the line)
        if sbatch_error.maybe_queued(exc):
            raise SubmitUnknown(sbatch_error.unknown(exc, ex.parameters.get("job_name", "?"), own.folder)) from None
        own.remove()
        raise SubmitError(sbatch_error.refused(exc)) from None
    except BaseException:
        sys.stderr.write(held.getvalue())
        raise
    sys.stderr.write(held.getvalue())
    return jobs


class QueueWatcher(SlurmInfoWatcher):
    """submitit's Slurm job-state watcher, quiet where sacct fails (a Slurm without accounting).

    submitit asks sacct at every poll; where it fails, sacct's error and submitit's 'Bypassing sacct error' warning
    were printed at every poll, and a job that ended without a result (cancelled, killed) was waited for forever, its
    state never known. Here sacct's failure is said once (log) and squeue answers instead: it shows ended jobs'
    states until Slurm forgets them (MinJobAge), and a job it no longer knows has ended. A failing squeue is said
    each time: the wait then goes on without states, as submitit's does."""

    def __init__(self, log=print, delay_s: int = 600) -> None:
        super().__init__(delay_s=delay_s)
        self.log = log
        self.sacct = True

    def update(self) -> None:
        command = self._make_command()
        if command is None:
            return
        self._num_calls += 1
        info = self._states(command)
        self._reasons(info)
        self._info_dict.update(info)
        self._last_status_check = time.time()
        self._finished |= {j for j in self._registered - self._finished if self.is_done(j, mode="cache")}

    def _states(self, sacct: list) -> dict:
        if self.sacct:
            r = _ask(sacct)
            if r.returncode == 0:
                return self.read_info(r.stdout)
            self.sacct = False
            self.log(f"hpcflow submit: sacct cannot report job states here ({_first_line(r)}); following the jobs "
                     "with squeue")
        ids = {j.split("_")[0] for j in self._registered - self._finished}
        r = _ask(["squeue", "-h", "-t", "all", "-r", "-o", "%i|%T|%N|%r", "-j", ",".join(sorted(ids))])
        if r.returncode != 0 and "Invalid job id" not in r.stderr:  # (every job forgotten: squeue refuses them)
            self.log(f"hpcflow submit: squeue failed ({_first_line(r)}); still waiting for the results")
            return {}
        states = self.read_info("JobID|State|NodeList|Reason\n" + (r.stdout if r.returncode == 0 else ""))
        return {**{j: {"State": "ENDED"} for j in self._registered - self._finished},
                **{j: {"Reason": "", **i} for j, i in states.items()}}  # (squeue's reason: not asked again)

    def _reasons(self, info: dict) -> None:
        """Add squeue's Reason to the pending jobs of `info` that have none (sacct's states carry no reason)."""
        asked = {j for j, i in info.items() if i.get("State") == "PENDING" and "Reason" not in i}
        if not asked:
            return
        r = _ask(["squeue", "-h", "-t", "PENDING", "-r", "-o", "%i|%r", "-j",
                  ",".join(sorted({j.split("_")[0] for j in asked}))])
        if r.returncode == 0:
            for j, i in self.read_info("JobID|Reason\n" + r.stdout).items():
                if j in asked:
                    info[j] = {**info[j], **i}


def _ask(command: list) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return subprocess.CompletedProcess(command, 1, "", str(exc))


def _first_line(r: subprocess.CompletedProcess) -> str:
    return next((line.strip() for line in r.stderr.splitlines() if line.strip()), f"exit status {r.returncode}")


@contextlib.contextmanager
def _watched(jobs, log):
    """Slurm jobs' states come from a QueueWatcher while in the block (submitit's watcher is a class attribute)."""
    if not any(isinstance(job, SlurmJob) for job in jobs):
        yield
        return
    old, SlurmJob.watcher = SlurmJob.watcher, QueueWatcher(log)
    for job in jobs:  # all registered before the first look, so that one ask of Slurm covers them all
        if isinstance(job, SlurmJob):
            SlurmJob.watcher.register_job(job.job_id)
    try:
        yield
    finally:
        SlurmJob.watcher = old


POLL_S = 1.0  # between looks at the jobs (a result file; Slurm is asked by the watcher, backing off to 10 min)
RESULT_RECHECK_S = 10.0  # between asks of Slurm while a job with a result file is still in the queue (requeued)


def _ended(job, log, said: set) -> bool:
    """Whether `job` has ended: a result file, and for a Slurm job a state asked of Slurm after that file was written
    that is not pending or running. A job Slurm requeued (scontrol requeue, preemption, node failure) keeps the result
    its stopped leg wrote (status 4) while it waits to start again; it is said once and followed to its real end."""
    if isinstance(job, SlurmJob):
        _ask_if_ended(job)
    if not job.done():
        return False
    if not isinstance(job, SlurmJob):
        return True
    watcher = job.watcher
    written = job.paths.result_pickle.stat().st_mtime if job.paths.result_pickle.exists() else 0.0
    now = time.time()  # (asked again every second just after the file was written, backing off to RESULT_RECHECK_S)
    if watcher._last_status_check < max(written, now - min(RESULT_RECHECK_S, max(1.0, (now - written) / 2))):
        watcher.get_info(job.job_id, mode="force")
    if watcher.is_done(job.job_id, mode="cache"):
        return True
    state = watcher.get_state(job.job_id, mode="cache")
    if state == "PENDING" and job.job_id not in said:
        said.add(job.job_id)
        log(f"hpcflow submit: job {job.job_id} was requeued by Slurm (state {state}); waiting for it to end")
    return False


def _ended_at(job) -> float | None:
    """The time of Slurm job `job`'s mark of its step's or leg's end (`ended_file`); None where there is none."""
    try:
        return os.stat(ended_file(job)).st_mtime
    except OSError:
        return None


def _ask_if_ended(job) -> None:
    """Where the job's batch shell said its step ended, or its task 0 that it requeues the job (`ended_file`), ask
    Slurm for its state after that, and again while it is not over (COMPLETING, or requeued and held), every second
    at first, backing off to RESULT_RECHECK_S."""
    ended = _ended_at(job)
    if ended is None:
        return
    now = time.time()
    if job.watcher._last_status_check < max(ended, now - min(RESULT_RECHECK_S, max(1.0, (now - ended) / 2))):
        job.watcher.get_info(job.job_id, mode="force")


def _results_wait_once(job) -> None:
    """A Slurm job of several tasks waits for its tasks' result files (a slow file system) once, not once a task:
    submitit waits for each missing one in turn (15 s each: 30 s more for a 2-rank job killed without a result)."""
    if not isinstance(job, SlurmJob) or not job._sub_jobs:
        return
    deadline = time.monotonic() + job._results_timeout_s
    while not all(one.paths.result_pickle.exists() for one in job._sub_jobs) and time.monotonic() < deadline:
        time.sleep(POLL_S)
    for one in job._sub_jobs:
        one._results_timeout_s = 0


def still_going(jobs) -> list:
    """The ids of the Slurm jobs of `jobs` that have not ended (`_ended`), their states asked as the wait asks them
    (`QueueWatcher`: squeue where sacct fails), quietly: the wait has said what it had to (submitit's own watcher,
    which `job.done()` asks outside `wait`, printed sacct's error and its 'Bypassing sacct error' warning)."""
    slurm = [job for job in jobs if isinstance(job, SlurmJob)]
    quiet = lambda line: None  # noqa: E731
    with _watched(slurm, quiet):
        return [job.job_id for job in slurm if not _ended(job, quiet, set())]


def _held_after_requeue(job_id: str, state: str | None, reason: str, ran: set, *, said: set, log,
                        ended: float | None = None, marks: dict | None = None) -> None:
    """Say once per leg that job `job_id`, which ran (`ran`, the jobs that did since their last requeue), was
    requeued and is held until Slurm's begin time (reason BeginTime: Slurm holds a requeued job ~2 minutes, its
    requeue delay), a wait that is otherwise silent; not for a job held so before it first ran (sbatch --begin), nor
    where `_ended` has just said the requeue (`said`). A job ran where it was seen running, or where its mark of a
    leg's end (`ended_file`, its time `ended`) is new since the last look (`marks`: each job's last): task 0 touches
    it as it requeues the job, so that a leg that starts and ends between two asks of Slurm counts (its hold, asked
    every few seconds while the mark is there, is seen)."""
    if ended is not None and marks is not None and marks.get(job_id) != ended:
        marks[job_id] = ended
        ran.add(job_id)
    if state in ("RUNNING", "COMPLETING"):
        ran.add(job_id)
    elif state == "PENDING" and job_id in ran and pending.code(reason) == "BeginTime":
        ran.discard(job_id)
        if job_id not in said:
            log(f"hpcflow submit: job {job_id} was requeued and is pending until its begin time (reason BeginTime: "
                f"Slurm holds a requeued job about 2 minutes before it starts again); still waiting")


def _until_done(jobs, res: Resources | None, log) -> None:
    """Poll until every job is done. A Slurm job pending for a reason that waiting never resolves is cancelled and
    the wait stops (SubmitError, one line: the job, the reason, the fix); one waiting for a person is said once."""
    verdicts, said, requeued, ran, marks = pending.Verdicts(res), set(), set(), set(), {}
    while True:
        before = set(requeued)
        waiting = [job for job in jobs if not _ended(job, log, requeued)]
        if not waiting:
            return
        never = []  # (job id, reason code, fix)
        for job in waiting:
            slurm = isinstance(job, SlurmJob)
            info = job.watcher.get_info(job.job_id, mode="cache") if slurm else {}
            reason = info.get("Reason", "") if info.get("State") == "PENDING" else ""
            _held_after_requeue(job.job_id, info.get("State"), reason, ran, said=requeued - before, log=log,
                                ended=_ended_at(job) if slurm else None, marks=marks)
            code = pending.code(reason)
            if not code:
                continue
            fix = verdicts.never(reason)
            if fix:
                never.append((job.job_id, code, fix))
            elif code in pending.PERSON and (job.job_id, code) not in said:
                said.add((job.job_id, code))
                log(f"hpcflow submit: job {job.job_id} is pending ({reason}: {pending.PERSON[code]}); still waiting "
                    f"(scancel {job.job_id} stops it)")
        if never:  # (the jobs of one submission ask for the same: one line says it for all)
            ids = [j for j, _, _ in never]
            _, code, fix = never[0]
            r = _ask(["scancel", *ids])
            done = "the job is cancelled" if r.returncode == 0 else f"cancel it with: scancel {' '.join(ids)}"
            raise SubmitError(f"job {', '.join(ids)} can never start (pending, reason {code}): {fix}; {done}")
        time.sleep(POLL_S)


def continuation(command: str, out: str, again: str | None) -> str | None:
    """`again` (the `hpcflow submit` command line that continues a stopped run) where it continues something: a
    tune's study, or a run or network run whose `out` holds its interrupted run (its checkpoint); else None."""
    from hpcflow.jobs.output import interrupted
    from hpcflow.submit.task import CHECKPOINTS

    if again is None or (command != "tune" and not interrupted(out, CHECKPOINTS.get(command, ""))):
        return None
    return again


def local_limit_line(job, command: str, out: str, again: str | None = None, here: str | None = None) -> str | None:
    """Where local job `job` ended without a result after the local executor's last run (`task.LOCAL_MAX_LEGS`, each
    stopped at --time): what happened and how to continue (one line; `again`: the submit command that does; `here`:
    the command that continues it on this host, the job's own with --resume); else None."""
    from hpcflow.submit.task import LOCAL_MAX_LEGS, local_legs

    if local_legs(job.paths.folder, job.job_id) < LOCAL_MAX_LEGS:
        return None
    again = f" ({again})" if again else ""
    how = (f"submit it again as before{again}: the study there keeps its finished trials (give --trials those still "
           "wanted)" if command == "tune" else f"submit it again as before with --resume{again}"
           f"{f', or run here: {here}' if here else ''}")
    return (f"hpcflow submit: local job {job.job_id} reached the local executor's limit of {LOCAL_MAX_LEGS} runs "
            f"(each stopped at --time and restarted); the run is preempted in {out}, its progress kept; to continue "
            f"it, {how}")


def wait(jobs, *, res: Resources | None = None, log=print, command: str = "run", out: str = "OUT",
         again: str | None = None, here: str | None = None) -> int:
    """Wait for every job; the largest exit status of their tasks (1 when a job failed without one, 128 + N for a
    local job whose task or controller signal N killed, as a shell gives it, `local.killed_line`; EXIT_PREEMPTED
    for a local job ended by the local executor's limit of runs). SubmitError when a job can never start (it is
    cancelled): `res` (what it asked for) lets the line name the option to change. `command`, `out`: what the jobs
    run, and `again`, the `hpcflow submit` command line that continues them, for the line that says how to continue
    a stopped one (exit status 4); `here`, the job's own command that continues it on this host (`local_limit_line`)."""
    from hpcflow.errors import EXIT_PREEMPTED
    from hpcflow.submit.local import is_local, killed_line

    status = 0
    with _watched(jobs, log):
        _until_done(jobs, res, log)
        for index, job in enumerate(jobs):
            _no_result_wait(job)
            _results_wait_once(job)
            try:
                results = job.results()
            except UncompletedJobError as exc:  # no result: killed, cancelled, out of time or memory
                limit = local_limit_line(job, command, out, continuation(command, out, again), here)
                if limit is not None:
                    log(f"{limit}; {_see_log(job)}")
                    status = max(status, EXIT_PREEMPTED)
                    continue
                how = continuation(command, out, again)  # (a run killed after its checkpoint: it continues)
                how = f"; continue it with: {how}" if how else ""
                killed = killed_line(job) if is_local(job) else None
                if killed is not None:
                    log(f"hpcflow submit: local job {job.job_id} ended without a result: {killed[0]}; {_see_log(job)}"
                        f"{how}")
                    status = max(status, killed[1])
                    continue
                why = next((line.strip() for line in str(exc).splitlines() if "not requeued" in line), "")
                state = _final_state(job)
                log(f"hpcflow submit: job {job.job_id} ended without a result (state {state})"
                    f"{f': {why}' if why else ''}; {_see_log(job, state)}{how}")
                status = max(status, 1)
                continue
            except Exception as exc:  # noqa: BLE001 - submitit's FailedJobError
                first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
                log(f"hpcflow submit: job {job.job_id} failed: {first.strip()[:200]}; {_see_log(job)}")
                status = max(status, 1)
                continue
            worst = max(int(r) for r in results)
            if worst != 0:  # (which of several: the line that follows gives only the largest status)
                where = f" (array index {index} of {len(jobs)})" if len(jobs) > 1 else ""
                how = continuation(command, out, again) if worst == EXIT_PREEMPTED else None
                log(f"hpcflow submit: job {job.job_id}{where} ended with exit status {worst}; {_see_log(job)}"
                    f"{f'; continue it with: {how}' if how else ''}")
            status = max(status, worst)
    return status


#: Slurm's final states of a job that may never have run (`_never_started`)
NOT_RUN_STATES = ("CANCELLED", "BOOT_FAIL", "DEADLINE")


def _never_started(job) -> bool:
    """Whether Slurm job `job` ended before it ran: cancelled (or failed to boot, past its deadline) and without
    either log file, which its batch script creates as it starts; then it wrote no result either."""
    if not isinstance(job, SlurmJob) or job.paths.stdout.exists() or job.paths.stderr.exists():
        return False
    state = job.watcher.get_state(job.job_id, mode="cache")
    return state.split()[0] in NOT_RUN_STATES if state.strip() else False


def _no_result_wait(job) -> None:
    """Where `job` never started (`_never_started`), no result can come: its results are read at once, not after
    submitit's 15 s wait for a result file on a slow file system (each task's, for a job of several tasks)."""
    if _never_started(job):
        for one in (job, *job._sub_jobs):
            one._results_timeout_s = 0


def _see_log(job, state: str = "") -> str:
    """Where to look: the job's error log where it exists; else that it failed at launch (FAILED, or Slurm's reason
    JobLaunchFailure: its batch script could not start, e.g. its log's folder missing on the node), or that it never
    started (cancelled while pending)."""
    if job.paths.stderr.exists():
        return f"see {job.paths.stderr}"
    reason = job.watcher.get_info(job.job_id, mode="cache").get("Reason", "") if isinstance(job, SlurmJob) else ""
    reason = "" if reason == "None" else reason  # (squeue's word for no reason)
    if state == "FAILED" or reason == "JobLaunchFailure":
        return (f"the job failed as Slurm launched it{f' (reason {reason})' if reason else ''}, before it wrote a "
                f"log ({job.paths.stderr} does not exist); scontrol show job {job.job_id} (while Slurm keeps it) or "
                "the node's slurmd log says why")
    return f"the job never started, and wrote no log ({job.paths.stderr} does not exist)"


def _final_state(job) -> str:
    """The job's state as Slurm says it now (sacct, else squeue), not the watcher's last, which can predate its end."""
    if isinstance(job, SlurmJob):
        return job.watcher.get_state(job.job_id, mode="force")
    return job.state


def log_paths(job) -> tuple[str, str]:
    return os.fspath(job.paths.stdout), os.fspath(job.paths.stderr)
