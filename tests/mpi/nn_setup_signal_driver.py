"""`hpcflow nn ...` whose rank RANK alone sends itself signal SIG as it enters the start-up step WHERE (before the
training and its checkpoint writer), for tests/test_nn_setup_signal.py.

Usage: python nn_setup_signal_driver.py RANK SIG WHERE nn JOB --out DIR ...
WHERE is "module:function" of hpcflow (e.g. hpcflow.jobs.registry:load: the job file validated, torch imported to
ask for its device), wrapped so that the signal comes first; SIG is a signal name (SIGTERM, SIGUSR1).
"""

import importlib
import os
import signal
import sys

from hpcflow.cli import main

rank, sig, where = int(sys.argv[1]), getattr(signal, sys.argv[2]), sys.argv[3]
module_name, name = where.split(":")
module = importlib.import_module(module_name)
inner, sent = getattr(module, name), []


def signalled_first(*args, **kwargs):
    from hpcflow.parallel.comm import rank as my_rank

    if not sent and my_rank() == rank:
        sent.append(True)
        os.kill(os.getpid(), sig)
    return inner(*args, **kwargs)


setattr(module, name, signalled_first)
sys.exit(main(sys.argv[4:]))
