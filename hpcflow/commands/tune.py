"""`hpcflow tune JOB.toml --trials N --out DIR [--max-trials M]`: add N trials to the Optuna study of the job's
[tune] table (a requeued Slurm job: those it has not finished), never beyond M in the study."""

from __future__ import annotations

from hpcflow.arguments import INT_LIMIT, whole_number


def run(args) -> int:
    from hpcflow.errors import EXIT_INTERNAL, EXIT_NUMERICAL
    from hpcflow.parallel.comm import abort_on_error, check_launch, is_root
    from hpcflow.resources import skipped_memory_check
    from hpcflow.stop_signals import interrupts_end_the_job
    from hpcflow.tune.study import RECORD_WAIT, optimize

    check_launch()
    with abort_on_error(wait=RECORD_WAIT), interrupts_end_the_job("hpcflow tune"), \
            skipped_memory_check(args.no_memory_check):  # (the job's and every trial's check)
        same_study_on_every_rank(args)
        result = optimize(args.job, trials=args.trials, out=args.out, storage=args.storage, study_name=args.study,
                          sampler=args.sampler, overrides=list(args.set or []), max_trials=args.max_trials,
                          quiet=args.quiet)
    if not is_root():
        return 0
    counts = ", ".join(f"{n} {state.lower()}{pruned_why(result) if state == 'PRUNED' else ''}"
                       for state, n in sorted(result["counts"].items()))
    if result.get("over_cap"):
        counts += f" ({result['over_cap']} of the failed drawn over --max-trials, not run)"
    print(f"hpcflow tune: study {result['study']!r}: {counts}")
    if result["best"] is None:
        print(f"hpcflow tune: no trial has finished yet; {unfinished(result)}", flush=True)
        if result.get("bugs"):  # a trial of this worker failed with an internal error
            return EXIT_INTERNAL
        # other workers' trials may still finish (an array task that drew a diverged point or the study's last
        # place ends first); else every trial failed, diverged or was pruned
        return 0 if result["counts"].get("RUNNING") else EXIT_NUMERICAL
    from hpcflow.tune.space import params_text

    b = result["best"]
    print(f"hpcflow tune: best trial {b['number']}: value {b['value_text']}, params {params_text(b['params'])}; wrote "
          f"{result['best_toml']}")
    return 0


def pruned_why(result: dict) -> str:
    """What the count of pruned trials holds besides those the pruner stopped: those that diverged (pruned, so that
    they are never the best; an nn network's metric not positive definite counts as diverged), in parentheses
    (`hpcflow.analysis.study.pruned_why`, so that the closing line and the report say it alike)."""
    from hpcflow.analysis.study import pruned_why as said

    return said(result["counts"].get("PRUNED", 0), result.get("diverged") or 0)


#: the options whose value changes what a tune worker does (each rank must be given the same)
AGREED_OPTIONS = ("trials", "max_trials", "out", "storage", "study", "sampler")


def same_study_on_every_rank(args, comm=None) -> None:
    """Refuse (exit 2, every rank together, before any trial) ranks started with different studies: the job file's
    tables after the --set overrides and the options of AGREED_OPTIONS (`commands.run.same_job_on_every_rank`: one
    allgather of a digest). An MPMD launch (`mpiexec -n 1 ... : -n 1 ... --set ...`) ran each rank's own job into the trial's
    collectives. A job file that cannot be read is left to the study's own checks (the same line on every rank)."""
    from hpcflow.commands.run import same_job_on_every_rank
    from hpcflow.errors import ConfigError
    from hpcflow.jobs.schema import apply_overrides, read_toml

    try:
        job = apply_overrides(read_toml(args.job), args.set, source=args.job)
    except (ConfigError, OSError):
        job = {}
    same_job_on_every_rank(args, job, comm, options=AGREED_OPTIONS)


def unfinished(result: dict) -> str:
    """What this worker's trials did, and what other workers still run, when the study has no finished trial."""
    mine = result.get("mine") or {}
    if not result.get("ran"):
        said = "this worker ran no trial" + (" (the study holds --max-trials trials)" if result.get("capped") else "")
    else:
        said = "this worker's trials: " + ", ".join(f"{n} {k}" for k, n in mine.items() if n)
        said += " (see the failures above)" if mine.get("failed") else ""
    running = result["counts"].get("RUNNING", 0)
    if running:
        said += (f"; {running} trial{'s' * (running > 1)} of other workers still run{'s' * (running == 1)}, and "
                 "the worker that finishes one writes best.toml")
    return said


def register(sub) -> None:
    from hpcflow.resources import add_memory_check_argument

    p = sub.add_parser("tune", help="Optuna study over a flow or nn job's [tune] space (fresh points every trial)")
    p.add_argument("job", help="TOML job file of kind \"flow\" or \"nn\" with a [tune] table, e.g. "
                               "jobs/tune_gaussian.toml")
    p.add_argument("--trials", type=whole_number(1, INT_LIMIT), required=True,
                   help="trials this command adds to the study (a requeued Slurm job: those it has not finished)")
    p.add_argument("--max-trials", type=whole_number(1, INT_LIMIT), metavar="M",
                   help="stop drawing trials once the study holds M (complete, pruned, running, queued, or failed "
                        "without a retry), counting every worker's")
    p.add_argument("--out", required=True, help="study directory: trials/NNNN/, study.journal, best.toml")
    p.add_argument("--storage", help="journal file path or SQLAlchemy URL (default DIR/study.journal); a relative "
                                     "path, sqlite:///study.db's too, is from the working directory")
    p.add_argument("--study", help="study name (default: the job file's stem)")
    p.add_argument("--sampler", choices=("gp", "tpe", "random"), help="overrides [tune].sampler")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override one job-file value (TOML syntax; repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (as HPCFLOW_QUIET=1)")
    add_memory_check_argument(p)
    p.set_defaults(func=run)
