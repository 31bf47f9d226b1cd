"""`hpcflow nn ...` with SIGTERM delivered after the training where only the outputs are left to write (no width
sweep or kernel flow follows), for tests/test_nn_spectra_signal.py.

Usage: python nn_spectra_signal_driver.py nn JOB --out DIR ...
Rank 0 sends itself SIGTERM as it begins the NTK's first pooled spectrum and again as it begins the second (a request
is often delivered twice); every other rank once, as it summarises the training (while rank 0 computes the spectra,
it waits for their broadcast).
"""

import os
import signal
import sys

from hpcflow.cli import main
from hpcflow.nn import ntk as _ntk
from hpcflow.nn import train as _train
from hpcflow.parallel.comm import resolve

_pooled, _arrays, sent = _ntk.pooled_spectrum, _train.History.arrays, []


def _signalled_pooled(theta):
    sent.append("spectrum")
    if len(sent) <= 2:
        os.kill(os.getpid(), signal.SIGTERM)
    return _pooled(theta)


def _signalled_arrays(self):
    if resolve().Get_rank() and not sent and sys._getframe(1).f_code.co_name == "summarize":
        sent.append("summary")
        os.kill(os.getpid(), signal.SIGTERM)
    return _arrays(self)


_ntk.pooled_spectrum = _signalled_pooled
_train.History.arrays = _signalled_arrays
sys.exit(main(sys.argv[1:]))
