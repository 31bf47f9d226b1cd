"""Validate what a submitted command will run, before anything is queued (also `hpcflow submit --check`)."""

from __future__ import annotations

import argparse
import os

from hpcflow.errors import ConfigError, UserError
from hpcflow.jobs.output import check_outdir, refuse_interrupted
from hpcflow.jobs.shell import shell_line


def check_job(command: str, job: str, out: str, *, overrides=(), force: bool = False, resume: bool = False,
              sampler: str | None = None, study: str | None = None, storage: str | None = None, nodes: int = 1,
              per_node: int = 1, memory_check: bool = True, runs_here: bool = False,
              node_limit: tuple[float, str, str] | None = None, host_note: str = "",
              again: str | None = None, memory: bool = True) -> tuple[str, str | None, str | None]:
    """Raise the UserError the command would raise on this job and --out (the command's own checks; its memory per
    rank on `nodes` x `per_node` ranks, `per_node` sharing a node's memory, unless not `memory_check`: against
    `node_limit` (bytes per rank, what they are, a further fix) where given, a Slurm node's, else this host's,
    `host_note` added to the refusal; not here where not `memory`: the caller checks it with `check_memory` once the
    node's memory is known, after the checks that ask no cluster; a tune's, against this host's, here in any case);
    `again`: the whole `hpcflow submit` command line, shell-quoted, that continues an interrupted run in `out`, which
    its refusal names (where not given, the job, --out and --set); the GPU it asks for only where it `runs_here`, a
    local job (its --check too), not one queued to another node); return its kind,
    where it asks for a GPU this node lacks what --check says of it (`hpcflow.commands.run.missing_gpu_note`), else
    None, and what in it asks for a GPU wherever it runs (`gpu_asked`), else None."""
    from hpcflow.backend import gpu_checked_elsewhere
    from hpcflow.commands.run import missing_gpu_note
    from hpcflow.jobs import registry

    with gpu_checked_elsewhere(not runs_here):
        cfg, space = _check_job(command, job, out, overrides=overrides, force=force, resume=resume, sampler=sampler,
                                study=study, storage=storage, nodes=nodes, per_node=per_node,
                                memory_check=memory_check and (memory or command == "tune"), node_limit=node_limit,
                                host_note=host_note, runs_here=runs_here, again=again)
    kind = cfg["job"]["kind"]
    module = registry.job_module(kind)
    note = missing_gpu_note(module, cfg)
    if note is None and not runs_here:  # (here a space value asking for a missing GPU was refused already)
        note = _space_gpu_note(module, job, overrides, space, cfg)
    return kind, note, gpu_asked(cfg, space)


def gpu_asked(cfg: dict, space=()) -> str | None:
    """What makes validated job `cfg` (a tune's: its [tune.space] `space` too) need a GPU wherever it runs, for a
    line: an exported HPCFLOW_BACKEND=cupy (the job inherits it: its array work on CuPy), a network job's
    [training].device = 'cuda', a [tune.space] choice of it; None where nothing does ('auto' takes a GPU only where
    there is one)."""
    from hpcflow.arguments import env_backend

    if env_backend() == "cupy":
        return "HPCFLOW_BACKEND=cupy (exported here, which the job inherits)"
    if cfg["job"]["kind"] == "nn" and cfg.get("training", {}).get("device") == "cuda":
        return "[training].device = 'cuda'"
    for p in space:
        if p.name == "training.device" and p.kind == "categorical" and "cuda" in p.choices:
            return f"""[tune.space]."training.device".choices[{list(p.choices).index('cuda')}] = 'cuda'"""
    return None


def _space_gpu_note(module, job: str, overrides, space, cfg) -> str | None:
    """`missing_gpu_note` of the first [tune.space] value whose trials ask for a GPU this node lacks, naming it (a
    tune here refuses that value before any trial), else None."""
    from hpcflow.backend import gpu_checked_elsewhere
    from hpcflow.commands.run import missing_gpu_note
    from hpcflow.jobs import registry
    from hpcflow.tune.study import space_settings

    for alternatives in space_settings(space, cfg):
        drawn, first = None, None
        for what, setting in alternatives:  # the first that gives a job (`check_space`)
            try:
                with gpu_checked_elsewhere():
                    _, drawn = registry.load(job, [*overrides, *setting], memory_check=False)
                break
            except UserError as exc:
                first = first or exc
        if drawn is None:
            raise first
        note = missing_gpu_note(module, drawn)
        if note is not None:
            return f"{what}: {note}"
    return None


def _check_job(command, job, out, *, overrides, force, resume, sampler, study, storage, nodes, per_node,
               memory_check, node_limit=None, host_note="", runs_here=False, again=None) -> tuple[dict, list]:
    """`check_job`'s checks; the validated job and its [tune.space] (empty but for a tune)."""
    from hpcflow.resources import skipped_memory_check

    if command == "tune":
        from hpcflow.tune.study import check_study, load

        with skipped_memory_check(not memory_check):
            tune_job = load(job, overrides, sampler=sampler)
        name = study or os.path.splitext(os.path.basename(job))[0]
        check_study(tune_job, out, storage=storage, study_name=name)  # the command's own, its storage read-only
        return tune_job.cfg, tune_job.tune["space"]
    from hpcflow.jobs import registry
    from hpcflow.submit.task import CHECKPOINTS

    _, cfg = registry.load(job, list(overrides), ranks=nodes * per_node, memory_check=False)
    kind = cfg["job"]["kind"]
    _check_memory(cfg, kind, job, nodes * per_node, per_node, memory_check, node_limit, host_note, runs_here,
                  overrides=overrides)
    if command == "nn" and kind != "nn":
        raise ConfigError(f"{job}: [job].kind = {kind!r}, but 'hpcflow nn' runs kind = \"nn\" jobs; "
                          "set kind = \"nn\" or use --command run")
    queued = "nn" if kind == "nn" else "run"  # (a network job is queued as `hpcflow nn`)
    if resume:
        _check_resume(queued, job, out, overrides)
        return cfg, []
    if again is None:  # (the same job: its --set too)
        again = shell_line(["hpcflow", "submit", job, "--out", out, "--resume",
                            *(x for s in overrides for x in ("--set", s))])
    # (between backquotes, which a word of the line holds only quoted: the line ends where they do, not at a comma)
    refuse_interrupted(out, CHECKPOINTS[queued], force=force, resume=f"`{again}`", job=job)  # DIR/job.toml as run
    check_outdir(out, force=force, outputs=registry.OUTPUTS.get(kind, ()))
    return cfg, []


def check_memory(command: str, job: str, *, overrides=(), nodes: int = 1, per_node: int = 1,
                 memory_check: bool = True, node_limit: tuple[float, str, str] | None = None,
                 host_note: str = "", fits_cpus: tuple[int, str] | None = None, threads: int | None = None) -> None:
    """The memory check that `check_job(..., memory=False)` left out, on a job it validated: the job's estimate of
    peak memory per rank on `nodes` x `per_node` ranks of `threads` threads each (the threads each rank runs on its
    node; None: this process's) against `node_limit` where given, else this host's (`_check_memory`); a tune's was
    checked with its job (against this host's memory, as its trials are). The job runs on another node: its GPU is
    not looked for here. `fits_cpus`: (the most ranks per node the partition's CPUs take, why none does where 0),
    which bounds the ranks per node its refusal advises."""
    if command == "tune" or not memory_check:
        return
    from contextlib import nullcontext

    from hpcflow.backend import gpu_checked_elsewhere
    from hpcflow.jobs import registry
    from hpcflow.resources import _threads_set

    with gpu_checked_elsewhere():
        _, cfg = registry.load(job, list(overrides), ranks=nodes * per_node, memory_check=False)
    with nullcontext() if threads is None else _threads_set(threads):
        _check_memory(cfg, cfg["job"]["kind"], job, nodes * per_node, per_node, memory_check, node_limit, host_note,
                      overrides=overrides, fits_cpus=fits_cpus)


def _check_memory(cfg, kind, job, ranks, per_node, memory_check, node_limit, host_note, runs_here=False,
                  overrides=(), fits_cpus=None) -> None:
    """The estimate of peak memory per rank against `node_limit` (bytes, what, a further fix) where given, else
    against this host's (`check_resources`), `host_note` then added to its refusal; for a job that `runs_here` (the
    local executor: one task on this host) with the fixes that apply to it (`_local_advice`), not more nodes. A
    refusal names the keys that size the largest part (`resources.part_keys`), and the --set of `overrides` that gave
    one (`registry.set_values_named`), as `hpcflow run` does."""
    from hpcflow.jobs.registry import set_values_named
    from hpcflow.resources import ENV_IGNORE, check_resources, fmt_bytes, ignore_requested, memory_limit, part_keys

    if node_limit is None and runs_here:
        limit, where = memory_limit(ranks=ranks, per_node=per_node)
        node_limit = (limit, f"this host's memory ({where})", "")
    with set_values_named(overrides):
        if node_limit is None:
            try:
                check_resources(cfg, kind, ranks=ranks, per_node=per_node, force=not memory_check, source=job)
            except ConfigError as exc:
                raise ConfigError(f"{exc} ({host_note})" if host_note else str(exc)) from None
            return
        est = check_resources(cfg, kind, ranks=ranks, per_node=per_node, force=True, source=job)
        limit, what, more = node_limit
        big = est.largest()
        sizes = part_keys(cfg, kind, big)
        fix = _local_advice(sizes) if runs_here else _node_advice(kind, sizes, per_node, est.bytes,
                                                                  limit * per_node, fits_cpus) + more.replace(
            NEEDED_MEM, needed_mem(est.bytes, per_node))
        if memory_check and not ignore_requested() and est.bytes > limit:
            raise ConfigError(f"{job}: estimated peak memory {fmt_bytes(est.bytes)} per rank (largest part: {big} "
                              f"{fmt_bytes(est.parts[big])}) exceeds the {fmt_bytes(limit)} per rank of {what}; {fix}, "
                              f"or pass --no-memory-check (or {ENV_IGNORE}=1) if you know better")


#: where a refusal's fix of more memory per node (`node_limit`'s third part) names what the node needs
#: (`needed_mem`)
NEEDED_MEM = "<needed --mem>"


def needed_mem(per_rank: float, per_node: int) -> str:
    """The memory per node that `per_node` ranks of `per_rank` bytes each need, as --mem takes it (whole MiB, rounded
    up: a --mem of it passes the check), with its reckoning."""
    import math

    from hpcflow.resources import fmt_bytes

    each = f"; {per_node} ranks x {fmt_bytes(per_rank)}" if per_node > 1 else ""
    return f"{math.ceil(per_node * per_rank / 2**20)} (MiB{each})"


def _local_advice(sizes: str) -> str:
    """How a job refused against this host's memory fits under the local executor, which runs one task here (it
    refuses --nodes and --ntasks-per-node above 1): smaller sizes (`sizes`, the keys of its largest part:
    `resources.part_keys`), or a Slurm node with more memory."""
    return f"reduce {sizes}, or queue it to a node with more memory (--executor slurm)"


def _node_advice(kind: str, sizes: str, per_node: int, need: float, node: float,
                 fits_cpus: tuple[int, str] | None = None) -> str:
    """How a job of `kind` refused against a Slurm node's memory (`node` bytes for the job's `per_node` ranks, each
    `need`) fits, `sizes` the keys of its largest part (`resources.part_keys`): a flow fewer ranks per node or more
    nodes (its estimate per rank shrinks with more ranks), or smaller sizes; a kind whose every rank runs the whole
    job (`resources.WHOLE_ON_EVERY_RANK`) smaller sizes only. A network job is data parallel, its
    estimate per rank the same on any ranks: the ranks per node that fit where at least one does, else only smaller
    sizes (the caller adds more memory per node: --mem, another partition). `fits_cpus` (the most ranks per node
    the partition's CPUs take, why none does where 0; None: not known) bounds the ranks advised: more were refused
    next by the CPU check; where none fits its CPUs, its refusal is said too."""
    from hpcflow.resources import WHOLE_ON_EVERY_RANK, fmt_bytes

    if kind in WHOLE_ON_EVERY_RANK:
        return f"reduce {sizes} (every rank runs the whole job: more ranks or nodes do not lower its estimate)"
    if kind != "nn":
        if per_node > 1:
            return f"use fewer ranks per node (--ntasks-per-node) or more nodes (--nodes), or reduce {sizes}"
        return f"use more nodes (--nodes) or reduce {sizes}"
    same = "more ranks or nodes do not lower a network job's estimate per rank"
    fit = int(node // need) if need > 0 else per_node
    cpus, why = fits_cpus if fits_cpus is not None else (fit, "")
    if per_node > 1 and min(fit, cpus) >= 1:
        fit = min(fit, cpus)
        return (f"use {fit} rank{'s' * (fit > 1)} per node (--ntasks-per-node {fit}: the ranks of a node share its "
                f"memory, and {same}) or reduce {sizes}")
    alone = f", and one rank alone does not fit in the node's {fmt_bytes(node)}" if per_node > 1 and not fit else ""
    cpu_too = f"; and {why}" if cpus < 1 and why else ""
    return f"reduce {sizes} ({same}{alone}){cpu_too}"


def counted_trials(job: str, out: str, *, storage: str | None = None, study: str | None = None) -> int:
    """The trials that the tune study of `job` in `out` (its --storage, --study) holds and that count toward
    --max-trials (`hpcflow.tune.budget.counted`); 0 where there is no study yet. Read, nothing written, before a tune
    is queued: the line that continues it caps the study at these and its --trials (`commands.submit.tune_cap`)."""
    import optuna

    from hpcflow.tune import budget
    from hpcflow.tune.storage import close_storage, existing_storage

    store = existing_storage(storage, out)
    name = study or os.path.splitext(os.path.basename(job))[0]
    try:  # (closed after: its SQLite database was held open by the submitting process until it ended)
        if store is None or name not in optuna.study.get_all_study_names(store):
            return 0
        return len(budget.counted(optuna.load_study(study_name=name, storage=store).get_trials(deepcopy=False)))
    finally:
        close_storage(store)


def _check_resume(queued: str, job: str, out: str, overrides) -> None:
    """The checks of `hpcflow run|nn --resume`, by the commands' own code on one rank: a checkpoint in --out that
    this job continues (a kind with checkpoints, not damaged, the same job); refused too when the run there ended by
    its own rule (steps or epochs done; a flow's early or numerical stop, a network's divergence) and the job adds
    nothing to it (the queued command would do nothing; a network run whose nn.h5 --resume writes again is queued)."""
    from hpcflow.parallel.comm import SerialComm

    args = argparse.Namespace(job=job, out=out, set=list(overrides), resume=True, force=False, quiet=False,
                              no_memory_check=True)  # (checked by check_job on the job's ranks)
    if queued == "nn":
        from hpcflow.commands import nn

        module, cfg, _ = nn.prepare_job(args, SerialComm())
        outdir, state = nn.prepare_out(args, module, cfg)
        ended = nn.already_finished(state, cfg, outdir)  # epochs done, or diverged
        if ended is not None and nn.nn_h5_fault(outdir, state) and nn.redoes_nn_h5(ended, state):
            ended = None  # the queued --resume writes its missing or damaged nn.h5 again
        done = None if ended is None else (ended.why, ended.fix)
    else:
        from hpcflow.commands import run

        module, cfg, outputs, _ = run.prepare_job(args, SerialComm())
        ended = run.prepare_out(args, module, cfg, outputs, SerialComm())[1]  # steps done, early or numerical stop
        done = None if ended is None else (ended.why, ended.fix)
    if done is not None:
        raise ConfigError(f"--resume: {out} {done[0]}: the job would do nothing, so nothing is queued; {done[1]}")


def step_note(job: str, *, overrides=(), ranks: int, threads: int, signal_delay: float, time_s: float) -> str | None:
    """For a flow job queued on `ranks` ranks of `threads` threads: the warning line where the estimated seconds of
    one flow step exceed `signal_delay` (`resources.step_signal_note`), else None (other kinds: None)."""
    from hpcflow.backend import gpu_checked_elsewhere
    from hpcflow.jobs import registry
    from hpcflow.resources import step_signal_note

    with gpu_checked_elsewhere():
        _, cfg = registry.load(job, list(overrides), ranks=ranks, memory_check=False)
    if cfg["job"]["kind"] != "flow":
        return None
    return step_signal_note(cfg, ranks=ranks, threads=threads, signal_delay=signal_delay, time_s=time_s)
