"""Importing hpcflow's network part as a library (`import hpcflow.nn.train`, which holds stop requests back while
torch imports) leaves the process's signal wakeup fd as it found it: none, or the program's own (asyncio and trio set
one; another's in its place silently takes their signals' bytes)."""

import subprocess
import sys

import pytest

PROBE = r"""
import os, signal, sys
own = sys.argv[1] == "own"
if own:
    r, w = os.pipe()
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w)
import hpcflow.nn.train  # noqa: F401
now = signal.set_wakeup_fd(-1)
print("same" if now == (w if own else -1) else f"changed to {now}")
if own:  # the program's pipe still gets its signals' numbers
    signal.set_wakeup_fd(w)
    signal.signal(signal.SIGUSR1, lambda *a: None)
    signal.raise_signal(signal.SIGUSR1)
    print("got" if os.read(r, 16) == bytes([signal.SIGUSR1]) else "lost")
"""


@pytest.mark.parametrize("before", ["none", "own"])
def test_importing_the_network_part_leaves_the_wakeup_fd_as_it_was(before):
    out = subprocess.run([sys.executable, "-c", PROBE, before], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == (["same", "got"] if before == "own" else ["same"]), out.stdout
