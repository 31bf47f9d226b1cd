"""Validate what a submitted command will run, before anything is queued (also `hpcflow submit --check`)."""

from __future__ import annotations

import os

from hpcflow.errors import ConfigError
from hpcflow.jobs.output import check_outdir, writable_dir


def check_job(command: str, job: str, out: str, *, overrides=(), force: bool = False,
              sampler: str | None = None, study: str | None = None) -> str:
    """Raise the UserError the command would raise on this job and --out (the command's own checks); return its
    kind."""
    if command == "tune":
        from hpcflow.tune.study import check_outdir as check_study_dir, load

        kind = load(job, overrides, sampler=sampler).cfg["job"]["kind"]
        writable_dir(out)
        check_study_dir(out, study or os.path.splitext(os.path.basename(job))[0])
        return kind
    from hpcflow.jobs import registry

    _, cfg = registry.load(job, list(overrides))
    kind = cfg["job"]["kind"]
    if command == "nn" and kind != "nn":
        raise ConfigError(f"{job}: [job].kind = {kind!r}, but 'hpcflow nn' runs kind = \"nn\" jobs; "
                          "set kind = \"nn\" or use --command run")
    check_outdir(out, force=force, outputs=registry.OUTPUTS.get(kind, ()))
    return kind
