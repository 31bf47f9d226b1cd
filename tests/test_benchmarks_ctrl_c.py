"""Ctrl-C (SIGINT) to a benchmark script at work ends it in one line "<script>: interrupted" on stderr with exit
status 130 and no traceback, on one process and under mpiexec (which passes the SIGINT on to every rank). The
process gets the signal as from a terminal (`test_ctrl_c._start`)."""

import os
import sys

import pytest

from test_benchmarks_args import BENCH
from test_ctrl_c import _ctrl_c, _start, _wait_for
from test_parallel import mpiexec

#: bench_identity_check: a line for the tiny first size, then a minute of hashing the second (Ctrl-C lands there)
ARGS = ["--sizes", "10", "50000", "--repeats", "3000"]


@pytest.mark.parametrize("ranks", [1, 2])
def test_ctrl_c_ends_a_benchmark_in_one_line_with_130(tmp_path, ranks):
    """bench_identity_check was ended by Ctrl-C with a KeyboardInterrupt traceback (exit 1; under mpiexec each rank's
    traceback, tagged "hpcflow: rank R: ERROR KeyboardInterrupt", and the job's Abort)."""
    script = "bench_identity_check.py"
    log = tmp_path / "stdout"
    proc = _start([*([mpiexec(), "-n", str(ranks)] if ranks > 1 else []), sys.executable,
                   os.path.join(BENCH, script), *ARGS], log)
    _wait_for(proc, log, r'"n": 10,')  # the first size done: the second is under way
    status, err = _ctrl_c(proc)
    assert status == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert "BAD TERMINATION" not in err, err  # no launcher banner (MPICH says its Abort in a line of its own)
    ours = [line for line in err.splitlines() if line.startswith(script)]
    assert ours == [f"{script}: interrupted"], err
