"""`hpcflow submit` (and --check) into an --out whose lock a live run holds: one line naming the holder and the fix,
exit 2, before any work (nothing queued, no logs folder, --out as it was); a lock file without a holder (a killed
run's) is no refusal."""

from __future__ import annotations

import json
import os

import pytest

from hpcflow.cli import main
from hpcflow.jobs import outlock
from test_submit import JOB


def _files(root) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


SUBMITS = {"run --check": ["--executor", "local", "--check"],
           "run --force --check": ["--executor", "local", "--check", "--force"],
           "tune --check": ["--executor", "local", "--check", "--command", "tune", "--trials", "1"],
           "run": ["--executor", "local"],
           "slurm --check": ["--executor", "slurm", "--check"]}


@pytest.mark.parametrize("host", [None, "node7"])
def test_submit_into_an_out_a_live_run_holds_is_refused_before_any_work(tmp_path, capsys, host):
    """Held by this process (as `hpcflow run` holds it), its record naming this host or (host) another one: a lock
    that the file system reports held is a live holder wherever it runs."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB + "[tune]\nsampler = \"random\"\n[tune.space]\n\"flow.dt\" = {low = 0.5, high = 3.0}\n")
    lock = outlock.acquire(out, command="hpcflow run")
    try:
        if host is not None:
            record = json.loads((out / outlock.LOCK_NAME).read_text())
            os.pwrite(lock.fd, json.dumps({**record, "host": host, "slurm_job": "42", "own_job": True}).encode()
                      .ljust(200), 0)
        before = _files(tmp_path)
        for case, extra in SUBMITS.items():
            capsys.readouterr()
            assert main(["submit", str(job), "--out", str(out), *extra]) == 2, case
            err = capsys.readouterr().err
            where = f"on {host}, Slurm job 42" if host else f"on {os.uname().nodename}"
            assert err.count("\n") == 1 and f"--out {out} is in use by hpcflow run (pid {os.getpid()} {where}" in err, \
                (case, err)
            stop = "scancel 42" if host else f"kill -TERM {os.getpid()}"
            assert f"wait for it, stop it ({stop}), or choose another --out" in err, err
            assert _files(tmp_path) == before and sorted(os.listdir(tmp_path)) == ["job.toml", "out"], case
    finally:
        lock.release()
    capsys.readouterr()
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--check"]) == 0  # released


@pytest.mark.parametrize("env, scancel", [
    ({"SUBMITIT_EXECUTOR": "slurm"}, True),  # (the task of a `hpcflow submit` job)
    ({"HPCFLOW_STEP_SIGNALS": "/tmp/step"}, True),  # (the run of an sbatch template's step)
    ({}, False),  # (salloc, or a batch script of the user's own: the job is an allocation)
    ({"SUBMITIT_EXECUTOR": "local"}, False),  # (a local job started inside an allocation)
])
def test_the_stop_of_a_run_in_slurm_is_scancel_only_where_the_job_is_the_runs_own(tmp_path, capsys, monkeypatch, env,
                                                                                   scancel):
    """A run started inside salloc or a user's own multi-command batch job has the allocation's SLURM_JOB_ID:
    'scancel J' would end the whole allocation; it is told to kill the run's pid instead."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    for key in ("SUBMITIT_EXECUTOR", "HPCFLOW_STEP_SIGNALS"):
        monkeypatch.delenv(key, raising=False)
    with monkeypatch.context() as held:
        for key, value in {"SLURM_JOB_ID": "42", **env}.items():
            held.setenv(key, value)
        lock = outlock.acquire(out, command="hpcflow run")
    try:
        assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--check"]) == 2
        err = capsys.readouterr().err
        assert f"hpcflow run (pid {os.getpid()} on {os.uname().nodename}, Slurm job 42" in err, err
        stop = "scancel 42" if scancel else f"kill -TERM {os.getpid()}"
        assert f"stop it ({stop})" in err, err
    finally:
        lock.release()


def test_a_lock_file_without_a_holder_is_no_refusal(tmp_path, capsys):
    """A killed run leaves its lock file (naming it) but no lock: the directory, empty otherwise, is taken."""
    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    out.mkdir()
    (out / outlock.LOCK_NAME).write_text(json.dumps({"command": "hpcflow run", "pid": 999999, "host": "node7",
                                                     "slurm_job": "42", "since": "2026-01-01T00:00:00+00:00"}))
    assert main(["submit", str(job), "--out", str(out), "--executor", "local", "--check"]) == 0
    assert "is valid (kind flow)" in capsys.readouterr().out


def test_an_out_a_submitted_local_jobs_run_holds_is_refused_naming_the_job_and_its_stop(tmp_path, capsys):
    """The lock held by the run of a local job (its controller, a stand-in named as `hpcflow.submit.local` is, of this
    user): the refusal named the run's pid, without how to stop it; it names the job (the controller's pid) and
    `kill -TERM` of it, which stops the job (the run alone, the controller would start again), as for a job queued."""
    import subprocess
    import sys
    import time

    from hpcflow.submit import queued

    job, out = tmp_path / "job.toml", tmp_path / "out"
    job.write_text(JOB)
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "-m", "hpcflow.submit.local",
                                 str(tmp_path / "out_logs"), str(out)])
    lock = outlock.acquire(out, command="hpcflow run")  # (its run: this process)
    try:
        deadline = time.monotonic() + 30  # (its exec may have closed Popen's pipe before the kernel set its argv)
        while not queued.local_jobs(str(out)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for extra in (["--check"], [], ["--check", "--command", "tune", "--trials", "1"]):
            assert main(["submit", str(job), "--out", str(out), "--executor", "local", *extra]) == 2, extra
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"local job {stand_in.pid}, queued or running" in err, err
            assert f"kill -TERM {stand_in.pid}" in err and f"pid {os.getpid()}" not in err, err
    finally:
        lock.release()
        stand_in.kill()
        stand_in.wait()
