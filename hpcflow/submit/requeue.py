"""`python -m hpcflow.submit.requeue JOB.toml DIR`: the hpcflow subcommand (and --resume) an sbatch template runs.

Prints `run` or `nn` (network jobs, kind "nn", train data parallel with `hpcflow nn`), followed by `--resume` when
the job is a requeued leg (SLURM_RESTART_COUNT > 0) and DIR holds that command's checkpoint of an interrupted run
(`hpcflow.jobs.output.interrupted`): so a job requeued after preemption continues, and a first submission runs with
the options it was given (a --force there starts over; without one the command says how to continue).
"""

from __future__ import annotations

import sys

from hpcflow.jobs.output import interrupted
from hpcflow.submit.task import CHECKPOINTS, requeued as requeued_leg


def command(job: str, out: str, *, requeued: bool = True) -> list:
    """[subcommand] or [subcommand, "--resume"] for job file `job` and output directory `out`; --resume only for a
    requeued leg (`requeued`) whose `out` holds an interrupted run."""
    from hpcflow.errors import UserError
    from hpcflow.jobs.schema import read_toml

    try:
        kind = read_toml(job).get("job", {}).get("kind")  # (read as the command reads it: a byte-order mark too)
    except (UserError, AttributeError):
        kind = None  # the command itself reports the bad job file in one line
    cmd = "nn" if kind == "nn" else "run"
    return [cmd, "--resume"] if requeued and interrupted(out, CHECKPOINTS[cmd]) else [cmd]


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
    print(" ".join(command(*args, requeued=again)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
