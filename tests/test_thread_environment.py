"""The environment that sets threads and progress output: hpcflow's own variables (HPCFLOW_THREADS, HPCFLOW_QUIET,
HPCFLOW_BACKEND) are refused alike by the Python API and the commands, the BLAS and OpenMP thread counts
(OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS) by every command before any work, and `hpcflow sample`
limits its threads as `hpcflow run` does and says how far it got in a log."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hpcflow.cli import main
from hpcflow.errors import ConfigError
from hpcflow.geometry import Hypersurface

ROOT = Path(__file__).resolve().parents[1]
#: what BLAS and OpenMP runtimes read as they load (their documentation's names)
BLAS_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@pytest.fixture
def threads_kept(monkeypatch):
    """An in-process command sets the thread variables (limit_threads): restored after the test."""
    for name in ("HPCFLOW_THREADS", "HPCFLOW_QUIET", "HPCFLOW_BACKEND", *BLAS_VARIABLES):
        monkeypatch.setenv(name, "1")
    monkeypatch.delenv("HPCFLOW_BACKEND")
    monkeypatch.delenv("HPCFLOW_QUIET")


def _one_line(capsys, verb: str) -> str:
    err = capsys.readouterr().err
    assert err.startswith(f"hpcflow {verb}: error: ") and err.count("\n") == 1, err
    return err[len(f"hpcflow {verb}: error: "):].rstrip("\n")


# (variable, value, what the line must say besides the variable and its value): 2000 threads is above the 1024 a
# job or call may ask for; "yes" is not the 1 HPCFLOW_QUIET takes; tpu is no backend
BAD_OWN = [("HPCFLOW_THREADS", "0", "1024"), ("HPCFLOW_THREADS", "2000", "1024"), ("HPCFLOW_THREADS", "x", "1024"),
           ("HPCFLOW_QUIET", "yes", "must be 1"), ("HPCFLOW_BACKEND", "tpu", "numpy, cupy")]


@pytest.mark.parametrize("name, value, says", BAD_OWN)
def test_api_and_command_refuse_a_variable_in_the_same_line(tmp_path, monkeypatch, capsys, threads_kept, name, value,
                                                             says):
    """The API read HPCFLOW_THREADS without its upper bound (2000 sampled), with another message for 0 ("is not a
    positive integer"), took any HPCFLOW_QUIET for 1 and said another fix for HPCFLOW_BACKEND; the commands refused
    each with their own line. Now one parser: the same line from both, naming the variable and the fix."""
    monkeypatch.delenv("HPCFLOW_THREADS")  # the API's default threads come from it
    monkeypatch.setenv(name, value)
    out = tmp_path / "points.h5"
    assert main(["sample", "--n", "10", "--out", str(out)]) == 2
    line = _one_line(capsys, "sample")
    assert line.startswith(f"{name}='{value}' ") and says in line and ("unset it" in line or "fix it" in line), line
    assert not out.exists()
    with pytest.raises(ConfigError) as refused:
        Hypersurface.fermat(3).sample(10, seed=0)
    assert str(refused.value) == line


def test_kernel_operator_default_threads_follow_the_same_bound(monkeypatch):
    """A kernel operator's default thread count ($HPCFLOW_THREADS) has the commands' bound: 2000 is refused with
    their line, 3 taken."""
    from hpcflow.kernels import GaussianKernel

    monkeypatch.delenv("HPCFLOW_THREADS", raising=False)
    ps = Hypersurface.fermat(3).sample(20, seed=0)
    kernel = GaussianKernel(0.1)
    monkeypatch.setenv("HPCFLOW_THREADS", "2000")
    with pytest.raises(ConfigError, match=r"^HPCFLOW_THREADS='2000' must be an integer in \[1, 1024\]; set e.g. "):
        kernel.operator(ps, ps)
    monkeypatch.setenv("HPCFLOW_THREADS", "3")
    assert kernel.operator(ps, ps).threads == 3


@pytest.mark.parametrize("name", BLAS_VARIABLES)
@pytest.mark.parametrize("value", ["abc", "0", "-1", "2x", "1.5"])
def test_bad_blas_thread_counts_are_refused_before_any_work(tmp_path, monkeypatch, capsys, threads_kept, name,
                                                            value):
    """OpenBLAS and OpenMP read such a value as "not set" (one thread per CPU of the node) or stop; the commands went
    on. Now one line naming the variable, exit 2, nothing written."""
    monkeypatch.setenv(name, value)
    out = tmp_path / "points.h5"
    assert main(["sample", "--n", "10", "--out", str(out)]) == 2
    line = _one_line(capsys, "sample")
    assert line.startswith(f"{name}='{value}' is not a positive integer") and f"{name}=1 or unset it" in line, line
    assert not out.exists()


def test_every_command_refuses_a_bad_blas_thread_count(tmp_path):
    """run, nn, tune, report and info check the thread variables as they check HPCFLOW_*: exit 2, one line, before
    --out is made."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), HPCFLOW_THREADS="1", OPENBLAS_NUM_THREADS="0")
    cases = {"run": [str(ROOT / "jobs/quickstart.toml")], "nn": [str(ROOT / "jobs/nn_smoke.toml")],
             "tune": [str(ROOT / "jobs/tune_delta.toml"), "--trials", "1"], "report": [str(tmp_path)], "info": []}
    for verb, args in cases.items():
        out = tmp_path / f"out_{verb}"
        r = subprocess.run([sys.executable, "-m", "hpcflow", verb, *args, *(["--out", str(out)] if verb != "info"
                                                                             else [])],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, (verb, r.stderr)
        assert r.stderr.startswith(f"hpcflow {verb}: error: OPENBLAS_NUM_THREADS='0' ") and \
            r.stderr.count("\n") == 1, (verb, r.stderr)
        assert not out.exists(), verb


@pytest.mark.parametrize("name, value", [("OMP_NUM_THREADS", "2"), ("OMP_NUM_THREADS", "4,2"),
                                         ("OPENBLAS_NUM_THREADS", "3"), ("MKL_NUM_THREADS", "1")])
def test_valid_blas_thread_counts_are_accepted(tmp_path, monkeypatch, capsys, threads_kept, name, value):
    """A count, and for OpenMP a list of counts per nesting level (the OpenMP specification's OMP_NUM_THREADS)."""
    monkeypatch.setenv(name, value)
    out = tmp_path / "points.h5"
    assert main(["sample", "--n", "10", "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    assert out.exists()


# ---- hpcflow sample: threads and progress in a log ----------------------------------------------------------------
def test_sample_limits_its_threads_as_run_does(tmp_path, monkeypatch, capsys, threads_kept):
    """Slurm gave the task 3 CPUs of a node whose 8 this process may run on: `hpcflow sample` started a sampling
    thread per CPU of the node (8) and left the BLAS and OpenMP variables as they were; `hpcflow run` takes 3."""
    import hpcflow.geometry.sampling as sampling

    workers, exported = [], []

    class Pool(sampling.ThreadPoolExecutor):
        def __init__(self, max_workers=None, **kwargs):
            workers.append(max_workers)
            exported.append([os.environ.get(name) for name in ("HPCFLOW_THREADS", *BLAS_VARIABLES)])
            super().__init__(max_workers=max_workers, **kwargs)

    monkeypatch.setattr(sampling, "ThreadPoolExecutor", Pool)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    for name in ("HPCFLOW_THREADS", *BLAS_VARIABLES):
        monkeypatch.delenv(name)
    assert main(["sample", "--n", "10", "--out", str(tmp_path / "points.h5")]) == 0, capsys.readouterr().err
    assert workers == [3]
    assert exported == [["3"] * 4]  # while it samples (the caller's own are given back after: main(argv))


class Clock:
    """A clock that moves `step` seconds at every reading."""

    def __init__(self, step: float):
        self.now, self.step = 1000.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_sample_says_its_progress_in_a_log(tmp_path, monkeypatch, capsys, threads_kept):
    """With stderr no terminal (a batch log) `hpcflow sample` said nothing until it ended, however long it took. Now
    a plain line of points found once a minute has passed (here a clock that moves 61 s at every reading); --quiet
    says none."""
    import hpcflow.progress

    monkeypatch.setattr(hpcflow.progress, "clock", Clock(61.0))
    out = tmp_path / "points.h5"
    assert main(["sample", "--n", "500", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert lines and all(line.startswith("sampling: ") and " of 500 pt (" in line for line in lines), captured.err
    assert lines[-1].startswith("sampling: 500 of 500 pt (100%) after "), lines
    assert "sampling" not in captured.out and "points        500" in captured.out  # the summary stays on stdout
    assert main(["sample", "--n", "500", "--out", str(out), "--force", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_progress_lines_come_at_most_once_a_minute(monkeypatch, capsys):
    """Updates every 25 s: a line at 75 s, 150 s, 225 s (the first update 60 s or more after the last line)."""
    import hpcflow.progress

    monkeypatch.delenv("HPCFLOW_QUIET", raising=False)
    monkeypatch.setattr(hpcflow.progress, "clock", Clock(25.0))
    with hpcflow.progress.progress(total=10, desc="work", unit="blocks", lines=True) as bar:
        for _ in range(10):
            bar.update(1)
    assert capsys.readouterr().err.splitlines() == [
        "work: 3 of 10 blocks (30%) after 75 s, about 175 s left",
        "work: 6 of 10 blocks (60%) after 150 s, about 100 s left",
        "work: 9 of 10 blocks (90%) after 225 s, about 25 s left"]
    with hpcflow.progress.progress(total=10, desc="work", lines=False) as bar:  # not asked for: silent
        bar.update(10)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("job_threads, trained_on", [(1, 1), (0, 2)])
def test_a_network_jobs_training_threads_win_over_hpcflow_threads_and_0_leaves_them(tmp_path, threads_kept,
                                                                                    monkeypatch, job_threads,
                                                                                    trained_on):
    """README: [training].threads > 0 sets torch's threads of a network's training over $HPCFLOW_THREADS; 0 uses
    the variable's (summary.json's threads)."""
    import json

    from jobtexts import NN_POINTS, SMALL_NET, TINY_TRAINING

    monkeypatch.setenv("HPCFLOW_THREADS", "2")
    job = tmp_path / "job.toml"
    job.write_text(NN_POINTS + SMALL_NET + TINY_TRAINING)
    out = tmp_path / "out"
    assert main(["nn", str(job), "--out", str(out), "--quiet", "--set", f"training.threads={job_threads}",
                 "--set", "training.epochs=1"]) == 0
    assert json.loads((out / "summary.json").read_text())["threads"] == trained_on


def test_an_in_process_command_leaves_the_callers_thread_variables_as_it_found_them(tmp_path, monkeypatch):
    """`hpcflow.cli.main(argv)` in a caller's process (a notebook, a test) exports its threads for the processes it
    starts while it runs, and gives the caller's variables back after: a later command of the caller took an
    HPCFLOW_THREADS left behind for the user's (hpcflow submit warned of it)."""
    from hpcflow.resources import THREAD_VARIABLES

    for name in ("HPCFLOW_THREADS", *THREAD_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert main(["sample", "--n", "10", "--out", str(tmp_path / "points.h5")]) == 0
    assert {n: os.environ.get(n) for n in ("HPCFLOW_THREADS", *THREAD_VARIABLES)} == {
        "HPCFLOW_THREADS": None, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": None, "MKL_NUM_THREADS": None}
