"""`python -m hpcflow.submit.requeue JOB.toml DIR`: the hpcflow subcommand (and --resume) an sbatch template runs.

Prints `run` or `nn` (network jobs, kind "nn", train data parallel with `hpcflow nn`), followed by `--resume` when
DIR holds that command's checkpoint of an interrupted run (no summary.json, or one whose status is "preempted"):
so a job requeued after preemption continues, and a first submission or a finished run does not.
"""

from __future__ import annotations

import json
import os
import sys
import tomllib

from hpcflow.submit.task import CHECKPOINTS


def command(job: str, out: str) -> list:
    """[subcommand] or [subcommand, "--resume"] for job file `job` and output directory `out`."""
    try:
        with open(job, "rb") as fh:
            kind = tomllib.load(fh).get("job", {}).get("kind")
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        kind = None  # the command itself reports the bad job file in one line
    cmd = "nn" if kind == "nn" else "run"
    if not os.path.isfile(os.path.join(out, CHECKPOINTS[cmd])):
        return [cmd]
    try:
        with open(os.path.join(out, "summary.json"), encoding="utf-8") as fh:
            status = json.load(fh).get("status")
    except FileNotFoundError:
        return [cmd, "--resume"]
    except (OSError, ValueError, AttributeError):
        return [cmd]  # an unreadable summary: the command refuses with the reason
    return [cmd, "--resume"] if status == "preempted" else [cmd]


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m hpcflow.submit.requeue JOB.toml DIR", file=sys.stderr)
        return 2
    print(" ".join(command(*args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
