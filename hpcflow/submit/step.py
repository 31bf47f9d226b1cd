"""`exec python -m hpcflow.submit.step srun ...`: the end of the MPI, GPU and tune array sbatch templates.

Runs the run's step (COMMAND: `srun ... hpcflow run|nn|tune ...`) as the batch step itself, passes SIGUSR1 on to it,
and requeues the job when the run stops preempted (exit status 4, checkpoint written: `scontrol requeue
$SLURM_JOB_ID`; the requeued job continues with --resume, a tune array task with its trial's checkpoint: the same
`hpcflow tune` command resumes the trial it stopped). Exit status: COMMAND's (128+N when signal N ended it; 127 when
it cannot be started).

In a requeued job (SLURM_RESTART_COUNT above 0) the hpcflow command in COMMAND (the words after `-m hpcflow`) is
continued as `hpcflow submit`'s requeued job continues it (`hpcflow.submit.task.resume_argv`): a run or network run
whose --out holds its checkpoint runs with --resume (without --force), so that a run that had finished says
"nothing to do" (status 0) instead of being refused as a directory that holds results (status 2).

SIGUSR1 is how Slurm asks for the checkpoint: `--signal=USR1@120` sends it to the step's tasks only, but
`--signal=B:USR1@120` sends it to the batch step alone and `scancel --full --signal=USR1` to both. bash, the batch
step before, ended on it (its default action): the job ended FAILED and was never requeued, while the ranks (when
they got the signal too) wrote their checkpoint. Here it is forwarded to srun, and srun forwards it to every task.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from hpcflow.errors import EXIT_PREEMPTED

FORWARDED = (signal.SIGUSR1,)


def run(argv: list) -> int:
    """Run argv to its end, forwarding FORWARDED signals to it; its exit status."""
    child, pending = None, []

    def forward(signum, frame):  # noqa: ARG001 - signal handler signature
        if child is None:
            pending.append(signum)  # sent once the child exists
        else:
            child.send_signal(signum)  # a no-op once the child has been reaped

    old = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        try:
            child = subprocess.Popen(argv)
        except OSError as exc:
            print(f"hpcflow.submit.step: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr, flush=True)
            return 127
        for signum in pending:
            child.send_signal(signum)
        status = child.wait()  # resumed after each forwarded signal (PEP 475)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return 128 - status if status < 0 else status


def requeue() -> None:
    """Requeue this Slurm job (it keeps its id; Slurm starts it again after a delay, BeginTime)."""
    job = os.environ.get("SLURM_JOB_ID")
    if job is None:
        print("hpcflow.submit.step: preempted outside a Slurm job (no SLURM_JOB_ID); continue with --resume",
              file=sys.stderr, flush=True)
        return
    subprocess.run(["scontrol", "requeue", job], check=False)


def continued(argv: list) -> list:
    """`argv` with its hpcflow command (after `-m hpcflow`) as a requeued job runs it (see the module's docstring);
    `argv` itself outside a requeued job. ConfigError for a SLURM_RESTART_COUNT that is not a whole number."""
    from hpcflow.submit.task import requeued, resume_argv

    at = next((i + 2 for i in range(len(argv) - 1) if argv[i:i + 2] == ["-m", "hpcflow"]), None)
    if at is None or at == len(argv) or not requeued():
        return list(argv)
    return argv[:at] + (resume_argv(argv[at:]) or argv[at:])


def main(argv=None) -> int:
    from hpcflow.errors import UserError

    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: exec python -m hpcflow.submit.step COMMAND [ARG...]", file=sys.stderr)
        return 2
    try:
        args = continued(args)
    except UserError as exc:
        print(f"hpcflow.submit.step: error: {exc}", file=sys.stderr, flush=True)
        return 2
    status = run(args)
    if status == EXIT_PREEMPTED:
        requeue()
    return status


if __name__ == "__main__":
    sys.exit(main())
