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


def _flow(tmp_path, kib: int, ranks: int = 1, *extra, name: str = "out", env=None):
    """jobs/quickstart.toml as it is (its batched clustering, halo and nearest searches load SciPy mid-run) under
    `ulimit -v kib`."""
    cmd = [sys.executable, "-m", "hpcflow", "run", JOB, "--out", str(tmp_path / name), *extra]
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env or dict(os.environ),
                          preexec_fn=_limited(kib))


def _need_kib(tmp_path, ranks: int) -> tuple[int, int]:
    """(the need the refusal states, in KiB rounded down; the "at least N KiB" it advises)."""
    r = _flow(tmp_path, 450000, ranks, name="low")
    _refused_out(r, tmp_path / "low")
    need = float(re.search(r"needs ([\d.]+) MiB of address space", r.stderr).group(1))
    return int(need * 1024), int(re.search(r"at least (\d+) KiB", r.stderr).group(1))


def _refused_out(r, out):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert len(lines) == 1, r.stderr
    assert "exceeds" in lines[0] and "ulimit -v" in lines[0], lines[0]
    assert not out.exists()


@pytest.mark.parametrize("ranks", [1, 2])
def test_flow_that_loads_scipy_mid_run_is_refused_below_its_need_and_completes_at_it(tmp_path, ranks):
    """The quickstart loads scipy.spatial (scipy.special, scipy.linalg and SciPy's own OpenBLAS) mid-run: a check
    that counted only what was loaded before passed at `ulimit -v 560000` under mpiexec (541 MiB of 547 MiB) and the
    run failed mapping scipy.special (exit 5) or hung in OpenBLAS's mmap retries. Refused just below the limit the
    refusal names, and that limit lets the run finish."""
    need, advised = _need_kib(tmp_path, ranks)
    _refused_out(_flow(tmp_path, need - 2048, ranks, name="below"), tmp_path / "below")
    for kib, name in ((need + 2048, "at"), (advised, "out")):
        ok = _flow(tmp_path, kib, ranks, name=name)
        assert ok.returncode == 0, (kib, ok.stderr[-3000:])
        assert (tmp_path / name / "summary.json").is_file()


def test_two_ranks_at_a_limit_the_old_check_passed_do_not_fail_mid_run(tmp_path):
    """At `ulimit -v 560000` under mpiexec -n 2 the run is refused up front or completes, never out of memory."""
    r = _flow(tmp_path, 560000, 2)
    assert r.returncode in (0, 2), (r.returncode, r.stderr[-3000:])
    if r.returncode == 2:
        _refused_out(r, tmp_path / "out")


def _figures(text: str, what: str):
    m = re.search(rf"{what} ([\d.]+) (MiB|GiB) of ([\d.]+) (MiB|GiB)", text)
    assert m, text
    scale = {"MiB": 1, "GiB": 1024}
    return float(m.group(1)) * scale[m.group(2)], float(m.group(3)) * scale[m.group(4)]


@pytest.mark.parametrize("which, kib, what", [(resource.RLIMIT_DATA, 430000, "data"),
                                              (resource.RLIMIT_AS, 620000, "address space")])
def test_check_states_the_figures_it_decided_with(tmp_path, which, kib, what):
    """--check's line names the need the check compared with the limit: "valid" with a need within it, a refusal
    otherwise (under `ulimit -d 430000` it had said "data 429 MiB of 420 MiB" beside "valid", the check having
    decided with 413 MiB, measured before its own imports grew the process)."""
    def limited():
        resource.setrlimit(which, (kib * 1024, kib * 1024))

    cmd = [sys.executable, "-m", "hpcflow", "run", JOB, "--out", str(tmp_path / "out"), "--check"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, preexec_fn=limited)
    if r.returncode == 0:
        need, soft = _figures(r.stdout, what)
        assert need <= soft, r.stdout
        assert "valid" in r.stdout
    else:
        assert r.returncode == 2 and "exceeds" in r.stderr, (r.returncode, r.stderr[-3000:])
    assert not (tmp_path / "out").exists()
