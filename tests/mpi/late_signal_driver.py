"""`hpcflow VERB ...` whose rank RANK alone sends itself signal SIG once the run's work is done, for
tests/test_late_stop_signal.py.

Usage: python late_signal_driver.py RANK SIG WHEN VERB JOB ...
WHEN is a file name (summary.json, best.toml): the signal comes right after the first write of a file of that name
(`hpcflow.jobs.output.write_json` / `write_text`, which every rank calls and rank 0 alone writes); "module:function"
of hpcflow: as that function is first entered; or "end": after the command has returned its status, as the process
ends. SIG is a signal name (SIGTERM, SIGUSR1). The rank says "sent SIG" on stderr first.
"""

import importlib
import os
import signal
import sys

from hpcflow.cli import main
from hpcflow.jobs import output

rank, sig, when = int(sys.argv[1]), getattr(signal, sys.argv[2]), sys.argv[3]
sent = []


def _signal_here(comm=None) -> None:
    from hpcflow.parallel.comm import rank as my_rank

    if not sent and my_rank(comm) == rank:
        sent.append(True)
        print(f"sent {sys.argv[2]}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), sig)


def _signalled_after(write):
    def written_then_signalled(path, *args, **kwargs):
        write(path, *args, **kwargs)
        if os.path.basename(path) == when:
            _signal_here(kwargs.get("comm"))

    return written_then_signalled


def _signalled_first(inner):
    def signalled_first(*args, **kwargs):
        _signal_here()
        return inner(*args, **kwargs)

    return signalled_first


if ":" in when:
    module_name, name = when.split(":")
    module = importlib.import_module(module_name)
    setattr(module, name, _signalled_first(getattr(module, name)))
output.write_json, output.write_text = _signalled_after(output.write_json), _signalled_after(output.write_text)
status = main(sys.argv[4:])
if when == "end":
    _signal_here()
sys.exit(status)
