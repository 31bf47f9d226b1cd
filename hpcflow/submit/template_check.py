"""`python -m hpcflow.submit.template_check COMMAND [ARG...]`: an sbatch template's check of the job before
`hpcflow info` and before any srun, COMMAND being the one the template then runs (`python -m hpcflow run|nn|tune JOB
--out DIR ...`).

A bad job file, a --set or an option the command refuses, an --out it would refuse: the job's log said its
environment (`hpcflow info`, an srun step of every task in the MPI templates) before the refusal of the run's own
step. Here the command's own checks run first, in this one process on the batch host: `hpcflow run|nn ... --check`
as a requeued job runs it (`hpcflow.submit.step.continued`: --resume where it continues its run; nothing where the run
this job ended is in --out, which the step then says), its memory estimate left to the run's ranks where the job has
more than one task (`template_env.tasks`: one process's estimate is not a rank's); for `hpcflow tune` the job file
and its [tune] table as the worker reads them (its study and --out are the worker's: other workers of the array
write them meanwhile). A refusal is the command's one line on stderr, exit 2; nothing else is said (the check's own
line of a valid job, on stdout, and its notes on stderr are not printed), and any other status leaves the job to its
run, which says it (the check's stderr is dropped then).
"""

from __future__ import annotations

import os
import subprocess
import sys

#: the variables of a launch that make a process one of a step's tasks (`parallel.comm.check_launch`), which the
#: batch step is not: the check runs as a plain process without them
LAUNCH_VARIABLES = ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_SIZE", "PMIX_RANK",
                    "PMIX_NAMESPACE", "SLURM_STEP_NUM_TASKS")


def check(argv: list, environ=None) -> int:
    """2 where the hpcflow command in `argv` (after `-m hpcflow`) refuses its job, its options or its --out (said in
    one line on stderr), else 0."""
    from hpcflow.errors import UserError
    from hpcflow.submit.step import _hpcflow_at, continued
    from hpcflow.submit.template_env import tasks

    env = dict(os.environ if environ is None else environ)
    at = _hpcflow_at(argv)
    if at is None:
        return 0
    try:
        argv = continued(argv)
    except UserError as exc:
        print(f"hpcflow.submit.step: error: {exc}", file=sys.stderr, flush=True)
        return 2
    if not isinstance(argv, list):  # the run this job ended is in --out: the step says so, and runs nothing
        return 0
    if argv[at] == "tune":
        return _check_tune(argv[at:])
    if argv[at] not in ("run", "nn"):
        return 0
    extra = ["--check"] + (["--no-memory-check"] if tasks(env) > 1 else [])
    for name in LAUNCH_VARIABLES:
        env.pop(name, None)
    # its stderr is said only for a refusal (status 2, its one line); anything else it says (a note of a valid job,
    # e.g. an unused [tune] table; an error or traceback of status 1, 3, 5) the run itself says again in the log
    r = subprocess.run([*argv, *extra], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=env, text=True, errors="replace")
    if r.returncode != 2:
        return 0
    sys.stderr.write(r.stderr)
    sys.stderr.flush()
    return 2


def _check_tune(words: list) -> int:
    """`check` of `hpcflow tune WORDS`: its options (its own parser) and its job file with the [tune] table (and
    --set, --sampler), as the worker loads it, its memory check too unless --no-memory-check."""
    from hpcflow.cli import build_parser
    from hpcflow.errors import UserError
    from hpcflow.resources import skipped_memory_check
    from hpcflow.tune.study import load

    try:
        args = build_parser().parse_args(words)
    except SystemExit as exc:  # (its one line said)
        return 2 if exc.code == 2 else 0
    try:
        with skipped_memory_check(args.no_memory_check):
            load(args.job, list(args.set or []), sampler=args.sampler)
    except UserError as exc:
        print(f"hpcflow tune: error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 2
    except Exception:  # noqa: BLE001 - not a refusal: the worker's run says it
        return 0
    return 0


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m hpcflow.submit.template_check COMMAND [ARG...]", file=sys.stderr)
        return 2
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
