"""A SIGTERM or SIGUSR1 after a run's work is done (summary.json written; for `hpcflow tune` best.toml written and
its lock released; `hpcflow sample`'s file written; or as the process ends) leaves the finished command's exit
status 0 and its outputs whole, with no further line: it used to end it with 143 / 138 ("stopped by ..."), or under
mpiexec with the bare signal number (15, 10: the default action, which MPICH's SIGUSR1 handler no longer stands in
for), so that Slurm recorded a finished job as failed. The signal reaches one rank alone
(tests/mpi/late_signal_driver.py)."""

import json
import os
import signal
import subprocess
import sys

import pytest

from jobtexts import GAUSSIAN_KERNEL, NN_POINTS, SMALL_NET, TINY_TRAINING, flow_points
from test_parallel import mpiexec
from test_tune_records import JOB as TUNE_JOB

DRIVER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mpi", "late_signal_driver.py")
FLOW_JOB = flow_points(60, 60) + GAUSSIAN_KERNEL + """[flow]
dt = 1.0
steps = 2
loss = "ultralocal"
"""
NN_JOB = NN_POINTS + SMALL_NET + TINY_TRAINING.replace("epochs = 4", "epochs = 1")


@pytest.mark.parametrize("verb, ranks, rank, sig, when", [
    ("run", 1, 0, "SIGTERM", "summary.json"), ("run", 2, 0, "SIGUSR1", "summary.json"),
    ("run", 2, 1, "SIGTERM", "end"), ("nn", 1, 0, "SIGUSR1", "end"),
    ("nn", 2, 0, "SIGUSR1", "end"), ("nn", 2, 1, "SIGTERM", "hpcflow.nn.job:finish")])
def test_a_stop_signal_after_the_summary_leaves_the_finished_run_s_status_0(tmp_path, verb, ranks, rank, sig, when):
    job = tmp_path / "job.toml"
    job.write_text(FLOW_JOB if verb == "run" else NN_JOB)
    r = _run(tmp_path, ranks, rank, sig, when, verb, job)
    _finished_quietly(r, sig, f"hpcflow {verb}: wrote {tmp_path / 'out'}/summary.json")
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("ranks, rank, sig, when", [(1, 0, "SIGTERM", "hpcflow.tune.study:outcomes"),
                                                     (2, 1, "SIGUSR1", "end")])
def test_a_stop_signal_after_best_toml_leaves_the_tune_worker_s_status_0(tmp_path, ranks, rank, sig, when):
    job = tmp_path / "tiny.toml"
    job.write_text(TUNE_JOB)
    r = _run(tmp_path, ranks, rank, sig, when, "tune", job, "--trials", "1")
    _finished_quietly(r, sig, f"wrote {tmp_path / 'out'}/best.toml")
    assert "[flow]" in (tmp_path / "out" / "best.toml").read_text()


def test_a_stop_signal_after_the_sample_file_leaves_the_status_0(tmp_path):
    r = _run(tmp_path, 2, 1, "SIGUSR1", "end", "sample", "--n", "200", "--dim", "1")
    _finished_quietly(r, "SIGUSR1", f"written       {tmp_path / 'out'}")
    assert (tmp_path / "out").stat().st_size > 0


def _finished_quietly(r, sig, wrote):
    """Exit status 0, the line saying what was written, no stop line, traceback or launcher banner."""
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    assert f"sent {sig}" in r.stderr.splitlines(), r.stderr  # the signal did come
    assert wrote in r.stdout, r.stdout
    # (notes aside: at 2 ranks `hpcflow nn` notes the batch's few rows per rank on stderr)
    assert not [line for line in r.stderr.splitlines() if line.startswith("hpcflow") and ": note: " not in line], \
        r.stderr
    text = r.stdout + r.stderr
    assert "Traceback" not in text and "BAD TERMINATION" not in text and "EXIT STRING" not in text, text


def _run(tmp_path, ranks, rank, sig, when, *argv):
    """The driver's `hpcflow ARGV --out TMP/out --quiet` at `ranks` ranks (the CompletedProcess)."""
    launch = [mpiexec(), "-n", str(ranks)] if ranks > 1 else []
    env = dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(DRIVER))))
    return subprocess.run(["timeout", "60", *launch, sys.executable, DRIVER, str(rank), sig, when, *map(str, argv),
                           "--out", str(tmp_path / "out"), "--quiet"], capture_output=True, text=True, timeout=90,
                          env=env)


def test_after_a_finished_run_in_process_a_child_and_the_next_command_take_stop_requests(tmp_path, monkeypatch):
    """A caller's process (a test's, a notebook's) goes on after a finished command: a process it starts is ended by
    SIGTERM (it would inherit SIG_IGN), and its next command still ends in one line on a request in its start-up."""
    from hpcflow.cli import main
    from hpcflow.jobs import registry

    job = tmp_path / "job.toml"
    job.write_text(FLOW_JOB)
    assert main(["run", str(job), "--out", str(tmp_path / "a"), "--quiet"]) == 0
    child = subprocess.run([sys.executable, "-c", "import os, signal, time; os.kill(os.getpid(), signal.SIGTERM); "
                            "time.sleep(30)"], timeout=60)
    assert child.returncode == -signal.SIGTERM
    load = registry.load_with_extras  # (what `hpcflow run` reads its job with)

    def signalled_first(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return load(*args, **kwargs)

    monkeypatch.setattr(registry, "load_with_extras", signalled_first)
    assert main(["run", str(job), "--out", str(tmp_path / "b"), "--quiet"]) == 128 + signal.SIGTERM
    assert not (tmp_path / "b" / "summary.json").exists()


def test_a_stop_signal_after_the_report_or_a_figure_is_written_leaves_the_status_0(tmp_path):
    """`hpcflow report` and the analysis scripts: a SIGTERM once their files are written (as the process ends) ended
    a complete result with 143, where run, nn, tune and sample ignore it."""
    from hpcflow.cli import main

    job = tmp_path / "job.toml"
    job.write_text(FLOW_JOB)
    assert main(["run", str(job), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    env = dict(os.environ, HPCFLOW_THREADS="1", PYTHONPATH=os.path.dirname(os.path.dirname(os.path.dirname(DRIVER))))
    r = subprocess.run(["timeout", "60", sys.executable, DRIVER, "0", "SIGTERM", "end", "report",
                        str(tmp_path / "run"), "--out", str(tmp_path / "rep")], capture_output=True, text=True,
                       timeout=90, env=env)
    _finished_quietly(r, "SIGTERM", f"hpcflow report: wrote {tmp_path / 'rep'}/report.html")
    script = ("import os, signal, sys\nfrom hpcflow.analysis.script import main\nstatus = main('sigma_history', "
              "sys.argv[1:])\nprint('sent SIGTERM', file=sys.stderr, flush=True)\nos.kill(os.getpid(), "
              "signal.SIGTERM)\nsys.exit(status)\n")
    r = subprocess.run(["timeout", "60", sys.executable, "-c", script, str(tmp_path / "run"), "--out",
                        str(tmp_path / "fig")], capture_output=True, text=True, timeout=90, env=env)
    assert r.returncode == 0 and "sent SIGTERM" in r.stderr, (r.returncode, r.stdout, r.stderr)
    assert f"wrote {tmp_path / 'fig'}" in r.stdout and "Traceback" not in r.stderr, r.stdout + r.stderr
