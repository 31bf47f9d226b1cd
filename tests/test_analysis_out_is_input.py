"""An analysis script or a report whose --out is also a directory it reads holds that directory's lock itself: its
own lock file is no run's. `fig3_noise.py E1 --out E1` on an empty E1 said that E1's run, "fig3_noise.py (pid N)",
was interrupted, and `hpcflow report E1 --out E1` that E1 was running, "hpcflow report, pid N". A killed run's lock
file found there is that run's record still when the call ends (it was replaced by the call's own and removed), so
that a later call tells the run's end as the first one did."""

from __future__ import annotations

import json
import os

import pytest

from hpcflow.jobs.outlock import LOCK_NAME, acquire

pytest.importorskip("matplotlib")


def _run_record(pid: int, command: str = "hpcflow run") -> bytes:
    return json.dumps({"command": command, "pid": pid, "host": "node7", "slurm_job": None,
                       "since": "2026-12-06T01:36:33+00:00", "own_job": False}).encode()


def test_fig3_noise_on_its_own_empty_out_says_no_noise_scan(tmp_path, capsys):
    from hpcflow.analysis.script import main

    run = tmp_path / "E1"
    run.mkdir()
    assert main("fig3_noise", [str(run), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "no noise_scan.h5; pass the run directory of a noise_scan job" in err, err
    assert "interrupted" not in err and "fig3_noise.py (pid" not in err, err
    assert os.listdir(run) == []


def test_fig3_noise_into_a_killed_scans_directory_tells_that_run_and_keeps_its_lock_file(tmp_path, capsys):
    from hpcflow.analysis.script import main

    run = tmp_path / "killed"
    run.mkdir()
    (run / LOCK_NAME).write_bytes(_run_record(4242))
    (run / "job.toml").write_text('[job]\nkind = "noise_scan"\n')
    for out in (run, tmp_path / "figs"):  # its own --out first: the second call reads what the first one left
        assert main("fig3_noise", [str(run), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "interrupted before writing it" in err, err
        assert "hpcflow run (pid 4242 on node7" in err and "fig3_noise.py" not in err, err
        assert (run / LOCK_NAME).read_bytes() == _run_record(4242)
        assert sorted(os.listdir(run)) == sorted([LOCK_NAME, "job.toml"])


def test_a_report_of_its_own_empty_out_does_not_call_it_running(tmp_path, capsys):
    from hpcflow.cli import main

    run = tmp_path / "E1"
    run.mkdir()
    assert main(["report", str(run), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing to report" in err, err
    assert "running" not in err and "hpcflow report, pid" not in err, err
    assert os.listdir(run) == []


def test_a_report_into_a_killed_runs_directory_keeps_its_lock_file(tmp_path, capsys):
    from hpcflow.cli import main

    run = tmp_path / "killed"
    run.mkdir()
    (run / LOCK_NAME).write_bytes(_run_record(4242, "hpcflow nn"))
    assert main(["report", str(run), "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert "running" not in err, err
    assert (run / LOCK_NAME).read_bytes() == _run_record(4242, "hpcflow nn")


@pytest.mark.parametrize("command", ["hpcflow run", "hpcflow tune (trial 3)"])
def test_a_kept_lock_is_held_meanwhile_and_gives_the_run_record_back(tmp_path, command):
    """While held with keep, the file names the holder (another writer's refusal names it); on release, written or
    not, it holds the killed run's record again."""
    from hpcflow.jobs.outlock import OutdirBusy, held_by, record

    out = tmp_path / "d"
    out.mkdir()
    (out / LOCK_NAME).write_bytes(_run_record(4242, command))
    lock = acquire(str(out), command="table1.py", keep=True)
    try:
        assert record(held_by(str(out)))["pid"] == os.getpid()
        with pytest.raises(OutdirBusy, match=r"in use by table1\.py"):
            acquire(str(out), command="hpcflow run")
        (out / "table1.md").write_text("x\n")
    finally:
        lock.release()
    assert (out / LOCK_NAME).read_bytes() == _run_record(4242, command)
    assert held_by(str(out)) is None
    again = acquire(str(out), command="hpcflow run")  # a run takes the directory over: the file goes with it
    again.release()
    assert sorted(os.listdir(out)) == ["table1.md"]


@pytest.mark.parametrize("raw", [b"", _run_record(7, "hpcflow report"), _run_record(7, "fig2_heatmaps.py")])
def test_a_lock_file_of_no_run_is_not_kept(tmp_path, raw):
    """A lock file that tells no run's end (empty, a killed report's or script's) goes when the writer ends."""
    out = tmp_path / "d"
    out.mkdir()
    (out / LOCK_NAME).write_bytes(raw)
    acquire(str(out), command="fig3_noise.py", keep=True).release()
    assert os.listdir(out) == []
