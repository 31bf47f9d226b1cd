"""`hpcflow nn JOB.toml --out DIR [--force | --resume]`: run a job of kind "nn" (finite networks, sec. 3.3).

Under `mpiexec -n R` the network trains data parallel over the R ranks. `--resume` continues the run in DIR
from DIR/checkpoint.pt (bitwise as if never interrupted, at the same R and threads per rank); a larger
[training].epochs extends a finished run (the same epochs: "nothing to do", its files left as they are, but for a
model.pt or model.pt.json missing, damaged or not the network in checkpoint.pt (`hpcflow.nn.job.model_fault`),
written again from that network, and a missing or
damaged nn.h5 (also one without a dataset or attribute the run writes, or not what the run of checkpoint.pt wrote:
`hpcflow.nn.h5schema.fault`), for which what follows the training is redone from checkpoint.pt, also where a
width-sweep or kernel-flow network diverged after it, which it does again); any other change of the job is refused
before any work.
"""

from __future__ import annotations

import os
import sys

from hpcflow import __version__
from hpcflow.commands.run import (add_job_arguments, device_note, force_command, refuse_other_interrupted,
                                  refuse_resume_with_force, restart_given, same_job_on_every_rank, tune_section_note,
                                  unused_note, write_failures_said)
from hpcflow.errors import ConfigError, RunStop


def run(args) -> int:
    """The command, wrapped whole: a SIGTERM/SIGUSR1 before the job's own stop handling (its validation, torch's
    import, --out's lock, the checkpoint read) ends it in one line with 128 + the signal, under mpiexec too (every
    rank aborted); one rank's error ends every rank."""
    from hpcflow.parallel.comm import abort_on_error, check_launch
    from hpcflow.resources import skipped_memory_check
    from hpcflow.stop_signals import interrupts_end_the_job

    check_launch()
    with abort_on_error() as comm, interrupts_end_the_job("hpcflow nn"), \
            skipped_memory_check(getattr(args, "no_memory_check", False)):  # (the sampler's check too)
        return _command(args, comm)


def _command(args, comm) -> int:
    from hpcflow.jobs import outlock, output
    from hpcflow.nn._torch import require_torch
    from hpcflow.parallel.comm import refuse_together

    # every input check, on every rank, before any work; the ranks refuse together (rank 0 prints one line)
    module, cfg, overrides = refuse_together(lambda: prepare_job(args, comm), comm)
    same_job_on_every_rank(args, cfg, comm)
    if getattr(args, "quiet", False):  # after the check of the environment (a bad HPCFLOW_QUIET is refused)
        os.environ["HPCFLOW_QUIET"] = "1"  # no progress bars; the plain per-epoch lines stay
    if getattr(args, "check", False):  # --check: validation, resource and output checks only; nothing written
        from hpcflow import resources

        refuse_together(lambda: outlock.refuse_held(args.out) if comm.Get_rank() == 0 else None, comm)
        with output.probes_shared([output.probed_directory(args.out)], comm):  # one probe file, not one a rank
            refuse_together(lambda: prepare_out(args, module, cfg), comm)
        unused_note(args, comm, "hpcflow nn")
        if comm.Get_rank() == 0:
            print(f"hpcflow nn: {args.job}: valid; --out {args.out} accepted; "
                  f"{resources.describe(cfg, ranks=comm.Get_size())}; {device_note(module, cfg)}; nothing run")
        return 0
    # held before the first look into --out (so before --force removes anything) until the run ends
    with outlock.holding(args.out, command="hpcflow nn", comm=comm, resume=bool(args.resume),
                         settle=True) as lock:
        with output.probes_shared([output.probed_directory(args.out)], comm):
            outdir, resume = refuse_together(lambda: prepare_out(args, module, cfg), comm)
        refuse_together(require_torch, comm)  # after the refusals of --out, before --force removes anything
        unused_note(args, comm, "hpcflow nn")
        done = None if resume is None else already_finished(resume, cfg, outdir)
        fault = None if done is None else comm.bcast(nn_h5_fault(outdir, resume) if comm.Get_rank() == 0 else None,
                                                     root=0)  # rank 0 looks, for all
        if fault and redoes_nn_h5(done, resume):
            done = None  # a finished run less a whole nn.h5 (a partial copy, a disk error): redone after training
            if comm.Get_rank() == 0:
                again = "; it diverges again with the same settings" if resume.get("status") == "diverged" else ""
                why = fault.partition(" ")[2]
                print(f"hpcflow nn: {outdir}: nn.h5 {'missing from' if fault == 'missing' else 'damaged in'} a "
                      f"finished run{' ' + why if why else ''}; redoing from checkpoint.pt what follows its training "
                      f"({_redone(cfg)}) to write it again{again}")
        elif fault:  # diverged in training: its nn.h5 is not made again without training the diverging epoch
            done = done._replace(fix=f"its nn.h5 is {fault}; {done.fix}")
        if done is not None:  # its files stay as the run wrote them (summary, width sweep, kernel flow)
            said = f"{outdir} {done.why}: nothing to do; {done.fix}"
            if done.exit_status:  # diverged: said as the run said it, with its status (every rank raises)
                from hpcflow.errors import NumericalStop

                raise NumericalStop(said)
            # a finished run's network is whole in its checkpoint: a model.pt not that network is written again
            why = refuse_together(lambda: module.model_fault(outdir, resume, cfg), comm)
            if why is not None:
                module.restore_model(cfg, resume, outdir, comm=comm)
            if comm.Get_rank() == 0:
                from hpcflow.jobs.replaced import kept_on_resume

                kept_on_resume(outdir, done=True)
                if why is not None:
                    print(f"hpcflow nn: {outdir}: {why}; wrote model.pt and model.pt.json again from checkpoint.pt")
                print(f"hpcflow nn: {said}")
            return 0
        created = lock is not None and lock.created
        return _run(args, comm, module, cfg, outdir, resume, created, overrides)


def already_finished(resume: dict, cfg: dict, outdir: str):
    """A run that --resume has nothing to add to (its summary describes it), as `flow_job.Finished`, else None: its
    [training].epochs are done, or its network diverged (a resume keeps the [training] settings and would train the
    diverging epoch again from the same state)."""
    from hpcflow.errors import EXIT_NUMERICAL
    from hpcflow.experiments.flow_job import Finished
    from hpcflow.jobs.output import interrupted
    from hpcflow.nn.files import CHECKPOINT

    epoch, status, epochs = int(resume["train"]["epoch"]), resume.get("status"), cfg["training"]["epochs"]
    if interrupted(outdir, CHECKPOINT):
        return None
    if status == "diverged":
        return Finished(epoch, *_diverged(resume), EXIT_NUMERICAL)
    if status == "finished" and epoch >= epochs:
        return Finished(epoch, f"already finished at epoch {epoch} ([training].epochs = {epochs})",
                        "raise [training].epochs to extend it", 0)
    return None


def nn_h5_fault(outdir: str, state: dict | None = None) -> str | None:
    """"missing", "damaged" (h5py cannot open it or walk it) or "damaged (why)" (it lacks an attribute or dataset a
    run writes, holds one of another shape or dtype, or a value no run writes: `hpcflow.nn.h5schema.fault`, the judge
    the analysis asks too; against checkpoint `state` where given, a finished or diverged run's: its epochs, status,
    job and histories) of DIR/nn.h5, None when it holds what it should."""
    from hpcflow.nn.h5schema import fault

    return fault(os.path.join(outdir, "nn.h5"), state=state)


def redoes_nn_h5(done, resume: dict) -> bool:
    """Whether --resume of the ended run `done` (`already_finished`) whose nn.h5 is missing or damaged writes it again
    from checkpoint.pt: it holds the whole training (finished, or a sweep or kernel-flow network diverged after it)."""
    return not done.exit_status or _whole_training(resume)


def _whole_training(resume: dict) -> bool:
    """Whether a checkpoint holds the whole training of its job (a width-sweep or kernel-flow network diverged
    after it, not the main network)."""
    train = resume["train"]
    return not int(train["position"]) and int(train["epoch"]) >= _length_of(resume)


def _redone(cfg: dict) -> str:
    """What a --resume redoes after training, in a few words: the NTK results from the checkpoint's kernels, the
    width sweep and kernel flow where the job has them, and the outputs."""
    parts = ["the NTK's spectra" if cfg["ntk"]["enabled"] else None,
             "the width sweep" if cfg["width_sweep"]["widths"] else None,
             "the kernel flow" if cfg["kernel_flow"]["enabled"] else None, "the outputs"]
    return ", ".join(p for p in parts if p)


def _diverged(resume: dict) -> tuple[str, str]:
    """(what diverged, the fix) of a checkpoint of status "diverged": the main network in the epoch after the one it
    holds (part way into that epoch: the state it was resumed from), or, where it holds the whole training of its
    job, a width-sweep or kernel-flow network trained after it."""
    train = resume["train"]
    epoch, pos = int(train["epoch"]), int(train["position"])
    keeps = "with the same settings, which --resume keeps: start over with --force or in a new --out with a smaller"
    if _whole_training(resume):
        return (f"finished its training ({epoch} epochs), then a width-sweep or kernel-flow network diverged (its "
                "summary.json's stopped says which)", f"a resume would train them again {keeps} [width_sweep].lr "
                "or training.lr")
    held = f"epoch {epoch}" + (f" + {pos} batches" if pos else "")
    return (f"diverged in epoch {epoch + 1} (it holds {held}, its last finite state)",
            f"a resume would train epoch {epoch + 1} again {keeps} training.lr")


def prepare_job(args, comm):
    """Validate the job, before --out is looked into: (module, cfg, overrides)."""
    from hpcflow.backend import gpu_checked_elsewhere
    from hpcflow.jobs import registry
    from hpcflow.jobs.schema import apply_overrides, read_toml, shown
    from hpcflow.nn.job import unused_keys_note

    refuse_resume_with_force(args)
    raw = apply_overrides(read_toml(args.job), args.set, source=args.job)
    if raw.get("job") is None or isinstance(raw["job"], dict) and "kind" not in raw["job"]:  # (the registry: flow)
        raise ConfigError(f"{args.job}: [job].kind is required but missing; add [job] with kind = \"nn\" "
                          "(the jobs 'hpcflow nn' runs)")
    kind = registry.job_kind(raw, source=args.job, example="nn")
    if kind != "nn":
        raise ConfigError(f"{args.job}: [job].kind = {shown(kind)}, but 'hpcflow nn' runs kind = \"nn\" jobs; "
                          "set kind = \"nn\" or use 'hpcflow run'")
    overrides = list(args.set or [])
    with gpu_checked_elsewhere(getattr(args, "check", False)):  # --check: a missing GPU is said, not refused
        module, cfg = registry.load(args.job, overrides, ranks=comm.Get_size(),  # every job-file error, before work
                                    memory_check=not getattr(args, "no_memory_check", False))
    if "tune" in raw and comm.Get_rank() == 0:  # validated by the registry, left out of cfg
        tune_section_note(args.job, "hpcflow nn")
    args.unused_note = unused_keys_note(raw, cfg)  # said once the checks of --out pass (`unused_note`)
    return module, cfg, overrides


def prepare_out(args, module, cfg):
    """Validate the checkpoint of --resume and --out (under its lock, but for --check): (outdir, resume)."""
    from hpcflow.jobs import output, registry
    from hpcflow.nn.files import CHECKPOINT

    if args.resume:
        from hpcflow.nn.checkpoint import check_train_layout, load_checkpoint

        path = os.path.join(args.out, CHECKPOINT)
        with restart_given(args, "nn"):  # a damaged checkpoint's refusal gives the command line that starts over
            resume = load_checkpoint(path)
            # the job's keys first, then the entries against its batches per epoch (a bad nn.h5 is redone, not refused)
            module.check_resume(cfg, resume, path, nn_h5_redone=True)
            check_train_layout(resume, path, **module.checkpoint_layout(cfg))  # the same job: its network, NTK points
        return output.check_outdir(args.out, force=True, outputs=registry.OUTPUTS["nn"], resume=True), resume
    again = force_command(args, "nn")  # (the command line a damaged checkpoint's refusal gives)
    output.refuse_interrupted(args.out, CHECKPOINT, force=args.force, job=args.job,  # a user's file named as ours too
                              again=again)
    refuse_other_interrupted(args.out, "nn", registry.OUTPUTS["nn"], force=args.force, again=again)
    return output.check_outdir(args.out, force=args.force, outputs=registry.OUTPUTS["nn"], again=again), None


def _run(args, comm, module, cfg, outdir, resume, created, overrides) -> int:
    """The run in --out (locked): rank 0 sets an earlier run's files aside with --force, put back if the run is
    refused and removed once it has written its own (`hpcflow.jobs.replaced`); a failure there is refused by all.
    An error or interrupt goes on to `run`'s `abort_on_error` and `interrupts_end_the_job`, so that under MPI the
    job is aborted only once --out's lock is released (rank 0's `outlock.holding`), and the directory the run
    created removed where it holds nothing: aborted here, it kept DIR/.hpcflow.lock for good."""
    from hpcflow.jobs.registry import OUTPUTS
    from hpcflow.jobs.replaced import replacing
    from hpcflow.stop_signals import finished

    from hpcflow.commands.run import job_origin, saved_job

    origin = (job_origin(outdir, args.job, overrides, comm=comm, prog="hpcflow nn")  # the first run's
              if resume is not None else None)
    job_text = saved_job(cfg, args.job, overrides, origin=origin)
    lengths = schedule_lengths(cfg, resume)
    if len(lengths) > 1:  # what ran is not this job run afresh: job.toml's header says so, the resume too
        job_text = _with_header_line(job_text, f"note: the cosine schedule's length [training].epochs was changed by "
                                     f"--resume ({' then '.join(map(str, lengths))} epochs; summary.json's "
                                     f"legs[].schedule_epochs): this file run afresh follows one {lengths[-1]}-epoch "
                                     "cosine and differs from this run")
        if comm.Get_rank() == 0 and _length_of(resume) != lengths[-1]:
            steps, was = int(resume["train"]["step"]), _length_of(resume)
            print(f"hpcflow nn: note: [training].epochs = {lengths[-1]} changes the length of the cosine learning-rate "
                  f"schedule, which the checkpoint's {steps} steps followed as {was} epoch{'' if was == 1 else 's'} "
                  "long: the "
                  f"steps left follow the {lengths[-1]}-epoch cosine from step {steps}, so the run is neither "
                  f"length's schedule (nor {os.path.join(outdir, 'job.toml')} run afresh; its header says so)",
                  file=sys.stderr)
    info = {"job_file": os.path.abspath(args.job), "hpcflow_version": __version__, "overrides": overrides,
            "resumed": bool(args.resume), **(origin or {})}
    stop = None
    with write_failures_said(args, "nn"), \
            replacing(outdir, force=args.force, outputs=OUTPUTS["nn"], resume=resume is not None, comm=comm):
        comm.Barrier()  # every rank has checked --out before rank 0 writes into it
        try:
            with restart_given(args, "nn"):  # a checkpoint refused part way (its rows) gives the line to start over
                summary = module.run(cfg, outdir, comm=comm, resume=resume, info=info, job_text=job_text)
        except RunStop as exc:  # collective (every rank raises it): not an error to abort on
            stop = exc
        except BaseException:
            if created:  # rank 0, whose lock then removes the directory it created, empty again
                _remove_if_only_job(outdir)
            raise
        finished()  # summary.json is written, the exit status decided: a stop request from here on is ignored
    if stop is not None:
        if comm.Get_rank() != 0:  # rank 0 prints the one line
            return stop.exit_status
        raise stop
    if comm.Get_rank() == 0:
        print(f"hpcflow nn: wrote {os.path.join(outdir, 'summary.json')} ({summary['wall_seconds']:.1f} s)")
    return 0


def _length_of(resume: dict) -> int:
    """[training].epochs of the job in checkpoint `resume` (its last leg's: the cosine length its steps followed)."""
    import json

    return int(json.loads(resume["config"])["training"]["epochs"])


def schedule_lengths(cfg: dict, resume: dict | None) -> list:
    """The cosine schedule's lengths in epochs that a run of `cfg` continuing checkpoint `resume` follows, first to
    last, a repeat counted once (legs[].schedule_epochs; a leg of a checkpoint written before they were recorded
    has the checkpoint's [training].epochs where it is the last, else is left out); [] for another schedule or for a
    resume of a checkpoint with no step done."""
    from hpcflow.nn.checkpoint import earlier_legs

    if cfg["training"]["lr_schedule"] != "cosine":
        return []
    if resume is None or not int(resume["train"]["step"]):
        return [cfg["training"]["epochs"]]
    legs = earlier_legs(resume) or [{}]  # (an empty list of legs: the checkpoint's own length)
    lengths = [g.get("schedule_epochs") for g in legs[:-1]] + [legs[-1].get("schedule_epochs", _length_of(resume))]
    out = []
    for n in [*lengths, cfg["training"]["epochs"]]:
        if isinstance(n, int) and not isinstance(n, bool) and (not out or out[-1] != n):
            out.append(n)
    return out


def _with_header_line(job_text: str, line: str) -> str:
    """`job_text` (a saved job: `#` comment lines, then the tables) with `# line` added after its comment lines."""
    lines = job_text.split("\n")
    at = next((i for i, x in enumerate(lines) if not x.startswith("#")), len(lines))
    return "\n".join([*lines[:at], f"# {line}", *lines[at:]])


def _remove_if_only_job(outdir: str) -> None:
    """Remove the copied job file from an output directory that holds no other result of this run."""
    from hpcflow.jobs.output import is_result

    if os.path.isdir(outdir) and {e for e in os.listdir(outdir) if is_result(e)} == {"job.toml"}:
        os.remove(os.path.join(outdir, "job.toml"))


def register(sub) -> None:
    p = sub.add_parser("nn", help="train a metric network and track its metric-NTK (job kind \"nn\")")
    add_job_arguments(p, "TOML job file of kind \"nn\", e.g. jobs/nn_smoke.toml",
                      set_examples=("training.epochs=100", "width_sweep.lr=none"))
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint.pt ([training].epochs may grow; [checkpoint], "
                        "[training].threads and check_replicas, [geometry].max_batches and [job].description may "
                        "change; nothing else may)")
    p.set_defaults(func=run, resumed_by="nn")  # the command its stop line names (hpcflow.cli)
