"""The submitted callable: `hpcflow ARGV` run in-process on every task (each task one MPI rank under srun).

Preemption: Slurm sends submitit's signal (USR2) before the time limit; it is handed to the run's checkpoint
handler (SIGUSR1), the run writes a checkpoint and stops with exit status 4, and the job is requeued through
submitit with `--resume` added. A command without a checkpoint handler is requeued at once.
"""

from __future__ import annotations

import os
import signal

import submitit

from hpcflow.errors import EXIT_PREEMPTED


def resume_argv(argv: list) -> list | None:
    """The command line that continues `argv` after preemption (None: not continued)."""
    argv = list(argv)
    if argv[0] == "run":
        return argv if "--resume" in argv else [*argv, "--resume"]
    if argv[0] == "tune":
        return argv  # stale trials are recovered by the next worker; it adds its trials
    return None


def preemption_signal() -> int:
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


class HpcflowTask(submitit.helpers.Checkpointable):
    """Run `hpcflow ARGV`; return its exit status (submitit's job result)."""

    def __call__(self, argv: list) -> int:
        from hpcflow.cli import main

        sig = preemption_signal()
        requeue = signal.getsignal(sig)

        def forward(signum, frame):
            checkpoint = signal.getsignal(signal.SIGUSR1)
            if callable(checkpoint) and checkpoint is not forward:
                checkpoint(signal.SIGUSR1, frame)  # the run checkpoints at its next step, then exits with 4
            elif callable(requeue):
                requeue(signum, frame)

        signal.signal(sig, forward)
        status = main(list(argv))
        if status == EXIT_PREEMPTED and callable(requeue):
            requeue(sig, None)  # submitit: checkpoint() below, requeue, exit
        return status

    def checkpoint(self, argv: list):  # noqa: D102 - submitit's hook
        nxt = resume_argv(argv)
        return None if nxt is None else submitit.helpers.DelayedSubmission(HpcflowTask(), nxt)
