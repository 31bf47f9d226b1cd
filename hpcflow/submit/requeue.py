"""`python -m hpcflow.submit.requeue JOB.toml DIR`: the hpcflow subcommand (and --resume) an sbatch template runs.

Prints `run` or `nn` (network jobs, kind "nn", train data parallel with `hpcflow nn`), followed by `--resume` where
the job is a requeued leg (SLURM_RESTART_COUNT > 0) that continues the run in DIR, as `hpcflow submit`'s requeued
jobs decide it (`hpcflow.submit.task.next_leg`, this Slurm job SLURM_JOB_ID): DIR holds that command's checkpoint of
an interrupted run, or the run this job finished (the command then says there is nothing to do, status 0). A first
submission runs with the options it was given (a --force there starts over; without one the command says how to
continue), and so does a requeued leg stopped before its first checkpoint, or before it replaced the run of another
job in DIR. Where DIR holds the run this job ended without a checkpoint (a kind without checkpoints) the template's
step (`hpcflow.submit.step`) runs nothing and says so.
"""

from __future__ import annotations

import sys

from hpcflow.submit.task import next_leg, requeued as requeued_leg, this_job


def command(job: str, out: str, *, requeued: bool = True, slurm_job: str | None = None) -> list:
    """[subcommand] or [subcommand, "--resume"] for job file `job` and output directory `out`; --resume only for a
    requeued leg (`requeued`) of Slurm job `slurm_job` (None: unknown) that continues the run in `out`
    (`next_leg`)."""
    from hpcflow.errors import UserError
    from hpcflow.jobs.schema import read_toml

    try:
        kind = read_toml(job).get("job", {}).get("kind")  # (read as the command reads it: a byte-order mark too)
    except (UserError, AttributeError):
        kind = None  # the command itself reports the bad job file in one line
    cmd = "nn" if kind == "nn" else "run"
    nxt = next_leg([cmd, job, "--out", out], job=slurm_job) if requeued else None
    return [cmd, "--resume"] if isinstance(nxt, list) and "--resume" in nxt else [cmd]


def main(argv=None) -> int:
    from hpcflow.errors import UserError

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m hpcflow.submit.requeue JOB.toml DIR", file=sys.stderr)
        return 2
    try:
        again = requeued_leg()
    except UserError as exc:
        print(f"hpcflow.submit.requeue: error: {exc}", file=sys.stderr)
        return 2
    print(" ".join(command(*args, requeued=again, slurm_job=this_job())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
