"""A SIGTERM during start-up (the imports and MPI_Init, a few tenths of a second under mpiexec) ends the command as
one a moment later does: one line `hpcflow run: stopped by SIGTERM`, status 143, nothing written; before, the
process died of the signal (under mpiexec: the launcher's BAD TERMINATION banner, status 15)."""

import os
import signal
import subprocess
import sys
import time

import pytest

from test_parallel import mpiexec

JOB = os.path.join(os.path.dirname(__file__), "..", "jobs", "quickstart.toml")
ENV = dict(os.environ, HPCFLOW_THREADS="1")
TERM_BIT = 1 << (signal.SIGTERM - 1)  # in /proc/PID/status SigCgt: the signals a process catches


def _status(pid: int, key: str) -> str:
    with open(f"/proc/{pid}/status") as fh:
        return next((line.split(":", 1)[1].strip() for line in fh if line.startswith(key + ":")), "")


def _pythons(pid: int) -> list:
    """`pid` and its descendants that run python (the ranks under mpiexec)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            if _status(p, "Name").startswith("python"):
                found.append(p)
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, StopIteration):
            continue
    return found


def _heavy_loaded(pid: int) -> bool:
    """Whether `pid` has NumPy's OpenBLAS or MPI loaded: the imports and MPI_Init, the bulk of the start-up, under
    way."""
    try:
        with open(f"/proc/{pid}/maps") as fh:
            maps = fh.read()
    except OSError:
        return False
    return "openblas" in maps or "libmpi" in maps


def _mpi_loaded(pid: int) -> bool:
    """Whether `pid` has the MPI library loaded (mpi4py's import, MPI_Init under way or done)."""
    try:
        with open(f"/proc/{pid}/maps") as fh:
            return "libmpi" in fh.read()
    except OSError:
        return False


def _term_during_start_up(tmp_path, ranks: int):
    """Start `hpcflow run` (under mpiexec for ranks > 1) and send SIGTERM to it once each rank catches SIGTERM (a rank
    still in the interpreter's own start dies of it, as any Python program would): (status, stderr, whether it was
    sent during the start-up: before NumPy or MPI was loaded on one rank, before MPI on every rank of several, whose
    MPI_Init waits for them all)."""
    cmd = [sys.executable, "-m", "hpcflow", "run", JOB, "--out", str(tmp_path / "out"), "--set", "flow.steps=3"]
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    pys = []
    try:
        while proc.poll() is None:
            pys = [p for p in _pythons(proc.pid) if ranks == 1 or p != proc.pid]
            if len(pys) == ranks and all(int(_status(p, "SigCgt") or "0", 16) & TERM_BIT for p in pys):
                break
            time.sleep(0.002)
        if proc.poll() is not None:
            return proc.returncode, proc.stderr.read(), False
        early = not _heavy_loaded(pys[0]) if ranks == 1 else not all(_mpi_loaded(p) for p in pys)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=60), proc.stderr.read(), early
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("ranks", [1, 2, 2])
def test_a_sigterm_during_start_up_ends_with_one_line_and_143(tmp_path, ranks):
    for attempt in range(5):  # a loaded machine may deschedule the poller past the start-up: then once more
        out = tmp_path / f"try{attempt}"
        out.mkdir()
        status, err, early = _term_during_start_up(out, ranks)
        if early:
            break
    assert early, "each signal was sent after the start-up's imports and MPI_Init, not during them"
    assert status == 143, (status, err)
    assert err.splitlines()[0] == "hpcflow run: stopped by SIGTERM", err
    assert "BAD TERMINATION" not in err and "Traceback" not in err, err
    assert not (out / "out").exists()
