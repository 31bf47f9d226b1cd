"""fig3_noise.py on the directory of a noise scan that has not written noise_scan.h5: where the run was killed (its
lock file left, no process holding it) it says that the run was interrupted before writing it and names the command
that reruns the job into that directory, which works there; where the run still holds the lock, that it is running.
Both said "no noise_scan.h5; pass the run directory of a noise_scan job"."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest

from analysis_runs import ROOT, JOBS, env

pytest.importorskip("matplotlib")


def _lock_record(pid: int) -> bytes:
    return json.dumps({"command": "hpcflow run", "pid": pid, "host": "node7", "slurm_job": None,
                       "since": "2026-12-06T01:36:33+00:00", "own_job": False}).encode()


def test_a_killed_scan_is_said_interrupted_and_its_rerun_works(tmp_path, capsys):
    from hpcflow.analysis.script import main

    run = tmp_path / "killed"
    run.mkdir()
    (run / ".hpcflow.lock").write_bytes(_lock_record(4242))  # as a SIGKILLed run leaves it: no process holds it
    assert main("fig3_noise", [str(run), "--out", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "interrupted before writing any file" in err, err
    assert "pid 4242 on node7" in err and "if it was a noise_scan run, rerun" in err, err
    command = err.split("rerun the noise_scan job into that --out: ", 1)[1].split(" (JOB:", 1)[0]
    argv = shlex.split(command)
    assert argv == ["hpcflow", "run", "JOB", "--out", str(run)], err
    job = tmp_path / "noise.toml"
    job.write_text(JOBS["noise"][1])
    proc = subprocess.run([sys.executable, "-m", "hpcflow", *argv[1:2], str(job), *argv[3:]], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main("fig3_noise", [str(run), "--out", str(tmp_path / "figs")]) == 0
    assert os.path.isfile(tmp_path / "figs" / "fig3_noise.png")


def test_a_running_scan_is_said_running(tmp_path, capsys):
    from hpcflow.analysis.script import main
    from hpcflow.jobs.outlock import acquire

    run = tmp_path / "live"
    held = acquire(str(run), command="hpcflow run")
    try:
        assert main("fig3_noise", [str(run), "--out", str(tmp_path / "figs")]) == 2
    finally:
        held.release()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "still running" in err and f"pid {os.getpid()}@" in err, err


@pytest.mark.parametrize("kind", ["noise_scan", "flow"])
def test_a_killed_run_with_its_job_file_is_told_by_its_kind(tmp_path, capsys, kind):
    """A lock file no process holds beside the run's job.toml: a noise scan's is said interrupted before writing
    noise_scan.h5, with the rerun; another kind's (a killed flow run passed by mistake) is not a noise scan's
    directory, and is not told to rerun the noise_scan job into it. A lock file alone says the rerun only if it was
    a noise scan: it was told to rerun the noise_scan job there, whatever the run was."""
    from hpcflow.analysis.script import main

    run = tmp_path / "killed"
    run.mkdir()
    (run / ".hpcflow.lock").write_bytes(_lock_record(4242))
    (run / "job.toml").write_text(f'[job]\nkind = "{kind}"\n')
    assert main("fig3_noise", [str(run), "--out", str(tmp_path / "figs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "if it was" not in err, err
    if kind == "noise_scan":
        assert "interrupted before writing it" in err and "; rerun the noise_scan job into that --out: " in err, err
    else:
        assert "rerun the noise_scan job" not in err and "pass the run directory of a noise_scan job" in err, err
