"""`abort_on_error` at 2 and 3 ranks: when every rank raises, each rank's message (rank 0's included, though it
raises last) and rank 0's buffered stdout come out before the Abort, and the job's status is rank 0's; when one rank
raises while the others wait in a collective, the job still ends, non-zero, within ABORT_WAIT and a margin."""

import os
import subprocess
import sys
import time

import pytest

from hpcflow.parallel.comm import ABORT_WAIT
from test_parallel import mpiexec

SCRIPT = os.path.join(os.path.dirname(__file__), "mpi", "abort_checks.py")
ENV = dict(os.environ, HPCFLOW_THREADS="1", OMP_NUM_THREADS="1")
#: seconds rank 0 raises after the others (well within ABORT_WAIT): it lost the race for the Abort every time
SKEW = 0.2


def _run(mode: str, ranks: int, skew: float = SKEW, *wait: float, env: dict | None = None):
    t0 = time.monotonic()
    r = subprocess.run(["timeout", "60", mpiexec(), "-n", str(ranks), sys.executable, SCRIPT, mode, str(skew),
                        *map(str, wait)], capture_output=True, text=True, timeout=90, env=dict(ENV, **(env or {})))
    return r, time.monotonic() - t0


def _said(stderr: str, rank: int, header: str, last: str | None) -> None:
    """`rank`'s message is in the ranks' shared stderr whole: its tagged first line and, for a traceback, its
    last line's message, which the first line holds too (counted, not looked for at line starts or ends: the
    interpreter writes the exception's type name, ': ' and its message separately, and other ranks' output can
    land between them)."""
    assert stderr.count(f"hpcflow: rank {rank}: {header}") == 1, stderr
    if last is not None:
        message = last.split(": ", 1)[1]
        assert last in header and stderr.count(message) == 2, stderr


@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("skew", [0.0, SKEW, SKEW])
def test_every_rank_raising_prints_every_message_before_the_abort(ranks, skew):
    r, _ = _run("all", ranks, skew)
    assert r.returncode == 1, r.stderr
    for k in range(ranks):
        _said(r.stderr, k, f"ERROR RuntimeError: injected failure on rank {k}",
              f"RuntimeError: injected failure on rank {k}")
        assert r.stdout.count(f"rank {k} printed before failing") == 1, r.stdout


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_rank_slow_to_leave_is_not_killed_and_the_status_stays_rank_0s(ranks, tmp_path):
    """Every rank raises and the last one is slow on its way out (each stderr flush after its failure takes 0.5 s,
    as a descheduled rank on busy cores would be): the others leave first without the launcher killing it (it
    ends every flush it begins, its message's and the last one as it leaves), and the job's status is rank 0's, 1 (a kill made it 9, SIGKILL's, now and then)."""
    record = tmp_path / "flushes"
    r, _ = _run("slow-exit", ranks, env={"ABORT_FLUSHES": str(record)})
    flushes = record.read_text().split()  # at least its message's flush and the one as it leaves, each whole
    assert len(flushes) >= 4 and flushes == ["begin", "end"] * (len(flushes) // 2), (flushes, r.stdout, r.stderr)
    assert r.returncode == 1, r.stdout + r.stderr
    for k in range(ranks):
        _said(r.stderr, k, f"ERROR RuntimeError: injected failure on rank {k}",
              f"RuntimeError: injected failure on rank {k}")


def test_a_rank_whose_finalize_waits_for_a_late_rank_leaves_within_its_wait(tmp_path):
    """`leave(wait=1)` on rank 0 while rank 1 stays busy for 20 s: rank 0's MPI Finalize waits for rank 1 (holding
    the GIL), and the watchdog still ends rank 0 within a few seconds, not when rank 1 arrives."""
    pidfile = tmp_path / "pid"
    script = os.path.join(os.path.dirname(__file__), "mpi", "leave_checks.py")
    job = subprocess.Popen(["timeout", "60", mpiexec(), "-n", "2", sys.executable, script, str(pidfile), "1.0", "20"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        t0 = time.monotonic()
        while not pidfile.exists() and time.monotonic() - t0 < 30:
            time.sleep(0.05)
        pid, t0 = int(pidfile.read_text()), time.monotonic()
        while _alive(pid) and time.monotonic() - t0 < 15:
            time.sleep(0.05)
        gone_after = time.monotonic() - t0
    finally:
        job.kill()
        job.communicate()
    assert gone_after < 10, gone_after  # the watchdog's 1 + 1 s and start-up on busy cores; rank 1 arrives at 20 s


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


#: seconds rank 0 raises after the others in the `wait=` tests: beyond ABORT_WAIT, well within LONG_WAIT (3 ranks
#: on 2 busy cores: a margin of 1 s let the others give up on rank 0 once; the run takes ~LATE when all arrive)
LATE, LONG_WAIT = ABORT_WAIT + 1.0, ABORT_WAIT + 8.0


@pytest.mark.parametrize("ranks", [2, 3])
def test_a_longer_wait_lets_a_late_rank_0_speak_before_the_abort(ranks):
    """abort_on_error(wait=...) is how long the failing ranks wait for the others: rank 0, LATE seconds behind them
    (recording the failure somewhere first, as `hpcflow tune` does), still prints its message and its stdout, and
    the job ends with rank 0's status (a UserError: 2; the others raised RuntimeErrors: 1)."""
    r, seconds = _run("mixed", ranks, LATE, LONG_WAIT)
    assert r.returncode == 2, r.stderr
    _said(r.stderr, 0, "error: injected bad input on rank 0", None)
    for k in range(1, ranks):
        _said(r.stderr, k, "ERROR RuntimeError: injected failure", None)
    assert r.stdout.count("rank 0 printed before failing") == 1, r.stdout
    assert LATE <= seconds < LONG_WAIT + 30, seconds


def test_the_default_wait_gives_up_on_a_rank_0_later_than_it():
    """The same run with the default wait (ABORT_WAIT < LATE): rank 1 aborts the job with its own status before
    rank 0 says anything, so the longer wait above is what let rank 0 speak."""
    r, _ = _run("mixed", 2, LATE)
    assert r.returncode not in (0, 2, 124), r.returncode
    _said(r.stderr, 1, "ERROR RuntimeError: injected failure", None)
    assert "hpcflow: rank 0" not in r.stderr and "rank 0 printed" not in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize("ranks", [2, 3])
@pytest.mark.parametrize("mode", ["user", "mixed"])
def test_every_rank_raising_ends_with_rank_0s_status(ranks, mode):
    """A UserError on rank 0 gives status 2 at R > 1, whatever the others raised (their Abort used to win)."""
    r, _ = _run(mode, ranks)
    assert r.returncode == 2, r.stderr
    _said(r.stderr, 0, "error: injected bad input on rank 0", None)
    for k in range(1, ranks):
        _said(r.stderr, k, "error: injected bad input" if mode == "user" else "ERROR RuntimeError: injected failure",
              None)
    assert r.stdout.count("rank 0 printed before failing") == 1, r.stdout


@pytest.mark.parametrize("ranks", [2, 3])
def test_one_rank_raising_ends_the_job_in_bounded_time(ranks):
    r, seconds = _run("one", ranks)
    assert r.returncode not in (0, 124), r.returncode  # non-zero, and not the timeout's status
    _said(r.stderr, ranks - 1, f"ERROR RuntimeError: injected failure on rank {ranks - 1}",
          f"RuntimeError: injected failure on rank {ranks - 1}")
    assert seconds < ABORT_WAIT + 30, seconds  # the others wait in a collective: the failing rank gives up on them
