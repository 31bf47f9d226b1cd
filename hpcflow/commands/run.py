"""`hpcflow run JOB.toml --out DIR [--force]`: validate a job file, run it, write DIR/summary.json."""

from __future__ import annotations

import os
import time

from hpcflow import __version__
from hpcflow import resources
from hpcflow.resources import add_memory_check_argument


def run(args) -> int:
    from hpcflow.jobs import output, registry

    overrides = list(args.set or [])
    module, cfg = registry.load(args.job, overrides,  # every job-file error surfaces here, before any work
                                memory_check=not getattr(args, "no_memory_check", False))
    outputs = registry.OUTPUTS.get(cfg["job"]["kind"], ())
    if getattr(args, "check", False):  # --check: validation, resource and output checks only; nothing written
        output.check_outdir(args.out, force=args.force, outputs=outputs)
        print(f"hpcflow: {args.job}: valid; --out {args.out} accepted; {resources.describe(cfg)}; nothing run")
        return 0
    existed = os.path.isdir(args.out)
    outdir = output.prepare_outdir(args.out, force=args.force, outputs=outputs)
    t0 = time.perf_counter()
    try:
        summary = dict(module.run(cfg, outdir))
    except BaseException:
        if not existed and os.path.isdir(outdir) and not os.listdir(outdir):
            os.rmdir(outdir)  # leave no empty output directory behind a failed run
        raise
    summary["wall_seconds"] = time.perf_counter() - t0
    summary.update(kind=cfg["job"]["kind"], job_file=os.path.abspath(args.job), hpcflow_version=__version__)
    summary.setdefault("config", cfg)
    summary["overrides"] = overrides
    output.write_text(os.path.join(outdir, "job.toml"), saved_job(cfg, args.job, overrides))
    output.write_json(os.path.join(outdir, "summary.json"), summary)  # last: its presence marks a complete run
    print(f"hpcflow run: wrote {outdir}/summary.json ({summary['wall_seconds']:.1f} s)")
    return 0


def saved_job(cfg: dict, job: str, overrides) -> str:
    """DIR/job.toml: the validated configuration (defaults filled in) as TOML, naming the file and overrides."""
    from hpcflow.jobs.toml_out import dumps

    header = f"hpcflow {__version__}: the validated configuration of {os.path.abspath(job)}"
    if overrides:
        header += "\nrun with: " + " ".join(f"--set {o}" for o in overrides)
    return dumps(cfg, header=header)


def register(sub) -> None:
    p = sub.add_parser("run", help="run a TOML job file (kinds: flow, noise_scan, ...) into an output directory")
    add_job_arguments(p, "TOML job file, e.g. jobs/quickstart.toml")
    p.set_defaults(func=run)


def add_job_arguments(p, job_help: str) -> None:
    """The JOB, --out and --force arguments shared by the job-running subcommands."""
    p.add_argument("job", help=job_help)
    p.add_argument("--out", required=True, help="output directory (refused if it already holds results)")
    p.add_argument("--force", action="store_true", help="overwrite results in an existing --out directory")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                   help="override one job-file value (TOML syntax; repeatable), e.g. --set training.lr=3e-3")
    p.add_argument("--check", action="store_true",
                   help="validate the job, its memory estimate and --out, then stop (nothing written)")
    add_memory_check_argument(p)
