"""MPI4PY_LIBMPI naming a library that does not load: the launch refusal and `hpcflow info` name the variable, the
loader's message on the same line and the fix (they blamed srun's PMI, and info split the message over two lines)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MISSING = "/nonexistent/libmpi.so"
#: what the dynamic loader says of a file that is not there (dlopen's error)
LOADER = f"{MISSING}: cannot open shared object file: No such file or directory"


def _hpcflow(*argv, ranks: int = 0, tmp_path=None) -> subprocess.CompletedProcess:
    from test_parallel import mpiexec

    env = dict(os.environ, MPI4PY_LIBMPI=MISSING, PYTHONPATH=str(ROOT), HPCFLOW_THREADS="1")
    launcher = [mpiexec(), "-n", str(ranks)] if ranks else []
    return subprocess.run(["timeout", "120", *launcher, sys.executable, "-m", "hpcflow", *argv], capture_output=True,
                          text=True, env=env, timeout=150, cwd=tmp_path)


def test_a_launch_whose_ranks_cannot_load_the_named_library_names_the_variable(tmp_path):
    """Said once, by the task of launcher rank 0 (each task, rank 0 of a world of its own, said it); every task
    exits 2."""
    r = _hpcflow("run", str(ROOT / "jobs" / "quickstart.toml"), "--out", str(tmp_path / "out"), "--check", ranks=2)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hpcflow run: error: the launcher started 2 tasks"), r.stderr
    assert f"MPI4PY_LIBMPI='{MISSING}'" in lines[0] and LOADER in lines[0] and "unset MPI4PY_LIBMPI" in lines[0]
    assert "srun" not in lines[0].split("MPI4PY_LIBMPI")[0], lines[0]  # not blamed on srun's PMI
    assert not (tmp_path / "out").exists()


def test_info_says_the_library_the_variable_names_on_one_line(tmp_path):
    r = _hpcflow("info", tmp_path=tmp_path)
    assert r.returncode == 0, r.stderr
    facts = r.stdout.splitlines()
    line = next(f for f in facts if f.startswith("mpi_library"))
    assert "not usable" in line and f"MPI4PY_LIBMPI='{MISSING}'" in line and LOADER in line, r.stdout
    assert not any(f.startswith("/") for f in facts), r.stdout  # the loader's message joined onto its line
    r = _hpcflow("info", ranks=2, tmp_path=tmp_path)
    warnings = [f for f in r.stdout.splitlines() if f.startswith("warning")]
    assert warnings and "MPI4PY_LIBMPI" in warnings[0] and "srun without PMI" not in warnings[0], r.stdout


def test_the_library_error_without_the_variable_is_one_line_too():
    """mpi4py's error lists each file it tried on a line of its own."""
    from hpcflow.parallel.comm import libmpi_refusal, load_error

    exc = RuntimeError("cannot load MPI library\n/a/libmpi.so: no such file\n/b/libmpi.so.12: wrong ELF class")
    assert load_error(exc) == "cannot load MPI library: /a/libmpi.so: no such file; /b/libmpi.so.12: wrong ELF class"
    assert libmpi_refusal(exc, environ={}) is None  # not set: the variable is not to blame
    said = libmpi_refusal(exc, environ={"MPI4PY_LIBMPI": "/a/libmpi.so"})
    assert "MPI4PY_LIBMPI='/a/libmpi.so'" in said and "wrong ELF class" in said and "\n" not in said


def test_tasks_of_a_launch_that_is_no_mpi_world_say_its_refusal_once(tmp_path):
    """srun without --mpi=pmi2: each task is rank 0 of a world of one; the task of SLURM_PROCID 0 says the refusal,
    the others exit 2 silently."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_", "OMPI_", "HYDRA_", "SLURM_"))}
    said = {}
    for rank in (0, 1):
        argv = ["hpcflow", "run", str(ROOT / "jobs" / "quickstart.toml"), "--out", str(tmp_path / "out")]
        r = subprocess.run(["timeout", "120", sys.executable, "-m", *argv], capture_output=True, text=True, timeout=150,
                           env=dict(env, SLURM_STEP_NUM_TASKS="2", SLURM_PROCID=str(rank), PYTHONPATH=str(ROOT),
                                    HPCFLOW_THREADS="1"))
        assert r.returncode == 2, r.stderr
        said[rank] = r.stderr
    assert said[0].count("\n") == 1 and "started 2 tasks but each sees an MPI world of size 1" in said[0], said
    assert said[1] == "", said
    assert not (tmp_path / "out").exists()
