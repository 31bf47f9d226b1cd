"""An address-space limit (RLIMIT_AS, `ulimit -v`) is compared with the address space a run maps, not only with its
resident estimate: under one that the run cannot live in, it is refused up front (one line, exit status 2)."""

import os
import re
import resource
import subprocess
import sys

import pytest

from test_parallel import mpiexec

JOB = os.path.join(os.path.dirname(__file__), "..", "jobs", "quickstart.toml")
ENV = dict(os.environ, HPCFLOW_THREADS="1")


def _limited(kib: int):
    """preexec_fn: RLIMIT_AS of `kib` KiB (as `ulimit -v kib`) for the child and what it starts."""
    return lambda: resource.setrlimit(resource.RLIMIT_AS, (kib * 1024, kib * 1024))


#: the quickstart's kernel compiled by Numba, whose Numba and LLVM map ~100 MiB more (its engine "auto" takes
#: NumPy's passes at this size)
NUMBA = ("--set", "kernel.engine=numba")


def _run(tmp_path, kib: int, ranks: int = 1, *extra):
    cmd = [sys.executable, "-m", "hpcflow", "run", JOB, "--out", str(tmp_path / "out"), "--set", "flow.steps=3",
           *extra]
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=ENV, preexec_fn=_limited(kib))


def _refused(r, tmp_path):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert len(lines) == 1, r.stderr
    assert "estimated peak memory" in lines[0] and "exceeds" in lines[0] and "ulimit -v" in lines[0], lines[0]
    assert not (tmp_path / "out").exists()  # nothing done: no directory, no lock file


@pytest.mark.parametrize("kib, extra", [(400000, ()), (600000, NUMBA)])
def test_two_ranks_are_refused_the_address_space_they_cannot_run_in(tmp_path, kib, extra):
    """Under mpiexec each rank maps ~540 MiB once MPI and the libraries are loaded (Numba's with them): at 586 MiB
    the run died in OpenBLAS's buffer allocation (exit 1, the lock file left), at 390 MiB with MemoryError and a
    thread that could not start, although the resident estimate (306 MiB) fitted both."""
    _refused(_run(tmp_path, kib, 2, *extra), tmp_path)


def test_one_rank_is_refused_and_runs_at_the_limit_the_refusal_names(tmp_path):
    """At one rank the same: refused below what it maps, and the limit the line advises lets the run finish."""
    r = _run(tmp_path, 600000, 1, *NUMBA)
    _refused(r, tmp_path)
    advised = int(re.search(r"at least (\d+) KiB", r.stderr).group(1))
    ok = _run(tmp_path, advised, 1, *NUMBA)
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert (tmp_path / "out" / "summary.json").is_file()


NN_JOB = os.path.join(os.path.dirname(__file__), "..", "jobs", "nn_smoke.toml")


def _nn(tmp_path, kib: int, *extra):
    cmd = [sys.executable, "-m", "hpcflow", "nn", NN_JOB, "--out", str(tmp_path / "out"), *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=ENV, preexec_fn=_limited(kib))


def test_network_run_is_refused_below_what_torch_numba_and_openblas_map_and_runs_at_the_advised_limit(tmp_path):
    """A network run maps ~1.1 GiB at its peak (torch ~600 MiB, Numba and scipy's OpenBLAS, its 32 MiB buffers), but
    the check measured before they loaded (~300 MiB): under `ulimit -v 1100000` it passed, then looped forever in
    OpenBLAS's mmap of its buffer after epoch 0. Refused up front instead, and the limit it advises lets it finish."""
    r = _nn(tmp_path, 1100000, "--check")
    _refused(r, tmp_path)
    advised = int(re.search(r"at least (\d+) KiB", r.stderr).group(1))
    ok = _nn(tmp_path, advised, "--set", "training.epochs=1", "--set", "width_sweep.epochs=1")
    assert ok.returncode == 0, ok.stderr[-3000:]
    assert (tmp_path / "out" / "summary.json").is_file()
