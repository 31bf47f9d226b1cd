"""`hpcflow tune ...` that sends itself signal SIG (SIGTERM, SIGUSR1) at WHERE: "startup" (while the search space is
checked, before --out's lock and the storage) or "end" (while best.toml is written under its lock, after the last
trial), for tests/test_tune_stop_signals.py.

Usage: python tune_stop_driver.py WHERE SIG tune JOB --trials N --out DIR ...
"""

import os
import signal
import sys

from hpcflow.cli import main
from hpcflow.tune import study


def signalled_in(name: str, signum: int) -> None:
    """hpcflow.tune.study.`name` sends this process `signum` before it runs (its first call only)."""
    real, sent = getattr(study, name), []

    def sending(*args, **kwargs):
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    setattr(study, name, sending)


if __name__ == "__main__":
    signalled_in({"startup": "check_space", "end": "_write_best"}[sys.argv[1]], getattr(signal, sys.argv[2]))
    sys.exit(main(sys.argv[3:]))
