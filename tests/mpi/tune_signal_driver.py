"""`hpcflow tune ...` whose rank RANK alone receives SIGTERM while the first trial draws its points (before the
trial's flow and its checkpoint writer), for tests/test_tune_setup_signal.py.

Usage: python tune_signal_driver.py RANK tune JOB --trials N --out DIR ...
"""

import os
import signal
import sys

from hpcflow.cli import main
from hpcflow.experiments import flow_job
from hpcflow.parallel.comm import resolve

rank, args = int(sys.argv[1]), sys.argv[2:]
_distribute, sent = flow_job.distribute, []


def _distribute_after_sigterm(cfg, *, comm=None, **kwargs):
    if not sent and resolve(comm).Get_rank() == rank:
        sent.append(True)
        os.kill(os.getpid(), signal.SIGTERM)
    return _distribute(cfg, comm=comm, **kwargs)


flow_job.distribute = _distribute_after_sigterm
sys.exit(main(args))
