"""`hpcflow run JOB.toml --out DIR [--force] [--resume]`: validate a job file, run it, write DIR/summary.json last.

Under mpiexec/srun the launch is checked, BLAS threads follow the CPUs each rank owns, and an error on one rank
ends every rank (`hpcflow.parallel.comm.abort_on_error`); only rank 0 writes and prints.
"""

from __future__ import annotations

import copy
import inspect
import os
import sys
import time
from contextlib import contextmanager

from hpcflow import __version__, resources
from hpcflow.jobs.shell import needs_escapes, shell_line, shell_unword, shell_word
from hpcflow.nn.files import CHECKPOINT as NN_CHECKPOINT


#: job kinds that train with torch: their `hpcflow.backend` work (sampling) runs on the host under auto
TORCH_KINDS = frozenset({"nn"})


def run(args) -> int:
    from hpcflow.parallel import comm as pcomm
    from hpcflow.stop_signals import interrupts_end_the_job

    pcomm.check_launch()
    with pcomm.abort_on_error() as c, write_failures_said(args), interrupts_end_the_job("hpcflow run"):
        pcomm.refuse_together(resources.check_environment, c)  # HPCFLOW_THREADS is read by limit_threads
        pcomm.limit_threads(c)
        with resources.skipped_memory_check(getattr(args, "no_memory_check", False)):  # (the sampler's check too)
            return _run(args, c)


def _run(args, comm) -> int:
    from hpcflow.jobs import outlock
    from hpcflow.parallel.comm import refuse_together

    module, cfg, outputs, overrides = refuse_together(lambda: prepare_job(args, comm), comm)
    same_job_on_every_rank(args, cfg, comm)
    args.resumed_by = resumed_by(cfg["job"]["kind"])  # the command a preempted run's stop line names (hpcflow.cli)
    if getattr(args, "check", False):  # --check: validation, resource and output checks only; nothing written
        refuse_together(lambda: outlock.refuse_held(args.out) if comm.Get_rank() == 0 else None, comm)
        resume, done, end = prepare_out(args, module, cfg, outputs, comm)
        unused_note(args, comm, "hpcflow run")
        if done is not None:  # what the run would say, with its exit status
            return nothing_to_do(args, comm, done)
        if comm.Get_rank() == 0:
            memory = (resources.describe(left_to_run(cfg, resume), ranks=comm.Get_size()) if end is None else
                      "no memory estimate: it samples no point and runs no step")
            note = resumed_note(cfg, resume) if end is None else ended_note(resume)
            print(f"hpcflow: {args.job}: valid; --out {args.out} accepted{note}; {memory}; "
                  f"{device_note(module, cfg)}; nothing run")
        return 0
    from hpcflow.backend import agree_backend

    # one backend on every rank (each probes its GPU), or refused together: before any work; nn trains with torch
    # and samples on CuPy only under cupy (auto: on the host), so no GPU is probed for its auto
    agree_backend(comm, auto_on_host=cfg["job"]["kind"] in TORCH_KINDS)
    # held before the first look into --out (so before --force removes anything) until the run ends
    with outlock.holding(args.out, command="hpcflow run", comm=comm, resume=bool(getattr(args, "resume", False)),
                         settle=True):
        resume, done, end = prepare_out(args, module, cfg, outputs, comm)
        unused_note(args, comm, "hpcflow run")
        return _locked_run(args, comm, module, cfg, outputs, overrides, resume, done, end)


def _locked_run(args, comm, module, cfg, outputs, overrides, resume, done, end=None) -> int:
    """The run itself, in --out (which this process has locked); an earlier run's files that --force replaces stay
    set aside until it ends (`hpcflow.jobs.replaced`). `end` (`prepare_out`): a --resume with no step to take, whose
    summary.json is written from the checkpoint (`summary_from_checkpoint`)."""
    from hpcflow.jobs.replaced import replacing

    if done is not None:  # its files stay as the run wrote them (summary, checkpoint, legs, wall_seconds)
        return nothing_to_do(args, comm, done)
    if end is not None:
        return summary_from_checkpoint(args, comm, cfg, overrides, resume, end)
    with replacing(args.out, force=args.force, outputs=outputs, resume=bool(resume), comm=comm) as outdir:
        return _write_run(args, comm, module, cfg, outdir, overrides, resume)


def nothing_to_do(args, comm, done) -> int:
    """--resume of a run that ended by its own rule (`prepare_out`'s done): said, with the status the run ended with
    (a numerical stop raises NumericalStop on every rank), by the run and by its --check alike."""
    said = f"{args.out} {done.why}: nothing to do; {done.fix}"
    if done.exit_status:  # a numerical stop: said as the run said it, with its status (every rank raises)
        from hpcflow.errors import NumericalStop

        raise NumericalStop(said)
    if comm.Get_rank() == 0:
        from hpcflow.jobs.replaced import kept_on_resume

        kept_on_resume(args.out, done=True)
        print(f"hpcflow run: {said}")
    return 0


def summary_from_checkpoint(args, comm, cfg, overrides, state, end) -> int:
    """--resume of a checkpoint that holds its run to the end (`end`: the (status, stopped) it ends with, taking no
    step: `hpcflow.checkpoint.end_without_steps`) where no finished summary.json describes it (a partial copy, a run
    killed after its last checkpoint, an extension that failed): summary.json written from the checkpoint
    (`hpcflow.checkpoint.summary_of`), no point sampled and no step run. checkpoint.h5 stays as it is (its rows,
    legs, per-rank histories), but for @status and @stopped where it was written before its run's last write
    ("running", "preempted": `record_end`); job.toml too, written only where it does not name the job. The summary's
    job_file, overrides and resumed_with are those the run's job.toml records (this --resume adds no leg). Exit status
    as the run's: 3 for a numerical stop."""
    from hpcflow.checkpoint import record_end, summary_of
    from hpcflow.errors import NumericalStop
    from hpcflow.jobs import output
    from hpcflow.provenance import provenance
    from hpcflow.stop_signals import finished

    root = comm.Get_rank() == 0
    output.remove_debris(args.out, comm=comm)
    this = {"job_file": os.path.abspath(args.job), "overrides": list(overrides)}
    origin = named = recorded_origin(args.out)
    if named is None:  # (said on stderr; job.toml is written below)
        origin = _summary_origin(args.out, this, comm=comm, prog="hpcflow run")
        origin["resumed_with"] = origin["resumed_with"][:-1]  # (this --resume's, which adds no leg)
    origin = {k: v for k, v in origin.items() if k != "resumed_with" or v}
    summary = summary_of(state, cfg, end)
    summary.update(kind=cfg["job"]["kind"], hpcflow_version=__version__, provenance=provenance(comm=comm), **origin)
    status, stopped = end
    finished()  # nothing is left to stop: a stop request from here on is ignored
    if (state.status, state.stopped) != (status, stopped):
        record_end(state.path, status, stopped, comm=comm)
    if named is None:
        output.write_text(os.path.join(args.out, "job.toml"), saved_job(cfg, args.job, overrides, origin=origin),
                          comm=comm)
    path = os.path.join(args.out, "summary.json")
    output.write_json(path, summary, comm=comm)  # last: its presence marks a complete run
    if root:
        from hpcflow.jobs.replaced import kept_on_resume

        kept_on_resume(args.out, wrote=path)
    ended = f"step {state.step}" + (f", {stopped}" if stopped else "")
    if status == "diverged":  # (every rank raises it)
        raise NumericalStop(f"{stopped}; outputs up to step {state.step} are in {args.out}")
    if root:
        print(f"hpcflow run: {args.out}: checkpoint.h5 holds the run to its end ({ended}) but no finished "
              f"summary.json described it: wrote {path} from the checkpoint, no step run")
    return 0


def ended_note(state) -> str:
    """For --check's line: a --resume with no step to take, which writes summary.json from the checkpoint."""
    return (f" (--resume has no step to run: checkpoint.h5 holds the run to its end at step {int(state.step)}, which "
            "no finished summary.json describes; it writes summary.json from it)")


def left_to_run(cfg: dict, resume) -> dict:
    """The job as far as a run still computes it, for --check's estimate: with --resume of a flow's checkpoint
    (`resume.step` steps done) its [flow].steps less those done; else `cfg` itself."""
    step = getattr(resume, "step", None)
    if step is None or "steps" not in cfg.get("flow", {}):
        return cfg
    return {**cfg, "flow": {**cfg["flow"], "steps": max(cfg["flow"]["steps"] - int(step), 0)}}


def resumed_note(cfg: dict, resume) -> str:
    """For --check's line: where --resume continues a flow's checkpoint (its steps done, the steps left), or ""."""
    left = left_to_run(cfg, resume)
    if left is cfg:
        return ""
    return (f" (--resume continues after step {int(resume.step)}: {left['flow']['steps']} of {cfg['flow']['steps']} "
            "steps left)")


def _write_run(args, comm, module, cfg, outdir, overrides, resume) -> int:
    """Run the job into `outdir`; summary.json last."""
    from hpcflow.errors import RunStop
    from hpcflow.jobs import output
    from hpcflow.stop_signals import finished

    t0 = time.perf_counter()
    stop = None
    origin = job_origin(outdir, args.job, overrides, comm=comm) if resume else None  # (before this run rewrites it)
    try:
        params = inspect.signature(module.run).parameters
        named = {"source": args.job} if "source" in params else {}  # for errors
        if "job_text" in params:  # a kind with checkpoints writes job.toml beside its first one
            named["job_text"] = saved_job(cfg, args.job, overrides, origin=origin)
        if "log_prefix" in params:  # a kind that prefixes its lines (nn) names the command typed
            named["log_prefix"] = "hpcflow run:"
        if resume:
            named["resume"] = resume
        from hpcflow.flow import stops_said_by_caller
        from hpcflow.jobs.registry import set_values_named

        # a numerical stop ends the run with its reason in the "stopped:" line; a refusal of a --set value names it
        # (a checkpoint refused once the points are sampled: its point data, its rows) gives the line to start over
        with stops_said_by_caller(), set_values_named(overrides), restart_given(args, "run"):
            summary = dict(module.run(cfg, outdir, **named))
    except RunStop as exc:  # a numerical stop: outputs written, its summary (if any) still goes to disk
        if getattr(exc, "summary", None) is None:
            raise
        summary, stop = dict(exc.summary), exc
    summary["wall_seconds"] = time.perf_counter() - t0
    if summary.get("legs"):  # a checkpointed flow: the earlier runs' legs as recorded, then this whole run
        from hpcflow.checkpoint import run_total

        summary["wall_seconds_total"] = run_total(summary["legs"], summary["wall_seconds"])
    summary.update(kind=cfg["job"]["kind"], job_file=os.path.abspath(args.job), hpcflow_version=__version__)
    summary.setdefault("config", cfg)
    summary.setdefault("ranks", comm.Get_size())  # every kind: the kinds that run whole on each rank say so too
    if "provenance" not in summary:  # the flow's own is taken where it ends; the other kinds' here (collective)
        from hpcflow.provenance import provenance

        summary["provenance"] = provenance(comm=comm)
    summary["overrides"] = overrides
    if origin is not None:  # a resume: the first run's job file and --set values, then each resume's
        summary.update(origin)
    finished()  # the run's work is done, its status decided: a stop request from here on is ignored
    output.write_text(os.path.join(outdir, "job.toml"), saved_job(cfg, args.job, overrides, origin=origin))
    output.write_json(os.path.join(outdir, "summary.json"), summary)  # last: its presence marks a complete run
    if stop is not None:
        raise stop
    if comm.Get_rank() == 0:
        print(f"hpcflow run: wrote {os.path.join(outdir, 'summary.json')} ({summary['wall_seconds']:.1f} s)")
    return 0


def cupy_missing() -> bool:
    """HPCFLOW_BACKEND=cupy on a node without a GPU CuPy counts, which a run here refuses (counted, not probed with a
    kernel: a check keeps no CUDA context in its process, `hpcflow.backend.gpu_counted`)."""
    from hpcflow.backend import gpu_counted

    return os.environ.get("HPCFLOW_BACKEND", "").strip().lower() == "cupy" and gpu_counted() is not None


def backend_note() -> str:
    """The array backend a run would take here (--check may run on a login node for a GPU job: no refusal); where
    CuPy's GPU is not usable, why (`hpcflow.backend.gpu_problem`) if cupy is asked for, or if auto falls back to
    numpy although CuPy is installed (the GPU counted, not probed with a kernel: `hpcflow.backend.gpu_counted`)."""
    from hpcflow.backend import gpu_counted

    if cupy_missing():
        problem = gpu_counted()
        why = f" ({problem[1]})" if problem else ""
        return f"backend cupy, but this node has no usable GPU{why}: run it on a GPU node"
    want = os.environ.get("HPCFLOW_BACKEND", "").strip().lower() or "auto"
    problem = gpu_counted() if want == "auto" else None
    if problem is not None:
        return f"backend numpy ({problem[1]})" if problem and problem[0] in ("import", "unusable") else "backend numpy"
    return "backend numpy" if want == "numpy" else "backend cupy"


def device_note(module, cfg) -> str:
    """What a run here would compute on, for --check's line: the array backend (`backend_note`), or for a kind with
    a device of its own (a network's torch device: its module's `device_note`) that device, and the backend only
    where this node lacks the GPU it asks for. A missing GPU is said, not refused: a login node checks GPU jobs."""
    own = getattr(module, "device_note", None)
    if own is None:
        return backend_note()
    return own(cfg) + (f"; {backend_note()}" if cupy_missing() else "")


def missing_gpu_note(module, cfg) -> str | None:
    """`device_note` where the job asks for a GPU this node lacks (its module's `gpu_missing`, HPCFLOW_BACKEND=cupy),
    else None: submit --check's warning (the job itself may run on another node)."""
    own = getattr(module, "gpu_missing", None)
    return device_note(module, cfg) if cupy_missing() or (own is not None and own(cfg)) else None


def prepare_job(args, comm):
    """The job's input checks of `hpcflow run`, before any work and before --out is looked into: (module, cfg,
    outputs, overrides)."""
    from hpcflow.backend import gpu_checked_elsewhere
    from hpcflow.errors import ConfigError
    from hpcflow.jobs import registry

    refuse_resume_with_force(args)
    overrides = list(args.set or [])
    with gpu_checked_elsewhere(getattr(args, "check", False)):  # --check: a missing GPU is said, not refused
        module, cfg, extras = registry.load_with_extras(  # every job-file error surfaces here, before any work
            args.job, overrides, memory_check=not getattr(args, "no_memory_check", False), ranks=comm.Get_size())
    if getattr(args, "quiet", False):  # after the check of the environment (a bad HPCFLOW_QUIET is refused)
        os.environ["HPCFLOW_QUIET"] = "1"  # no progress bars (hpcflow.progress); the plain progress lines stay
    if "tune" in extras and comm.Get_rank() == 0:  # validated by the registry, left out of cfg
        tune_section_note(args.job, "hpcflow run")
    if cfg["job"]["kind"] == "nn":  # keys in a switched-off section, said once the checks of --out pass
        from hpcflow.jobs.schema import apply_overrides, read_toml
        from hpcflow.nn.job import unused_keys_note

        args.unused_note = unused_keys_note(apply_overrides(read_toml(args.job), overrides, source=args.job), cfg)
    outputs = registry.OUTPUTS.get(cfg["job"]["kind"], ())
    resume = bool(getattr(args, "resume", False))
    if resume and not registry.checkpointed(cfg["job"]["kind"]):
        raise ConfigError(f"--resume: job kind {cfg['job']['kind']!r} has no checkpoints; run it without --resume")
    if resume and resumed_by(cfg["job"]["kind"]) == "nn":
        raise ConfigError(f"--resume: a network job continues with 'hpcflow nn', not 'hpcflow run': "
                          f"{continue_command(args, 'nn')}")
    return module, cfg, outputs, overrides


def tune_section_note(job: str, prog: str) -> None:
    """One note on stderr that `job`'s [tune] section is not used by `prog` (it was ignored unsaid): a user who meant
    a study learns which command reads it."""
    print(f"{prog}: note: {job}'s [tune] section is not used here (the job runs as written); 'hpcflow tune {job} "
          "--trials N --out DIR' reads it", file=sys.stderr)


def unused_note(args, comm, prog: str) -> None:
    """On rank 0, once every input check passed (a refusal stays one line): one line naming the keys a network job
    gives a value in a section switched off ([ntk], [width_sweep], [kernel_flow]: `hpcflow.nn.job.unused_keys_note`,
    found by `prepare_job`), which the run accepts and does not use. A warning of a likely mistake, said under --quiet
    (or HPCFLOW_QUIET=1) too, as the other such notes of `hpcflow run` and `hpcflow nn` are (the [tune] section not
    used, a batch of few rows per rank): --quiet silences progress (bars and their plain lines) only."""
    note = getattr(args, "unused_note", None)
    if note is not None and comm.Get_rank() == 0:
        print(f"{prog}: {note}", flush=True)


def prepare_out(args, module, cfg, outputs, comm):
    """The checks of --out (under its lock, but for --check): (resume, done, end); resume: the checked checkpoint
    state of --resume (`module.resume_state`, passed on to `module.run`), else None; done: for a run that ended by its
    own rule (steps done, early stop, numerical stop), whose finished summary.json describes it, and that --resume has
    nothing to add to, `module.resume_done`'s record of it (else None); end: for a checkpoint with no step left to
    take (`hpcflow.checkpoint.end_without_steps`) that no finished summary.json describes (a partial copy, a run
    killed after its last checkpoint) or that was written before its run's last write, the (status, stopped) it ends
    with, from which `summary_from_checkpoint` writes summary.json (else None). Collective: a refusal on any rank is
    raised by every rank."""
    from hpcflow.checkpoint import FlowResume, end_without_steps
    from hpcflow.jobs import output
    from hpcflow.parallel.comm import refuse_together

    with output.probes_shared([output.probed_directory(args.out)], comm):  # one probe file, not one a rank
        resuming = refuse_together(lambda: _check_out(args, outputs, cfg["job"]["kind"]), comm)
    if not resuming:
        return None, None, None
    with restart_given(args, "run"):  # collective: damaged, another job: every rank raises
        state = module.resume_state(cfg, args.out, comm=comm)
    interrupted = output.interrupted(args.out, "checkpoint.h5")  # its summary is still to write
    done = None if interrupted else module.resume_done(state, cfg)
    if done is not None:
        return state, done, None
    end = end_without_steps(state, cfg["flow"]["steps"], cfg["flow"]["early_stop"]) if isinstance(
        state, FlowResume) else None
    return state, None, end


def _check_out(args, outputs, kind: str) -> bool:
    """This rank's look into --out (no collective): writable outputs, and with --resume a checkpoint there; True for
    --resume. A network job's interrupted run there (checkpoint.pt) is refused naming the command that continues it."""
    from hpcflow.jobs import output

    if not getattr(args, "resume", False):
        output.refuse_foreign(args.out, job=args.job)  # a user's file named as a run's first
        again = force_command(args, "run")
        if resumed_by(kind) == "nn":
            output.refuse_interrupted(args.out, NN_CHECKPOINT, force=args.force,
                                      resume=f"'{continue_command(args, 'nn')}'", again=again)
        refuse_other_interrupted(args.out, kind, outputs, force=args.force, again=again)
        output.check_outdir(args.out, force=args.force, outputs=outputs, again=again)
        return False
    output.refuse_no_checkpoint(args.out, "checkpoint.h5", command="hpcflow run")
    output.check_outdir(args.out, force=True, outputs=outputs, resume=True)  # the outputs it rewrites are writable
    return True


#: the checkpoint a run continued by `hpcflow VERB --resume` (`resumed_by`) leaves in --out, and what it counts
CHECKPOINTS = {"run": ("checkpoint.h5", "steps"), "nn": (NN_CHECKPOINT, "epochs")}


def refuse_other_interrupted(out: str, kind: str, outputs, *, force: bool = False, again: str | None = None) -> None:
    """Without force, OutputPathError for an --out that holds an interrupted run of another command's checkpoint than
    a job of `kind` writes (`outputs`): a flow's checkpoint.h5 under a network job, a network's checkpoint.pt under
    a flow or a job without checkpoints, which this job's --resume cannot continue; the line names the command that
    does (with DIR/job.toml, which such a run writes beside its first checkpoint); a damaged one, `again`, the command
    line that replaces it (--force), where given."""
    from hpcflow.errors import OutputPathError
    from hpcflow.jobs.output import checkpoint_damage, damaged_said, interrupted, refuse_set_aside

    for verb, (name, _) in CHECKPOINTS.items():
        if not force and name not in outputs and interrupted(out, name):
            damage = checkpoint_damage(os.path.join(out, name))
            if damage:  # (which 'hpcflow VERB --resume' would refuse too)
                refuse_set_aside(out)
                fix = (f"choose another --out for this {kind} job, or {launch_note()}replace that run with: {again}"
                       if again else
                       f"choose another --out for this {kind} job, or pass --force to replace that run")
                raise OutputPathError(damaged_said(out, name, damage, fix=fix))
            saved = os.path.join(out, "job.toml")
            again = shell_line(["hpcflow", verb, saved if os.path.isfile(saved) else "JOB", "--out", out, "--resume"])
            refuse_set_aside(out, resume=f"'{again}'")  # an earlier run's files set aside there are named first
            raise OutputPathError(f"--out {out} holds an interrupted run of 'hpcflow {verb}' ({name} that no finished "
                                  f"summary.json describes), of another job kind than this {kind} job, which cannot "
                                  "continue it: choose another --out for this job, pass --force to replace that run, "
                                  f"or continue it with: {again}")


@contextmanager
def write_failures_said(args, command: str = "run"):
    """A write that failed for a reason outside the program (WriteFailed, exit status 5) in the block says what
    --out kept and how to go on (`write_advice`), on the rank that raised it (rank 0 writes); --out removed or moved
    away meanwhile (`hpcflow.atomic.DirectoryGone`) is said as "--out DIR", with the command that continues the run
    where it is moved back, or runs it again (`hpcflow COMMAND`)."""
    from hpcflow.atomic import DirectoryGone
    from hpcflow.errors import WriteFailed

    try:
        yield
    except DirectoryGone as exc:
        if os.path.abspath(exc.gone) == os.path.abspath(args.out):
            exc.said = f"--out {args.out}"
        verb = getattr(args, "resumed_by", None) or command
        exc.advice = (f"if it was moved, move it back to {exc.gone}, then {continue_with(args, verb)} (from its last "
                      f"checkpoint, where one was written); else run it again: {again_command(args, command)}")
        raise
    except WriteFailed as exc:
        exc.advice = write_advice(exc, args)
        raise


def write_advice(exc, args) -> str:
    """After WriteFailed `exc` in the run of `args`: the checkpoint in --out that --resume continues (one this run or
    the run it resumed wrote: with --resume, or one no finished summary.json describes) and the command line that
    continues it; else that none is there, and to run it again."""
    from hpcflow.jobs.output import checkpoint_progress, interrupted, is_result

    verb = getattr(args, "resumed_by", None)  # set once the job is read
    if verb in CHECKPOINTS:
        name, unit = CHECKPOINTS[verb]
        path = os.path.join(args.out, name)
        done = checkpoint_progress(path) if os.path.isfile(path) else None
        if done is not None and (getattr(args, "resume", False) or interrupted(args.out, name)):
            unit = unit.removesuffix("s") if done == 1 else unit
            return (f"the last complete checkpoint {path} ({done} {unit} done) is intact: {exc.fix}, then "
                    f"{continue_with(args, verb)}")
    again = " with --force" if os.path.isdir(args.out) and any(map(is_result, os.listdir(args.out))) else ""
    return f"no checkpoint to continue from: {exc.fix}, then run it again{again}"


def resumed_by(kind: str) -> str:
    """The hpcflow command that continues an interrupted run of job kind `kind`: nn for a network job (whose
    checkpoint.pt `hpcflow run --resume` does not read, though `hpcflow run` runs such jobs), else run."""
    return "nn" if kind == "nn" else "run"


def continue_command(args, verb: str) -> str:
    """The shell command line that continues the run of `args` (run or nn) in --out: `hpcflow VERB JOB --out DIR`,
    its --quiet and --no-memory-check, `--resume` and its --set values (a resume refuses another job), in the order
    `hpcflow submit` queues them."""
    return _command_line(args, verb, "--resume")


def again_command(args, verb: str) -> str:
    """The shell command line that runs the job of `args` (run or nn) in --out from the start: `continue_command`'s
    without --resume (with --force where it was given)."""
    return _command_line(args, verb, "--force" if getattr(args, "force", False) else None)


def force_command(args, verb: str) -> str:
    """The shell command line that starts the run of `args` (run or nn) over in --out, replacing the run there:
    `continue_command`'s with --force in place of --resume."""
    return _command_line(args, verb, "--force")


def _command_line(args, verb: str, how: str) -> str:
    """`hpcflow VERB JOB --out DIR`, the --quiet and --no-memory-check of `args`, `how` (--resume, --force) and its
    --set values, as one shell line."""
    argv = ["hpcflow", verb, args.job, "--out", args.out]
    argv += [flag for flag, given in (("--quiet", getattr(args, "quiet", False)),
                                      ("--no-memory-check", getattr(args, "no_memory_check", False))) if given]
    return shell_line([*argv, *([how] if how else []), *(x for s in args.set or [] for x in ("--set", s))])


@contextmanager
def restart_given(args, verb: str):
    """A refusal of --resume's checkpoint (damaged, foreign: an InputFileError advising to start over with --force,
    `hpcflow.checkpoint.RESTART` or the network's `hpcflow.nn.checkpoint.RESTART`) raised in the block gives the
    command line that does (`force_command`) in place of those words, on one line still; only for `args` parsed from
    the command typed (argparse's `func` set), not for a caller's own (`hpcflow submit --check`'s, which queues)."""
    from hpcflow.errors import InputFileError
    from hpcflow.jobs.output import restart_said

    if verb == "nn":
        from hpcflow.nn.checkpoint import RESTART
    else:
        from hpcflow.checkpoint import RESTART
    try:
        yield
    except InputFileError as exc:
        if getattr(args, "func", None) is None:
            raise
        said = str(exc)
        for words in (RESTART,):
            if words in said:  # (the same type with whatever it carries: `collective` of `raise_together`)
                new = copy.copy(exc)
                new.args = (said.replace(words, restart_said(force_command(args, verb))),)
                raise new from None
        raise


def continue_with(args, verb: str) -> str:
    """"continue with: " and `continue_command`; under R > 1 ranks first the launcher the run was started with and
    what another rank count gives (`launch_note`), which the command line cannot say: pasted as it is, it would
    continue on one rank."""
    return f"{launch_note(verb=verb)}continue with: {continue_command(args, verb)}"


def launch_note(environ=None, *, comm=None, verb: str = "run") -> str:
    """"" for one rank; else "under NAME (R ranks, or any other number), " for a flow (`hpcflow run`), whose resume at
    any rank count continues it as it would have gone on, and "under NAME (R ranks continue it bit for bit, another
    number to rounding), " for a network (`verb` nn), where NAME is how this process's ranks were started: srun where
    srun started each rank (its step's tasks are the R ranks, this one its task SLURM_PROCID; no mpiexec of MPICH or
    Open MPI between them), else mpiexec (the MPI standard's start). Words, not a prefix: srun may need the run's own
    options (--mpi=pmi2, the allocation's)."""
    from hpcflow.parallel.comm import rank, size

    env = os.environ if environ is None else environ
    ranks = size(comm)
    if ranks == 1:
        return ""
    by_srun = (env.get("SLURM_STEP_NUM_TASKS", "").strip() == str(ranks)
               and env.get("SLURM_PROCID", "").strip() == str(rank(comm))
               and not any(k.startswith(("HYDI_", "HYDRA_", "OMPI_")) for k in env))
    counts = (f"{ranks} ranks continue it bit for bit, another number to rounding" if verb == "nn"
              else f"{ranks} ranks, or any other number")
    return f"under {'srun' if by_srun else 'mpiexec'} ({counts}), "


def recorded_path(path: str) -> str:
    """A path as DIR/job.toml's header records it: as it is, or (`shell_word`'s $'...') where it is not UTF-8 or
    holds a control character, which a TOML file cannot hold; `job_origin` reads either back (`shell_unword`: a
    recorded path is absolute, so never starts with $)."""
    return shell_word(path) if needs_escapes(path) else path


#: the options whose value changes what a job-running command does (each rank must be given the same)
AGREED_OPTIONS = ("out", "resume", "force", "check")


def same_job_on_every_rank(args, cfg: dict, comm, options=AGREED_OPTIONS) -> None:
    """Refuse (ConfigError, exit 2, every rank together, before any work) ranks started with different jobs: the
    validated job after the --set overrides (each key as [SECTION].KEY) and `options` (--out, --resume, --force and
    --check; `hpcflow tune` its own) (`parallel.comm.agree_together`: one allgather of a digest). Ranks of an MPMD
    launch (`mpiexec -n 1 ... : -n 1 ... --set ...`) went on with their own jobs, into the collectives of sampling
    and training, and failed late on a Python-API check (`TrainConfig.lr differs between ranks`, exit 1) or not at
    all."""
    from hpcflow.parallel.comm import agree_together

    values = {f"[{sec}].{key}": v for sec, table in cfg.items() if isinstance(table, dict) for key, v in table.items()}
    values.update({f"--{name.replace('_', '-')}": getattr(args, name, None) for name in options})
    agree_together(values, comm=comm, fix="start every rank with the same job file, --set values and options (one "
                                          "command line after mpiexec -n R)")


def refuse_resume_with_force(args) -> None:
    """--resume continues the run in --out, --force starts it over: given together they are refused (exit 2)."""
    from hpcflow.errors import ConfigError

    if getattr(args, "resume", False) and getattr(args, "force", False):
        raise ConfigError("--resume and --force exclude each other (--resume continues the run in --out, --force "
                          "starts it over); drop one")


def saved_job(cfg: dict, job: str, overrides, *, origin: dict | None = None) -> str:
    """DIR/job.toml: the validated configuration (defaults filled in) as TOML, naming the file and overrides; for a
    --resume, `origin` (`job_origin`): the first run's file and overrides, then each resume's, this one's last."""
    from hpcflow.jobs.toml_out import dumps

    first = origin or {"job_file": os.path.abspath(job), "overrides": list(overrides)}
    header = f"{HEADER_LEAD.format(version=__version__)}{recorded_path(first['job_file'])}"
    if first["overrides"]:
        header += f"\n{RUN_WITH}{_set_args(first['overrides'])}"
    for leg in (origin or {}).get("resumed_with", []):
        header += f"\n{RESUMED_FROM}{recorded_path(leg['job_file'])}" + (f"{WITH}{_set_args(leg['overrides'])}"
                                                         if leg["overrides"] else "")
    return dumps(cfg, header=header)


#: the lines of DIR/job.toml's header that name the job file and the --set values of its run and of each --resume
HEADER_LEAD, RUN_WITH, RESUMED_FROM, WITH = "hpcflow {version}: the validated configuration of ", "run with: ", \
    "resumed from ", " with: "


def _set_args(overrides) -> str:
    return shell_line(x for o in overrides for x in ("--set", o))


def job_origin(outdir: str, job: str, overrides, *, comm=None, prog: str = "hpcflow run") -> dict:
    """Where the run that --resume continues in `outdir` came from, for its summary.json and DIR/job.toml: job_file
    and overrides of its first run, read back from the header of the DIR/job.toml an earlier run wrote, and
    resumed_with: each --resume's job file and --set values, this one's last. A resume from DIR/job.toml thus keeps
    naming the job file and --set values the run was made from. Where that header does not name the job (job.toml
    missing, damaged or overwritten) they come from the summary.json an earlier run wrote (`_summary_origin`)."""
    this = {"job_file": os.path.abspath(job), "overrides": list(overrides)}
    recorded = recorded_origin(outdir)
    if recorded is None:
        return _summary_origin(outdir, this, comm=comm, prog=prog)
    return {**recorded, "resumed_with": [*recorded["resumed_with"], this]}


def recorded_origin(outdir: str) -> dict | None:
    """The job_file and overrides of the first run in `outdir` and resumed_with (each earlier --resume's, first to
    last; [] for none) as the header of its DIR/job.toml records them; None where that header names no job."""
    import re
    import shlex

    try:
        with open(os.path.join(outdir, "job.toml"), encoding="utf-8") as fh:
            lines = [line[2:].rstrip("\n") for line in fh if line.startswith("# ")]
    except (OSError, ValueError):
        lines = []

    def sets(text):
        try:
            words = shlex.split(text)
        except ValueError:
            return None
        return words[1::2] if len(words) % 2 == 0 and all(w == "--set" for w in words[::2]) else None

    lead = re.fullmatch(re.escape(HEADER_LEAD).replace(re.escape("{version}"), r"\S+") + "(.+)", lines[0]) \
        if lines else None
    if lead is None:
        return None
    first, legs = {"job_file": shell_unword(lead.group(1)), "overrides": []}, []
    for line in lines[1:]:
        if line.startswith(RUN_WITH) and not legs and sets(line[len(RUN_WITH):]) is not None:
            first["overrides"] = sets(line[len(RUN_WITH):])
        elif line.startswith(RESUMED_FROM):
            path, _, given = line[len(RESUMED_FROM):].partition(WITH)
            legs.append({"job_file": shell_unword(path), "overrides": (sets(given) or []) if given else []})
    return {**first, "resumed_with": legs}


def _summary_origin(outdir: str, this: dict, *, comm, prog: str) -> dict:
    """`job_origin` where DIR/job.toml names no job: the first run's job file and --set values and each resume's from
    the summary.json an earlier run of this --out wrote (job_file, overrides, resumed_with), else this run's stand in;
    either said on stderr (rank 0). Before, this run's --set values were recorded as the first run's unsaid."""
    from hpcflow.jobs.output import read_summary
    from hpcflow.parallel.comm import resolve

    summary = read_summary(outdir) or {}
    first, sets, legs = summary.get("job_file"), summary.get("overrides"), summary.get("resumed_with", [])
    known = isinstance(first, str) and isinstance(sets, list) and isinstance(legs, list) and all(
        isinstance(g, dict) and isinstance(g.get("job_file"), str) and isinstance(g.get("overrides"), list)
        for g in legs)
    if resolve(comm).Get_rank() == 0:
        saved = os.path.join(outdir, "job.toml")
        print(f"{prog}: {saved} does not name the job its run was made from (missing, damaged or "
              "overwritten); " + ("the first run's job file and --set values are taken from summary.json" if known
                                  else "neither does summary.json: job.toml and summary.json name this run's job "
                                  "file and --set values as the first run's"), file=sys.stderr)
    if not known:
        return {**this, "resumed_with": [this]}
    return {"job_file": first, "overrides": [str(o) for o in sets],
            "resumed_with": [{"job_file": g["job_file"], "overrides": list(g["overrides"])} for g in legs] + [this]}


def register(sub) -> None:
    p = sub.add_parser("run", help="run a TOML job file (kinds: flow, noise_scan, ...) into an output directory")
    add_job_arguments(p, "TOML job file, e.g. jobs/quickstart.toml")
    p.add_argument("--resume", action="store_true",
                   help="continue the flow (kind \"flow\") checkpointed in --out (same job; [flow].steps may grow, "
                        "[geometry].max_batches, [checkpoint] and [job].description may change); "
                        "a network job (kind \"nn\") resumes with 'hpcflow nn JOB --out DIR --resume'")
    p.set_defaults(func=run)


#: --set's examples of `hpcflow run`: a value, and an optional key unset (a flow job's)
SET_EXAMPLES = ("training.lr=3e-3", "clustering.method=none")


def add_job_arguments(p, job_help: str, set_examples: tuple = SET_EXAMPLES) -> None:
    """The JOB, --out and --force arguments shared by the job-running subcommands; `set_examples` (a value, an
    optional key unset) are keys of the jobs the command runs."""
    p.add_argument("job", help=job_help)
    p.add_argument("--out", required=True, help="output directory (refused if it holds files, unless --force)")
    p.add_argument("--force", action="store_true",
                   help="run in a --out that holds files: an earlier run's files are set aside, removed once this "
                        "run has written its own (put back if it is refused), others left alone")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help=f"override one job-file value (TOML syntax; repeatable), e.g. --set {set_examples[0]}; "
                        f"none unsets an optional key (--set {set_examples[1]})")
    p.add_argument("--quiet", action="store_true", help="no progress bars (as HPCFLOW_QUIET=1); notes that warn of a "
                                                        "likely mistake are still said")
    p.add_argument("--check", action="store_true",
                   help="validate the job, its memory estimate and --out, then stop (nothing written)")
    resources.add_memory_check_argument(p)
