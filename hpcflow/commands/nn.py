"""`hpcflow nn JOB.toml --out DIR [--force]`: run a job of kind "nn" (finite networks, metric-NTK, sec. 3.3)."""

from __future__ import annotations

from hpcflow.commands.run import add_job_arguments
from hpcflow.errors import ConfigError


def run(args) -> int:
    from hpcflow.commands.run import run as run_job
    from hpcflow.jobs.schema import apply_overrides, read_toml

    job = apply_overrides(read_toml(args.job), args.set, source=args.job).get("job")
    kind = job.get("kind") if isinstance(job, dict) else None
    if kind != "nn":
        raise ConfigError(f"{args.job}: [job].kind = {kind!r}, but 'hpcflow nn' runs kind = \"nn\" jobs; "
                          "set kind = \"nn\" or use 'hpcflow run'")
    return run_job(args)


def register(sub) -> None:
    p = sub.add_parser("nn", help="train a metric network and track its metric-NTK (job kind \"nn\")")
    add_job_arguments(p, "TOML job file of kind \"nn\", e.g. jobs/nn_smoke.toml")
    p.set_defaults(func=run)
