"""What a rank wrote and its launcher has not read yet: before an MPI Abort a rank waits, bounded, until the launcher
(mpiexec's proxy, slurmstepd) has read its stdout and stderr pipes. A launcher that ends the job on the Abort may
drop what is still queued there: under load 3 of 75 Aborts lost the rank's last line (why the job ended) and
MPICH's own "Abort(...)" line with it."""

from __future__ import annotations

import array
import fcntl
import os
import stat
import sys
import termios
import time

#: seconds a rank waits at most for its launcher to read its output before it aborts anyway (a launcher that does
#: not read, or is stopped, must not keep the job from ending)
READ_WAIT = 2.0
#: seconds between two looks at the pipes
POLL = 0.002


def queued(fd: int) -> int:
    """Bytes written to `fd` that its reader has not read yet, where `fd` is a pipe (FIONREAD); 0 for anything
    else (a file, a terminal, a closed descriptor), whose writes are not lost when the process ends."""
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return 0
        count = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, count)
    except OSError:
        return 0
    return int(count[0])


def wait_until_read(fds: tuple = (1, 2), *, timeout: float = READ_WAIT) -> bool:
    """Flush sys.stdout and sys.stderr, then wait until nothing written to `fds` is queued in a pipe (True), or
    `timeout` seconds passed (False)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):  # closed or replaced by None: nothing of ours is queued there
            pass
    deadline = time.monotonic() + timeout
    while any(queued(fd) for fd in fds):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL)
    return True
