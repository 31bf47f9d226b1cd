"""`hpcflow tune ...` whose rank RANK alone receives SIGTERM while the first trial draws its points (before the
trial's flow and its checkpoint writer), for tests/test_tune_setup_signal.py; `sigterm_in_distribute` is that
signal, for tests/mpi/flow_setup_signal_driver.py too.

Usage: python tune_signal_driver.py RANK tune JOB --trials N --out DIR ...
"""

import os
import signal
import sys

from hpcflow.cli import main
from hpcflow.experiments import flow_job
from hpcflow.parallel.comm import resolve


def sigterm_in_distribute(rank: int, sig: int = signal.SIGTERM) -> None:
    """Rank `rank` alone sends itself SIGTERM (or `sig`) in the first flow_job.distribute of this process (its points
    drawn)."""
    _distribute, sent = flow_job.distribute, []

    def _distribute_after_sigterm(cfg, *, comm=None, **kwargs):
        if not sent and resolve(comm).Get_rank() == rank:
            sent.append(True)
            os.kill(os.getpid(), sig)
        return _distribute(cfg, comm=comm, **kwargs)

    flow_job.distribute = _distribute_after_sigterm


if __name__ == "__main__":
    sigterm_in_distribute(int(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
