"""Validate what a submitted command will run, before anything is queued (also `hpcflow submit --check`)."""

from __future__ import annotations

import os

from hpcflow.errors import ConfigError, OutputPathError


def check_outdir(path: str, *, force: bool) -> None:
    """The refusals of `hpcflow run`'s output directory, without creating it."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputPathError(f"--out {path} exists and is not a directory; choose another --out")
    if os.path.isdir(path) and os.listdir(path) and not force:
        raise OutputPathError(f"--out {path} already holds results; choose another --out or pass --force to "
                              "overwrite them")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.access(path if os.path.isdir(path) else parent, os.W_OK):
        raise OutputPathError(f"--out {path} is not writable; choose another --out")


def check_job(command: str, job: str, out: str, *, overrides=(), force: bool = False,
              sampler: str | None = None, study: str | None = None) -> str:
    """Raise the UserError the command would raise on this job; return its kind."""
    if command == "tune":
        from hpcflow.tune.study import check_outdir as check_study_dir, load

        kind = load(job, overrides, sampler=sampler).cfg["job"]["kind"]
        check_study_dir(out, study or os.path.splitext(os.path.basename(job))[0])
        return kind
    from hpcflow.jobs import registry

    _, cfg = registry.load(job, list(overrides))
    kind = cfg["job"]["kind"]
    if command == "nn" and kind != "nn":
        raise ConfigError(f"{job}: [job].kind = {kind!r}, but 'hpcflow nn' runs kind = \"nn\" jobs; "
                          "set kind = \"nn\" or use --command run")
    check_outdir(out, force=force)
    return kind
