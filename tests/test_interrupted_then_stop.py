"""After Ctrl-C's "interrupted" line (status 130 decided, no checkpoint written), a SIGTERM or SIGUSR1 that comes
while the process ends is ignored, as after a SIGTERM's stop: the process ended by the later signal instead."""

import signal
import subprocess
import sys

import pytest

PROBE = r"""
import os, signal, sys, time
from hpcflow.stop_signals import interrupted
status = interrupted("hpcflow sample", KeyboardInterrupt())
os.kill(os.getpid(), getattr(signal, sys.argv[1]))  # the later request, as the process ends
time.sleep(0.2)
sys.exit(status)
"""


@pytest.mark.parametrize("later", ["SIGTERM", "SIGUSR1"])
def test_a_request_after_interrupted_leaves_the_status_130(later):
    out = subprocess.run([sys.executable, "-c", PROBE, later], capture_output=True, text=True, timeout=120)
    assert out.returncode == 130, (out.returncode, out.stderr)
    assert out.stderr.splitlines() == ["hpcflow sample: interrupted"], out.stderr


CHILD = r"""
import signal, subprocess, sys
from hpcflow.stop_signals import interrupted
status = interrupted("hpcflow sample", KeyboardInterrupt())
child = subprocess.Popen(["sleep", "2"])
with open("/proc/%d/status" % child.pid) as f:
    print([line for line in f if line.startswith("SigIgn")][0].split()[1])
child.kill()
sys.exit(status)
"""


def test_the_handler_left_is_not_inherited_as_ignored():
    """A program started after the interrupt takes SIGTERM as it would (a handler of Python's, not SIG_IGN)."""
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120)
    assert out.returncode == 130, out.stderr
    ignored = int(out.stdout.split()[-1], 16)
    assert not ignored & (1 << (signal.SIGTERM - 1) | 1 << (signal.SIGUSR1 - 1)), out.stdout
