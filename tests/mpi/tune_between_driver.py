"""`hpcflow tune ...` whose rank RANK alone sends itself signal SIG once its first trial has run (the trial's flow and
its checkpoint writer done, its handlers put back): a stop request between trials 0 and 1 that reaches one rank only,
as `kill -TERM` of one rank's process does, for tests/test_tune_stop_one_rank.py.

Usage: python tune_between_driver.py RANK SIG tune JOB --trials N --out DIR ...
"""

import os
import signal
import sys

from hpcflow.cli import main
from hpcflow.parallel.comm import resolve
from hpcflow.tune import study

rank, sig = int(sys.argv[1]), getattr(signal, sys.argv[2])
_execute, sent = study.execute, []


def _execute_then_signal(*args, comm=None, **kwargs):
    summary = _execute(*args, comm=comm, **kwargs)
    if not sent and resolve(comm).Get_rank() == rank:
        sent.append(True)
        os.kill(os.getpid(), sig)
    return summary


study.execute = _execute_then_signal
sys.exit(main(sys.argv[3:]))
