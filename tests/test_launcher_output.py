"""A rank about to Abort waits until its launcher has read the lines it wrote: mpiexec's proxy sometimes dropped a
line still queued in the rank's stderr pipe when the Abort ended the job (3 of 75 `hpcflow nn` runs signalled in
their start-up under load ended with status 138 and an empty stderr). Here the reader of the pipe is this process,
which reads only after a delay; the Abort (a stand-in that records the pipe's unread bytes and the time) must come
after that read, and within the bound where nobody reads."""

import os
import subprocess
import sys
import threading
import time

import pytest

from hpcflow.launcher_output import queued, wait_until_read

#: seconds this process waits, the child's line in the pipe, before it reads the child's stderr
DELAY = 0.5

CHILD = """
import os, signal, sys, time
from hpcflow import stop_signals
from hpcflow.launcher_output import queued
from hpcflow.parallel import comm as pcomm

where, report = sys.argv[1], sys.argv[2]


class World:
    def Get_rank(self):
        return 0

    def Get_size(self):
        return 2

    def Abort(self, status):
        with open(report, "w") as f:
            f.write(f"{queued(2)} {time.monotonic()}")
        os._exit(status)


class Pending:
    def Test(self):
        return False


class Agree(World):
    def Ibarrier(self):
        return Pending()


if where == "interrupted":
    stop_signals._mpi_world = World
    stop_signals.interrupted("hpcflow x", stop_signals.Stopped(signal.SIGTERM))
else:
    print("hpcflow: rank 0: error: injected", file=sys.stderr, flush=True)
    pcomm.abort_together(World(), Agree(), 2, wait=0.05)
"""


@pytest.mark.parametrize("where, status, line", [("interrupted", 143, "hpcflow x: stopped by SIGTERM"),
                                                 ("abort_together", 2, "hpcflow: rank 0: error: injected")])
def test_the_abort_comes_after_the_launcher_read_the_ranks_line(tmp_path, where, status, line):
    report = tmp_path / "abort"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    child = subprocess.Popen([sys.executable, "-c", CHILD, where, str(report)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 60
        while not queued(child.stderr.fileno()) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # until the child's line is in the pipe
        time.sleep(DELAY)
        read_at = time.monotonic()
        err = child.stderr.read().decode()
        assert child.wait(timeout=30) == status, err
    finally:
        child.kill()
        child.stderr.close()
    assert err.splitlines() == [line]
    left, abort_at = report.read_text().split()
    assert int(left) == 0 and float(abort_at) >= read_at, (left, float(abort_at) - read_at)


def test_queued_counts_the_unread_bytes_of_a_pipe_and_nothing_else(tmp_path):
    r, w = os.pipe()
    try:
        assert queued(w) == 0
        os.write(w, b"hello")
        assert queued(w) == 5 and queued(r) == 5
        os.read(r, 2)
        assert queued(w) == 3
        os.read(r, 3)
        assert queued(w) == 0
    finally:
        os.close(r)
        os.close(w)
    with open(tmp_path / "f", "wb") as f:
        f.write(b"data")
        f.flush()
        assert queued(f.fileno()) == 0  # a file keeps what was written
    assert queued(w) == 0  # a closed descriptor


def test_wait_until_read_waits_for_a_slow_reader_and_gives_up_on_none():
    r, w = os.pipe()
    try:
        os.write(w, b"x" * 100)
        got = []
        reader = threading.Timer(0.3, lambda: got.append(os.read(r, 1000)))
        reader.start()
        assert wait_until_read((w,), timeout=30)
        assert got == [b"x" * 100]  # it returned once the reader had read, not before
        reader.join()
        os.write(w, b"y")
        t0 = time.monotonic()
        assert not wait_until_read((w,), timeout=0.2)  # nobody reads: it gives up after the timeout
        assert time.monotonic() - t0 >= 0.2
    finally:
        os.close(r)
        os.close(w)
