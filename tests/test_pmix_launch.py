"""A PMIx launch (srun --mpi=pmix) with an MPICH that speaks PMI-1/PMI-2 only is refused before MPI_Init, in one line
(exit 2), where MPI_Init itself aborted with its error stack; the launches this MPICH can join still run."""

import os
import subprocess
import sys

import pytest

from hpcflow.parallel.comm import pmix_refusal
from test_parallel import mpiexec

JOB = os.path.join(os.path.dirname(__file__), "..", "jobs", "quickstart.toml")
ENV = dict(os.environ, HPCFLOW_THREADS="1")
MPI_INIT = [sys.executable, "-c", "from mpi4py import MPI; print(MPI.COMM_WORLD.Get_size())"]

PMIX = {"srun --mpi=pmix": {"PMIX_NAMESPACE": "slurm.pmix.7.0", "PMIX_RANK": "0"},
        "PMIX_RANK alone": {"PMIX_RANK": "0"}}


def _check(tmp_path, env, ranks=1):
    cmd = [sys.executable, "-m", "hpcflow", "run", JOB, "--out", str(tmp_path / "out"), "--check"]
    if ranks > 1:
        cmd = [mpiexec(), "-n", str(ranks), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=dict(ENV, **env))


@pytest.mark.parametrize("case", PMIX)
def test_a_pmix_launch_is_refused_in_one_line_before_mpi_init(tmp_path, case):
    env = PMIX[case]
    bare = subprocess.run(MPI_INIT, capture_output=True, text=True, timeout=60, env=dict(ENV, **env))
    assert bare.returncode != 0, bare.stdout  # this MPICH's own MPI_Init cannot join such a launch
    r = _check(tmp_path, env)
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    line, = r.stderr.strip().splitlines()
    assert line.startswith("hpcflow run: error: PMIX_") and "srun --mpi=pmi2" in line, line
    assert f"unset {line.split()[3]}" in line, line  # the variable found, where the launch is not srun's
    assert not (tmp_path / "out").exists()


def test_a_stray_pmix_namespace_under_mpiexec_is_refused_with_the_fix_that_lets_it_run(tmp_path):
    """PMIX_NAMESPACE left from an 'srun --pty bash' shell (a cluster's default --mpi=pmix) under this MPICH's own
    mpiexec: refused in one line that names unsetting it or MPIR_CVAR_PMI_VERSION=1, with which the same launch
    runs; 'use the mpiexec of the MPI mpi4py was built with' alone misled a user already using it."""
    stray = {"PMIX_NAMESPACE": "slurm.pmix.123.0"}
    r = _check(tmp_path, stray, ranks=2)
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    line = r.stderr.strip().splitlines()[0]
    assert line.startswith("hpcflow run: error: PMIX_NAMESPACE"), r.stderr
    assert "unset PMIX_NAMESPACE" in line and "MPIR_CVAR_PMI_VERSION=1" in line, line
    assert not (tmp_path / "out").exists()
    assert _check(tmp_path, dict(stray, MPIR_CVAR_PMI_VERSION="1"), ranks=2).returncode == 0
    assert _check(tmp_path, {}, ranks=2).returncode == 0  # unset


def test_the_launches_this_mpich_joins_are_not_refused(tmp_path):
    """PMIX_RANK left in the environment of Hydra's mpiexec (which gives its ranks PMI_FD), and PMIX_NAMESPACE with
    MPICH's choice of PMI named, are launches MPI_Init joins: hpcflow runs them."""
    under_mpiexec = _check(tmp_path, {"PMIX_RANK": "0"}, ranks=2)
    assert under_mpiexec.returncode == 0, under_mpiexec.stderr[-3000:]
    named = {"PMIX_NAMESPACE": "slurm.pmix.7.0", "MPIR_CVAR_PMI_VERSION": "1"}
    assert subprocess.run(MPI_INIT, capture_output=True, timeout=60, env=dict(ENV, **named)).returncode == 0
    assert _check(tmp_path, named).returncode == 0


def test_an_mpi_with_pmix_is_not_refused():
    """An MPICH configured with PMIx, and Open MPI (PMIx built in), take srun --mpi=pmix."""
    env = PMIX["srun --mpi=pmix"]
    with_pmix = "MPICH Version:      4.2.3\nMPICH configure:    --with-device=ch4:ofi --with-pmix=/usr\n"
    without = "MPICH Version:      5.0.2\nMPICH configure:    --with-pm=hydra\n"
    assert pmix_refusal(env, with_pmix, loaded=False) is None
    assert pmix_refusal(env, "Open MPI v5.0.5, package: Open MPI ...", loaded=False) is None
    assert "srun --mpi=pmi2" in pmix_refusal(env, without, loaded=False)
    assert pmix_refusal(env, without, loaded=True) is None  # once MPI is loaded, MPI_Init has run: nothing to refuse


@pytest.mark.parametrize("case", PMIX)
def test_hpcflow_info_refuses_a_pmix_launch_in_one_line_as_run_does(case):
    """`hpcflow info` (the first step of the MPI and GPU sbatch templates) under a PMIx launch this MPICH cannot join:
    the one line and exit 2 of `hpcflow run`, not MPI_Init's error stack (MPICH's Abort, exit 16)."""
    r = subprocess.run([sys.executable, "-m", "hpcflow", "info"], capture_output=True, text=True, timeout=120,
                       env=dict(ENV, **PMIX[case]))
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    line, = r.stderr.strip().splitlines()
    assert line.startswith("hpcflow info: error: PMIX_") and "srun --mpi=pmi2" in line, line
    assert r.stdout == ""


def test_the_library_version_is_that_of_the_library_mpi4py_is_told_to_load(monkeypatch, tmp_path):
    """$MPI4PY_LIBMPI names the library mpi4py loads (a cluster's MPI beside the wheel): the version read before
    MPI_Init is that library's, none where it cannot be opened, not the wheel's MPICH."""
    from hpcflow.parallel.comm import library_version

    monkeypatch.delenv("MPI4PY_LIBMPI", raising=False)
    assert "MPICH" in (library_version() or "")
    monkeypatch.setenv("MPI4PY_LIBMPI", str(tmp_path / "no-such-libmpi.so.12"))
    assert library_version() is None
