"""Threads per rank above the CPUs a rank owns (HPCFLOW_THREADS=1024 on 2 cores ran 6.5x slower; a network job's
[training] threads = 16 on 2 cores 10x): kept, as a user may mean them, and said once in one line on stderr (rank 0's)
naming the setting, the CPUs owned and the value that fits. The CPUs are faked through the affinity mask."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpcflow.parallel import comm as pcomm
from hpcflow.resources import THREAD_VARIABLES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cpus(monkeypatch):
    """`cpus(n)`: this process may run on n CPUs. The thread variables and BLAS pools are put back after the test
    (limit_threads sets them); nothing said yet in this process, no SLURM_CPUS_PER_TASK."""
    from threadpoolctl import threadpool_limits

    for name in ("HPCFLOW_THREADS", *THREAD_VARIABLES):
        monkeypatch.setenv(name, os.environ.get(name, "1"))
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    monkeypatch.setattr(pcomm, "_SAID", set(), raising=False)
    monkeypatch.setattr(pcomm, "_OWNED", None, raising=False)

    def bind(n: int) -> None:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)))

    with threadpool_limits(limits=None):
        yield bind


def _lines(capsys) -> list:
    return capsys.readouterr().err.strip().splitlines()


def test_hpcflow_threads_above_the_cpus_are_kept_and_said_once(cpus, capsys, monkeypatch):
    cpus(2)
    monkeypatch.setenv("HPCFLOW_THREADS", "16")
    assert pcomm.limit_threads() == 16 and os.environ["HPCFLOW_THREADS"] == "16"  # kept
    err = _lines(capsys)
    assert len(err) == 1 and err[0].startswith("hpcflow: warning: HPCFLOW_THREADS=16 "), err
    assert "2 CPUs" in err[0] and "set HPCFLOW_THREADS=2 or less" in err[0], err
    assert pcomm.limit_threads() == 16 and _lines(capsys) == []  # once
    monkeypatch.setenv("HPCFLOW_THREADS", "2")  # as many as the CPUs: nothing to say
    assert pcomm.limit_threads() == 2 and _lines(capsys) == []


def test_the_cpus_slurm_gave_the_task_bound_what_a_rank_owns(cpus, capsys, monkeypatch):
    """Under TaskPlugin=task/none the mask is the whole node (8 CPUs here), while the task was given 1 CPU."""
    cpus(8)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    monkeypatch.setenv("HPCFLOW_THREADS", "4")
    assert pcomm.limit_threads() == 4
    err = _lines(capsys)
    assert len(err) == 1 and "HPCFLOW_THREADS=4" in err[0] and "1 CPU " in err[0], err
    assert "SLURM_CPUS_PER_TASK=1" in err[0] and "set HPCFLOW_THREADS=1," in err[0], err


def test_training_threads_above_the_cpus_are_said(cpus, capsys, monkeypatch):
    """The nn job sets its pools to [training] threads (pool_threads) after the rank's threads (limit_threads)."""
    cpus(2)
    monkeypatch.delenv("HPCFLOW_THREADS")  # the rank's own: 2
    assert pcomm.limit_threads() == 2 and _lines(capsys) == []
    pcomm.pool_threads(16)
    err = _lines(capsys)
    assert len(err) == 1 and err[0].startswith("hpcflow: warning: [training] threads = 16 "), err
    assert "2 CPUs" in err[0] and "set [training] threads = 2 or less" in err[0], err
    assert os.environ["OMP_NUM_THREADS"] == "16"  # kept
    pcomm.pool_threads(1)
    assert _lines(capsys) == []


def test_ranks_that_share_their_cpus_are_said_once_by_rank_0(tmp_path):
    """mpiexec binds nothing: 2 ranks share this process's CPUs, each owning half (at least 1); threads beyond that
    on every rank are said in one line, not one per rank."""
    from test_parallel import mpiexec

    threads = len(os.sched_getaffinity(0)) + 1
    env = dict(os.environ, HPCFLOW_THREADS=str(threads), PYTHONPATH=str(ROOT))
    env.pop("SLURM_CPUS_PER_TASK", None)
    r = subprocess.run(["timeout", "120", mpiexec(), "-n", "2", sys.executable, "-m", "hpcflow", "run",
                        str(ROOT / "jobs" / "quickstart.toml"), "--out", str(tmp_path / "out"), "--check"],
                       capture_output=True, text=True, env=env, timeout=150)
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if "warning" in line]
    assert len(said) == 1 and said[0].startswith(f"hpcflow: warning: HPCFLOW_THREADS={threads} "), r.stderr
    assert "shared by 2 ranks" in said[0], said


def test_ranks_that_run_different_thread_counts_are_noted_once_by_rank_0(monkeypatch):
    """Each rank's count as the last `threads_per_rank` gathered them: listed by count, runs of ranks as FIRST-LAST;
    nothing where every rank runs the same, nor on another rank than 0, nor a second time for the same counts."""
    monkeypatch.setattr(pcomm, "_SAID", set(), raising=False)
    monkeypatch.setattr(pcomm, "_OWNED", ([4] * 5, ["m"] * 5, 0, [1, 1, 2, 1, 2]), raising=False)
    note = pcomm.unequal_threads()
    assert note.startswith("hpcflow: note: the ranks run different thread counts ($HPCFLOW_THREADS, else the CPUs "
                           "each owns: 1 on ranks 0-1, 3; 2 on ranks 2, 4): "), note
    assert "rank 0's (1)" in note and pcomm.unequal_threads() is None  # once
    monkeypatch.setattr(pcomm, "_OWNED", ([4] * 3, ["m"] * 3, 0, [3, 3, 3]), raising=False)
    assert pcomm.unequal_threads() is None
    monkeypatch.setattr(pcomm, "_OWNED", ([4] * 2, ["m"] * 2, 1, [1, 2]), raising=False)
    assert pcomm.unequal_threads() is None  # rank 1 says nothing
