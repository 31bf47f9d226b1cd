"""`hpcflow tune --out` (and `hpcflow submit --command tune`) refuses the directory of an `hpcflow run`, killed or
finished, in one line naming the file found, exit 2, nothing changed on disk; a study's own directory resumes."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from hpcflow.cli import main
from hpcflow.jobs import outlock
from test_tune_records import _digests, _job, _journal, _tune  # tests/ is on sys.path (pytest's default import mode)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished `hpcflow run` of the tiny tune job (its [tune] table is ignored by run) and the job file."""
    base = tmp_path_factory.mktemp("run")
    job = _job(base)
    assert main(["run", str(job), "--out", str(base / "run"), "--quiet"]) == 0
    return job, base / "run"


def _killed(finished, path):
    """A copy of the finished run as SIGKILL leaves one: checkpoint.h5 and job.toml, no summary.json, and the lock
    file that names the dead holder (the kernel dropped its lock)."""
    shutil.copytree(finished, path)
    os.remove(path / "summary.json")
    (path / outlock.LOCK_NAME).write_text(json.dumps({"command": "hpcflow run", "pid": 999999, "host": "gone",
                                                      "slurm_job": None, "since": "2026-01-01T00:00:00+00:00"}))
    return path


def _nn_killed(path):
    """A network run killed before it wrote nn.h5 or its summary: checkpoint.pt alone."""
    path.mkdir()
    (path / "checkpoint.pt").write_bytes(b"not read")
    return path


@pytest.mark.parametrize("case, found", [("killed", "checkpoint.h5"), ("finished", "summary.json"),
                                         ("nn_killed", "checkpoint.pt")])
def test_tune_refuses_a_run_directory_naming_the_file_and_changes_nothing(tmp_path, capsys, finished, case, found):
    job, run = finished
    out = {"killed": lambda: _killed(run, tmp_path / "killed"), "finished": lambda: shutil.copytree(run, tmp_path / "f"),
           "nn_killed": lambda: _nn_killed(tmp_path / "nn")}[case]()
    before = _digests(out)
    rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
    assert rc == 2 and io.err.count("\n") == 1, io.err
    assert f"--out {out} is not a study directory: it holds {found} of an hpcflow run" in io.err
    assert io.err.rstrip().endswith("choose another --out")
    assert _digests(out) == before  # no study.json, journal or trial, the lock file's holder record kept
    rc, io = _run_submit(capsys, job, out)
    assert rc == 2 and io.err.count("\n") == 1 and f"it holds {found} of an hpcflow run" in io.err, io.err
    assert _digests(out) == before


def _run_submit(capsys, job, out):
    capsys.readouterr()
    rc = main(["submit", str(job), "--out", str(out), "--executor", "local", "--command", "tune", "--trials", "1",
               "--check"])
    return rc, capsys.readouterr()


def test_a_study_directory_is_resumed_and_an_empty_killed_run_directory_taken(tmp_path, capsys):
    """A second tune into its own study directory adds trials; a run killed before its first checkpoint leaves an
    empty directory (its lock file only), which holds no run and takes a study."""
    job, out = _job(tmp_path), tmp_path / "s"
    for total in (1, 2):
        rc, io = _tune(capsys, job, "--trials", "1", "--out", out)
        assert rc == 0, io.err
        assert len(_journal(out / "study.journal").trials) == total
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / outlock.LOCK_NAME).write_text("")
    rc, io = _tune(capsys, job, "--trials", "1", "--out", empty)
    assert rc == 0 and (empty / "study.json").is_file(), io.err
