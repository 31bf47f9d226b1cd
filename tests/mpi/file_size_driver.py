"""The hpcflow command line with files limited to N bytes (RLIMIT_FSIZE), for tests/test_write_failures.py.

Usage: python file_size_driver.py N WHEN ARGS...
WHEN "start": from the start (after MPI_Init under a launcher: MPICH's shared memory needs larger files); "closed":
once the flow's checkpoint is closed, so the first write the limit refuses is one of the run's results. SIGXFSZ is
ignored, so a write beyond N bytes fails with EFBIG as on a file system whose space ends there.
"""

import resource
import signal
import sys

from hpcflow.cli import main
from hpcflow.parallel.comm import resolve

limit, when = int(sys.argv[1]), sys.argv[2]


def limit_files():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


if when == "start":
    resolve()  # under a launcher: MPI_Init before the limit
    limit_files()
else:
    from hpcflow import checkpoint

    close = checkpoint.CheckpointWriter.close

    def closed_then_limited(self, status):
        step = close(self, status)
        limit_files()
        return step

    checkpoint.CheckpointWriter.close = closed_then_limited
sys.exit(main(sys.argv[3:]))
