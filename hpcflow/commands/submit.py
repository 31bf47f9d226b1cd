"""`hpcflow submit JOB.toml --out DIR --executor slurm|local [--command run|nn|tune] ...`: validate, then queue."""

from __future__ import annotations

import math
import os
import re

from hpcflow.arguments import INT_LIMIT, whole_number


#: the largest --nodes, --ntasks-per-node (and --gpus-per-node), --array and --time submit takes: beyond any cluster's
#: (Slurm's MaxArraySize is at most 4000001 and 1001 by default), and read without an int() of thousands of digits
MAX_NODES = 10**6
MAX_PER_NODE = 10**5
MAX_ARRAY = 10**5
MAX_MINUTES = 10**7


def _time_limit(text: str) -> int:
    """--time in whole minutes, written as sbatch --time takes it: M, M:S, H:M:S, D-H, D-H:M or D-H:M:S."""
    import argparse

    from hpcflow.submit.capacity import minutes

    try:
        m = minutes(text) if text.strip().lower() not in ("infinite", "unlimited") else None
    except ValueError:  # more digits than int() reads
        m = math.inf
    if m is not None and m > MAX_MINUTES:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is longer than any time limit taken ({MAX_MINUTES} minutes, "
                                         "19 years); give a shorter --time")
    if m is None or m <= 0 or m != int(m):  # (a form sbatch takes with seconds that are not a whole minute: said)
        part = "" if m is None or m <= 0 else f" (its seconds are not a whole minute: {math.ceil(m)} rounds it up)"
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a time limit of whole minutes > 0{part}: give minutes "
                                         "(90) or sbatch's forms M:S (30:00), H:M:S (1:30:00), D-H (2-0), D-H:M "
                                         "(1-12:30), D-H:M:S (1-12:30:00)")
    return int(m)


#: the largest --mem taken, MiB (a thousand TiB; read without an int() of thousands of digits)
MAX_MEM_MIB = 2**30


def _memory(text: str) -> int:
    """--mem in MiB, written as sbatch --mem takes it: a whole number of MiB, or with a suffix K, M, G or T."""
    import argparse

    m = re.fullmatch(r"\s*(\d{1,15})\s*([KMGT]?)B?\s*", text, re.IGNORECASE)
    mib = None if m is None else -(-int(m.group(1)) * 1024 ** "KMGT".index(m.group(2).upper() or "M") // 1024)
    if mib is None or not 0 < mib <= MAX_MEM_MIB:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a memory per node of 1 MiB to {MAX_MEM_MIB >> 20} "
                                         "TiB: give MiB (16000) or sbatch's forms 16G, 16000M")
    return mib


def _memory_limit(args, res, asked) -> tuple[tuple | None, str]:
    """What the submitted job's memory per rank is checked against: (its bytes, what they are, the fix of more memory
    per node: a higher --mem while it is below the partition's node memory, else another partition) for
    --executor slurm where --mem or sinfo's node memory gives it (None else), and the note added to a refusal against
    this host's memory instead. ConfigError for a --mem above the partition's node memory (exit 2)."""
    from hpcflow.errors import ConfigError
    from hpcflow.submit import capacity
    from hpcflow.submit.check import NEEDED_MEM

    if args.executor != "slurm":
        return None, ""
    parts, why = asked
    node_mib, name = capacity.node_memory(res, parts) if parts else (None, "")
    if res.mem_mib and node_mib and res.mem_mib > node_mib:
        raise ConfigError(f"--mem {res.mem_mib} MiB exceeds the {node_mib} MiB of partition {name}'s "
                          "nodes (sinfo's memory): the job could never start; lower --mem or pick another --partition")
    each = f"{res.ntasks_per_node} ranks per node" if res.ntasks_per_node > 1 else "one rank per node"
    other = f", or pick a --partition whose nodes have more memory (with --mem at least {NEEDED_MEM})"
    if res.mem_mib:
        more = (other if node_mib and res.mem_mib >= node_mib else f", or raise --mem to at least {NEEDED_MEM}" +
                (f" (partition {name}'s nodes have {node_mib} MiB)" if node_mib else ""))
        return (res.mem_mib * 2**20 / res.ntasks_per_node, f"--mem {res.mem_mib} MiB per node, {each}", more), ""
    if node_mib:
        return (node_mib * 2**20 / res.ntasks_per_node, f"partition {name}'s node memory {node_mib} MiB (sinfo), "
                f"{each}", other), ""
    reason = f"sinfo did not answer ({why})" if parts is None else f"sinfo gives no memory for partition {name}"
    return None, f"the submit host's memory: {reason}"


def _fits_cpus(res, parts: dict | None) -> tuple[int, str] | None:
    """(the most ranks per node, up to --ntasks-per-node, that `res`'s partition takes by its CPUs (and GPUs), the
    CPU check's refusal of one rank per node where that is 0) for the memory refusal's advice; None where sinfo did
    not answer."""
    from dataclasses import replace

    from hpcflow.submit import capacity

    if not parts:
        return None
    most = capacity.most_tasks_per_node(res, parts, res.ntasks_per_node)
    return most, (capacity.misfit(replace(res, ntasks_per_node=1), parts) or "") if most < 1 else ""


#: sbatch --signal's largest sig_time (Slurm keeps it in 16 bits; sbatch refuses more)
SIGNAL_DELAY_MAX = 65535


def _parser_of(command: str):
    """The argparse parser of `hpcflow COMMAND`."""
    import argparse

    from hpcflow.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


#: how much earlier than --signal-delay Slurm may send the signal (sbatch --signal: "up to 60 seconds earlier")
SIGNAL_EARLY_S = 60


def _early_signal_note(args) -> str:
    """For --executor slurm, where --signal-delay is within SIGNAL_EARLY_S of --time: that the signal can come as the
    job starts, before the run has a checkpoint to stop at (a one-rank job is then requeued as submitted, and can be
    again at its next start; on several ranks the run goes on, `task.HpcflowTask`); else "". The local executor
    signals at --signal-delay itself."""
    limit = 60 * args.time
    if args.executor != "slurm" or args.signal_delay + SIGNAL_EARLY_S < limit:
        return ""
    lower = f" or lower --signal-delay below {limit - SIGNAL_EARLY_S}" if limit > SIGNAL_EARLY_S else ""
    return (f"--signal-delay {args.signal_delay} is within {SIGNAL_EARLY_S} s of --time {args.time} ({limit} s), and "
            f"Slurm may send its signal up to {SIGNAL_EARLY_S} s early: as the job starts, before the run has a "
            f"checkpoint to stop at; raise --time{lower}")


def _options_of(command: str) -> set[str]:
    """The option strings of `hpcflow COMMAND` (read from its parser: an option a command gains is passed on)."""
    return set(_parser_of(command)._option_string_actions)


def _continuing_argv(args, counted: int | None = None) -> list[str]:
    """The `hpcflow submit` command line that continues this submission's stopped run: its options as given (read
    back from submit's parser: one it gains is kept), with --resume for run and nn instead of --force, and without
    --check (the line a refusal of `submit --check` advises continues the run; pasted with --check it would only
    check again). A tune whose study `counted` that many trials when it was submitted
    (`submit.check.counted_trials`) is submitted again with --max-trials those and its --trials (`tune_cap`): the
    --trials of a worker submitted again count from none (its study keeps the finished trials), and the preempted
    trial it continues is one of them."""
    import argparse

    cap = None if counted is None or args.command != "tune" else tune_cap(args, counted)
    argv = ["hpcflow", "submit"]
    for action in _parser_of("submit")._actions:
        value = getattr(args, action.dest, None)
        if isinstance(action, argparse._HelpAction) or action.dest in ("force", "resume", "check") or (
                cap is not None and action.dest == "max_trials"):
            continue
        if not action.option_strings:
            argv.append(value)
        elif isinstance(action, argparse._StoreTrueAction):
            argv += [action.option_strings[0]] if value else []
        elif isinstance(action, argparse._AppendAction):  # (--sbatch's (KEY, VALUE or True) written as given)
            argv += [x for v in value or [] for x in (action.option_strings[0], _as_given(v))]
        elif value is not None and value != action.default:
            argv += [action.option_strings[0], str(value)]
    if args.command == "tune":
        return argv + (["--max-trials", str(cap)] if cap is not None else [])
    return argv + ["--resume"]


def tune_cap(args, counted: int) -> int:
    """The --max-trials of the command line that continues a tune (`_continuing_argv`): the `counted` trials its
    study held when it was submitted and its --trials, or its own --max-trials where that is lower."""
    cap = counted + args.trials
    return cap if args.max_trials is None else min(cap, args.max_trials)


def _as_given(value) -> str:
    """A repeated option's parsed value as its command line gives it: --sbatch's (KEY, VALUE) as KEY=VALUE, (KEY,
    True) as KEY; --set's text as it is."""
    if isinstance(value, tuple):
        key, given = value
        return key if given is True else f"{key}={given}"
    return value


def _argvs(args, job: str | None = None) -> list[list[str]]:
    """The hpcflow command line of every submitted job (tune: the trials shared over --array workers), of job file
    `job` (the copy queued, `_frozen_job`), else of the one given; its paths absolute (the job file, --out, a tune's
    --storage journal or SQLite file), as the job runs them wherever it starts."""
    base = [args.command, os.path.abspath(args.job if job is None else job), "--out", os.path.abspath(args.out)]
    for flag, given in (("--quiet", args.quiet), ("--no-memory-check", args.no_memory_check)):
        if given and flag in _options_of(args.command):
            base.append(flag)
    sets = [x for s in args.set or [] for x in ("--set", s)]
    if args.command != "tune":
        return [base + (["--force"] if args.force else []) + (["--resume"] if args.resume else []) + sets]
    from hpcflow.parallel.decompose import counts
    from hpcflow.tune.storage import absolute_storage

    # (--storage as --out: the same study from any working directory, the one its study.json records)
    storage = None if args.storage is None else absolute_storage(args.storage)
    extra = [x for opt, v in (("--max-trials", args.max_trials), ("--storage", storage), ("--study", args.study),
                              ("--sampler", args.sampler)) if v is not None for x in (opt, str(v))]
    return [base + ["--trials", str(int(n))] + extra + sets for n in counts(args.trials, args.array)]


def _shared_trials(argvs, args) -> str:
    """For several tune workers: how they share --trials (the command line shown is the first worker's)."""
    if len(argvs) < 2:
        return ""
    each = [argv[argv.index("--trials") + 1] for argv in argvs]
    return f"; the {len(argvs)} workers share --trials {args.trials} as --trials {', '.join(each)}"


#: submit's options that only `hpcflow tune` takes (--array: checked apart, its default is 1)
TUNE_ONLY = ("--trials", "--max-trials", "--storage", "--study", "--sampler")


def _check_options(args) -> None:
    from hpcflow.commands.run import refuse_resume_with_force
    from hpcflow.errors import ConfigError
    from hpcflow.tune.storage import masked

    if args.command == "tune" and args.trials is None:
        raise ConfigError("--command tune needs --trials N (shared over the --array workers)")
    if args.command != "tune" and args.array > 1:
        raise ConfigError(f"--array {args.array} starts tune workers sharing one study; use it with --command tune")
    for opt in TUNE_ONLY if args.command != "tune" else ():  # (run and nn do not take them)
        value = getattr(args, opt[2:].replace("-", "_"))
        if value is not None:
            raise ConfigError(f"{opt} {value!s:.40} is an option of --command tune, not of --command {args.command}; "
                              "drop it or use it with --command tune")
    for opt in ("--storage", "--study") if args.command == "tune" else ():  # (as `hpcflow tune` refuses them)
        value = getattr(args, opt[2:])
        if value is not None and not value.strip():
            raise ConfigError(f"{opt} is empty; give one or leave the option out")
    if args.command == "tune" and args.force:
        raise ConfigError("--force is an option of --command run and nn (a tune adds trials to the study in --out); "
                          "drop it, or choose another --out for a new study")
    if args.command == "tune" and args.resume:
        raise ConfigError("--resume is an option of --command run and nn (a tune adds trials to the study in --out, "
                          "its finished ones kept); drop it")
    refuse_resume_with_force(args)
    both = [value for key, value in args.sbatch or () if key == "exclusive"] if args.exclusive else []
    if both:  # (one #SBATCH --exclusive line: one of them would be lost)
        raise ConfigError(f"--exclusive and --sbatch exclusive={both[0]} ask for two kinds of exclusive nodes; give "
                          "one of them")
    if args.command == "tune" and args.array > 1 and (args.storage or "").strip().lower().startswith("sqlite:"):
        # (workers starting together race to create its tables, and one fails; SQLite's one writer at a time then
        # fails trials with 'database is locked': refused rather than its tables made here, which --check would not)
        raise ConfigError(f"--storage {masked(args.storage)[:60]}: an SQLite storage does not take --array {args.array} workers "
                          "starting together (they race to create its tables and one fails); use a journal file "
                          "(--storage OUT/study.journal, the default), or create the study first with one worker "
                          "(--array 1) and submit the others after it has started")
    if args.command == "tune" and args.array > args.trials:
        raise ConfigError(f"--array {args.array} exceeds --trials {args.trials}; every worker needs a trial")
    if args.signal_delay > SIGNAL_DELAY_MAX:  # (before the comparison with --time: no --time allows more)
        raise ConfigError(f"--signal-delay {args.signal_delay} exceeds Slurm's largest signal time "
                          f"({SIGNAL_DELAY_MAX} s); lower --signal-delay")
    # Slurm signals a job once it is within --signal-delay of its end (sbatch --signal): at or above the time limit
    # that is as it starts, and the run checkpoints (or, before its first checkpoint, is requeued as submitted) again
    # at every start; submitit's local executor then never signals (the job is killed at --time, no checkpoint)
    if args.signal_delay >= 60 * args.time:
        raise ConfigError(f"--signal-delay {args.signal_delay} (seconds) is not below --time {args.time} (minutes, "
                          f"{60 * args.time} s): the checkpoint signal would come as the job starts; raise --time "
                          f"above {args.signal_delay // 60} or lower --signal-delay below {60 * args.time}")
    # values that go into the sbatch script: Slurm's own names are letters, digits and - _ . (partitions: a list)
    names = (("--partition", args.partition, r"[A-Za-z0-9_.\-]+(,[A-Za-z0-9_.\-]+)*", "sinfo's PARTITION column"),
             ("--mpi", args.mpi, r"[A-Za-z0-9_]+", "one of srun --mpi=list (e.g. pmi2, pmix)"))
    for opt, value, pattern, where in names:
        if value is not None and not re.fullmatch(pattern, value):
            raise ConfigError(f"{opt} {value[:40]!r} is not a Slurm name (letters, digits, - _ .); give one from "
                              f"{where}")


#: --sbatch options that ask Slurm for GPUs (gres, gpus and gpus-per-task are refused: --gpus-per-node asks)
SBATCH_GPUS = ("gpus-per-socket", "tres-per-task")


def gpus_requested(res) -> bool:
    """Whether the Slurm job of `res` (executor.Resources) asks for GPUs: --gpus-per-node, or an --sbatch option of
    SBATCH_GPUS that names them (tres-per-task=gres/gpu:1)."""
    return bool(res.gpus_per_node) or any(key in SBATCH_GPUS and "gpu" in str(value).lower()
                                          for key, value, _ in res.sbatch)


def _refuse_no_gpu(need: str | None, res) -> None:
    """SubmitError (exit 2, before anything is queued; --check too) where the job needs a GPU wherever it runs
    (`need`: what asks for it, `submit.check.gpu_asked`) and its Slurm job asks for none: the job failed on its node
    as it looked for the GPU. Refused, not said: Slurm allocates GPUs (generic resources) on request only, slurm.conf
    has no partition default for them, and the fix asks for one on every partition with GPUs (a site plugin that
    adds GPUs to a job takes it too)."""
    from hpcflow.submit.executor import SubmitError

    if need is not None and not gpus_requested(res):
        raise SubmitError(f"{need} needs a GPU, but the job asks Slurm for none (Slurm gives a job only the GPUs it "
                          "asks for, and the job would fail on its node); add --gpus-per-node 1")


def _rank_threads(res, slurm: bool) -> int:
    """The threads each rank of the job runs with where it runs (`hpcflow.parallel.comm.threads_per_rank` there): an
    HPCFLOW_THREADS exported here, which the job inherits (the sbatch templates pass it on too), else its
    --cpus-per-task (srun binds each task to that many CPUs; Slurm sets SLURM_CPUS_PER_TASK); a local job: this
    host's (its HPCFLOW_THREADS, else the CPUs this process may use)."""
    from hpcflow.arguments import env_threads
    from hpcflow.backend import default_threads

    return env_threads() or (res.cpus_per_task if slurm else default_threads())


def _step_note(args, res, slurm: bool) -> None:
    """One line on stderr where one step of the flow job is estimated to take longer than --signal-delay: the
    time-limit signal may then come mid-step, and the run stops (with its checkpoint) only at a step's end
    (`submit.check.step_note`). Each task runs HPCFLOW_THREADS threads where exported, else its --cpus-per-task
    (a local job: this host's CPUs)."""
    import sys

    from hpcflow.submit.check import step_note

    line = step_note(args.job, overrides=args.set or [], ranks=res.nodes * res.ntasks_per_node,
                     threads=_rank_threads(res, slurm),
                     signal_delay=args.signal_delay, time_s=60 * args.time)
    if line is not None:
        print(f"hpcflow submit: {line}", file=sys.stderr, flush=True)


def _threads_note(res, parts: dict | None = None) -> None:
    """One line on stderr where an exported HPCFLOW_THREADS, which the Slurm job inherits (sbatch passes the
    environment on), exceeds the job's --cpus-per-task: each task would run that many threads on fewer CPUs. Said,
    not refused, as the run says it (`hpcflow.parallel.comm.limit_threads`): the value is the user's choice. The
    advice fits the partition (`parts`, sinfo's partitions; None where it did not answer: not checked): a
    --cpus-per-task of the threads where it can start there, else that its nodes have too few CPUs for it, and the
    threads (and --cpus-per-task) that fit, or unsetting the variable."""
    import sys

    from hpcflow.arguments import env_threads
    from hpcflow.submit import capacity

    threads = env_threads()  # (checked with the job: a bad value was refused)
    if threads is None or threads <= res.cpus_per_task:
        return
    cpus = f"{res.cpus_per_task} CPU{'s' * (res.cpus_per_task > 1)}"
    unset = "unset HPCFLOW_THREADS (each task then takes its own CPUs)"
    fit = threads if parts is None else capacity.most_cpus_per_task(res, parts, threads)
    if fit >= threads:
        advice = f"add --cpus-per-task {threads}, or {unset}"
    else:  # (the job itself fits: at least its own --cpus-per-task does)
        each = f"--ntasks-per-node {res.ntasks_per_node} x " if res.ntasks_per_node > 1 else ""
        more = f" and add --cpus-per-task {fit}" if fit > res.cpus_per_task else ""
        advice = (f"{each}--cpus-per-task {threads} could never start in {capacity.cpus_said(res, parts)} "
                  f"(sinfo): {unset}, or export HPCFLOW_THREADS={fit}{more}")
    print(f"hpcflow submit: warning: HPCFLOW_THREADS={threads}, exported here, passes into the job, whose tasks "
          f"have {cpus} each (--cpus-per-task {res.cpus_per_task}): the threads would take turns on them, which "
          f"runs slower; {advice}", file=sys.stderr, flush=True)


def _logs_folder(args) -> str:
    """--logs, or DIR_logs beside --out when not given (refused where it holds '%', which submitit and Slurm expand):
    refused as --out is (`writable_dir`) before anything is written or queued (submitit makes the folder, and a file
    or /proc there ended in its traceback), and where it is --out or inside it (the logs written as the job starts
    made --out not empty: the command refused it)."""
    from hpcflow.errors import OutputPathError
    from hpcflow.jobs.output import writable_dir

    default = os.path.abspath(args.out).rstrip("/") + "_logs"
    # submitit reads %j, %A, %a, %t in its folder as the job's ids (pct%jdir_logs became pct157dir_logs), and sbatch
    # expands the rest in --output (pl%x/ became plhpcflow-run-job/, a folder that does not exist: the job failed at
    # launch, with no log)
    if "%" in (default if args.logs is None else args.logs):
        what = f"--logs {args.logs}" if args.logs is not None else f"--out {args.out}: its logs folder {default}"
        raise OutputPathError(f"{what} holds '%', which submitit and Slurm replace (%j: the job id, %x: its name), "
                              "so the logs would not be there; choose a --logs folder without '%'")
    if args.logs is not None:
        logs = os.path.abspath(writable_dir(args.logs, flag="--logs"))
        out = os.path.realpath(args.out)
        if os.path.commonpath([out, os.path.realpath(logs)]) == out:
            where = "is --out" if os.path.realpath(logs) == out else "lies inside --out"
            raise OutputPathError(f"--logs {args.logs} {where} {args.out}: the job's logs, written as it starts, "
                                  "would make --out not empty; choose a --logs folder outside --out (by default "
                                  "OUT_logs beside it)")
        return logs
    try:
        return writable_dir(default, flag="--logs")
    except OutputPathError as exc:
        raise OutputPathError(f"{exc} (not given: --logs defaults to --out followed by _logs)") from None


def _job_bytes(path: str) -> bytes | None:
    """The bytes of job file `path`; None where it cannot be read or is not a regular file (a FIFO, a device, a
    directory: the checks then refuse it in one line, as `hpcflow run` does). Its type is read with os.stat before
    it is opened, and again from the open file (opened without blocking: a FIFO put in its place meanwhile is not
    waited on), so a FIFO is never read: reading one blocks until a writer comes."""
    import stat

    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except (OSError, ValueError):
        return None
    try:
        with open(fd, "rb") as f:  # (closes fd)
            return f.read() if stat.S_ISREG(os.fstat(f.fileno()).st_mode) else None
    except OSError:
        return None


def _frozen_job(job: str, logs: str, checked: bytes | None) -> str:
    """The job file that the queued jobs run: a copy of the text `checked` (read from `job` before submit checked
    it), made read-only in a folder of its own in `logs` (job-DATE-TIME-XXXXXXXX) under the job file's own name (a tune
    names its study after the stem): every start of the job, requeued legs too, runs the job as it was checked, however
    `job` is edited meanwhile (a requeued run was refused where [flow].dt no longer matched its checkpoint, and took
    other edits silently). ConfigError where `job` no longer holds that text (edited while it was checked);
    WriteFailed where the copy cannot be written."""
    import tempfile
    import time

    from hpcflow.errors import ConfigError, WriteFailed

    if checked is None or _job_bytes(job) != checked:
        raise ConfigError(f"{job} changed while hpcflow submit checked it; nothing was queued: submit it again")
    path = os.path.join(logs, "job", os.path.basename(job))
    try:
        os.makedirs(logs, exist_ok=True)
        path = os.path.join(tempfile.mkdtemp(prefix=time.strftime("job-%Y%m%d-%H%M%S-"), dir=logs),
                            os.path.basename(job))
        with open(path, "xb") as f:
            f.write(checked)
        os.chmod(path, 0o444)
    except OSError as exc:
        failed = WriteFailed(exc.errno, exc.strerror or os.strerror(exc.errno or 0), path)
        failed.advice = f"nothing was queued; {failed.fix}, or choose another --logs folder, then submit again"
        raise failed from None
    return path


def _forget_frozen(path: str, logs_existed: str) -> None:
    """Remove the copy `_frozen_job` made, its folder, and the folders above it up to `logs_existed` (the nearest one
    that was there before the submission) where they are empty: a submission that queued nothing leaves none."""
    import contextlib

    with contextlib.suppress(OSError):
        os.chmod(path, 0o644)
        os.unlink(path)
    d = os.path.dirname(path)
    while d != logs_existed and d.startswith(logs_existed):
        try:
            os.rmdir(d)
        except OSError:  # (not empty: something else is there too)
            break
        d = os.path.dirname(d)


def _refuse_busy_out(out: str, *, slurm: bool, marked: bool) -> None:
    """Refuse (exit 2, before any work, --check too) an --out whose lock a live `hpcflow run` or `nn` holds, or, for
    a run or network run (`marked`), that a local job of `hpcflow submit` queued or running writes into: the queued
    job would be refused when it starts (a Slurm job queued there: `_refuse_queued_out`, after the checks that ask
    no cluster). A held lock is said as the job of `hpcflow submit` that holds it where one is found
    (`queued.busy_line`; `slurm`: squeue asked too, only then: the refusal is certain, squeue only names its holder),
    naming the job and how to stop it (`kill -TERM` of a local job's controller, not of its run, which the controller
    would start again; `scancel`), else as the lock file names its holder, with how to stop it
    (`outlock.holder_line`).
    A lock is seen wherever the file system passes flock to its server
    (NFSv4, Lustre -o flock), another host's included, and is then a live holder (a dead host's NFS lock ends with its
    lease, ~90 s); where flock is local to each host (NFS local_lock=flock, Lustre -o localflock) a run on another
    host is not seen, and submit does not guess from the lock file, which a killed run leaves too. A requeue of a
    submitted job never comes here: it starts the job's command again (`submit.task`, the sbatch templates), whose
    own lock is gone with its previous run. A tune is not `marked`: its workers share their --out."""
    from hpcflow.jobs.outlock import OutdirBusy, held_by, holder_line
    from hpcflow.jobs.output import check_path
    from hpcflow.submit import queued

    raw = held_by(check_path(out))  # (an empty path, a NUL byte or /proc: refused as the command refuses them)
    busy = queued.busy_line(out, slurm=slurm and raw is not None) if raw is not None or marked else None
    if busy is not None:
        raise OutdirBusy(busy)
    if raw is not None:
        raise OutdirBusy(holder_line(out, raw))


def _refuse_queued_out(out: str, *, marked: bool) -> None:
    """For a run or network run (`marked`) submitted to Slurm: refuse (exit 2, --check too) an --out that a Slurm job
    of `hpcflow submit`, queued or running, writes into (squeue: `queued.busy_line`); asked after every check that
    asks no cluster, as squeue waits ~10 s for a controller that does not answer."""
    from hpcflow.jobs.outlock import OutdirBusy
    from hpcflow.submit import queued

    busy = queued.busy_line(out, slurm=True) if marked else None
    if busy is not None:
        raise OutdirBusy(busy)


#: the variables an MPI launcher (mpiexec, srun --mpi=..., mpirun) gives each process it starts
LAUNCHER_VARIABLES = ("PMI_RANK", "PMI_SIZE", "PMI_FD", "PMI_PORT", "PMIX_RANK", "PMIX_NAMESPACE",
                      "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK", "MPI_LOCALRANKID")


def launched_why(environ=None) -> str | None:
    """Why `hpcflow submit` must not run here: started by an MPI launcher (one of LAUNCHER_VARIABLES set), or as one of
    several tasks of an srun (SLURM_STEP_NUM_TASKS above 1); None where it may (a plain shell, a Slurm batch script,
    a one-task srun without an MPI type)."""
    env = os.environ if environ is None else environ
    given = next((name for name in LAUNCHER_VARIABLES if env.get(name, "").strip()), None)
    if given is not None:
        return f"an MPI launcher started it ({given} is set)"
    tasks = env.get("SLURM_STEP_NUM_TASKS", "").strip()
    if tasks.isdigit() and int(tasks) > 1:
        return f"srun started it as one of {int(tasks)} tasks (SLURM_STEP_NUM_TASKS={int(tasks)})"
    return None


def _refuse_launched() -> int | None:
    """Under an MPI launcher (`launched_why`): each of its processes would queue the job (onto the same --out), and a
    local job inherited the launcher's variables and failed in MPI_Init (PMI_Init returned -1). Refused before any
    work: rank 0 (as the launcher numbers it) raises the one line (exit 2), the others return 2 and say nothing."""
    from hpcflow.errors import ConfigError
    from hpcflow.stop_signals import launcher_rank

    why = launched_why()
    if why is None:
        return None
    if launcher_rank() != 0:
        return 2
    raise ConfigError(f"{why}: hpcflow submit queues jobs and runs no ranks itself, and each process the launcher "
                      "started would queue the job; run it once without mpiexec or srun (the job's own ranks come "
                      "from --nodes and --ntasks-per-node)")


def run(args) -> int:
    """Validate, queue, and with --wait wait. A stop request (Ctrl-C, SIGTERM, SIGUSR1) ends the command in one line
    with 130 / 128 + the signal, as for the other commands; one while it waits for Slurm jobs says, in that one line,
    that they go on and the scancel that stops them; one while it waits for local jobs stops them too, their runs
    writing their checkpoint (`_stop_waiting`)."""
    from hpcflow.errors import EXIT_INTERRUPTED
    from hpcflow.stop_signals import interrupts_end_the_job

    refused = _refuse_launched()
    if refused is not None:
        return refused
    try:
        with interrupts_end_the_job("hpcflow submit"):
            return _submit(args)
    except KeyboardInterrupt as exc:
        if not getattr(exc, SAID_BY_WAIT, False):
            raise  # (the CLI says its line: 'hpcflow submit: stopped by SIGTERM')
        return getattr(exc, "exit_status", EXIT_INTERRUPTED)  # (`Stopped`'s 128 + the signal; Ctrl-C 130)


#: the mark of a stop request whose one line `_stop_waiting` said (the Slurm jobs that go on, named with the stop):
#: the CLI's 'hpcflow submit: stopped by SIGTERM' after it said the same again
SAID_BY_WAIT = "said_by_wait"


def _submit(args) -> int:
    from hpcflow.jobs.shell import shell_line
    from hpcflow.stop_signals import defer, deliver
    from hpcflow.tune.storage import masked
    from hpcflow.submit import capacity, executor, queued
    from hpcflow.submit.check import check_job, check_memory, counted_trials
    from hpcflow.submit.task import HpcflowTask

    # every check that asks no cluster comes first (--check too: it refuses what the submission would), then what
    # Slurm is asked (squeue, sinfo: a controller that does not answer takes 10-20 s to fail)
    slurm = args.executor == "slurm"
    _check_options(args)
    _refuse_busy_out(args.out, slurm=slurm, marked=args.command in queued.MARKED)
    if slurm:
        executor.require_slurm()  # (sbatch and srun on PATH)
    res = executor.Resources(nodes=args.nodes, ntasks_per_node=args.ntasks_per_node or max(1, args.gpus_per_node),
                             gpus_per_node=args.gpus_per_node, cpus_per_task=args.cpus_per_task or 1, time=args.time,
                             partition=args.partition, mpi=args.mpi or executor.Resources.mpi,
                             signal_delay=args.signal_delay, mem_mib=args.mem, sbatch=_sbatch_lines(args))
    if slurm:  # (the local executor runs one task, and refuses more)
        executor.require_one_world(res)
    job_checks = dict(overrides=args.set or [], nodes=res.nodes, per_node=res.ntasks_per_node,
                      memory_check=not args.no_memory_check)
    checked = _job_bytes(args.job)  # (the text that the checks read, which the queued jobs run: `_frozen_job`)
    kind, gpu_note, gpu_need = check_job(args.command, args.job, args.out, force=args.force, resume=args.resume,
                                         sampler=args.sampler, study=args.study, storage=args.storage,
                                         runs_here=not slurm, memory=not slurm,
                                         again=shell_line(_continuing_argv(args)), **job_checks)
    if slurm:
        _refuse_no_gpu(gpu_need, res)
    if args.command == "run" and kind == "nn":  # queued as `hpcflow nn`, whose checkpoint a preempted job resumes
        args.command = "nn"  # (`hpcflow run --resume` refuses network jobs), as the sbatch templates choose it
    executor.check_executor(args.executor, res, cpus_given=args.cpus_per_task is not None,
                            mpi_given=args.mpi is not None)
    if slurm and (args.mpi is not None or res.tasks > 1):  # given, or the default that srun gets (srun --mpi=list)
        executor.require_mpi_type(res.mpi, res.tasks)
    logs = _logs_folder(args)
    argvs = _argvs(args)
    early = _early_signal_note(args)
    fits, unchecked, parts = None, None, None
    if slurm:  # what needs the cluster's answers
        _refuse_queued_out(args.out, marked=args.command in queued.MARKED)
        asked = capacity.ask()
        node_limit, host_note = _memory_limit(args, res, asked)
        check_memory(args.command, args.job, node_limit=node_limit, host_note=host_note,
                     fits_cpus=_fits_cpus(res, asked[0]), threads=_rank_threads(res, slurm), **job_checks)
        fits, unchecked = executor.require_fit(res, asked)
        parts = asked[0]
    counted = None if args.command != "tune" or args.check or not args.wait else counted_trials(
        args.job, args.out, storage=args.storage, study=args.study)  # (for the line that continues it)
    if slurm:  # (after every refusal: a refused submission says one line)
        _threads_note(res, parts)
    if args.command == "run" and kind == "flow":
        _step_note(args, res, slurm)
    name = f"hpcflow-{args.command}-{os.path.splitext(os.path.basename(args.job))[0]}"  # (the copy's name is the job's)
    marked = args.out if args.command in queued.MARKED else None  # (the --out its jobs are marked with)
    if args.check:
        where = f" in partition {fits}" if fits else ""
        where += f", not checked against the cluster's partitions because {unchecked}" if unchecked else ""
        print(f"hpcflow submit: {args.job} is valid (kind {kind}); would queue {len(argvs)} {args.executor} job(s) "
              f"of {res.nodes} node(s) x {res.ntasks_per_node} task(s){where}: {masked(shell_line(['hpcflow', *argvs[0]]))}"
              f"{_shared_trials(argvs, args)}{f'; {gpu_note}' if gpu_note else ''}"
              f"{f'; {early}' if early else ''}")
        if args.executor == "slurm":
            print(f"hpcflow submit:   {_asked_for(logs, res, len(argvs), name=name, out=marked)}")
        return 0
    from hpcflow.jobs.output import nearest_existing
    from hpcflow.resources import work_began

    work_began()  # memory that runs out from here on is the submission's, not the start-up's
    logs_existed = nearest_existing(os.path.abspath(logs))
    frozen = _frozen_job(args.job, logs, checked)
    try:
        argvs = _argvs(args, frozen)
        ex = executor.make_executor(args.executor, logs, res, name=name, array=len(argvs), out=marked)
    except BaseException:  # (before anything is queued)
        _forget_frozen(frozen, logs_existed)
        raise
    held = defer()  # a stop request while the jobs are queued is taken once their ids are said
    try:
        try:
            jobs = executor.submit(ex, HpcflowTask(), argvs)
        except executor.SubmitError:  # nothing queued (SubmitUnknown: a job may be, which runs the copy)
            _forget_frozen(frozen, logs_existed)
            raise
        for job, argv in zip(jobs, argvs):
            out, err = executor.log_paths(job)
            print(f"hpcflow submit: {args.executor} job {job.job_id}: {masked(shell_line(['hpcflow', *argv]))}")
            print(f"hpcflow submit:   logs {shell_line([out])} and {shell_line([err])}")
    finally:
        deliver(held)
    if unchecked:
        print(f"hpcflow submit: the request was not checked against the cluster's partitions because {unchecked}")
    if early:
        print(f"hpcflow submit: {early}")
    print(f"hpcflow submit: results in {os.path.abspath(args.out)}", flush=True)
    if not args.wait:
        return 0
    here = None if args.command == "tune" else masked(shell_line(
        ["hpcflow", *[a for a in argvs[0] if a not in ("--force", "--resume")], "--resume"]))
    waiting = dict(res=res, command=args.command, out=os.path.abspath(args.out),
                   again=masked(shell_line(_continuing_argv(args, counted))), here=here)
    try:
        status = executor.wait(jobs, **waiting)
    except KeyboardInterrupt as exc:
        setattr(exc, SAID_BY_WAIT, _stop_waiting(jobs, exc, waiting))
        raise
    print(f"hpcflow submit: finished with exit status {status}")
    return status


#: seconds between the stop requests to a local job that has not ended yet (`_stop_waiting`)
STOP_AGAIN_S = 1.0


#: the options of the srun line that --check does not repeat: the same for every job of hpcflow submit (its log files,
#: given with their paths, which the #SBATCH lines say)
CHECK_SRUN_LEFT_OUT = ("--unbuffered", "--output", "--error")


def _asked_for(logs: str, res, jobs: int, *, name: str, out: str | None = None) -> str:
    """What --check says that the `jobs` Slurm jobs of `res` (a job array where more than one) ask for: every #SBATCH
    line of the sbatch script that the submission queues, as submitit writes it (of an executor that `make_executor`
    makes as for the submission, job name `name`, marked with `out`, its logs in `logs`; which writes nothing), in
    its order, and the options of its srun line (the MPI type, --kill-on-bad-exit) but CHECK_SRUN_LEFT_OUT."""
    import shlex

    from hpcflow.submit import executor

    ex = executor.make_executor("slurm", logs, res, name=name, array=jobs, out=out)
    if jobs > 1:  # (what submitit's map_array gives the array's executor: the #SBATCH --array line)
        ex.parameters["map_count"] = jobs
    lines = ex._make_submission_file_text("", "").splitlines()
    sbatch = [line.split(None, 1)[1] for line in lines if line.startswith("#SBATCH ")]
    srun = shlex.split(next((line for line in lines if line.startswith("srun ")), "srun"))
    srun = [w for w in srun[1:] if w.startswith("--") and w not in CHECK_SRUN_LEFT_OUT]
    return f"#SBATCH {' '.join(sbatch)}; srun {' '.join(srun)}" if srun else f"#SBATCH {' '.join(sbatch)}"


def _stop_waiting(jobs, exc, waiting: dict) -> bool:
    """A stop request (`exc`) while --wait waits: local jobs still running are stopped as `kill -TERM JOBID` stops
    them (their runs write their checkpoint and exit with status 4), and waited for, so that the lines say how each
    ended and how to continue it (another Ctrl-C stops the wait, the jobs stopping on their own); Slurm jobs go on,
    said with the scancel that stops them. Whether that line, which names the stop, is all there is to say: the
    command ends with it (after the lines of local jobs, the CLI's line says that the stop ended it)."""
    import sys
    import time

    from hpcflow.stop_signals import Stopped
    from hpcflow.submit import executor, local

    what = str(exc) if isinstance(exc, Stopped) else "interrupted"
    others = executor.still_going(jobs)  # (asked as the wait asks: squeue where sacct fails, quietly)
    if others:
        print(f"hpcflow submit: {what}: the wait ends; slurm job {', '.join(others)} goes on (scancel "
              f"{' '.join(others)} stops it)", file=sys.stderr, flush=True)
    stopping = [job for job in jobs if local.is_local(job) and local.stop(job)]
    if stopping:
        print(f"hpcflow submit: {what}: stopping local job {', '.join(j.job_id for j in stopping)} (its run writes "
              "its checkpoint; a Ctrl-C now ends the wait, not the job)", file=sys.stderr, flush=True)
        # asked again until it ends: a job still starting takes SIGTERM only once its run has its handler (submitit's
        # own, before it, passes it by), and a run that honoured one ignores the repeats
        while any([local.stop(job) for job in stopping]):
            time.sleep(STOP_AGAIN_S)
        executor.wait([job for job in jobs if local.is_local(job)], **waiting)
    return bool(others) and not stopping


#: sbatch options `hpcflow submit` asks for itself (or submitit does), which --sbatch may not give again: the
#: option of its own where it has one
SBATCH_OWN = {"job-name": "--command/the job file's name", "nodes": "--nodes", "ntasks": "--nodes and "
              "--ntasks-per-node", "ntasks-per-node": "--ntasks-per-node", "cpus-per-task": "--cpus-per-task",
              "time": "--time", "partition": "--partition", "gpus-per-node": "--gpus-per-node", "mem": "--mem",
              "signal": "--signal-delay", "output": "--logs", "error": "--logs", "open-mode": None, "array": "--array",
              "comment": None, "wckey": None, "wrap": None, "account": "--account", "qos": "--qos",
              "constraint": "--constraint", "reservation": "--reservation",
              "exclusive": "--exclusive for whole nodes, or --sbatch exclusive=user|mcs|topo"}
_PRINTS = "sbatch then prints its {} and queues nothing"
_ENV = ("the job's tasks need the environment of the submission (its python, HPCFLOW_ variables), sbatch's default",
        "export the variables before hpcflow submit")
_MEM = ("the memory per node is checked against the job's estimate and the partition", "use --mem")
_GPUS = ("the GPUs are checked against the partition and give the tasks per node", "use --gpus-per-node")
#: sbatch options --sbatch may not give as they break the submission, the requeue or a check: (why, what to do
#: instead or None)
SBATCH_BREAKS = {
    "parsable": ("sbatch then prints the job id alone, which submitit cannot read: the job would be queued but "
                 "reported unknown", None),
    **{k: (_PRINTS.format(k), f"see sbatch --{k}") for k in ("help", "usage", "version")},
    "no-requeue": ("a job stopped at its checkpoint (preemption, the time limit) would not be requeued to continue",
                   None),
    "wait": ("sbatch would block until the job ends, and a job that failed would be taken for a refused "
             "submission and its files removed", "use --wait"),
    "test-only": ("sbatch then queues nothing, and submitit reads no job id", "use --check"),
    "chdir": ("the job's paths (--out, --logs, the job file) are those of the directory it is submitted from",
              "cd there and submit from it"),
    **dict.fromkeys(("export", "export-file"), _ENV),
    **dict.fromkeys(("mem-per-cpu", "mem-per-gpu"), _MEM),
    **dict.fromkeys(("gres", "gpus", "gpus-per-task"), _GPUS),
}
#: the values of `--sbatch exclusive=VALUE` (sbatch --exclusive=VALUE: nodes shared only with the user's own jobs, or
#: its MCS label's, or its topology block); --exclusive asks for whole nodes
EXCLUSIVE_VALUES = ("user", "mcs", "topo")
#: sbatch's long options (Slurm 22.05's `sbatch --help` and `man sbatch`, and later ones'): sbatch takes a unique
#: prefix of one as that option (--accoun=A is --account=A), and refuses an ambiguous one
SBATCH_LONG_OPTIONS = (
    "account", "acctg-freq", "array", "batch", "bb", "bbf", "begin", "chdir", "cluster-constraint", "clusters",
    "comment", "constraint", "container", "container-id", "contiguous", "core-spec", "cores-per-socket", "cpu-freq",
    "cpus-per-gpu", "cpus-per-task", "deadline", "delay-boot", "dependency", "distribution", "error", "exclude",
    "exclusive", "export", "export-file", "extra", "extra-node-info", "get-user-env", "gid", "gpu-bind", "gpu-freq",
    "gpus", "gpus-per-node", "gpus-per-socket", "gpus-per-task", "gres", "gres-flags", "help", "hint", "hold",
    "ignore-pbs", "input", "job-name", "kill-on-invalid-dep", "licenses", "mail-type", "mail-user", "mcs-label",
    "mem", "mem-bind", "mem-per-cpu", "mem-per-gpu", "mincpus", "network", "nice", "no-kill", "no-requeue",
    "nodefile", "nodelist", "nodes", "ntasks", "ntasks-per-core", "ntasks-per-gpu", "ntasks-per-node",
    "ntasks-per-socket", "open-mode", "output", "overcommit", "oversubscribe", "parsable", "partition", "power",
    "prefer", "priority", "profile", "propagate", "qos", "quiet", "reboot", "requeue", "reservation", "signal",
    "sockets-per-node", "spread-job", "switches", "test-only", "thread-spec", "threads-per-core", "time", "time-min",
    "tmp", "tres-bind", "tres-per-task", "uid", "usage", "use-min-nodes", "verbose", "version", "wait",
    "wait-all-nodes", "wckey", "wrap")
#: the sbatch options of their own (`register`), in the order of their #SBATCH lines
SBATCH_OPTIONS = ("account", "qos", "constraint", "reservation")


def _sbatch_value(text: str) -> str:
    """The argparse type of a value written into an #SBATCH line: printable, without spaces or quotes (which would
    split or end the line's value), not empty, at most 1000 characters."""
    import argparse

    if not text or len(text) > 1000 or not text.isprintable() or re.search(r"[\s'\"\\]", text):
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a value for an #SBATCH line: give a non-empty one "
                                         "without spaces, quotes or backslashes")
    return text


def _sbatch_option(text: str) -> tuple:
    """The argparse type of --sbatch KEY=VALUE (or KEY, a flag): (KEY, VALUE or True); KEY one of sbatch's long
    options without its --, written in full (SBATCH_LONG_OPTIONS: sbatch would take a prefix as the option it starts),
    not one `hpcflow submit` gives itself (SBATCH_OWN; exclusive=user|mcs|topo is taken, which --exclusive does not
    ask) nor one that breaks the submission, the requeue or a check (SBATCH_BREAKS)."""
    import argparse

    key, eq, value = text.partition("=")
    key = key.strip()
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,63}", key):
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: give KEY=VALUE (or KEY for a flag), KEY a long sbatch option "
                                         "without its --, e.g. --sbatch mail-type=END")
    if key not in SBATCH_LONG_OPTIONS:
        full = [o for o in SBATCH_LONG_OPTIONS if o.startswith(key)]
        if len(full) != 1:
            raise argparse.ArgumentTypeError(f"{key}: not a long option of sbatch" + (
                f" (the start of {', '.join(full)})" if full else "") + "; give one of sbatch --help in full")
        name = full[0]
        _refuse_sbatch_key(name, eq, value, f"{key} (sbatch takes it as --{name})")
        raise argparse.ArgumentTypeError(f"{key}: sbatch takes it as --{name}; give it in full, --sbatch "
                                         f"{name}{'=' if eq else ''}{value}")
    _refuse_sbatch_key(key, eq, value, key)
    if key == "exclusive":  # (a value of EXCLUSIVE_VALUES: --exclusive asks for whole nodes only)
        return key, value
    return key, _sbatch_value(value) if eq else True


def _refuse_sbatch_key(key: str, eq: str, value: str, said: str) -> None:
    """argparse's error where --sbatch may not give sbatch's long option `key` (in full), `value` where `eq`: one of
    SBATCH_OWN (exclusive but with a value of EXCLUSIVE_VALUES) or SBATCH_BREAKS; `said`: the key as the line names
    it."""
    import argparse

    if key == "exclusive" and eq and value in EXCLUSIVE_VALUES:
        return
    if key == "exclusive" and eq:
        raise argparse.ArgumentTypeError(f"{said}={value[:40]}: give --sbatch exclusive="
                                         f"{'|'.join(EXCLUSIVE_VALUES)}, or --exclusive for whole nodes")
    if key in SBATCH_OWN:
        own = SBATCH_OWN[key]
        raise argparse.ArgumentTypeError(f"{said}: hpcflow submit sets #SBATCH --{key} itself"
                                         f"{f'; use {own}' if own else ''}")
    if key in SBATCH_BREAKS:
        why, instead = SBATCH_BREAKS[key]
        raise argparse.ArgumentTypeError(f"{said}: not taken, as {why}{f'; {instead}' if instead else ''}")


def _sbatch_lines(args) -> tuple:
    """The extra #SBATCH lines of `executor.Resources.sbatch` that --account, --qos, --constraint, --reservation,
    --exclusive and --sbatch ask for."""
    lines = [(key, getattr(args, key), f"--{key}") for key in SBATCH_OPTIONS if getattr(args, key) is not None]
    lines += [("exclusive", True, "--exclusive")] if args.exclusive else []
    return tuple(lines + [(key, value, "--sbatch") for key, value in args.sbatch or ()])


def register(sub) -> None:
    from hpcflow.resources import add_memory_check_argument

    p = sub.add_parser("submit", help="validate a job, then queue it on Slurm or as local processes (submitit)")
    p.add_argument("job", help="TOML job file")
    p.add_argument("--out", required=True, help="output directory of the command (run/nn: refused if it is not empty, unless --force)")
    p.add_argument("--executor", required=True, choices=("slurm", "local"),
                   help="slurm: queue the job with sbatch (through submitit); local: run it as a process on this "
                        "machine")
    p.add_argument("--command", default="run", choices=("run", "nn", "tune"), help="hpcflow command to run (default run)")
    p.add_argument("--force", action="store_true", help="run/nn: overwrite results in --out")
    p.add_argument("--resume", action="store_true", help="run/nn: continue the interrupted run in --out from its "
                   "checkpoint (checked as the command checks it)")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a job-file value (repeatable)")
    p.add_argument("--trials", type=whole_number(1, INT_LIMIT), help="tune: trials in all, shared over the --array workers")
    p.add_argument("--max-trials", type=whole_number(1, INT_LIMIT), metavar="M",
                   help="tune: stop drawing trials once the study holds M, every worker's counted (hpcflow tune's)")
    p.add_argument("--storage", help="tune: journal path or SQLAlchemy URL (default OUT/study.journal)")
    p.add_argument("--study", help="tune: study name (default: the job file's stem)")
    p.add_argument("--sampler", choices=("gp", "tpe", "random"), help="tune: overrides [tune].sampler")
    p.add_argument("--nodes", type=whole_number(1, MAX_NODES), default=1,
                   help="nodes of the job (sbatch --nodes; default 1, the only count --executor local takes)")
    p.add_argument("--ntasks-per-node", type=whole_number(1, MAX_PER_NODE), default=None,
                   help="MPI ranks per node (default 1, or one per GPU)")
    p.add_argument("--gpus-per-node", type=whole_number(0, MAX_PER_NODE), default=0,
                   help="--executor slurm: GPUs of each node (sbatch --gpus-per-node; default 0); also the default "
                        "--ntasks-per-node, one rank per GPU")
    p.add_argument("--cpus-per-task", type=whole_number(1, MAX_PER_NODE), default=None,
                   help="--executor slurm: CPUs (threads) of each task (default 1)")
    p.add_argument("--time", type=_time_limit, default=60,
                   help="time limit in whole minutes: minutes (default 60) or sbatch's M:S (30:00), H:M:S, D-H, "
                        "D-H:M, D-H:M:S")
    p.add_argument("--partition", help="--executor slurm: the partition to queue in (sbatch --partition; default: "
                   "the cluster's default partition)")
    p.add_argument("--mem", type=_memory, help="--executor slurm: memory per node (sbatch --mem: MiB, or 16G); the "
                   "limit that the estimate of memory per rank is checked against (default: the node's, from sinfo)")
    for key, what in zip(SBATCH_OPTIONS, ("the account charged", "the quality of service",
                                          "the node features required", "the reservation to run in")):
        p.add_argument(f"--{key}", type=_sbatch_value, help=f"--executor slurm: {what} (sbatch --{key})")
    p.add_argument("--exclusive", action="store_true", help="--executor slurm: whole nodes (sbatch --exclusive)")
    p.add_argument("--sbatch", action="append", type=_sbatch_option, metavar="KEY=VALUE",
                   help="--executor slurm: another #SBATCH --KEY=VALUE line (KEY alone: a flag; repeatable)")
    p.add_argument("--array", type=whole_number(1, MAX_ARRAY), default=1, help="tune: K workers sharing one study")
    p.add_argument("--mpi", help="--executor slurm: srun --mpi type of multi-task jobs (default pmi2; 'none' to "
                   "omit), one of srun --mpi=list where srun is here")
    p.add_argument("--signal-delay", type=whole_number(1, INT_LIMIT), default=120,
                   help="seconds before the time limit at which Slurm signals the job to checkpoint (default 120; "
                        "below --time)")
    p.add_argument("--logs", help="submitit folder for logs and pickles (default OUT_logs)")
    p.add_argument("--check", action="store_true", help="validate and print what would be queued; queue nothing")
    p.add_argument("--wait", action="store_true", help="wait for the jobs; exit with their largest exit status")
    p.add_argument("--quiet", action="store_true", help="passed on to the command where it has --quiet (run, nn, "
                   "tune: no progress bars)")
    add_memory_check_argument(p)  # (passed on to the command: it checks again on the node)
    p.set_defaults(func=run)
